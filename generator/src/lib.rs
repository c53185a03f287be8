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
/// Paces both backends' output: frame `i` (pts `i / fps`), then the stereo sound covering
/// `[i / fps, (i + 1) / fps)`, until `total` frames.
pub(crate) struct FrameClock {
    width: u32,
    height: u32,
    fps: u32,
    sample_rate: u32,
    total: u64,
    next_index: u64,
    audio_pending: Option<AudioChunk>,
}

/// What [`FrameClock::next`] hands out: a chunk ready to go, or a frame to paint.
pub(crate) enum Next {
    Ready(MediaFrame),
    Paint(FrameJob),
}

/// Frame `pts_s`'s blank Yuv420p planes and its stereo sound buffer, to be filled.
pub(crate) struct FrameJob {
    pub pts_s: f64,
    pub planes: Vec<Vec<u8>>,
    pub samples: Vec<f32>,
    sound_pts_s: f64,
}

impl FrameClock {
    pub(crate) fn new(options: &GenerateOptions, total: u64) -> FrameClock {
        FrameClock {
            width: options.width,
            height: options.height,
            fps: options.fps,
            sample_rate: options.sample_rate,
            total,
            next_index: 0,
            audio_pending: None,
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The raw picture stream handed to the sealing pipeline.
    pub(crate) fn video_info(&self) -> VideoInfo {
        VideoInfo {
            width: self.width,
            height: self.height,
            frame_rate: (self.fps as i32, 1),
            frame_count_estimate: Some(self.total),
            codec: "rawvideo".to_string(),
        }
    }

    /// The raw stereo sound stream handed to the sealing pipeline.
    pub(crate) fn audio_info(&self) -> AudioInfo {
        AudioInfo {
            sample_rate: self.sample_rate,
            channels: 2,
            codec: "pcm_f32le".to_string(),
        }
    }

    fn sample_at(&self, frame: u64) -> u64 {
        frame * u64::from(self.sample_rate) / u64::from(self.fps)
    }

    /// The sound of the frame just painted, or the next frame to paint; `None` when done.
    pub(crate) fn next(&mut self) -> Option<Next> {
        if let Some(chunk) = self.audio_pending.take() {
            return Some(Next::Ready(MediaFrame::Audio(chunk)));
        }
        if self.next_index >= self.total {
            return None;
        }
        let i = self.next_index;
        let (s0, s1) = (self.sample_at(i), self.sample_at(i + 1));
        Some(Next::Paint(FrameJob {
            pts_s: i as f64 / f64::from(self.fps),
            planes: VideoFrame::plane_sizes(self.width, self.height, PixelLayout::Yuv420p)
                .into_iter()
                .map(|n| vec![0u8; n])
                .collect(),
            samples: vec![0.0f32; ((s1 - s0) * 2) as usize],
            sound_pts_s: s0 as f64 / f64::from(self.sample_rate),
        }))
    }

    /// The painted frame; its sound comes out of the next [`FrameClock::next`].
    pub(crate) fn finish(&mut self, job: FrameJob) -> MediaFrame {
        self.audio_pending = Some(AudioChunk {
            sample_rate: self.sample_rate,
            channels: 2,
            samples: job.samples,
            pts_s: job.sound_pts_s,
        });
        self.next_index += 1;
        MediaFrame::Video(VideoFrame {
            width: self.width,
            height: self.height,
            layout: PixelLayout::Yuv420p,
            planes: job.planes,
            pts_s: job.pts_s,
        })
    }
}

/// Crate-private on purpose: frames leave this crate only through [`generate_sealed`], so
/// there is no way to write a generated clip that is not watermarked and signed.
pub(crate) struct Generator {
    scene: Scene,
    options: GenerateOptions,
    renderer: render::Renderer,
    synth: audio::Synth,
    frames: FrameClock,
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
            frames: FrameClock::new(&options, total_frames),
            options,
            renderer,
            synth,
        })
    }

    pub fn video_info(&self) -> VideoInfo {
        self.frames.video_info()
    }

    pub fn audio_info(&self) -> AudioInfo {
        self.frames.audio_info()
    }

    /// `round(fps * duration_s)`.
    pub fn total_frames(&self) -> u64 {
        self.frames.total()
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
            "frames": self.frames.total(),
            "duration_s": self.frames.total() as f64 / f64::from(self.options.fps),
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

    /// The next video frame or audio chunk: frame `i` (pts `i / fps`) then the audio
    /// covering `[i / fps, (i + 1) / fps)`; `None` when done.
    pub fn next_frame(&mut self) -> Option<MediaFrame> {
        let mut job = match self.frames.next()? {
            Next::Ready(chunk) => return Some(chunk),
            Next::Paint(job) => job,
        };
        // The frame's audio is synthesised alongside the picture (sequential state, so
        // still deterministic), then handed out right after it.
        let (renderer, synth) = (&mut self.renderer, &mut self.synth);
        rayon::join(
            || renderer.render(job.pts_s, &mut job.planes),
            || synth.render(&mut job.samples),
        );
        Some(self.frames.finish(job))
    }
}

impl Iterator for Generator {
    type Item = MediaFrame;
    fn next(&mut self) -> Option<MediaFrame> {
        self.next_frame()
    }
}
