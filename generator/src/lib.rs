//! Prompt → frames + sound, handed to the signer so that a generated clip leaves sealed.
//!
//! [`Scene::from_prompt`] resolves a short English or French prompt into a setting, a time
//! of day, weather, elements, a camera move and moods; the crate-private `Generator` renders it as
//! YUV 4:2:0 frames and stereo audio chunks, interleaved in presentation order. Everything
//! is deterministic in `(prompt, seed, options)`.
//!
//! The [`diffusion`] backend paints keyframes with a local Stable Diffusion checkpoint
//! instead and animates them, over the same scene's sound; [`generate_sealed_with`] picks
//! the backend. Both leave the crate only through the signer.

mod audio;
pub mod diffusion;
mod render;
mod rng;
pub mod scene;
mod sealed;
#[cfg(test)]
mod tests;

use hallmark_media::{
    AudioChunk, AudioInfo, EncodeSettings, MediaFrame, PixelLayout, VideoFrame, VideoInfo,
};

pub use diffusion::DiffusionOptions;
pub use render::Burst;
pub use scene::{CameraMove, Element, Mood, Scene, Setting, Term, TimeOfDay, Weather};
pub use sealed::{
    generate_sealed, generate_sealed_with, Backend, GenerateProgress, GenerateSealError,
    GeneratedClip, PROCEDURAL_MODEL,
};

/// Output format and length.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Frame width in pixels: even, 64–3840.
    pub width: u32,
    /// Frame height in pixels: even, 64–3840.
    pub height: u32,
    /// Frames per second, 1–60.
    pub fps: u32,
    /// Length in seconds, 0.5–60; the clip has `round(fps * duration_s)` frames.
    pub duration_s: f64,
    /// Varies everything random in picture and sound (with the scene's own seed).
    pub seed: u64,
    /// Audio sample rate (stereo), 8000–192000; 48000 by default.
    pub sample_rate: u32,
    /// How the sealed clip is encoded (x264 preset and CRF, AAC bit rate).
    pub encode: EncodeSettings,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            width: 1280,
            height: 720,
            fps: 30,
            duration_s: 8.0,
            seed: 0,
            sample_rate: 48_000,
            encode: EncodeSettings::default(),
        }
    }
}

/// Invalid options.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GenerateError {
    #[error("frame size {width}x{height} is not supported (even sizes from 64 to 3840 only)")]
    InvalidSize { width: u32, height: u32 },
    #[error("frame rate {0} fps is not supported (1 to 60)")]
    InvalidFrameRate(u32),
    #[error("duration {0} s is not supported (0.5 to 60 s)")]
    InvalidDuration(f64),
    #[error("sample rate {0} Hz is not supported (8000 to 192000)")]
    InvalidSampleRate(u32),
    #[error("seed {0} is not supported (0 to {MAX_SEED})")]
    InvalidSeed(u64),
}

/// The largest seed: the manifest records the seed as a CBOR integer, which C2PA's
/// serialiser only writes up to `i64::MAX`.
pub const MAX_SEED: u64 = i64::MAX as u64;

/// Checks the options; the clip's frame count, `round(fps * duration_s)`.
pub(crate) fn validate(options: &GenerateOptions) -> Result<u64, GenerateError> {
    let (w, h) = (options.width, options.height);
    if !(64..=3840).contains(&w) || !(64..=3840).contains(&h) || w % 2 != 0 || h % 2 != 0 {
        return Err(GenerateError::InvalidSize {
            width: w,
            height: h,
        });
    }
    if !(1..=60).contains(&options.fps) {
        return Err(GenerateError::InvalidFrameRate(options.fps));
    }
    if !(options.duration_s.is_finite() && (0.5..=60.0).contains(&options.duration_s)) {
        return Err(GenerateError::InvalidDuration(options.duration_s));
    }
    if !(8000..=192_000).contains(&options.sample_rate) {
        return Err(GenerateError::InvalidSampleRate(options.sample_rate));
    }
    if options.seed > MAX_SEED {
        return Err(GenerateError::InvalidSeed(options.seed));
    }
    Ok((options.duration_s * f64::from(options.fps))
        .round()
        .max(1.0) as u64)
}

/// The scene's seed (which also chose its defaults), its prompt and the options' seed
/// together drive everything random in the picture and the sound.
pub(crate) fn clip_seed(scene: &Scene, options: &GenerateOptions) -> u64 {
    rng::mix(scene.seed ^ rng::hash_str(&scene::fold(&scene.prompt)))
        ^ options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Renders a [`Scene`]: video frames and audio chunks in presentation order.
///
/// Crate-private on purpose: frames leave this crate only through [`generate_sealed`], so
/// there is no way to write a generated clip that is not watermarked and signed.
pub(crate) struct Generator {
    scene: Scene,
    options: GenerateOptions,
    renderer: render::Renderer,
    synth: audio::Synth,
    total_frames: u64,
    next_index: u64,
    audio_pending: Option<AudioChunk>,
}

// Some accessors exist for the tests (burst times, toast time…).
#[cfg_attr(not(test), allow(dead_code))]
impl Generator {
    pub fn new(scene: Scene, options: GenerateOptions) -> Result<Generator, GenerateError> {
        let total_frames = validate(&options)?;
        let (w, h) = (options.width, options.height);
        let total_samples = total_frames * u64::from(options.sample_rate) / u64::from(options.fps);
        let duration = total_frames as f64 / f64::from(options.fps);
        let seed = clip_seed(&scene, &options);
        let renderer = render::Renderer::new(&scene, seed, w as usize, h as usize, duration);
        let synth = audio::Synth::new(
            &scene,
            &renderer.bursts,
            w as f32 / h as f32,
            options.sample_rate,
            seed,
            total_samples,
        );
        Ok(Generator {
            scene,
            options,
            renderer,
            synth,
            total_frames,
            next_index: 0,
            audio_pending: None,
        })
    }

    pub fn video_info(&self) -> VideoInfo {
        VideoInfo {
            width: self.options.width,
            height: self.options.height,
            frame_rate: (self.options.fps as i32, 1),
            frame_count_estimate: Some(self.total_frames),
            codec: "rawvideo".to_string(),
        }
    }

    pub fn audio_info(&self) -> AudioInfo {
        AudioInfo {
            sample_rate: self.options.sample_rate,
            channels: 2,
            codec: "pcm_f32le".to_string(),
        }
    }

    /// `round(fps * duration_s)`.
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// Firework explosion times in seconds (picture and sound both use them).
    pub fn burst_times(&self) -> Vec<f64> {
        self.renderer.bursts.iter().map(|b| b.t).collect()
    }

    /// When the person starts raising the glass (seconds), if there is a glass.
    pub fn toast_time(&self) -> Option<f64> {
        self.scene
            .has(Element::Glass)
            .then_some(f64::from(self.renderer.raise.0))
    }

    /// The scene's description plus what the generator decided: output format, firework
    /// times, the toast, the music's key and tempo — for the manifest.
    pub fn describe(&self) -> serde_json::Value {
        const NOTES: [&str; 12] = [
            "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
        ];
        let (root, minor, bpm) = self.synth.key;
        let mut d = self.scene.describe();
        d["render"] = serde_json::json!({
            "width": self.options.width,
            "height": self.options.height,
            "fps": self.options.fps,
            "frames": self.total_frames,
            "duration_s": self.total_frames as f64 / f64::from(self.options.fps),
            "seed": self.options.seed,
            "sample_rate": self.options.sample_rate,
            "firework_bursts_s": self.burst_times(),
            "toast_s": self.toast_time(),
            "music": {
                "key": format!("{} {}", NOTES[root.rem_euclid(12) as usize], if minor { "minor" } else { "major" }),
                "tempo_bpm": (bpm * 10.0).round() / 10.0,
            },
        });
        d
    }

    fn sample_at(&self, frame: u64) -> u64 {
        frame * u64::from(self.options.sample_rate) / u64::from(self.options.fps)
    }

    /// The next video frame or audio chunk: frame `i` (pts `i / fps`) then the audio
    /// covering `[i / fps, (i + 1) / fps)`; `None` when done.
    pub fn next_frame(&mut self) -> Option<MediaFrame> {
        if let Some(chunk) = self.audio_pending.take() {
            return Some(MediaFrame::Audio(chunk));
        }
        if self.next_index >= self.total_frames {
            return None;
        }
        let i = self.next_index;
        let pts = i as f64 / f64::from(self.options.fps);
        let (w, h) = (self.options.width, self.options.height);
        let mut planes: Vec<Vec<u8>> = VideoFrame::plane_sizes(w, h, PixelLayout::Yuv420p)
            .into_iter()
            .map(|n| vec![0u8; n])
            .collect();
        // The frame's audio is synthesised alongside the picture (sequential state, so
        // still deterministic), then handed out right after it.
        let (s0, s1) = (self.sample_at(i), self.sample_at(i + 1));
        let mut samples = vec![0.0f32; ((s1 - s0) * 2) as usize];
        let (renderer, synth) = (&mut self.renderer, &mut self.synth);
        rayon::join(
            || renderer.render(pts, &mut planes),
            || synth.render(&mut samples),
        );
        self.audio_pending = Some(AudioChunk {
            sample_rate: self.options.sample_rate,
            channels: 2,
            samples,
            pts_s: s0 as f64 / f64::from(self.options.sample_rate),
        });
        self.next_index += 1;
        Some(MediaFrame::Video(VideoFrame {
            width: w,
            height: h,
            layout: PixelLayout::Yuv420p,
            planes,
            pts_s: pts,
        }))
    }
}

impl Iterator for Generator {
    type Item = MediaFrame;
    fn next(&mut self) -> Option<MediaFrame> {
        self.next_frame()
    }
}
