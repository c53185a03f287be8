//! The sealing pipeline: decode → (watermark) → encode → C2PA manifest → Ed25519 signature →
//! atomic write. Nothing is written at the output path until the signed file is complete.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hallmark_media::{
    Decoder, EncodeSettings, Encoder, MediaFrame, MediaInfo, MediaKind, OutputFormat, PixelLayout,
    VideoFrame,
};
use hallmark_store::{Fingerprint, Fingerprinter, ManifestStore, StoredManifest};
use hallmark_watermark::{
    AudioDetector, AudioEmbedder, Payload, VideoDetector, VideoEmbedder, WatermarkKey,
    DEFAULT_AUDIO_STRENGTH, DEFAULT_STRENGTH,
};
use serde_json::json;

use crate::fsutil::parent_dir;
use crate::{SignerError, SigningIdentity};

/// IPTC digital source type for output of a trained AI model.
pub const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/// `alg` of hallmark's `c2pa.soft-binding` assertion: the picture watermark, version 1.
pub const WATERMARK_ALG: &str = "org.hallmark.watermark.video.1";

/// `alg` of the second `c2pa.soft-binding` assertion: the sound's watermark, version 1 (same
/// clip id as the picture's).
pub const AUDIO_WATERMARK_ALG: &str = "org.hallmark.watermark.audio.1";

/// Label of hallmark's own assertion in the manifest.
pub const HALLMARK_ASSERTION: &str = "org.hallmark.seal";

/// The `name` of hallmark in `claim_generator_info` (shown as `hallmark/<version>`).
pub const CLAIM_GENERATOR_NAME: &str = "hallmark";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a clip is sealed.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Declare the content AI-generated (digitalSourceType trainedAlgorithmicMedia).
    pub ai_generated: bool,
    /// Title in the manifest; defaults to the output file name.
    pub title: Option<String>,
    /// Generation parameters recorded in the hallmark assertion (prompt, seed, model…).
    pub generation: Option<serde_json::Value>,
    pub encode: EncodeSettings,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            ai_generated: true,
            title: None,
            generation: None,
            encode: EncodeSettings::default(),
        }
    }
}

/// Where a sealing run is, for progress bars.
#[derive(Debug, Clone, Copy)]
pub enum SealProgress {
    /// Frames (video) or chunks (audio-only) processed, and the estimated total.
    Encoding {
        done: u64,
        total: Option<u64>,
    },
    Signing,
}

/// Wall-clock seconds spent in each stage of sealing.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimings {
    /// Producing frames: decoding the input, or rendering for generated clips.
    pub source_s: f64,
    /// Embedding the watermark (watermark issue).
    pub watermark_s: f64,
    /// Encoding, on its own thread (overlapping the stages above; x264 adds threads of its own).
    pub encode_s: f64,
    /// Building, hashing and signing the manifest.
    pub sign_s: f64,
}

fn lap(clock: &mut Instant) -> f64 {
    let now = Instant::now();
    let secs = now.duration_since(*clock).as_secs_f64();
    *clock = now;
    secs
}

/// A sealed file, as written.
#[derive(Debug, Clone)]
pub struct Seal {
    pub output: PathBuf,
    pub format: OutputFormat,
    pub manifest_bytes: usize,
    /// The clip id the watermarks carry, in the picture and in the sound (recorded as the
    /// manifest's soft bindings).
    pub clip_id: Option<u64>,
    /// The active manifest's label; the record's id in the manifest store.
    pub manifest_id: Option<String>,
    pub video_frames: u64,
    pub audio_seconds: f64,
    pub timings: StageTimings,
}

/// Where the frames to seal come from: a decoded file or a generator.
pub trait FrameSource {
    fn info(&self) -> &MediaInfo;
    fn next_frame(&mut self) -> Result<Option<MediaFrame>, SignerError>;
}

impl FrameSource for Decoder {
    fn info(&self) -> &MediaInfo {
        Decoder::info(self)
    }

    fn next_frame(&mut self) -> Result<Option<MediaFrame>, SignerError> {
        Ok(Decoder::next_frame(self)?)
    }
}

/// What the manifest says about where the content came from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// An existing file, re-encoded: `c2pa.opened` with the file as parent ingredient, then
    /// `c2pa.transcoded`.
    Existing(&'a Path),
    /// Made by hallmark's generator: `c2pa.created`, always trainedAlgorithmicMedia.
    Generated,
}

/// Seals an existing media file (see [`Origin::Existing`]).
pub fn seal_file(
    input: &Path,
    output: &Path,
    identity: &SigningIdentity,
    options: &SealOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(SealProgress),
) -> Result<Seal, SignerError> {
    hallmark_media::init();
    let format = OutputFormat::from_path(output)?;
    check_paths(input, output)?;
    if !options.ai_generated {
        if let Some(why) = manifest_declares_ai(input)? {
            return Err(SignerError::Refused(format!(
                "{} cannot be sealed as not AI-generated: {why}",
                input.display()
            )));
        }
    }
    let mut decoder = Decoder::open(input, PixelLayout::Yuv420p)?;
    check_compatible(input, decoder.info(), format)?;
    seal(
        &mut decoder,
        Origin::Existing(input),
        output,
        identity,
        options,
        cancel,
        progress,
    )
}

/// Encodes everything `source` yields into `output` (format from its extension) and signs it.
/// The only way frames leave hallmark as a file: nothing appears at `output` unless the
/// signed file is complete.
pub fn seal(
    source: &mut dyn FrameSource,
    origin: Origin<'_>,
    output: &Path,
    identity: &SigningIdentity,
    options: &SealOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(SealProgress),
) -> Result<Seal, SignerError> {
    hallmark_media::init();
    let format = OutputFormat::from_path(output)?;
    let dir = parent_dir(output);
    if !dir.is_dir() {
        return Err(SignerError::io(
            dir,
            std::io::Error::other("output directory does not exist"),
        ));
    }
    if let Some(store) = identity.store() {
        // Fail before the long encode, not after it, if the store cannot be written.
        ManifestStore::open(store)?;
    }
    if let Some(url) = identity.tsa_url() {
        // Likewise for a time-stamp authority that is down (the request itself is made when
        // signing, and its failure then stops the seal too).
        check_tsa_reachable(url)?;
    }
    let info = source.info().clone();
    let media_tmp = temp_in(dir, format)?;
    // Every sealed picture and every sealed sound track carries the mark, both with the same
    // clip id; it goes into the manifest below.
    let marks_video =
        info.video.is_some() && matches!(format.kind(), MediaKind::Video | MediaKind::Image);
    let marks_audio =
        info.audio.is_some() && matches!(format.kind(), MediaKind::Video | MediaKind::Audio);
    // The mark carries the AI declaration too (the clip id's top bit).
    let payload = (marks_video || marks_audio)
        .then(|| {
            Payload::fresh(
                identity.watermark_key().key_id(),
                options.ai_generated || matches!(origin, Origin::Generated),
            )
        })
        .transpose()
        .map_err(|e| SignerError::Unsupported(format!("no clip id: {e}")))?;
    let key = identity.watermark_key();
    let mut embedder = payload
        .filter(|_| marks_video)
        .map(|p| VideoEmbedder::new(key, p, DEFAULT_STRENGTH));
    let mut audio_embedder = payload
        .filter(|_| marks_audio)
        .map(|p| AudioEmbedder::new(key, p, DEFAULT_AUDIO_STRENGTH));
    // An input declared not AI-generated must not carry a hallmark mark that says it is:
    // the frames are checked on their way to the embedder, before they are marked again.
    let mut marks = match origin {
        Origin::Existing(_) if !options.ai_generated => {
            Some(MarkCheck::new(identity.known_marks(), &info))
        }
        _ => None,
    };
    let stats = transcode(
        source,
        embedder.as_mut(),
        audio_embedder.as_mut(),
        marks.as_mut(),
        &info,
        media_tmp.path(),
        format,
        options,
        cancel,
        progress,
    )?;
    if let (Some(marks), Origin::Existing(input)) = (marks, origin) {
        if let Some(why) = marks.declares_ai() {
            return Err(SignerError::Refused(format!(
                "{} cannot be sealed as not AI-generated: {why}",
                input.display()
            )));
        }
    }

    progress(SealProgress::Signing);
    let sign_started = Instant::now();
    let title = options.title.clone().unwrap_or_else(|| file_name(output));
    let mut builder = manifest_builder(&title, origin, options)?;
    let agent = json!({"name": CLAIM_GENERATOR_NAME, "version": VERSION});
    match origin {
        Origin::Existing(input) => {
            add_parent_ingredient(&mut builder, input)?;
            let mut opened =
                json!({"action": "c2pa.opened", "parameters": {"ingredientIds": ["original"]}});
            if options.ai_generated {
                opened["digitalSourceType"] = json!(TRAINED_ALGORITHMIC_MEDIA);
            }
            builder.add_action(opened).map_err(c2pa_err)?;
            builder
                .add_action(json!({"action": "c2pa.transcoded", "softwareAgent": agent.clone()}))
                .map_err(c2pa_err)?;
            builder.set_intent(c2pa::BuilderIntent::Edit);
        }
        Origin::Generated => {
            builder
                .add_action(json!({
                    "action": "c2pa.created",
                    "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                    "softwareAgent": agent.clone(),
                }))
                .map_err(c2pa_err)?;
            builder.set_intent(c2pa::BuilderIntent::Create(
                c2pa::DigitalSourceType::TrainedAlgorithmicMedia,
            ));
        }
    }
    if let Some(payload) = payload {
        if marks_video {
            builder
                .add_assertion(
                    "c2pa.soft-binding",
                    &json!({
                        "alg": WATERMARK_ALG,
                        "blocks": [{"scope": {}, "value": payload.clip_id_hex()}],
                        "name": "hallmark invisible watermark in the picture (clip id)",
                    }),
                )
                .map_err(c2pa_err)?;
        }
        if marks_audio {
            builder
                .add_assertion(
                    "c2pa.soft-binding",
                    &json!({
                        "alg": AUDIO_WATERMARK_ALG,
                        "blocks": [{"scope": {}, "value": payload.clip_id_hex()}],
                        "name": "hallmark inaudible watermark in the sound (clip id)",
                    }),
                )
                .map_err(c2pa_err)?;
        }
        builder
            .add_action(json!({"action": "c2pa.watermarked", "softwareAgent": agent}))
            .map_err(c2pa_err)?;
    }
    if let Some(thumb) = &stats.thumbnail {
        builder
            .set_thumbnail("image/jpeg", &mut Cursor::new(thumb))
            .map_err(c2pa_err)?;
    }

    if cancel.load(Ordering::Relaxed) {
        return Err(SignerError::Interrupted);
    }
    let signed_tmp = temp_in(dir, format)?;
    let manifest = sign_into(
        &mut builder,
        identity,
        format,
        media_tmp.path(),
        signed_tmp.path(),
    )?;
    drop(media_tmp);
    if cancel.load(Ordering::Relaxed) {
        return Err(SignerError::Interrupted);
    }
    let manifest_id = manifest_label(&manifest);
    if let (Some(store), Some(payload), Some(id)) = (identity.store(), payload, &manifest_id) {
        // Recorded before the file appears: a sealed clip whose manifest could not be kept
        // would lose its durable credentials silently.
        let algs = [
            (marks_video, WATERMARK_ALG),
            (marks_audio, AUDIO_WATERMARK_ALG),
        ];
        let algs: Vec<&str> = algs.iter().filter(|(on, _)| *on).map(|(_, a)| *a).collect();
        record(
            store,
            id,
            payload,
            &algs,
            format,
            &manifest,
            stats.fingerprint.clone(),
        )?;
    }
    signed_tmp
        .persist(output)
        .map_err(|e| SignerError::io(output, e.error))?;

    Ok(Seal {
        output: output.to_path_buf(),
        format,
        manifest_bytes: manifest.len(),
        clip_id: payload.map(|p| p.clip_id),
        manifest_id,
        video_frames: stats.video_frames,
        audio_seconds: stats.audio_seconds,
        timings: StageTimings {
            sign_s: sign_started.elapsed().as_secs_f64(),
            ..stats.timings
        },
    })
}

struct TranscodeStats {
    video_frames: u64,
    audio_seconds: f64,
    thumbnail: Option<Vec<u8>>,
    fingerprint: Fingerprint,
    timings: StageTimings,
}

/// Encoding runs on its own thread, fed through a short queue, so that decoding (or
/// rendering) and watermarking the next frames overlap with encoding the previous ones.
const ENCODE_QUEUE: usize = 8;

#[allow(clippy::too_many_arguments)]
fn transcode(
    source: &mut dyn FrameSource,
    mut embedder: Option<&mut VideoEmbedder>,
    mut audio_embedder: Option<&mut AudioEmbedder>,
    mut marks: Option<&mut MarkCheck>,
    info: &MediaInfo,
    path: &Path,
    format: OutputFormat,
    options: &SealOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(SealProgress),
) -> Result<TranscodeStats, SignerError> {
    let wants_video = matches!(format.kind(), MediaKind::Video | MediaKind::Image);
    let wants_audio = matches!(format.kind(), MediaKind::Video | MediaKind::Audio);
    let video = info.video.as_ref().filter(|_| wants_video);
    let audio = info.audio.as_ref().filter(|_| wants_audio);
    let mut encoder = Encoder::create(path, format, video, audio, &options.encode)?;

    let total = video.and_then(|v| v.frame_count_estimate);
    // The thumbnail is the frame nearest a third of the way in: past fades-in, but early.
    let thumb_at = info.duration_s.map(|d| d / 3.0).unwrap_or(0.0);
    let mut thumb_frame: Option<VideoFrame> = None;
    let mut stats = TranscodeStats {
        video_frames: 0,
        audio_seconds: 0.0,
        thumbnail: None,
        fingerprint: Fingerprint::default(),
        timings: StageTimings::default(),
    };
    let mut fingerprinter = Fingerprinter::new();

    let (encoded, produced) = std::thread::scope(|scope| {
        let (queue, frames) = std::sync::mpsc::sync_channel::<MediaFrame>(ENCODE_QUEUE);
        let encoding = scope.spawn(move || -> Result<f64, SignerError> {
            let mut busy = 0.0;
            for frame in frames {
                let started = Instant::now();
                match &frame {
                    MediaFrame::Video(v) => encoder.write_video(v)?,
                    MediaFrame::Audio(a) => encoder.write_audio(a)?,
                }
                busy += started.elapsed().as_secs_f64();
            }
            let started = Instant::now();
            encoder.finish()?;
            Ok(busy + started.elapsed().as_secs_f64())
        });
        let produced = (|| -> Result<(), SignerError> {
            let mut ticks = 0u64;
            let mut clock = Instant::now();
            'frames: while let Some(frame) = source.next_frame()? {
                stats.timings.source_s += lap(&mut clock);
                if cancel.load(Ordering::Relaxed) {
                    return Err(SignerError::Interrupted);
                }
                if let Some(marks) = marks.as_deref_mut() {
                    if !(format.kind() == MediaKind::Image && stats.video_frames > 0) {
                        marks.add(&frame);
                    }
                }
                let frame = match frame {
                    MediaFrame::Video(mut frame) if video.is_some() => {
                        if format.kind() == MediaKind::Image && stats.video_frames > 0 {
                            break; // a still keeps its first frame only
                        }
                        if let Some(embedder) = embedder.as_deref_mut() {
                            embedder.embed(&mut frame);
                            stats.timings.watermark_s += lap(&mut clock);
                        }
                        fingerprinter.add_frame(&frame);
                        stats.video_frames += 1;
                        if thumb_frame.is_none() || frame.pts_s <= thumb_at {
                            thumb_frame = Some(frame.clone());
                        }
                        progress(SealProgress::Encoding {
                            done: stats.video_frames,
                            total,
                        });
                        vec![MediaFrame::Video(frame)]
                    }
                    MediaFrame::Audio(chunk) if audio.is_some() => {
                        fingerprinter.add_audio(&chunk);
                        stats.audio_seconds += chunk.samples.len() as f64
                            / (chunk.channels.max(1) as f64 * chunk.sample_rate.max(1) as f64);
                        if video.is_none() {
                            ticks += 1;
                            progress(SealProgress::Encoding {
                                done: ticks,
                                total: None,
                            });
                        }
                        match audio_embedder.as_deref_mut() {
                            // The embedder hands chunks back a little later, in order.
                            Some(embedder) => {
                                let marked = embedder.process(chunk);
                                stats.timings.watermark_s += lap(&mut clock);
                                marked.into_iter().map(MediaFrame::Audio).collect()
                            }
                            None => vec![MediaFrame::Audio(chunk)],
                        }
                    }
                    _ => continue,
                };
                lap(&mut clock);
                for frame in frame {
                    if queue.send(frame).is_err() {
                        break 'frames; // the encoder stopped: its error is reported below
                    }
                }
                lap(&mut clock); // waiting for a free queue slot is the encoder's time, below
            }
            // The sound the audio embedder still holds.
            if let Some(embedder) = audio_embedder.as_deref_mut() {
                let rest = embedder.finish();
                stats.timings.watermark_s += lap(&mut clock);
                for chunk in rest {
                    if queue.send(MediaFrame::Audio(chunk)).is_err() {
                        break;
                    }
                }
            }
            Ok(())
        })();
        // Closing the queue lets the encoder finish (or stop, after an error here).
        drop(queue);
        let encoded = encoding.join().unwrap_or_else(|_| {
            Err(SignerError::Unsupported(
                "the encoder thread panicked".into(),
            ))
        });
        (encoded, produced)
    });
    produced?;
    stats.timings.encode_s = encoded?;
    if video.is_some() && stats.video_frames == 0 {
        return Err(SignerError::Unsupported(
            "the input has a video stream but no frame could be decoded".into(),
        ));
    }
    stats.fingerprint = fingerprinter.finish();
    if let Some(frame) = thumb_frame {
        stats.thumbnail = Some(hallmark_media::jpeg_thumbnail(&frame, 320, 320)?);
    }
    Ok(stats)
}

/// hallmark's own watermark in an input, looked for (with the identity's known keys) when
/// the input is to be sealed as not AI-generated.
struct MarkCheck {
    video: Option<VideoDetector>,
    audio: Option<AudioDetector>,
}

impl MarkCheck {
    fn new(keys: &[WatermarkKey], info: &MediaInfo) -> MarkCheck {
        MarkCheck {
            video: info.video.as_ref().map(|_| VideoDetector::new(keys)),
            audio: info.audio.as_ref().map(|_| AudioDetector::new(keys)),
        }
    }

    fn add(&mut self, frame: &MediaFrame) {
        match (frame, &mut self.video, &mut self.audio) {
            (MediaFrame::Video(v), Some(detector), _) => detector.add_frame(v),
            (MediaFrame::Audio(a), _, Some(detector)) => detector.add_chunk(a),
            _ => {}
        }
    }

    /// Why the input counts as declared AI-generated by its mark, if it does: a mark found
    /// (p ≤ 1e-6) whose payload has the AI bit.
    fn declares_ai(&self) -> Option<String> {
        let video = self.video.as_ref().map(|d| d.result());
        let audio = self.audio.as_ref().map(|d| d.result());
        let found = [
            (
                "picture",
                video.and_then(|r| r.detected.then_some(r.payload).flatten()),
            ),
            (
                "sound",
                audio.and_then(|r| r.detected.then_some(r.payload).flatten()),
            ),
        ];
        found.iter().find_map(|(where_, payload)| {
            payload.filter(|p| p.ai_generated()).map(|p| {
                format!(
                    "its {where_} carries hallmark's watermark (clip id {}) declaring it AI-generated",
                    p.clip_id_hex()
                )
            })
        })
    }
}

/// IPTC digital source types that declare AI generation.
const AI_SOURCE_TYPES: [&str; 2] = [
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
];

/// Why the input's own C2PA manifest (its active manifest, valid or not: a declaration
/// the content's history makes is never contradicted) declares it AI-generated, if it
/// does: a `digitalSourceType` of trained algorithmic media in any of its actions, or
/// hallmark's assertion saying `ai_generated: true`.
fn manifest_declares_ai(input: &Path) -> Result<Option<String>, SignerError> {
    let Some(format) = c2pa::format_from_path(input) else {
        return Ok(None);
    };
    let context = c2pa::Context::new()
        .with_settings(
            json!({"verify": {"verify_after_reading": false, "remote_manifest_fetch": false}}),
        )
        .map_err(c2pa_err)?;
    let file = File::open(input).map_err(|e| SignerError::io(input, e))?;
    // No manifest, or one the SDK cannot read: nothing is declared.
    let Ok(reader) = c2pa::Reader::from_context(context).with_stream(&format, file) else {
        return Ok(None);
    };
    let Some(manifest) = reader.active_manifest() else {
        return Ok(None);
    };
    for assertion in manifest.assertions() {
        let Ok(value) = assertion.value() else {
            continue;
        };
        match assertion.label() {
            "c2pa.actions" | "c2pa.actions.v2" => {
                let actions = value["actions"].as_array().into_iter().flatten();
                for action in actions {
                    let source = action["digitalSourceType"].as_str().unwrap_or_default();
                    let name = source.rsplit('/').next().unwrap_or_default();
                    if AI_SOURCE_TYPES.contains(&name) {
                        return Ok(Some(format!(
                            "its C2PA manifest declares it AI-generated (action {} with digitalSourceType {name})",
                            action["action"].as_str().unwrap_or("?")
                        )));
                    }
                }
            }
            HALLMARK_ASSERTION if value["ai_generated"] == json!(true) => {
                return Ok(Some(format!(
                    "its C2PA manifest declares it AI-generated ({HALLMARK_ASSERTION} ai_generated: true)"
                )));
            }
            _ => {}
        }
    }
    Ok(None)
}

fn manifest_builder(
    title: &str,
    origin: Origin<'_>,
    options: &SealOptions,
) -> Result<c2pa::Builder, SignerError> {
    let context = c2pa::Context::new()
        .with_settings(
            json!({"verify": {"verify_after_sign": false, "remote_manifest_fetch": false}}),
        )
        .map_err(c2pa_err)?;
    let mut seal = json!({
        "version": 1,
        "ai_generated": options.ai_generated || matches!(origin, Origin::Generated),
        "sealed_at": now_rfc3339(),
    });
    if let Some(generation) = &options.generation {
        seal["generation"] = generation.clone();
    }
    c2pa::Builder::from_context(context)
        .with_definition(json!({
            "title": title,
            "claim_generator_info": [{"name": CLAIM_GENERATOR_NAME, "version": VERSION}],
            "assertions": [{"label": HALLMARK_ASSERTION, "data": seal}],
        }))
        .map_err(c2pa_err)
}

/// The input, recorded as parent ingredient "original". Formats the C2PA SDK cannot parse
/// (MKV, AVI, OGG…) are recorded by title and format only.
fn add_parent_ingredient(builder: &mut c2pa::Builder, input: &Path) -> Result<(), SignerError> {
    let title = file_name(input);
    let definition = json!({"title": title, "relationship": "parentOf", "label": "original"});
    if let Some(format) = c2pa::format_from_path(input) {
        let mut file = File::open(input).map_err(|e| SignerError::io(input, e))?;
        match builder.add_ingredient_from_stream(definition.to_string(), &format, &mut file) {
            Ok(_) => return Ok(()),
            Err(c2pa::Error::UnsupportedType) => {}
            Err(e) => return Err(c2pa_err(e)),
        }
    }
    let mut plain = definition;
    plain["format"] = json!(mime_guess(input));
    let ingredient = c2pa::Ingredient::from_json(&plain.to_string()).map_err(c2pa_err)?;
    builder.add_ingredient(ingredient);
    Ok(())
}

fn sign_into(
    builder: &mut c2pa::Builder,
    identity: &SigningIdentity,
    format: OutputFormat,
    source: &Path,
    dest: &Path,
) -> Result<Vec<u8>, SignerError> {
    let signer = identity.c2pa_signer();
    let mut src = File::open(source).map_err(|e| SignerError::io(source, e))?;
    let mut dst = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| SignerError::io(dest, e))?;
    builder
        .sign(&signer, format.mime(), &mut src, &mut dst)
        .map_err(|e| match (identity.tsa_url(), e) {
            (Some(url), c2pa::Error::TimeStampError(e)) => SignerError::Timestamp {
                url: url.to_owned(),
                reason: format!("no time stamp: {e}"),
            },
            (_, e) => c2pa_err(e),
        })
}

/// How long sealing waits for a time-stamp authority to accept a connection.
const TSA_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Host and port of a time-stamp authority's `http://` or `https://` URL.
pub(crate) fn tsa_address(url: &str) -> Result<(String, u16), SignerError> {
    let invalid = |why: &str| SignerError::Timestamp {
        url: url.to_owned(),
        reason: format!(
            "not a time-stamp authority URL ({why}; e.g. http://timestamp.example.com/tsa)"
        ),
    };
    let (rest, default_port) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, 80)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, 443)
    } else {
        return Err(invalid("it must start with http:// or https://"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| invalid("bad port"))?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

/// Fails when no address of the authority accepts a TCP connection.
fn check_tsa_reachable(url: &str) -> Result<(), SignerError> {
    use std::net::ToSocketAddrs;
    let (host, port) = tsa_address(url)?;
    let unreachable = |reason: String| SignerError::Timestamp {
        url: url.to_owned(),
        reason,
    };
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match std::net::TcpStream::connect_timeout(addr, TSA_CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(unreachable(match last {
        Some(e) => format!("cannot be reached ({e})"),
        None => format!("{host} has no address"),
    }))
}

fn check_paths(input: &Path, output: &Path) -> Result<(), SignerError> {
    let meta = std::fs::metadata(input).map_err(|e| SignerError::io(input, e))?;
    if meta.is_dir() {
        return Err(SignerError::io(
            input,
            std::io::Error::other("is a directory, not a media file"),
        ));
    }
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(SignerError::Unsupported(
                "the output would overwrite the input; choose another output path".into(),
            ));
        }
    }
    Ok(())
}

fn check_compatible(
    input: &Path,
    info: &MediaInfo,
    format: OutputFormat,
) -> Result<(), SignerError> {
    let ok = match format.kind() {
        MediaKind::Video => info.video.is_some() && info.kind == MediaKind::Video,
        MediaKind::Audio => info.audio.is_some(),
        MediaKind::Image => info.video.is_some(),
    };
    if ok {
        return Ok(());
    }
    let suggestion = match info.kind {
        MediaKind::Video => ".mp4",
        MediaKind::Audio => ".wav, .m4a or .mp3",
        MediaKind::Image => ".png or .jpg",
    };
    Err(SignerError::Unsupported(format!(
        "{} is {}; seal it to {suggestion}, not .{}",
        input.display(),
        match info.kind {
            MediaKind::Video => "a video",
            MediaKind::Audio => "audio",
            MediaKind::Image => "a still image",
        },
        format.extension()
    )))
}

fn temp_in(dir: &Path, format: OutputFormat) -> Result<tempfile::NamedTempFile, SignerError> {
    tempfile::Builder::new()
        .prefix(".hallmark-")
        .suffix(&format!(".{}", format.extension()))
        .tempfile_in(dir)
        .map_err(|e| SignerError::io(dir, e))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn mime_guess(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mov" => "video/quicktime",
        "ogg" | "oga" => "audio/ogg",
        "flac" => "audio/flac",
        _ => "application/octet-stream",
    }
}

/// The active manifest's label, read back from the signed manifest store.
fn manifest_label(manifest: &[u8]) -> Option<String> {
    let context = c2pa::Context::new()
        .with_settings(json!({"verify": {"verify_after_reading": false}}))
        .ok()?;
    let reader = c2pa::Reader::from_context(context)
        .with_stream("application/c2pa", Cursor::new(manifest))
        .ok()?;
    reader.active_label().map(str::to_owned)
}

fn record(
    store: &Path,
    manifest_id: &str,
    payload: Payload,
    algs: &[&str],
    format: OutputFormat,
    manifest: &[u8],
    fingerprint: Fingerprint,
) -> Result<(), SignerError> {
    let clip_id = payload.clip_id_hex();
    let mut store = ManifestStore::open(store)?;
    store.insert(&StoredManifest {
        manifest_id: manifest_id.to_owned(),
        clip_id: clip_id.clone(),
        bindings: algs
            .iter()
            .map(|alg| (alg.to_string(), clip_id.clone()))
            .collect(),
        format: format.mime().to_owned(),
        manifest: manifest.to_vec(),
        fingerprint,
        sealed_at: now_rfc3339(),
    })?;
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn c2pa_err(e: c2pa::Error) -> SignerError {
    SignerError::C2pa(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::tsa_address;

    #[test]
    fn tsa_urls_give_host_and_port() {
        let ok = |url: &str| tsa_address(url).unwrap();
        assert_eq!(
            ok("http://tsa.example.com/tsr"),
            ("tsa.example.com".into(), 80)
        );
        assert_eq!(
            ok("https://tsa.example.com"),
            ("tsa.example.com".into(), 443)
        );
        assert_eq!(
            ok("http://127.0.0.1:8318/x?y#z"),
            ("127.0.0.1".into(), 8318)
        );
        assert_eq!(
            ok("http://user:pw@tsa.example.com:81/"),
            ("tsa.example.com".into(), 81)
        );
        assert_eq!(ok("http://[::1]:9000/tsa"), ("::1".into(), 9000));
        assert_eq!(ok("https://[2001:db8::1]/tsa"), ("2001:db8::1".into(), 443));
        for bad in [
            "ftp://tsa.example.com",
            "tsa.example.com",
            "http://",
            "http:///tsa",
            "http://tsa.example.com:http/",
            "http://[::1/tsa",
        ] {
            assert!(tsa_address(bad).is_err(), "{bad} accepted");
        }
    }
}
