//! "Is this real?" — reads a file's C2PA provenance (and, with the watermark issue, hallmark's
//! watermark) and turns it into a [`Verdict`] that never claims more than can be proven.

pub mod audio_model;
pub mod model;
mod provenance;
mod recover;
mod report;
pub mod scan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hallmark_media::{Decoder, MediaFrame, MediaKind, PixelLayout};
use hallmark_store::{Fingerprint, Fingerprinter};
use hallmark_watermark::{
    VideoDetection, VideoDetector, WatermarkKey, DETECT_P, INCONCLUSIVE_P, MAX_TIMELINE_SECONDS,
};
use serde_json::json;

pub use provenance::UNTRUSTED;
pub use recover::{RecoveredManifest, Recovery, Similarity};
pub use report::{
    ActionSummary, C2paReport, IngredientNode, MarkResult, MediaSummary, Report, SoftBinding,
    StatusDetail, Verdict, VideoScan, WatermarkReport, SCHEMA,
};

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("invalid trust settings: {0}")]
    Trust(String),
}

/// One thing to verify: a file, plus the parts stored beside it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub path: PathBuf,
    /// A sidecar manifest store (`.c2pa`) for an asset that does not embed its manifest.
    pub sidecar: Option<PathBuf>,
    /// Fragments of a fragmented MP4 whose `path` is the init segment.
    pub fragments: Vec<PathBuf>,
}

impl Target {
    pub fn file(path: impl Into<PathBuf>) -> Target {
        Target {
            path: path.into(),
            ..Default::default()
        }
    }
}

/// How much of the picture the watermark search decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// The reference frames of a clip of 4 s or more, every frame of a shorter one
    /// ([`scan::scan`]): a p-value for every second of the clip (the timeline).
    #[default]
    Full,
    /// Key frames first; the full scan only when they do not prove the mark. Several times
    /// faster where they suffice (a sealed clip's key frames usually do), but the timeline
    /// then has values only for the seconds that hold a key frame. Two tests may be made,
    /// so the reported p-value is doubled (Bonferroni), whichever pass it comes from.
    Quick,
}

/// How far a file's watermark search has come ([`Verifier::verify_with_progress`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchProgress {
    /// The pass under way: [`VideoScan::KeyFrames`] (a quick scan's first), or the full
    /// scan's frames.
    pub scan: VideoScan,
    /// How far into the clip the pass has come, in seconds (both parts of a split scan
    /// together).
    pub done_s: f64,
    /// The clip's length, where the container says.
    pub total_s: Option<f64>,
}

/// The p-value of a quick scan is that of one of two possible tests: doubled.
const QUICK_SCAN_TESTS: f64 = 2.0;

/// Verifies files against a fixed set of trust anchors. Cheap to share across threads.
pub struct Verifier {
    context: Arc<c2pa::Context>,
    watermark_keys: Vec<WatermarkKey>,
    store: Option<PathBuf>,
    scan_mode: ScanMode,
}

impl Verifier {
    /// `trust_anchor_pems`: PEM texts (each may hold several certificates).
    pub fn new(trust_anchor_pems: &[String]) -> Result<Verifier, DetectorError> {
        hallmark_media::init();
        let mut settings = json!({
            "verify": {
                "verify_after_reading": true,
                "remote_manifest_fetch": false,
                "ocsp_fetch": false,
            }
        });
        let anchors: String = trust_anchor_pems
            .iter()
            .map(|p| format!("{}\n", p.trim()))
            .collect();
        if !anchors.trim().is_empty() {
            settings["trust"] = json!({ "trust_anchors": anchors });
        }
        let context = c2pa::Context::new()
            .with_settings(settings)
            .map_err(|e| DetectorError::Trust(e.to_string()))?;
        Ok(Verifier {
            context: context.into_shared(),
            watermark_keys: Vec::new(),
            store: None,
            scan_mode: ScanMode::Full,
        })
    }

    /// Also look for hallmark's watermark made with any of `keys` in files that have no
    /// valid manifest.
    pub fn with_watermark_keys(mut self, keys: Vec<WatermarkKey>) -> Verifier {
        self.watermark_keys = keys;
        self
    }

    /// Recover stripped manifests from the manifest store at `store` (by the watermark's
    /// clip id, for content that matches the sealed clip's fingerprint).
    pub fn with_store(mut self, store: Option<PathBuf>) -> Verifier {
        self.store = store;
        self
    }

    /// How much of the picture the watermark search decodes (default [`ScanMode::Full`]).
    pub fn with_scan_mode(mut self, mode: ScanMode) -> Verifier {
        self.scan_mode = mode;
        self
    }

    pub fn verify(&self, target: &Target) -> Report {
        self.verify_with_progress(target, &|_| {})
    }

    /// [`Verifier::verify`], telling `progress` how far the watermark search has come (it
    /// is called from the scan's model thread as each picture frame reaches it; never for
    /// a file whose manifest settles the verdict, nor for sound-only files).
    pub fn verify_with_progress(
        &self,
        target: &Target,
        progress: &(dyn Fn(SearchProgress) + Sync),
    ) -> Report {
        let (report, decoder) = self.verify_provenance(target);
        // A valid manifest already proves the origin; the mark matters when it is missing or
        // broken. An unreadable file has neither picture nor sound to look at.
        if self.watermark_keys.is_empty()
            || !matches!(report.verdict, Verdict::NoProvenance | Verdict::Tampered)
            || report
                .media
                .as_ref()
                .is_none_or(|m| m.width.is_none() && m.sample_rate.is_none())
        {
            return report;
        }
        let decoder = decoder.or_else(|| open_decoder(&target.path).ok());
        match decoder {
            Some(decoder) => self.look_for_watermark(&target.path, decoder, report, progress),
            None => report,
        }
    }

    /// The watermark's part of the report of a file without a valid manifest: the marks'
    /// evidence ([`Verifier::gather_evidence`]) as `watermark`, the verdict `watermarked`
    /// where a mark is proven, and with a store the manifest recovered by its clip id.
    fn look_for_watermark(
        &self,
        path: &Path,
        decoder: Decoder,
        mut report: Report,
        progress: &(dyn Fn(SearchProgress) + Sync),
    ) -> Report {
        let Evidence {
            video,
            audio_scan,
            print,
        } = self.gather_evidence(path, decoder, progress);
        let key_frames_only = video.scan == Some(VideoScan::KeyFrames);
        let has = |f: fn(&MediaSummary) -> bool| report.media.as_ref().is_some_and(f);
        let video = has(|m| m.width.is_some()).then_some(video);
        let audio = has(|m| m.sample_rate.is_some()).then(|| {
            let found = audio_scan.finish();
            MarkResult {
                detected: found.detected,
                inconclusive: found.inconclusive,
                p_value: found.p_value,
                payload: found.payload.map(|p| p.clip_id_hex()),
                key_id: found.key_id,
                bit_error_estimate: found.bit_error_estimate,
                frames_analysed: found.windows_analysed,
                timeline: found.timeline,
                scan: None,
                scan_passes: None,
            }
        });
        // The clip id of whichever mark decoded: a detected one first, then the stronger.
        let best = [video.as_ref(), audio.as_ref()]
            .into_iter()
            .flatten()
            .filter(|m| m.payload.is_some())
            .min_by(|a, b| {
                b.detected
                    .cmp(&a.detected)
                    .then(a.p_value.total_cmp(&b.p_value))
            });
        let clip_id = best.and_then(|m| m.payload.clone());
        let detected: Vec<(&str, &MarkResult)> = [("picture", &video), ("sound", &audio)]
            .into_iter()
            .filter_map(|(what, m)| m.as_ref().filter(|m| m.detected).map(|m| (what, m)))
            .collect();
        if !detected.is_empty() && report.verdict == Verdict::NoProvenance {
            let place = detected
                .iter()
                .map(|(what, m)| format!("in the {what} (p = {:.1e})", m.p_value))
                .collect::<Vec<_>>()
                .join(" and ");
            let key_id = detected
                .iter()
                .find_map(|(_, m)| m.key_id)
                .map(|k| k.to_string())
                .unwrap_or_else(|| "?".into());
            report.verdict = Verdict::Watermarked;
            report.summary = format!(
                "Watermarked: no C2PA manifest, but hallmark's invisible watermark is {place}{}. It was sealed by a hallmark signer holding watermark key {key_id}; the manifest itself is not here, so who signed it and what it said are not proven.",
                clip_id.as_deref().map(|c| format!(", clip id {c}")).unwrap_or_default(),
            );
        }
        let detected = !detected.is_empty();
        report.watermark = Some(WatermarkReport {
            video,
            audio,
            clip_id: clip_id.clone(),
        });
        if let (true, Some(clip_id), Some(store), Some(print)) =
            (detected, clip_id, &self.store, print)
        {
            // Key frames alone are usually too few to compare the picture with the sealed
            // clip's: then the reference frames are decoded for the fingerprint alone.
            let fuller = || {
                key_frames_only
                    .then(|| picture_print(path))
                    .flatten()
                    .map(|pictures| Fingerprint {
                        video: pictures.video,
                        audio: print.audio.clone(),
                    })
            };
            let recovered = recover::recover(&self.context, store, &clip_id, &print, fuller);
            report = explain_recovery(report, &recovered);
            report.recovered_manifest = Some(recovered);
        }
        report
    }

    /// Decodes the clip from `decoder` (opened on `path`) through the picture detector — the
    /// candle model in [`model`], batched, on [`model::default_device`], on a second thread;
    /// clips of 4 s or more without their non-reference frames (see [`scan::scan`]); in
    /// [`ScanMode::Quick`] the key frames first — and every sound chunk through the sound
    /// detector, whose front end is the candle model in [`audio_model`]
    /// ([`scan::AudioScan`]); with a store, fingerprints the content on the way.
    fn gather_evidence(
        &self,
        path: &Path,
        mut decoder: Decoder,
        progress: &(dyn Fn(SearchProgress) + Sync),
    ) -> Evidence {
        // Only a moving picture has key frames to skip to; sound and stills take one pass.
        let quick = self.scan_mode == ScanMode::Quick
            && decoder.info().kind == MediaKind::Video
            && decoder.info().video.is_some();
        let seconds = video_seconds(decoder.info());
        let total_s = decoder.info().duration_s;
        let tell = |scan: VideoScan| {
            move |done_s: f64| {
                progress(SearchProgress {
                    scan,
                    done_s,
                    total_s,
                })
            }
        };
        let mut scan = if quick {
            VideoScan::KeyFrames
        } else {
            VideoScan::full(decoder.info())
        };
        let mut detector = VideoDetector::new(&self.watermark_keys);
        if quick {
            // The key frames only decide whether the full scan (which tests the clip's
            // halves and quarters too) must follow.
            detector = detector.whole_clip_only();
        }
        let mut hearing = Some(Hearing::new(&self.watermark_keys, self.store.is_some()));
        // The content's fingerprint, for the store lookup below, in the same pass. Key
        // frames alone leave gaps that must not pose as a still picture.
        let mut pictures = self.store.as_ref().map(|_| match scan {
            VideoScan::KeyFrames => Fingerprinter::sparse(),
            _ => Fingerprinter::new(),
        });
        let tests = if quick { QUICK_SCAN_TESTS } else { 1.0 };
        let mut passes = 1;
        // The quick scan hears the sound on a decoder and a thread of its own, beside the
        // picture's one or two passes: the key-frame pass is then not held up by the sound,
        // and a full second pass does not come on top of it. (The full scan hears it on
        // its first decoder, beside the second decoder's picture.)
        let sound_only = (quick && decoder.info().audio.is_some())
            .then(|| open_decoder(path).ok())
            .flatten();
        let found = std::thread::scope(|s| {
            let apart = sound_only.map(|mut sound_only| {
                decoder.skip_audio();
                sound_only.skip_video();
                let mut heard = hearing.take().expect("the sound is heard once");
                s.spawn(move || {
                    heard.hear_all(&mut sound_only);
                    heard
                })
            });
            scan::scan_frames_with_progress(
                &mut decoder,
                &mut detector,
                scan,
                pictures.as_mut(),
                Some(&tell(scan)),
                |frame| {
                    if let (MediaFrame::Audio(chunk), Some(h)) = (frame, hearing.as_mut()) {
                        h.add(chunk);
                    }
                },
            );
            drop(decoder);
            let mut found = detector.result();
            // Not proven by the key frames, or proven without a readable clip id (one or
            // two key frames of a short, heavily compressed copy): the full scan, a second
            // test (hence `tests`; the doubled p bounds both passes whatever decided the
            // second).
            if quick && (found.p_value * tests > DETECT_P || found.payload.is_none()) {
                if let Ok(mut decoder) = open_decoder(path) {
                    decoder.skip_audio(); // heard already, or being heard
                    scan = VideoScan::full(decoder.info());
                    let mut detector = VideoDetector::new(&self.watermark_keys);
                    if pictures.is_some() {
                        pictures = Some(Fingerprinter::new());
                    }
                    scan::scan_frames_with_progress(
                        &mut decoder,
                        &mut detector,
                        scan,
                        pictures.as_mut(),
                        Some(&tell(scan)),
                        |_| {},
                    );
                    found = detector.result();
                    passes = 2;
                }
            }
            if let Some(apart) = apart {
                hearing = Some(apart.join().expect("sound thread panicked"));
            }
            found
        });
        let hearing = hearing.expect("the sound was heard");
        let print = pictures
            .zip(hearing.print)
            .map(|(pictures, sound)| Fingerprint {
                video: pictures.finish().video,
                audio: sound.finish().audio,
            });
        Evidence {
            video: video_mark(found, tests, scan, passes, seconds),
            audio_scan: hearing.scan,
            print,
        }
    }

    /// The C2PA verdict, and the decoder if one had to be opened to reach it (reused by the
    /// watermark search so the file is not opened twice).
    fn verify_provenance(&self, target: &Target) -> (Report, Option<Decoder>) {
        let mut report = Report::new(target.path.display().to_string());
        if let Err(message) = check_readable(&target.path) {
            return (fail(report, message), None);
        }
        // Headers only: cheap, and enough to describe the file.
        report.media = hallmark_media::probe(&target.path)
            .ok()
            .map(summarise_media);
        match provenance::read(
            &self.context,
            &target.path,
            target.sidecar.as_deref(),
            &target.fragments,
        ) {
            provenance::Outcome::Read(c2pa, ai) => {
                report.c2pa = *c2pa;
                report.ai_generated = ai;
                let report = judge(report);
                if matches!(report.verdict, Verdict::Verified | Verdict::ValidUntrusted) {
                    // The signed hash covers the media: it is exactly what was signed.
                    return (report, None);
                }
                match open_decoder(&target.path) {
                    // A truncated or corrupt file is unreadable first; its manifest's findings
                    // stay in the report.
                    Err(e) => {
                        let message = format!("{e} (its C2PA manifest: {})", report.summary);
                        let failed = Report {
                            c2pa: report.c2pa,
                            ..fail(Report::new(report.file), message)
                        };
                        (failed, None)
                    }
                    Ok(decoder) => (report, Some(decoder)),
                }
            }
            provenance::Outcome::Remote(url) => match open_decoder(&target.path) {
                Ok(decoder) => {
                    report.c2pa.present = true;
                    report.c2pa.remote_manifest_url = Some(url.clone());
                    report.verdict = Verdict::NoProvenance;
                    report.summary = format!(
                        "No provenance in the file: its manifest is stored remotely at {url}, which hallmark does not fetch. Download it and verify with --sidecar."
                    );
                    (report, Some(decoder))
                }
                Err(e) => (fail(report, e), None),
            },
            provenance::Outcome::Absent | provenance::Outcome::Unsupported => {
                match open_decoder(&target.path) {
                    Ok(decoder) => {
                        report.verdict = Verdict::NoProvenance;
                        report.summary =
                            "No provenance: the file carries no C2PA manifest, so nothing about its origin can be proven.".into();
                        (report, Some(decoder))
                    }
                    Err(e) => (fail(report, e), None),
                }
            }
            provenance::Outcome::Unreadable(e) => {
                (fail(report, format!("could not be parsed: {e}")), None)
            }
        }
    }
}

/// The picture's evidence for the report. `tests`: how many tests the scan could have
/// made (the p-value is multiplied by it, capped at 1, and the verdict follows that p).
fn video_mark(
    found: VideoDetection,
    tests: f64,
    scan: VideoScan,
    passes: u8,
    seconds: Option<usize>,
) -> MarkResult {
    let p_value = (found.p_value * tests).min(1.0);
    // A payload is only read from a mark that is at least inconclusive.
    let readable = p_value < INCONCLUSIVE_P;
    let mut timeline = found.timeline;
    // The seconds after the last analysed frame (a key frame) were not analysed either.
    if let Some(seconds) = seconds.map(|s| s.min(MAX_TIMELINE_SECONDS)) {
        if timeline.len() < seconds {
            timeline.resize(seconds, None);
        }
    }
    MarkResult {
        detected: p_value <= DETECT_P,
        inconclusive: p_value > DETECT_P && p_value < INCONCLUSIVE_P,
        p_value,
        payload: found.payload.filter(|_| readable).map(|p| p.clip_id_hex()),
        key_id: found.key_id.filter(|_| readable),
        bit_error_estimate: found.bit_error_estimate.filter(|_| readable),
        frames_analysed: found.frames_analysed,
        timeline,
        scan: Some(scan),
        scan_passes: Some(passes),
    }
}

/// How many seconds the picture's timeline spans: up to the second of the last frame
/// (frame count and rate), else of the duration.
fn video_seconds(info: &hallmark_media::MediaInfo) -> Option<usize> {
    let video = info.video.as_ref()?;
    let (num, den) = video.frame_rate;
    match video.frame_count_estimate {
        Some(n) if n > 0 && num > 0 && den > 0 => {
            let last_frame_s = (n - 1) as f64 * f64::from(den) / f64::from(num);
            Some(last_frame_s.floor().min(MAX_TIMELINE_SECONDS as f64) as usize + 1)
        }
        _ => info
            .duration_s
            .filter(|d| d.is_finite() && *d > 0.0)
            .map(|d| d.ceil().min(MAX_TIMELINE_SECONDS as f64) as usize),
    }
}

/// The picture part of a fingerprint from the reference frames of the file at `path` (or
/// every frame of a short clip): what the store compares; `None` if it cannot be read.
fn picture_print(path: &Path) -> Option<Fingerprint> {
    let mut decoder = open_decoder(path).ok()?;
    decoder.select_video_frames(VideoScan::full(decoder.info()).selection());
    let mut print = Fingerprinter::new();
    while let Ok(Some(frame)) = decoder.next_frame() {
        if let MediaFrame::Video(frame) = frame {
            print.add_frame(&frame);
        }
    }
    Some(print.finish())
}

/// The verdict and summary once the store has been asked about the watermark's clip id.
fn explain_recovery(mut report: Report, recovered: &RecoveredManifest) -> Report {
    let clip = &recovered.clip_id;
    let similarity = [
        recovered
            .similarity
            .video
            .map(|s| format!("picture {s:.2}")),
        recovered.similarity.audio.map(|s| format!("sound {s:.2}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    match recovered.status {
        Recovery::Recovered => {
            let Some(c2pa) = &recovered.c2pa else {
                return report;
            };
            let signer = c2pa
                .issuer
                .clone()
                .or_else(|| c2pa.common_name.clone())
                .unwrap_or_else(|| "an unknown signer".into());
            let trust = match c2pa.validation_state.as_deref() {
                Some("Trusted") => format!("signed by {signer}, a trusted signer"),
                Some("Valid") => format!("signed by {signer}, who is not on your trust list"),
                _ => format!(
                    "but that manifest fails validation ({})",
                    c2pa.failures.join(", ")
                ),
            };
            let ai = match recovered.ai_generated {
                Some(true) => " It declares the content AI-generated.",
                Some(false) => " It declares the content not AI-generated.",
                None => "",
            };
            let marks: Vec<(&str, f64)> = report
                .watermark
                .as_ref()
                .map(|w| {
                    [("picture", w.video.as_ref()), ("sound", w.audio.as_ref())]
                        .into_iter()
                        .filter_map(|(what, m)| m.filter(|m| m.detected).map(|m| (what, m.p_value)))
                        .collect()
                })
                .unwrap_or_default();
            let place = marks
                .iter()
                .map(|(what, p)| format!("in the {what} (p = {p:.1e})"))
                .collect::<Vec<_>>()
                .join(" and ");
            if report.verdict != Verdict::Watermarked {
                // A tampered file keeps its verdict: say where its original is, claim nothing.
                report.summary.push_str(&format!(
                    " Its watermark (clip {clip}) leads to the manifest store, which holds that clip's manifest, {trust}: the content was sealed, but this file is not what was signed."
                ));
                return report;
            }
            report.summary = format!(
                "Watermarked, manifest recovered: the file has no valid C2PA manifest, but hallmark's invisible watermark is {place}, clip id {clip}, and the manifest store holds that clip's manifest, {trust}; this content matches the sealed clip ({similarity}).{ai} The file's bytes are not the signed ones (re-encoded or stripped), so the watermark and the fingerprint, not the manifest's hash, tie it to that manifest."
            );
            if c2pa.validation_state.as_deref() != Some("Invalid") && report.ai_generated.is_none()
            {
                report.ai_generated = recovered.ai_generated;
            }
        }
        Recovery::Mismatch => {
            report.verdict = Verdict::Tampered;
            report.summary = format!(
                "Mismatch: the file carries hallmark's watermark for clip {clip}, but its content is not that clip ({similarity}; different content scores picture ≤ {:.2} or sound ≤ {:.2}). The mark was copied onto other content, or the content was changed beyond recognition; the clip's manifest does not describe this file.",
                hallmark_store::VIDEO_DIFFERENT,
                hallmark_store::AUDIO_DIFFERENT,
            );
        }
        Recovery::Unconfirmed => {
            report.summary.push_str(&format!(
                " The manifest store knows clip {clip}, but this content could not be confirmed to be that clip ({similarity}), so its manifest is not attached."
            ));
        }
        Recovery::NotFound | Recovery::StoreError => {}
    }
    report
}

fn judge(mut report: Report) -> Report {
    let c = &report.c2pa;
    let state = c.validation_state.as_deref().unwrap_or("Invalid");
    let signer = c
        .issuer
        .clone()
        .or_else(|| c.common_name.clone())
        .unwrap_or_else(|| "an unknown signer".into());
    // Fail closed: only an explicit Trusted state with no failure at all is `verified`.
    let (verdict, summary) = if state == "Trusted" && c.failures.is_empty() {
        (Verdict::Verified, format!("Verified: signed by {signer}, a trusted signer, and the content is unchanged since signing."))
    } else if state != "Invalid" && provenance::is_untrusted_only(&c.failures) {
        (Verdict::ValidUntrusted, format!("Valid but untrusted: the manifest is intact and the content unchanged since signing, but the signer ({signer}) is not on your trust list, so who signed it is not proven."))
    } else {
        let codes: Vec<&str> = c
            .failures
            .iter()
            .map(String::as_str)
            .filter(|f| *f != UNTRUSTED)
            .collect();
        let codes = if codes.is_empty() {
            "validation failed".to_string()
        } else {
            codes.join(", ")
        };
        (Verdict::Tampered, format!("Tampered: the file has a C2PA manifest that fails validation ({codes}); the file or its manifest changed after signing."))
    };
    report.verdict = verdict;
    report.summary = summary;
    report
}

fn fail(report: Report, message: String) -> Report {
    Report {
        media: report.media,
        ..Report::error(report.file, message)
    }
}

fn check_readable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    if meta.len() == 0 {
        return Err("the file is empty".into());
    }
    std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    Ok(())
}

/// What a file's picture and sound say, before it is put into words.
struct Evidence {
    video: MarkResult,
    /// Finished only for a file with sound.
    audio_scan: scan::AudioScan,
    /// The content's fingerprint, with a store.
    print: Option<Fingerprint>,
}

/// The sound's part of a watermark search: every chunk through the sound detector and,
/// with a store, into the sound's fingerprint.
struct Hearing {
    scan: scan::AudioScan,
    print: Option<Fingerprinter>,
}

impl Hearing {
    fn new(keys: &[WatermarkKey], fingerprint: bool) -> Hearing {
        Hearing {
            scan: scan::AudioScan::new(keys),
            print: fingerprint.then(Fingerprinter::new),
        }
    }

    fn add(&mut self, chunk: &hallmark_media::AudioChunk) {
        self.scan.add_chunk(chunk);
        if let Some(f) = self.print.as_mut() {
            f.add_audio(chunk);
        }
    }

    /// Every sound chunk `decoder` has left.
    fn hear_all(&mut self, decoder: &mut Decoder) {
        while let Ok(Some(frame)) = decoder.next_frame() {
            if let MediaFrame::Audio(chunk) = frame {
                self.add(&chunk);
            }
        }
    }
}

/// Opens the file's streams, which tells readable media from the rest.
fn open_decoder(path: &Path) -> Result<Decoder, String> {
    Decoder::open(path, PixelLayout::Yuv420p)
        .map_err(|e| format!("not a media file that can be read: {e}"))
}

fn summarise_media(info: hallmark_media::MediaInfo) -> MediaSummary {
    MediaSummary {
        kind: match info.kind {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Image => "image",
        }
        .into(),
        container: info.container,
        duration_s: info.duration_s,
        width: info.video.as_ref().map(|v| v.width),
        height: info.video.as_ref().map(|v| v.height),
        sample_rate: info.audio.as_ref().map(|a| a.sample_rate),
        channels: info.audio.as_ref().map(|a| a.channels),
    }
}
