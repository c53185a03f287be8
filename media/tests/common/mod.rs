#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hallmark_media::{
    AudioChunk, Decoder, EncodeSettings, Encoder, MediaFrame, MediaInfo, MediaKind, OutputFormat,
    PixelLayout, VideoFrame,
};

pub fn media(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel)
}

/// Summary of a fully decoded file (frames are not kept, to stay small).
#[derive(Debug)]
pub struct Decoded {
    pub info: MediaInfo,
    pub video_frames: u64,
    pub video_pts: Vec<f64>,
    pub video_size: Option<(u32, u32)>,
    pub audio_frames: u64,
    pub audio_rate: u32,
    pub audio_channels: u16,
    pub first_audio_pts: Option<f64>,
    pub last_audio_end: Option<f64>,
    pub first_video: Option<VideoFrame>,
    /// Up to `keep_audio` interleaved samples from the start.
    pub audio_head: Vec<f32>,
}

impl Decoded {
    pub fn audio_duration(&self) -> f64 {
        self.audio_frames as f64 / f64::from(self.audio_rate.max(1))
    }
}

pub fn decode_all(path: &Path, layout: PixelLayout, keep_audio: usize) -> Decoded {
    let mut dec =
        Decoder::open(path, layout).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Decoded {
        info: dec.info().clone(),
        video_frames: 0,
        video_pts: Vec::new(),
        video_size: None,
        audio_frames: 0,
        audio_rate: 0,
        audio_channels: 0,
        first_audio_pts: None,
        last_audio_end: None,
        first_video: None,
        audio_head: Vec::new(),
    };
    while let Some(f) = dec
        .next_frame()
        .unwrap_or_else(|e| panic!("decode {}: {e}", path.display()))
    {
        match f {
            MediaFrame::Video(v) => {
                assert_eq!(
                    v.planes.len(),
                    VideoFrame::plane_sizes(v.width, v.height, layout).len()
                );
                v.validate().unwrap();
                out.video_frames += 1;
                out.video_pts.push(v.pts_s);
                out.video_size = Some((v.width, v.height));
                if out.first_video.is_none() {
                    out.first_video = Some(v);
                }
            }
            MediaFrame::Audio(a) => {
                assert_eq!(a.samples.len() % usize::from(a.channels), 0);
                out.audio_rate = a.sample_rate;
                out.audio_channels = a.channels;
                out.first_audio_pts.get_or_insert(a.pts_s);
                out.audio_frames += a.frames() as u64;
                out.last_audio_end = Some(a.pts_s + a.duration_s());
                if out.audio_head.len() < keep_audio {
                    let take = (keep_audio - out.audio_head.len()).min(a.samples.len());
                    out.audio_head.extend_from_slice(&a.samples[..take]);
                }
            }
        }
    }
    out
}

/// Decode `input` and re-encode everything into `output` as `format`.
pub fn transcode(
    input: &Path,
    output: &Path,
    format: OutputFormat,
    layout: PixelLayout,
    settings: &EncodeSettings,
) {
    let mut dec = Decoder::open(input, layout).unwrap();
    let info = dec.info().clone();
    let mut enc = Encoder::create(
        output,
        format,
        info.video.as_ref(),
        info.audio.as_ref(),
        settings,
    )
    .unwrap_or_else(|e| panic!("create {}: {e}", output.display()));
    while let Some(f) = dec.next_frame().unwrap() {
        match f {
            MediaFrame::Video(v) => {
                if format.kind() != MediaKind::Audio {
                    enc.write_video(&v).unwrap()
                }
            }
            MediaFrame::Audio(a) => {
                if format.kind() != MediaKind::Image {
                    enc.write_audio(&a).unwrap()
                }
            }
        }
    }
    enc.finish().unwrap();
}

pub fn fast() -> EncodeSettings {
    EncodeSettings {
        preset: "veryfast".to_string(),
        ..EncodeSettings::default()
    }
}

pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

pub fn sine_chunk(rate: u32, channels: u16, frames: usize, start_frame: usize) -> AudioChunk {
    let mut samples = Vec::with_capacity(frames * usize::from(channels));
    for i in 0..frames {
        let t = (start_frame + i) as f32 / rate as f32;
        for c in 0..channels {
            samples.push(
                0.25 * (2.0 * std::f32::consts::PI * (220.0 + 110.0 * f32::from(c)) * t).sin(),
            );
        }
    }
    AudioChunk {
        sample_rate: rate,
        channels,
        samples,
        pts_s: start_frame as f64 / f64::from(rate),
    }
}
