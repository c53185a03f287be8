//! Frames that come from a generator leave sealed, with `c2pa.created` and the AI source type.

use std::sync::atomic::AtomicBool;

use hallmark_media::{
    AudioChunk, AudioInfo, MediaFrame, MediaInfo, MediaKind, PixelLayout, VideoFrame, VideoInfo,
};
use hallmark_signer::{seal, FrameSource, Home, Origin, SealOptions, SignerError};

/// One second of a moving gradient with a 440 Hz tone: enough for the encoder and the manifest.
struct Synthetic {
    info: MediaInfo,
    frame: u32,
}

impl Synthetic {
    fn new() -> Synthetic {
        Synthetic {
            info: MediaInfo {
                kind: MediaKind::Video,
                container: "synthetic".into(),
                duration_s: Some(1.0),
                video: Some(VideoInfo {
                    width: 320,
                    height: 240,
                    frame_rate: (25, 1),
                    frame_count_estimate: Some(25),
                    codec: "raw".into(),
                }),
                audio: Some(AudioInfo {
                    sample_rate: 48000,
                    channels: 2,
                    codec: "pcm".into(),
                }),
            },
            frame: 0,
        }
    }
}

impl FrameSource for Synthetic {
    fn info(&self) -> &MediaInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<MediaFrame>, SignerError> {
        let n = self.frame;
        self.frame += 1;
        if n >= 50 {
            return Ok(None);
        }
        let pts_s = f64::from(n / 2) / 25.0;
        if n % 2 == 1 {
            let samples: Vec<f32> = (0..1920 * 2)
                .map(|i| {
                    let t = (f64::from(n / 2) * 1920.0 + f64::from(i / 2)) / 48000.0;
                    (0.3 * (t * 440.0 * std::f64::consts::TAU).sin()) as f32
                })
                .collect();
            return Ok(Some(MediaFrame::Audio(AudioChunk {
                sample_rate: 48000,
                channels: 2,
                samples,
                pts_s,
            })));
        }
        let mut frame = VideoFrame::black(320, 240, PixelLayout::Yuv420p, pts_s);
        for (i, y) in frame.planes[0].iter_mut().enumerate() {
            *y = (16 + ((i % 320) as u32 + n * 4) % 200) as u8;
        }
        Ok(Some(MediaFrame::Video(frame)))
    }
}

#[test]
fn generated_frames_are_sealed_as_created_by_ai() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().join("home"))).unwrap();
    let identity = hallmark_signer::ensure_identity(&home).unwrap();
    let out = dir.path().join("generated.mp4");
    let options = SealOptions {
        ai_generated: false, // ignored: generated content is always declared AI
        generation: Some(serde_json::json!({"prompt": "a test gradient", "seed": 7})),
        ..Default::default()
    };
    let seal = seal(
        &mut Synthetic::new(),
        Origin::Generated,
        &out,
        &identity.signing,
        &options,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(seal.video_frames, 25);
    assert!(
        (seal.audio_seconds - 1.0).abs() < 0.05,
        "{}",
        seal.audio_seconds
    );

    let context = c2pa::Context::new()
        .with_settings(serde_json::json!({"verify": {"remote_manifest_fetch": false}}))
        .unwrap();
    let reader = c2pa::Reader::from_context(context).with_file(&out).unwrap();
    assert_eq!(reader.validation_state(), c2pa::ValidationState::Valid);
    let manifest = reader.active_manifest().unwrap();
    assert!(
        manifest.ingredients().is_empty(),
        "a generated clip has no parent"
    );
    let actions = manifest
        .assertions()
        .iter()
        .find(|a| a.label().starts_with("c2pa.actions"))
        .unwrap();
    let actions = actions.value().unwrap()["actions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(actions[0]["action"], "c2pa.created");
    assert_eq!(
        actions[0]["digitalSourceType"],
        hallmark_signer::TRAINED_ALGORITHMIC_MEDIA
    );
    let seal_assertion = manifest
        .assertions()
        .iter()
        .find(|a| a.label() == "org.hallmark.seal")
        .unwrap();
    let data = seal_assertion.value().unwrap();
    assert_eq!(data["ai_generated"], true);
    assert_eq!(data["generation"]["prompt"], "a test gradient");
}

#[test]
fn a_missing_output_directory_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().join("home"))).unwrap();
    let identity = hallmark_signer::ensure_identity(&home).unwrap();
    let out = dir.path().join("no/such/dir/clip.mp4");
    let mut source = Synthetic::new();
    let err = seal(
        &mut source,
        Origin::Generated,
        &out,
        &identity.signing,
        &SealOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("output directory does not exist"),
        "{err}"
    );
    assert_eq!(source.frame, 0, "nothing was generated");
}
