//! hallmark-media: the FFmpeg decode/encode layer of hallmark.
//!
//! One job: turn a media file into a stream of raw frames ([`Decoder`]) and a
//! stream of raw frames back into a media file ([`Encoder`]), keeping size,
//! frame rate, timestamps, sample rate and channel count.
//!
//! * [`Decoder::open`] probes a file ([`MediaInfo`]) and [`Decoder::next_frame`]
//!   yields [`MediaFrame`]s (video as tightly packed YUV 4:2:0 or RGB24, audio as
//!   interleaved `f32`) in file order, with constant memory use.
//! * [`Encoder::create`] writes MP4 (H.264 + AAC), M4A, WAV, MP3, PNG or JPEG,
//!   chosen by [`OutputFormat`].
//! * [`jpeg_thumbnail`] makes a small in-memory JPEG from a frame.
//!
//! FFmpeg is initialised lazily by every entry point; [`init`] may also be
//! called explicitly.

use std::fmt;
use std::sync::Once;

use ffmpeg_next as ffmpeg;

mod convert;
mod decode;
mod encode;
mod error;
mod probe;

pub use decode::{Decoder, FrameSelection, PictureTwin};
pub use encode::{jpeg_thumbnail, EncodeSettings, Encoder, OutputFormat};
pub use error::MediaError;
pub use probe::probe;

/// The FFmpeg demuxers hallmark opens ([`Decoder::open`], [`probe`]): the containers of the
/// video, sound and still formats it reads. Everything else is refused
/// ([`MediaError::Refused`]) before FFmpeg reads past a file's first bytes — above all the
/// formats that make FFmpeg open *other* files (HLS and DASH playlists, `concat` lists, IMF,
/// image-sequence patterns) or devices. `image2` (FFmpeg's demuxer for a single JPEG, among
/// others) is accepted too, but only for a file whose name holds no pattern (`%`, `*`, `?`,
/// `[`, `{`). Only the `file` protocol is allowed.
pub const ACCEPTED_FORMATS: &[&str] = &[
    // Video containers.
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "mj2",
    "matroska",
    "webm",
    "avi",
    "mpegts",
    "mpeg",
    "flv",
    "ogg",
    "asf",
    "ivf",
    "m4v",
    "yuv4mpegpipe",
    // Sound.
    "wav",
    "w64",
    "mp3",
    "aac",
    "flac",
    "aiff",
    "caf",
    "ac3",
    "eac3",
    "wv",
    "au",
    // Stills.
    "png_pipe",
    "apng",
    "jpeg_pipe",
    "jpegls_pipe",
    "jpegxl_pipe",
    "webp_pipe",
    "gif",
    "gif_pipe",
    "tiff_pipe",
    "bmp_pipe",
    "svg_pipe",
    "qoi_pipe",
    "pam_pipe",
    "pbm_pipe",
    "pgm_pipe",
    "ppm_pipe",
    "j2k_pipe",
    "dpx_pipe",
    "exr_pipe",
    "psd_pipe",
];

/// Initialise FFmpeg once (idempotent, thread-safe) and quiet its own logging
/// to `AV_LOG_FATAL`: every failure is reported through [`MediaError`] anyway, and a damaged
/// stream must not spray decoder messages over a report.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Only registers codecs/devices on old FFmpeg versions; cannot fail in
        // a way we could act on.
        let _ = ffmpeg::init();
        ffmpeg::log::set_level(ffmpeg::log::Level::Fatal);
    });
}

/// What a file fundamentally is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A moving picture (with or without sound).
    Video,
    /// Sound only (cover art pictures are ignored).
    Audio,
    /// A single still picture (PNG, JPEG, ...).
    Image,
}

/// Facts about an opened file, as needed to re-encode it faithfully.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    pub kind: MediaKind,
    /// FFmpeg demuxer name, e.g. `"mov,mp4,m4a,3gp,3g2,mj2"`, `"wav"`, `"png_pipe"`.
    pub container: String,
    /// Duration in seconds when known (always `None` for images).
    pub duration_s: Option<f64>,
    /// The decoded video stream (never a cover-art picture).
    pub video: Option<VideoInfo>,
    /// The decoded audio stream.
    pub audio: Option<AudioInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// `(num, den)` frames per second: the stream's average frame rate, or its
    /// real base frame rate when the average is unknown; `(0, 1)` when neither is known.
    pub frame_rate: (i32, i32),
    /// Number of frames as stored in the container, or duration × frame rate.
    pub frame_count_estimate: Option<u64>,
    /// FFmpeg codec name, e.g. `"h264"`, `"png"`, `"mjpeg"`.
    pub codec: String,
}

impl VideoInfo {
    /// Frame rate as a float, `None` when unknown.
    pub fn fps(&self) -> Option<f64> {
        let (n, d) = self.frame_rate;
        (n > 0 && d > 0).then(|| f64::from(n) / f64::from(d))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub sample_rate: u32,
    pub channels: u16,
    /// FFmpeg codec name, e.g. `"aac"`, `"pcm_s16le"`, `"vorbis"`.
    pub codec: String,
}

/// Pixel layout of [`VideoFrame::planes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelLayout {
    /// Planar YUV 4:2:0, limited ("TV") range, 8 bit.
    Yuv420p,
    /// Packed RGB, 8 bit per channel, full range.
    Rgb24,
}

/// One decoded picture.
#[derive(Clone, PartialEq)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    pub layout: PixelLayout,
    /// Tightly packed planes (no stride padding):
    /// `Yuv420p` → `[Y (w*h), U ((w+1)/2 * (h+1)/2), V (same)]`;
    /// `Rgb24` → `[RGB (w*h*3)]`.
    pub planes: Vec<Vec<u8>>,
    /// Presentation time in seconds from the start of the file (the
    /// container's start time is subtracted, so audio and video stay in sync).
    pub pts_s: f64,
}

impl VideoFrame {
    /// The expected byte size of each plane for a frame of this size and layout.
    pub fn plane_sizes(width: u32, height: u32, layout: PixelLayout) -> Vec<usize> {
        let (w, h) = (width as usize, height as usize);
        match layout {
            PixelLayout::Yuv420p => {
                let c = w.div_ceil(2) * h.div_ceil(2);
                vec![w * h, c, c]
            }
            PixelLayout::Rgb24 => vec![w * h * 3],
        }
    }

    /// A black frame (handy for tests and padding).
    pub fn black(width: u32, height: u32, layout: PixelLayout, pts_s: f64) -> Self {
        let sizes = Self::plane_sizes(width, height, layout);
        let planes = match layout {
            PixelLayout::Yuv420p => {
                vec![vec![16; sizes[0]], vec![128; sizes[1]], vec![128; sizes[2]]]
            }
            PixelLayout::Rgb24 => vec![vec![0; sizes[0]]],
        };
        VideoFrame {
            width,
            height,
            layout,
            planes,
            pts_s,
        }
    }

    /// Checks that the plane count and sizes match width/height/layout.
    pub fn validate(&self) -> Result<(), MediaError> {
        if self.width == 0 || self.height == 0 {
            return Err(MediaError::invalid(
                "video frame",
                format!("size {}x{} is empty", self.width, self.height),
            ));
        }
        let want = Self::plane_sizes(self.width, self.height, self.layout);
        let got: Vec<usize> = self.planes.iter().map(Vec::len).collect();
        if want != got {
            return Err(MediaError::invalid(
                "video frame",
                format!(
                    "{}x{} {:?} needs planes of {:?} bytes, got {:?}",
                    self.width, self.height, self.layout, want, got
                ),
            ));
        }
        if !self.pts_s.is_finite() {
            return Err(MediaError::invalid(
                "video frame",
                "timestamp is not finite",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("layout", &self.layout)
            .field(
                "plane_bytes",
                &self.planes.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .field("pts_s", &self.pts_s)
            .finish()
    }
}

/// A run of decoded audio samples.
#[derive(Clone, PartialEq)]
pub struct AudioChunk {
    pub sample_rate: u32,
    pub channels: u16,
    /// Interleaved samples, nominally in `[-1, 1]` (decoders may overshoot slightly;
    /// values are clamped only when encoding to integer formats).
    pub samples: Vec<f32>,
    /// Presentation time of the first sample, seconds from the start of the file.
    pub pts_s: f64,
}

impl AudioChunk {
    /// Number of samples per channel.
    pub fn frames(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / usize::from(self.channels)
        }
    }

    /// Duration of this chunk in seconds.
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.frames() as f64 / f64::from(self.sample_rate)
        }
    }
}

impl fmt::Debug for AudioChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioChunk")
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("frames", &self.frames())
            .field("pts_s", &self.pts_s)
            .finish()
    }
}

/// One item from [`Decoder::next_frame`].
#[derive(Debug, Clone, PartialEq)]
pub enum MediaFrame {
    Video(VideoFrame),
    Audio(AudioChunk),
}

impl MediaFrame {
    pub fn pts_s(&self) -> f64 {
        match self {
            MediaFrame::Video(v) => v.pts_s,
            MediaFrame::Audio(a) => a.pts_s,
        }
    }
}
