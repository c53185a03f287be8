//! Encoder: [`VideoFrame`]s / [`AudioChunk`]s → media file.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::ptr;

use ffmpeg::codec::{self, Id};
use ffmpeg::format::{sample, Pixel, Sample};
use ffmpeg::software::resampling;
use ffmpeg::{ffi, frame, ChannelLayout, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;

use crate::convert::{self, Colour, Scaler};
use crate::{AudioChunk, AudioInfo, MediaError, MediaKind, PixelLayout, VideoFrame, VideoInfo};

/// Quality knobs for [`Encoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeSettings {
    /// x264 constant rate factor (0–51, lower is better). Default 18, ordinary delivery
    /// quality: what the mark costs is judged against a plain encode at the same CRF and
    /// preset (scripts/bench-invisibility), so a finer default only made files larger.
    /// 0 is lossless ([`EncodeSettings::lossless`]).
    pub crf: u8,
    /// x264 preset (`ultrafast` … `veryslow`). Default `"medium"`.
    pub preset: String,
    /// AAC / MP3 bit rate in bits per second. Default 192 000.
    pub audio_bitrate: u32,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            crf: Self::DEFAULT_CRF,
            preset: "medium".to_string(),
            audio_bitrate: 192_000,
        }
    }
}

impl EncodeSettings {
    /// The default x264 CRF (see [`EncodeSettings::crf`]).
    pub const DEFAULT_CRF: u8 = 18;

    /// Lossless video: x264 at CRF 0 with 8-bit 4:2:0 is QP 0, so a yuv420p frame of the
    /// encoder's size decodes back bit for bit (the picture is not scaled or converted).
    /// Used to measure what the watermark alone changes. Files are large: ≈ 10× CRF 18's.
    pub fn lossless() -> Self {
        EncodeSettings {
            crf: 0,
            preset: "ultrafast".to_string(),
            ..EncodeSettings::default()
        }
    }
}

/// Output file type.
///
/// | variant | extensions | contents |
/// |---|---|---|
/// | `Mp4` | mp4, mov, m4v | H.264 (libx264, yuv420p) + AAC in an MP4 container, `+faststart` |
/// | `M4a` | m4a | AAC in MP4 (`ipod` muxer), `+faststart` |
/// | `Wav` | wav | PCM s16le |
/// | `Mp3` | mp3 | MP3 (libmp3lame) |
/// | `Png` | png | one PNG picture (RGB24) |
/// | `Jpeg` | jpg, jpeg | one JPEG picture (baseline, yuvj420p full range, q=2) |
///
/// Note: `.mov` and `.m4v` paths are written as an MP4 container too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Mp4,
    M4a,
    Wav,
    Mp3,
    Png,
    Jpeg,
}

impl OutputFormat {
    /// Pick the format from `p`'s extension (case-insensitive).
    pub fn from_path(p: &Path) -> Result<Self, MediaError> {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        Self::from_extension(ext).ok_or_else(|| {
            MediaError::unsupported(
                p,
                format!(
                    "unsupported output extension {:?} (expected mp4, mov, m4v, m4a, wav, mp3, png, jpg or jpeg)",
                    ext
                ),
            )
        })
    }

    /// Pick the format from a bare extension such as `"MP4"` or `"jpeg"` (no dot).
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "mp4" | "mov" | "m4v" => OutputFormat::Mp4,
            "m4a" => OutputFormat::M4a,
            "wav" => OutputFormat::Wav,
            "mp3" => OutputFormat::Mp3,
            "png" => OutputFormat::Png,
            "jpg" | "jpeg" => OutputFormat::Jpeg,
            _ => return None,
        })
    }

    pub fn mime(&self) -> &'static str {
        match self {
            OutputFormat::Mp4 => "video/mp4",
            OutputFormat::M4a => "audio/mp4",
            OutputFormat::Wav => "audio/wav",
            OutputFormat::Mp3 => "audio/mpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Jpeg => "image/jpeg",
        }
    }

    /// Canonical extension, without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Mp4 => "mp4",
            OutputFormat::M4a => "m4a",
            OutputFormat::Wav => "wav",
            OutputFormat::Mp3 => "mp3",
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpg",
        }
    }

    pub fn kind(&self) -> MediaKind {
        match self {
            OutputFormat::Mp4 => MediaKind::Video,
            OutputFormat::M4a | OutputFormat::Wav | OutputFormat::Mp3 => MediaKind::Audio,
            OutputFormat::Png | OutputFormat::Jpeg => MediaKind::Image,
        }
    }

    fn muxer(&self) -> Option<&'static str> {
        match self {
            OutputFormat::Mp4 => Some("mp4"),
            OutputFormat::M4a => Some("ipod"),
            OutputFormat::Wav => Some("wav"),
            OutputFormat::Mp3 => Some("mp3"),
            OutputFormat::Png | OutputFormat::Jpeg => None,
        }
    }
}

/// Writes a media file from raw frames.
///
/// * Video (MP4): frames keep their `pts_s` (variable frame rate and A/V
///   sync survive); RGB24 frames are converted to yuv420p; frames whose size
///   differs from the encoder's are scaled. **Odd widths/heights** are not
///   possible in H.264 4:2:0, so such a video is scaled up by one pixel to the
///   next even size (e.g. 175x99 → 176x100).
/// * Audio: samples are resampled only when the codec cannot take the input
///   sample rate / channel count (MP3 is at most stereo and 48 kHz), then queued
///   and cut into the codec's frame size. Timestamps are the first chunk's
///   `pts_s` plus the number of samples written.
/// * Images (PNG/JPEG): exactly one frame is written, at the frame's own size.
///
/// Video info passed to an audio-only format (and audio info passed to an
/// image format) is ignored; writing such frames is then an error.
pub struct Encoder {
    path: PathBuf,
    format: OutputFormat,
    inner: Inner,
}

enum Inner {
    Muxed(Box<Muxed>),
    Still { written: bool },
}

struct Muxed {
    octx: ffmpeg::format::context::Output,
    video: Option<VideoEnc>,
    audio: Option<AudioEnc>,
}

struct VideoEnc {
    enc: ffmpeg::encoder::Video,
    stream_index: usize,
    enc_tb: Rational,
    stream_tb: Rational,
    width: u32,
    height: u32,
    colour: Colour,
    scaler: Scaler,
    last_pts: Option<i64>,
    nominal_dur: i64,
    durations: HashMap<i64, i64>,
    pending: VecDeque<Packet>,
    frames: u64,
}

struct AudioEnc {
    enc: ffmpeg::encoder::Audio,
    stream_index: usize,
    enc_tb: Rational,
    stream_tb: Rational,
    rate: u32,
    channels: usize,
    layout: ChannelLayout,
    sample_fmt: Sample,
    frame_size: usize,
    fifo: Vec<f32>,
    resampler: Option<Resampler>,
    start_pts: Option<i64>,
    sent: i64,
}

/// swresample for interleaved f32 → interleaved f32 at the encoder's rate/channels.
struct Resampler {
    ctx: resampling::Context,
    in_rate: u32,
    in_channels: usize,
    out_channels: usize,
}

impl Resampler {
    fn new(
        in_rate: u32,
        in_channels: usize,
        out_rate: u32,
        out_layout: ChannelLayout,
    ) -> Result<Self, String> {
        let packed = Sample::F32(sample::Type::Packed);
        let ctx = resampling::Context::get(
            packed,
            ChannelLayout::default(in_channels as i32),
            in_rate,
            packed,
            out_layout,
            out_rate,
        )
        .map_err(|e| format!("cannot resample {in_channels} ch {in_rate} Hz audio: {e}"))?;
        Ok(Resampler {
            ctx,
            in_rate,
            in_channels,
            out_channels: out_layout.channels() as usize,
        })
    }

    /// Convert `input` (may be empty to flush) and append the result to `out`.
    fn convert(&mut self, input: Option<&[f32]>, out: &mut Vec<f32>) -> Result<(), String> {
        let in_n = input.map_or(0, |s| s.len() / self.in_channels);
        loop {
            let cap = unsafe { ffi::swr_get_out_samples(self.ctx.as_mut_ptr(), in_n as i32) }.max(0)
                as usize
                + 32;
            let start = out.len();
            out.resize(start + cap * self.out_channels, 0.0);
            let mut out_ptr = out[start..].as_mut_ptr() as *mut u8;
            let got = unsafe {
                match input {
                    Some(s) => {
                        let mut in_ptr = s.as_ptr() as *const u8;
                        ffi::swr_convert(
                            self.ctx.as_mut_ptr(),
                            &mut out_ptr,
                            cap as i32,
                            &mut in_ptr,
                            in_n as i32,
                        )
                    }
                    None => ffi::swr_convert(
                        self.ctx.as_mut_ptr(),
                        &mut out_ptr,
                        cap as i32,
                        ptr::null_mut(),
                        0,
                    ),
                }
            };
            if got < 0 {
                out.truncate(start);
                return Err(format!("resampling failed: {}", ffmpeg::Error::from(got)));
            }
            out.truncate(start + got as usize * self.out_channels);
            // When flushing, keep draining until nothing is left.
            if input.is_some() || got == 0 {
                return Ok(());
            }
        }
    }
}

fn is_eagain(e: &ffmpeg::Error) -> bool {
    matches!(e, ffmpeg::Error::Other { errno } if *errno == ffmpeg::error::EAGAIN)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// Encoder time base: an exact divisor of the frame duration with at least
/// 0.1 ms resolution, so constant-rate content lands exactly on its grid and
/// variable-rate timestamps survive.
fn video_time_base(fps: (i32, i32)) -> (Rational, Rational) {
    let (mut n, mut d) = (i64::from(fps.0), i64::from(fps.1));
    if n <= 0 || d <= 0 {
        n = 25;
        d = 1;
    }
    let g = gcd(n, d);
    n /= g;
    d /= g;
    // tb = d / (n * m), want d / (n * m) <= 1/10000.
    let m = ((10_000 * d) + n - 1) / n;
    let m = m.max(1);
    let den = n * m;
    let (tn, td) = if den <= i64::from(i32::MAX) && d <= i64::from(i32::MAX) {
        let g = gcd(d, den);
        ((d / g) as i32, (den / g) as i32)
    } else {
        (1, 90_000)
    };
    (Rational(tn, td), Rational(n as i32, d as i32))
}

fn even_up(v: u32) -> u32 {
    v + (v & 1)
}

impl Encoder {
    /// Create `path` as `format`. `video` / `audio` describe the streams to
    /// write (normally the decoder's info): size, frame rate, sample rate and
    /// channel count are kept.
    pub fn create(
        path: &Path,
        format: OutputFormat,
        video: Option<&VideoInfo>,
        audio: Option<&AudioInfo>,
        settings: &EncodeSettings,
    ) -> Result<Encoder, MediaError> {
        crate::init();
        if settings.crf > 51 {
            return Err(MediaError::invalid(
                "encode settings",
                format!("crf {} is above 51", settings.crf),
            ));
        }
        let (video, audio) = match format.kind() {
            MediaKind::Video => (video, audio),
            MediaKind::Audio => (None, audio),
            MediaKind::Image => (video, None),
        };
        match format.kind() {
            MediaKind::Video if video.is_none() && audio.is_none() => {
                return Err(MediaError::unsupported(
                    path,
                    "an MP4 output needs a video or an audio stream",
                ))
            }
            MediaKind::Audio if audio.is_none() => {
                return Err(MediaError::unsupported(
                    path,
                    format!("a .{} output needs an audio stream", format.extension()),
                ))
            }
            MediaKind::Image if video.is_none() => {
                return Err(MediaError::unsupported(
                    path,
                    format!("a .{} output needs a picture", format.extension()),
                ))
            }
            _ => {}
        }
        if let Some(v) = video {
            if v.width == 0 || v.height == 0 {
                return Err(MediaError::invalid(
                    "video info",
                    format!("size {}x{} is empty", v.width, v.height),
                ));
            }
        }
        if let Some(a) = audio {
            if a.sample_rate == 0 || a.channels == 0 {
                return Err(MediaError::invalid(
                    "audio info",
                    format!("{} Hz with {} channels", a.sample_rate, a.channels),
                ));
            }
        }

        let Some(muxer) = format.muxer() else {
            // Still image: nothing to open until the frame arrives; make sure
            // the destination is writable now rather than later.
            std::fs::File::create(path).map_err(|e| MediaError::io(path, "could not create", e))?;
            return Ok(Encoder {
                path: path.to_path_buf(),
                format,
                inner: Inner::Still { written: false },
            });
        };

        let url = convert::file_url(path).map_err(|r| MediaError::unsupported(path, r))?;
        let mut octx = ffmpeg::format::output_as(&url, muxer)
            .map_err(|e| MediaError::encode(path, format!("creating the {muxer} output"), e))?;
        let global_header = octx
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);

        let mut video_enc = None;
        if let Some(v) = video {
            video_enc = Some(open_h264(path, &mut octx, v, settings, global_header)?);
        }
        let mut audio_enc = None;
        if let Some(a) = audio {
            audio_enc = Some(open_audio(
                path,
                &mut octx,
                format,
                a,
                settings,
                global_header,
            )?);
        }

        let mut opts = Dictionary::new();
        if matches!(format, OutputFormat::Mp4 | OutputFormat::M4a) {
            opts.set("movflags", "+faststart");
        }
        octx.write_header_with(opts)
            .map_err(|e| MediaError::encode(path, "writing the file header", e))?;
        if let Some(v) = video_enc.as_mut() {
            v.stream_tb = octx
                .stream(v.stream_index)
                .map(|s| s.time_base())
                .unwrap_or(v.enc_tb);
        }
        if let Some(a) = audio_enc.as_mut() {
            a.stream_tb = octx
                .stream(a.stream_index)
                .map(|s| s.time_base())
                .unwrap_or(a.enc_tb);
        }

        Ok(Encoder {
            path: path.to_path_buf(),
            format,
            inner: Inner::Muxed(Box::new(Muxed {
                octx,
                video: video_enc,
                audio: audio_enc,
            })),
        })
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// The size video is actually encoded at (odd sizes are rounded up to even
    /// for MP4). `None` for outputs without video; for images it is the size
    /// of the frame passed in.
    pub fn encoded_video_size(&self) -> Option<(u32, u32)> {
        match &self.inner {
            Inner::Muxed(m) => m.video.as_ref().map(|v| (v.width, v.height)),
            Inner::Still { .. } => None,
        }
    }

    /// Encode one picture. Its `pts_s` is kept.
    pub fn write_video(&mut self, frame: &VideoFrame) -> Result<(), MediaError> {
        frame.validate()?;
        match &mut self.inner {
            Inner::Still { written } => {
                if *written {
                    return Err(MediaError::invalid(
                        "video frame",
                        format!(
                            "a .{} output holds exactly one picture",
                            self.format.extension()
                        ),
                    ));
                }
                let bytes = encode_still(frame, self.format, frame.width, frame.height)
                    .map_err(|r| MediaError::encode_msg(&self.path, "encoding the picture", r))?;
                std::fs::write(&self.path, bytes)
                    .map_err(|e| MediaError::io(&self.path, "could not write", e))?;
                *written = true;
                Ok(())
            }
            Inner::Muxed(m) => {
                let Muxed { octx, video, .. } = &mut **m;
                let Some(v) = video.as_mut() else {
                    return Err(MediaError::invalid(
                        "video frame",
                        format!(
                            "this .{} output has no video stream",
                            self.format.extension()
                        ),
                    ));
                };
                v.write(&self.path, octx, frame)
            }
        }
    }

    /// Queue audio samples for encoding.
    pub fn write_audio(&mut self, chunk: &AudioChunk) -> Result<(), MediaError> {
        if chunk.channels == 0 || chunk.sample_rate == 0 {
            return Err(MediaError::invalid(
                "audio chunk",
                format!("{} Hz with {} channels", chunk.sample_rate, chunk.channels),
            ));
        }
        if !chunk
            .samples
            .len()
            .is_multiple_of(usize::from(chunk.channels))
        {
            return Err(MediaError::invalid(
                "audio chunk",
                format!(
                    "{} samples is not a multiple of {} channels",
                    chunk.samples.len(),
                    chunk.channels
                ),
            ));
        }
        if !chunk.pts_s.is_finite() {
            return Err(MediaError::invalid(
                "audio chunk",
                "timestamp is not finite",
            ));
        }
        let Inner::Muxed(m) = &mut self.inner else {
            return Err(MediaError::invalid(
                "audio chunk",
                format!("a .{} output has no audio stream", self.format.extension()),
            ));
        };
        let Muxed { octx, audio, .. } = &mut **m;
        let Some(a) = audio.as_mut() else {
            return Err(MediaError::invalid(
                "audio chunk",
                format!(
                    "this .{} output has no audio stream",
                    self.format.extension()
                ),
            ));
        };
        a.write(&self.path, octx, chunk)
    }

    /// Flush the encoders and finalise the file.
    pub fn finish(self) -> Result<(), MediaError> {
        let path = self.path;
        match self.inner {
            Inner::Still { written } => {
                if written {
                    Ok(())
                } else {
                    Err(MediaError::invalid(
                        "encoder use",
                        "finish() called before any picture was written",
                    ))
                }
            }
            Inner::Muxed(mut m) => {
                let Muxed { octx, video, audio } = &mut *m;
                let wrote_video = video.as_ref().is_some_and(|v| v.frames > 0);
                let wrote_audio = audio
                    .as_ref()
                    .is_some_and(|a| a.sent > 0 || !a.fifo.is_empty());
                if !wrote_video && !wrote_audio {
                    return Err(MediaError::invalid(
                        "encoder use",
                        "finish() called before anything was written",
                    ));
                }
                if let Some(v) = video.as_mut() {
                    v.finish(&path, octx)?;
                }
                if let Some(a) = audio.as_mut() {
                    a.finish(&path, octx)?;
                }
                octx.write_trailer()
                    .map_err(|e| MediaError::encode(&path, "writing the file trailer", e))
            }
        }
    }
}

fn open_h264(
    path: &Path,
    octx: &mut ffmpeg::format::context::Output,
    v: &VideoInfo,
    settings: &EncodeSettings,
    global_header: bool,
) -> Result<VideoEnc, MediaError> {
    let codec = ffmpeg::encoder::find_by_name("libx264")
        .ok_or_else(|| MediaError::unsupported(path, "this FFmpeg has no libx264 encoder"))?;
    let (enc_tb, fps) = video_time_base(v.frame_rate);
    let (width, height) = (even_up(v.width), even_up(v.height));
    let colour = Colour::for_output(height, false);

    let mut ost = octx
        .add_stream(codec)
        .map_err(|e| MediaError::encode(path, "adding the video stream", e))?;
    let stream_index = ost.index();
    let mut ctx = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| MediaError::encode(path, "creating the H.264 encoder", e))?;
    ctx.set_width(width);
    ctx.set_height(height);
    ctx.set_format(Pixel::YUV420P);
    ctx.set_time_base(enc_tb);
    ctx.set_frame_rate(Some(fps));
    ctx.set_color_range(ffmpeg::color::Range::MPEG);
    if colour.bt709 {
        ctx.set_colorspace(ffmpeg::color::Space::BT709);
        ctx.set_color_primaries(ffmpeg::color::Primaries::BT709);
        ctx.set_color_transfer_characteristic(ffmpeg::color::TransferCharacteristic::BT709);
    } else {
        ctx.set_colorspace(ffmpeg::color::Space::SMPTE170M);
    }
    if global_header {
        add_flags(&mut ctx, codec::Flags::GLOBAL_HEADER);
    }
    unsafe {
        // 0 = let x264 pick the thread count.
        (*ctx.as_mut_ptr()).thread_count = 0;
    }
    let mut opts = Dictionary::new();
    opts.set("preset", &settings.preset);
    opts.set("crf", &settings.crf.to_string());
    let enc = ctx.open_with(opts).map_err(|e| {
        MediaError::encode(
            path,
            format!(
                "opening libx264 ({}x{}, preset {:?}, crf {})",
                width, height, settings.preset, settings.crf
            ),
            e,
        )
    })?;
    ost.set_parameters(&enc);
    ost.set_time_base(enc_tb);
    ost.set_avg_frame_rate(fps);
    ost.set_rate(fps);

    let fps_f = f64::from(fps.numerator()) / f64::from(fps.denominator());
    let tb_f = f64::from(enc_tb.numerator()) / f64::from(enc_tb.denominator());
    let nominal_dur = ((1.0 / fps_f) / tb_f).round().max(1.0) as i64;
    Ok(VideoEnc {
        enc,
        stream_index,
        enc_tb,
        stream_tb: enc_tb,
        width,
        height,
        colour,
        scaler: Scaler::default(),
        last_pts: None,
        nominal_dur,
        durations: HashMap::new(),
        pending: VecDeque::new(),
        frames: 0,
    })
}

impl VideoEnc {
    fn write(
        &mut self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
        frame: &VideoFrame,
    ) -> Result<(), MediaError> {
        let src = convert::planes_to_frame(frame)?;
        let mut f = if frame.layout == PixelLayout::Yuv420p
            && frame.width == self.width
            && frame.height == self.height
        {
            let mut f = src;
            unsafe {
                let p = f.as_mut_ptr();
                (*p).color_range = ffi::AVColorRange::AVCOL_RANGE_MPEG;
            }
            f
        } else {
            let src_colour = match frame.layout {
                PixelLayout::Rgb24 => Colour {
                    full_range: true,
                    bt709: self.colour.bt709,
                },
                PixelLayout::Yuv420p => Colour {
                    full_range: false,
                    bt709: self.colour.bt709,
                },
            };
            self.scaler
                .run(
                    &src,
                    src_colour,
                    Pixel::YUV420P,
                    self.width,
                    self.height,
                    self.colour,
                )
                .map_err(|r| MediaError::encode_msg(path, "converting a video frame", r))?
        };
        let tb = f64::from(self.enc_tb.numerator()) / f64::from(self.enc_tb.denominator());
        let mut pts = (frame.pts_s / tb).round() as i64;
        if let Some(last) = self.last_pts {
            if pts <= last {
                pts = last + 1;
            }
            self.durations.insert(last, pts - last);
        }
        self.last_pts = Some(pts);
        f.set_pts(Some(pts));
        f.set_kind(ffmpeg::picture::Type::None);
        self.enc
            .send_frame(&f)
            .map_err(|e| MediaError::encode(path, "encoding video", e))?;
        self.frames += 1;
        self.drain(path, octx)
    }

    fn drain(
        &mut self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
    ) -> Result<(), MediaError> {
        loop {
            let mut pkt = Packet::empty();
            match self.enc.receive_packet(&mut pkt) {
                Ok(()) => {
                    pkt.set_stream(self.stream_index);
                    self.pending.push_back(pkt);
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(e) if is_eagain(&e) => break,
                Err(e) => return Err(MediaError::encode(path, "encoding video", e)),
            }
        }
        // Packets go out in order, each once its duration is known (the
        // muxer needs the last packet's duration for the last frame to count).
        while let Some(pkt) = self.pending.front() {
            let Some(dur) = pkt.pts().and_then(|p| self.durations.get(&p).copied()) else {
                if pkt.pts().is_none() {
                    // Should not happen with x264; don't stall on it.
                    let mut pkt = self.pending.pop_front().expect("front exists");
                    pkt.set_duration(self.nominal_dur);
                    self.write_packet(path, octx, pkt)?;
                    continue;
                }
                break;
            };
            let mut pkt = self.pending.pop_front().expect("front exists");
            if let Some(p) = pkt.pts() {
                self.durations.remove(&p);
            }
            pkt.set_duration(dur);
            self.write_packet(path, octx, pkt)?;
        }
        Ok(())
    }

    fn write_packet(
        &self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
        mut pkt: Packet,
    ) -> Result<(), MediaError> {
        pkt.rescale_ts(self.enc_tb, self.stream_tb);
        pkt.write_interleaved(octx)
            .map_err(|e| MediaError::encode(path, "writing video", e))
    }

    fn finish(
        &mut self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
    ) -> Result<(), MediaError> {
        if let Some(last) = self.last_pts {
            self.durations.insert(last, self.nominal_dur);
        }
        match self.enc.send_eof() {
            Ok(()) | Err(ffmpeg::Error::Eof) => {}
            Err(e) => return Err(MediaError::encode(path, "flushing the video encoder", e)),
        }
        self.drain(path, octx)?;
        // Anything still pending (unknown pts) goes out with the nominal duration.
        while let Some(mut pkt) = self.pending.pop_front() {
            pkt.set_duration(self.nominal_dur);
            self.write_packet(path, octx, pkt)?;
        }
        Ok(())
    }
}

fn pick_rate(codec: &ffmpeg::codec::Audio, want: u32) -> u32 {
    let Some(rates) = codec.rates() else {
        return want;
    };
    let rates: Vec<u32> = rates.filter(|r| *r > 0).map(|r| r as u32).collect();
    if rates.is_empty() || rates.contains(&want) {
        return want;
    }
    rates
        .iter()
        .copied()
        .filter(|r| *r >= want)
        .min()
        .or_else(|| rates.iter().copied().max())
        .unwrap_or(want)
}

fn pick_layout(codec: &ffmpeg::codec::Audio, channels: u16) -> ChannelLayout {
    let ch = i32::from(channels);
    let default = ChannelLayout::default(ch);
    let Some(layouts) = codec.channel_layouts() else {
        return default;
    };
    let layouts: Vec<ChannelLayout> = layouts.collect();
    if layouts.is_empty() || layouts.contains(&default) {
        return default;
    }
    if let Some(l) = layouts.iter().find(|l| l.channels() == ch) {
        return *l;
    }
    // Fewer channels than the input: the most the codec allows (downmix).
    layouts
        .iter()
        .copied()
        .filter(|l| l.channels() <= ch)
        .max_by_key(|l| l.channels())
        .unwrap_or(ChannelLayout::STEREO)
}

fn pick_sample_format(codec: &ffmpeg::codec::Audio) -> Sample {
    use sample::Type::{Packed, Planar};
    let Some(formats) = codec.formats() else {
        return Sample::F32(Packed);
    };
    let formats: Vec<Sample> = formats.collect();
    for pref in [
        Sample::F32(Planar),
        Sample::F32(Packed),
        Sample::I16(Packed),
        Sample::I16(Planar),
        Sample::I32(Planar),
        Sample::I32(Packed),
    ] {
        if formats.contains(&pref) {
            return pref;
        }
    }
    formats.first().copied().unwrap_or(Sample::F32(Packed))
}

fn open_audio(
    path: &Path,
    octx: &mut ffmpeg::format::context::Output,
    format: OutputFormat,
    a: &AudioInfo,
    settings: &EncodeSettings,
    global_header: bool,
) -> Result<AudioEnc, MediaError> {
    let (name, codec) = match format {
        OutputFormat::Mp4 | OutputFormat::M4a => ("aac", ffmpeg::encoder::find_by_name("aac")),
        OutputFormat::Mp3 => ("libmp3lame", ffmpeg::encoder::find_by_name("libmp3lame")),
        OutputFormat::Wav => ("pcm_s16le", ffmpeg::encoder::find(Id::PCM_S16LE)),
        OutputFormat::Png | OutputFormat::Jpeg => unreachable!("images have no audio"),
    };
    let codec = codec.ok_or_else(|| {
        MediaError::unsupported(path, format!("this FFmpeg has no {name} encoder"))
    })?;
    let acodec = codec
        .audio()
        .map_err(|e| MediaError::encode(path, format!("{name} is not an audio encoder"), e))?;
    let rate = pick_rate(&acodec, a.sample_rate);
    let layout = pick_layout(&acodec, a.channels);
    let channels = layout.channels().max(1) as usize;
    let sample_fmt = pick_sample_format(&acodec);
    let enc_tb = Rational(1, rate as i32);

    let mut ost = octx
        .add_stream(codec)
        .map_err(|e| MediaError::encode(path, "adding the audio stream", e))?;
    let stream_index = ost.index();
    let mut ctx = codec::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(|e| MediaError::encode(path, format!("creating the {name} encoder"), e))?;
    ctx.set_rate(rate as i32);
    ctx.set_channel_layout(layout);
    ctx.set_channels(channels as i32);
    ctx.set_format(sample_fmt);
    ctx.set_time_base(enc_tb);
    if format != OutputFormat::Wav {
        ctx.set_bit_rate(settings.audio_bitrate as usize);
    }
    if global_header {
        add_flags(&mut ctx, codec::Flags::GLOBAL_HEADER);
    }
    let enc = ctx.open().map_err(|e| {
        MediaError::encode(
            path,
            format!("opening the {name} encoder ({rate} Hz, {channels} channels)"),
            e,
        )
    })?;
    ost.set_parameters(&enc);
    ost.set_time_base(enc_tb);
    let frame_size = match enc.frame_size() {
        0 => 4096,
        n => n as usize,
    };
    Ok(AudioEnc {
        enc,
        stream_index,
        enc_tb,
        stream_tb: enc_tb,
        rate,
        channels,
        layout,
        sample_fmt,
        frame_size,
        fifo: Vec::new(),
        resampler: None,
        start_pts: None,
        sent: 0,
    })
}

impl AudioEnc {
    fn write(
        &mut self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
        chunk: &AudioChunk,
    ) -> Result<(), MediaError> {
        if self.start_pts.is_none() {
            self.start_pts = Some((chunk.pts_s * f64::from(self.rate)).round() as i64);
        }
        let in_ch = usize::from(chunk.channels);
        let same = chunk.sample_rate == self.rate && in_ch == self.channels;
        // Input format changed: drain the old resampler first.
        if self
            .resampler
            .as_ref()
            .is_some_and(|r| same || r.in_rate != chunk.sample_rate || r.in_channels != in_ch)
        {
            let mut r = self.resampler.take().expect("checked");
            r.convert(None, &mut self.fifo)
                .map_err(|m| MediaError::encode_msg(path, "resampling audio", m))?;
        }
        if same {
            self.fifo.extend_from_slice(&chunk.samples);
        } else {
            if self.resampler.is_none() {
                self.resampler = Some(
                    Resampler::new(chunk.sample_rate, in_ch, self.rate, self.layout)
                        .map_err(|m| MediaError::encode_msg(path, "resampling audio", m))?,
                );
            }
            let r = self.resampler.as_mut().expect("just set");
            r.convert(Some(&chunk.samples), &mut self.fifo)
                .map_err(|m| MediaError::encode_msg(path, "resampling audio", m))?;
        }
        self.encode_fifo(path, octx, false)
    }

    fn encode_fifo(
        &mut self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
        last: bool,
    ) -> Result<(), MediaError> {
        let ch = self.channels;
        let mut done = 0usize;
        loop {
            let avail = (self.fifo.len() - done) / ch;
            if avail == 0 || (avail < self.frame_size && !last) {
                break;
            }
            let n = avail.min(self.frame_size);
            let mut f = frame::Audio::empty();
            f.set_format(self.sample_fmt);
            f.set_samples(n);
            f.set_channel_layout(self.layout);
            f.set_channels(ch as u16);
            f.set_rate(self.rate);
            let r = unsafe { ffi::av_frame_get_buffer(f.as_mut_ptr(), 0) };
            if r < 0 {
                return Err(MediaError::encode(
                    path,
                    "allocating an audio frame",
                    ffmpeg::Error::from(r),
                ));
            }
            convert::f32_to_audio_frame(&self.fifo[done..done + n * ch], ch, &mut f)
                .map_err(|m| MediaError::encode_msg(path, "converting audio", m))?;
            f.set_pts(Some(self.start_pts.unwrap_or(0) + self.sent));
            self.sent += n as i64;
            done += n * ch;
            self.enc
                .send_frame(&f)
                .map_err(|e| MediaError::encode(path, "encoding audio", e))?;
            self.drain(path, octx)?;
        }
        self.fifo.drain(..done);
        Ok(())
    }

    fn drain(
        &mut self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
    ) -> Result<(), MediaError> {
        loop {
            let mut pkt = Packet::empty();
            match self.enc.receive_packet(&mut pkt) {
                Ok(()) => {
                    pkt.set_stream(self.stream_index);
                    pkt.rescale_ts(self.enc_tb, self.stream_tb);
                    pkt.write_interleaved(octx)
                        .map_err(|e| MediaError::encode(path, "writing audio", e))?;
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(e) if is_eagain(&e) => break,
                Err(e) => return Err(MediaError::encode(path, "encoding audio", e)),
            }
        }
        Ok(())
    }

    fn finish(
        &mut self,
        path: &Path,
        octx: &mut ffmpeg::format::context::Output,
    ) -> Result<(), MediaError> {
        if let Some(mut r) = self.resampler.take() {
            r.convert(None, &mut self.fifo)
                .map_err(|m| MediaError::encode_msg(path, "resampling audio", m))?;
        }
        self.encode_fifo(path, octx, true)?;
        match self.enc.send_eof() {
            Ok(()) | Err(ffmpeg::Error::Eof) => {}
            Err(e) => return Err(MediaError::encode(path, "flushing the audio encoder", e)),
        }
        self.drain(path, octx)
    }
}

/// Encode one picture as PNG or JPEG bytes at `out_w` x `out_h`.
fn encode_still(
    v: &VideoFrame,
    format: OutputFormat,
    out_w: u32,
    out_h: u32,
) -> Result<Vec<u8>, String> {
    const JPEG_Q: i32 = 2; // ffmpeg -q:v 2: visually lossless
    let (id, pix, colour) = match format {
        OutputFormat::Png => (
            Id::PNG,
            Pixel::RGB24,
            Colour {
                full_range: true,
                bt709: false,
            },
        ),
        OutputFormat::Jpeg => (
            Id::MJPEG,
            Pixel::YUVJ420P,
            Colour {
                full_range: true,
                bt709: false,
            },
        ),
        _ => return Err(format!("{format:?} is not a picture format")),
    };
    let src = convert::planes_to_frame(v).map_err(|e| e.to_string())?;
    let src_colour = match v.layout {
        PixelLayout::Rgb24 => Colour {
            full_range: true,
            bt709: false,
        },
        PixelLayout::Yuv420p => Colour {
            full_range: false,
            bt709: convert::guess_bt709(v.height),
        },
    };
    let mut scaler = Scaler::default();
    let mut f = scaler.run(&src, src_colour, pix, out_w, out_h, colour)?;

    let codec =
        ffmpeg::encoder::find(id).ok_or_else(|| format!("this FFmpeg has no {id:?} encoder"))?;
    let mut ctx = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    ctx.set_width(out_w);
    ctx.set_height(out_h);
    ctx.set_format(pix);
    ctx.set_time_base(Rational(1, 25));
    let lambda = JPEG_Q * ffi::FF_QP2LAMBDA;
    if format == OutputFormat::Jpeg {
        add_flags(&mut ctx, codec::Flags::QSCALE);
        ctx.set_global_quality(lambda);
        ctx.set_color_range(ffmpeg::color::Range::JPEG);
    }
    let mut enc = ctx
        .open()
        .map_err(|e| format!("opening the {id:?} encoder: {e}"))?;
    f.set_pts(Some(0));
    unsafe {
        (*f.as_mut_ptr()).quality = lambda;
    }
    enc.send_frame(&f).map_err(|e| e.to_string())?;
    enc.send_eof().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        let mut pkt = Packet::empty();
        match enc.receive_packet(&mut pkt) {
            Ok(()) => out.extend_from_slice(pkt.data().unwrap_or(&[])),
            Err(ffmpeg::Error::Eof) => break,
            Err(e) if is_eagain(&e) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    if out.is_empty() {
        return Err("the encoder produced no data".to_string());
    }
    Ok(out)
}

/// Adds `flags` to an encoder context's, keeping those its codec set by default:
/// `set_flags` replaces them all, and libx264's defaults hold `+cgop` — without it x264
/// writes open GOPs, which the `ffmpeg` CLI (and so the plain encode a seal is compared
/// with) does not.
fn add_flags(ctx: &mut codec::Context, flags: codec::Flags) {
    // SAFETY: a plain field of a context this function borrows mutably.
    unsafe {
        (*ctx.as_mut_ptr()).flags |= flags.bits() as std::os::raw::c_int;
    }
}

/// Scale `frame` to fit within `max_w` x `max_h` (aspect kept, never
/// enlarged) and encode it as JPEG bytes in memory.
pub fn jpeg_thumbnail(frame: &VideoFrame, max_w: u32, max_h: u32) -> Result<Vec<u8>, MediaError> {
    crate::init();
    frame.validate()?;
    if max_w == 0 || max_h == 0 {
        return Err(MediaError::invalid(
            "thumbnail size",
            format!("{max_w}x{max_h} is empty"),
        ));
    }
    let scale = (f64::from(max_w) / f64::from(frame.width))
        .min(f64::from(max_h) / f64::from(frame.height))
        .min(1.0);
    let w = ((f64::from(frame.width) * scale).round() as u32).clamp(1, max_w);
    let h = ((f64::from(frame.height) * scale).round() as u32).clamp(1, max_h);
    encode_still(frame, OutputFormat::Jpeg, w, h).map_err(|r| MediaError::InvalidInput {
        what: "thumbnail",
        reason: format!("JPEG encoding failed: {r}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, MediaFrame};

    /// The first `n` pictures of `path`, as yuv420p.
    fn pictures(path: &Path, n: usize) -> (VideoInfo, Vec<VideoFrame>) {
        let mut dec = Decoder::open(path, PixelLayout::Yuv420p).expect("open");
        let info = dec.info().video.clone().expect("a video stream");
        let mut out = Vec::new();
        while out.len() < n {
            match dec.next_frame().expect("decode") {
                Some(MediaFrame::Video(v)) => out.push(v),
                Some(MediaFrame::Audio(_)) => {}
                None => break,
            }
        }
        (info, out)
    }

    /// Encodes `frames` with `settings` and decodes them back.
    fn round_trip(
        info: &VideoInfo,
        frames: &[VideoFrame],
        settings: &EncodeSettings,
    ) -> Vec<VideoFrame> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("round-trip.mp4");
        let mut enc =
            Encoder::create(&out, OutputFormat::Mp4, Some(info), None, settings).expect("create");
        for f in frames {
            enc.write_video(f).expect("encode");
        }
        enc.finish().expect("finish");
        pictures(&out, frames.len() + 1).1
    }

    #[test]
    fn lossless_settings_give_back_every_pixel() {
        // Real camera footage (../shared/media), 640x272: even, so nothing is scaled.
        let bikes =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/media/video/bikes.mp4");
        let (info, frames) = pictures(&bikes, 12);
        assert_eq!(frames.len(), 12);
        let back = round_trip(&info, &frames, &EncodeSettings::lossless());
        assert_eq!(back.len(), frames.len());
        for (i, (a, b)) in frames.iter().zip(&back).enumerate() {
            assert_eq!((a.width, a.height), (b.width, b.height), "frame {i}");
            assert!(
                a.planes == b.planes,
                "frame {i} changed in a lossless round trip"
            );
        }
        // The default is a lossy delivery encode: the same check must see it change pixels.
        let lossy = round_trip(&info, &frames, &EncodeSettings::default());
        assert!(frames.iter().zip(&lossy).any(|(a, b)| a.planes != b.planes));
    }

    #[test]
    fn default_is_delivery_quality() {
        let d = EncodeSettings::default();
        assert!((18..=20).contains(&d.crf), "crf {}", d.crf);
        assert_eq!(d.crf, EncodeSettings::DEFAULT_CRF);
        assert_eq!(EncodeSettings::lossless().crf, 0);
    }

    #[test]
    fn time_base_is_exact_and_fine() {
        let (tb, fps) = video_time_base((25, 1));
        assert_eq!((tb, fps), (Rational(1, 10_000), Rational(25, 1)));
        let (tb, _) = video_time_base((30000, 1001));
        // 1001 / (30000 * 334) reduced
        let secs = f64::from(tb.numerator()) / f64::from(tb.denominator());
        assert!(secs <= 1e-4);
        let frame = 1001.0 / 30000.0;
        assert!((frame / secs - (frame / secs).round()).abs() < 1e-6);
        let (tb, fps) = video_time_base((0, 1));
        assert_eq!((tb, fps), (Rational(1, 10_000), Rational(25, 1)));
    }

    #[test]
    fn formats_from_paths() {
        for (p, f) in [
            ("a.MP4", OutputFormat::Mp4),
            ("a.mov", OutputFormat::Mp4),
            ("a.m4v", OutputFormat::Mp4),
            ("a.m4a", OutputFormat::M4a),
            ("a.wav", OutputFormat::Wav),
            ("a.mp3", OutputFormat::Mp3),
            ("a.png", OutputFormat::Png),
            ("a.JPG", OutputFormat::Jpeg),
            ("a.jpeg", OutputFormat::Jpeg),
        ] {
            assert_eq!(OutputFormat::from_path(Path::new(p)).unwrap(), f, "{p}");
        }
        assert!(OutputFormat::from_path(Path::new("a.txt")).is_err());
        assert!(OutputFormat::from_path(Path::new("noext")).is_err());
        assert_eq!(OutputFormat::Jpeg.mime(), "image/jpeg");
        assert_eq!(OutputFormat::M4a.kind(), MediaKind::Audio);
    }
}
