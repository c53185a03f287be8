//! Streaming decoder: file → [`MediaFrame`]s.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ffmpeg::codec::threading;
use ffmpeg::format::stream::Disposition;
use ffmpeg::format::Pixel;
use ffmpeg::{ffi, frame, media, Packet, Rational};
use ffmpeg_next as ffmpeg;

use crate::convert::{self, Colour, Scaler};
// A sibling file of this one (src/heif.rs), declared here so the crate root stays as it is.
#[path = "heif.rs"]
mod heif;
use crate::{
    AudioChunk, AudioInfo, MediaError, MediaFrame, MediaInfo, MediaKind, PixelLayout, VideoFrame,
    VideoInfo,
};

/// A HEIF/AVIF still's description from its headers (no decoding), or `None` for every other
/// file: what [`crate::probe`] answers for the stills FFmpeg cannot read.
pub(crate) fn probe_still(path: &Path) -> Result<Option<MediaInfo>, MediaError> {
    heif::probe(path)
}

/// Consecutive unreadable packets after which we give up on a file.
const MAX_BAD_READS_IN_A_ROW: u32 = 1000;

/// Reads a media file frame by frame.
///
/// Only one video stream (the largest that is not cover art) and one audio
/// stream (the default one, else the first) are decoded; other streams are
/// skipped. Frames come out in file (interleaved) order; memory use does not
/// grow with the length of the file.
///
/// HEIF and AVIF stills, which FFmpeg 5.1 cannot decode, are decoded by libheif instead
/// (recognised by their brands): one picture, [`MediaKind::Image`], container `"heif"` or
/// `"avif"`; pictures over 64 Mpx are refused from their headers.
pub struct Decoder {
    path: PathBuf,
    /// FFmpeg's demuxer; `None` for a HEIF/AVIF still, decoded whole by libheif at open.
    input: Option<ffmpeg::format::context::Input>,
    info: MediaInfo,
    layout: PixelLayout,
    /// Container start time (seconds) subtracted from every timestamp.
    offset_s: f64,
    video: Option<VideoStream>,
    audio: Option<AudioStream>,
    queue: VecDeque<MediaFrame>,
    flushed: bool,
    finished: bool,
    bad_reads_in_a_row: u32,
    /// Packets (or frames) of each stream the decoders could not decode, skipped.
    video_errors: u64,
    audio_errors: u64,
    frames_out: u64,
    selection: FrameSelection,
    /// Video packets stamped at or after this (stream time base) are dropped: a second
    /// decoder takes the clip from there ([`Decoder::end_video_at`]).
    video_end_ts: Option<i64>,
    /// A video packet has been read (the decoder's thread count is fixed from then on).
    video_started: bool,
}

/// At most this many metadata tags are read from a file ([`Decoder::container_tags`]).
pub const MAX_TAGS: usize = 256;
/// Each tag's key and value is cut to this many bytes.
pub const MAX_TAG_BYTES: usize = 1024;

/// Which video frames a [`Decoder`] decodes ([`Decoder::select_video_frames`]): analysis
/// that needs only some frames skips the decoding work of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameSelection {
    /// Every frame.
    #[default]
    All,
    /// Only frames that other frames are predicted from (FFmpeg's `skip_frame = nonref`):
    /// in H.264/HEVC with B-frames the non-reference B-frames, typically a third to a half
    /// of the frames and of the decoding work, are skipped. Intra-only codecs lose nothing.
    /// The deblocking filter is skipped as well (`skip_loop_filter = all`): these pictures
    /// are for analysis, not display.
    Reference,
    /// Only key frames (the container's sync samples; FFmpeg's `skip_frame = nokey`):
    /// every other video packet is dropped before the decoder, so decoding costs only what
    /// the key frames cost — typically one frame in every 1 to 10 seconds of an encoded
    /// clip, every frame of an intra-only one.
    Key,
}

struct VideoStream {
    index: usize,
    decoder: ffmpeg::decoder::Video,
    time_base: f64,
    frame_dur_s: f64,
    next_pts_s: Option<f64>,
    scaler: Scaler,
}

struct AudioStream {
    index: usize,
    decoder: ffmpeg::decoder::Audio,
    time_base: f64,
    channels: u16,
    next_pts_s: Option<f64>,
}

fn rational_ok(r: Rational) -> bool {
    r.numerator() > 0 && r.denominator() > 0
}

fn to_f64(r: Rational) -> f64 {
    f64::from(r.numerator()) / f64::from(r.denominator())
}

pub(crate) fn is_image_demuxer(name: &str) -> bool {
    name == "image2" || name.ends_with("_pipe") || name == "image2pipe"
}

/// Characters that make FFmpeg's `image2` demuxer read a sequence of *other* files
/// (`frame%03d.png`, globs): a file named with one of them is never opened as `image2`.
const PATTERN_CHARS: &[char] = &['%', '*', '?', '[', ']', '{', '}'];

/// The demuxers [`crate::ACCEPTED_FORMATS`] allows for this file: `image2` (FFmpeg's
/// demuxer for a single JPEG, among others) only when the name holds no pattern.
fn format_whitelist(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut list: Vec<&str> = crate::ACCEPTED_FORMATS.to_vec();
    if !name.contains(PATTERN_CHARS) {
        list.push("image2");
    }
    list.join(",")
}

/// Why a demuxer hallmark does not accept is refused, in words.
fn refusal_reason(format: &str) -> &'static str {
    match format {
        "hls" | "dash" | "concat" | "imf" | "webm_dash_manifest" | "ffmetadata" => {
            "playlists may point at other files"
        }
        "image2" => "a file name with a pattern (%d, *, ?) stands for other files",
        _ => "hallmark opens only the audio, video and image formats it supports",
    }
}

/// Whether a demuxer name (FFmpeg's, possibly a comma-separated list of aliases such as
/// `mov,mp4,m4a,3gp,3g2,mj2`) is on the comma-separated `whitelist`.
fn on_list(name: &str, whitelist: &str) -> bool {
    name.split(',')
        .any(|n| whitelist.split(',').any(|w| w == n))
}

/// The demuxer FFmpeg would pick for `path` (named `url`), from its name and first bytes
/// read here (no FFmpeg I/O): to say which format a refused file asked for.
fn guess_format(path: &Path, url: &std::ffi::CStr) -> Option<String> {
    use std::io::Read;
    const PROBE_BYTES: usize = 1 << 16;
    let mut buf = Vec::with_capacity(PROBE_BYTES + ffi::AVPROBE_PADDING_SIZE as usize);
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(PROBE_BYTES as u64).read_to_end(&mut buf);
    }
    let len = buf.len();
    buf.resize(len + ffi::AVPROBE_PADDING_SIZE as usize, 0);
    // SAFETY: the probe data points at live buffers (padded as FFmpeg requires); the
    // returned format is a static FFmpeg table entry.
    unsafe {
        let mut best: (i32, *const ffi::AVInputFormat) = (0, std::ptr::null());
        for (opened, size) in [(0, 0), (1, len)] {
            let pd = ffi::AVProbeData {
                filename: url.as_ptr(),
                buf: buf.as_mut_ptr(),
                buf_size: size as i32,
                mime_type: std::ptr::null(),
            };
            let mut score = 0;
            let f = ffi::av_probe_input_format3(&pd, opened, &mut score);
            if !f.is_null() && score > best.0 {
                best = (score, f);
            }
        }
        (!best.1.is_null()).then(|| {
            std::ffi::CStr::from_ptr((*best.1).name)
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// Opens `path` with libavformat (headers only: `avformat_open_input`), narrowly: only the
/// demuxers of [`crate::ACCEPTED_FORMATS`] (FFmpeg's `format_whitelist`) and only the `file`
/// protocol (`protocol_whitelist`), so that a file cannot make FFmpeg read other files
/// (playlists, concat lists, image-sequence patterns) or reach anything else. A file of
/// another format is refused with [`MediaError::Refused`], before anything but its name and
/// first bytes has been read. The caller owns the returned context (`avformat_close_input`).
pub(crate) fn open_format_context(path: &Path) -> Result<*mut ffi::AVFormatContext, MediaError> {
    let url = convert::file_url(path).map_err(|r| MediaError::unreadable(path, r))?;
    let c_url =
        std::ffi::CString::new(url).map_err(|_| MediaError::unreadable(path, "bad path"))?;
    let whitelist = format_whitelist(path);
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", &whitelist);
    options.set("protocol_whitelist", "file");
    // Belt and braces: even as `image2`, the name is taken as it is, never as a pattern.
    options.set("pattern_type", "none");
    // SAFETY: plain libavformat calls; the dictionary is handed back and freed, and the
    // context is either returned to the caller or freed by FFmpeg on failure.
    unsafe {
        let mut raw = options.disown();
        let mut ctx: *mut ffi::AVFormatContext = std::ptr::null_mut();
        let res = ffi::avformat_open_input(&mut ctx, c_url.as_ptr(), std::ptr::null(), &mut raw);
        drop(ffmpeg::Dictionary::own(raw));
        if res < 0 {
            if let Some(format) = guess_format(path, &c_url).filter(|f| !on_list(f, &whitelist)) {
                return Err(MediaError::Refused {
                    path: path.to_path_buf(),
                    reason: refusal_reason(&format).to_string(),
                    format,
                });
            }
            return Err(MediaError::unreadable(
                path,
                describe_open_error(ffmpeg::Error::from(res)),
            ));
        }
        // FFmpeg checked the whitelist; checked again here so that no path forgets it.
        let name = std::ffi::CStr::from_ptr((*(*ctx).iformat).name).to_string_lossy();
        if !on_list(&name, &whitelist) {
            let format = name.into_owned();
            ffi::avformat_close_input(&mut ctx);
            return Err(MediaError::Refused {
                path: path.to_path_buf(),
                reason: refusal_reason(&format).to_string(),
                format,
            });
        }
        Ok(ctx)
    }
}

fn describe_open_error(e: ffmpeg::Error) -> String {
    match e {
        ffmpeg::Error::InvalidData => {
            "not a media file FFmpeg can read (invalid data found)".to_string()
        }
        ffmpeg::Error::Eof => {
            "not a media file FFmpeg can read (unexpected end of file)".to_string()
        }
        ffmpeg::Error::DemuxerNotFound => {
            "not a media file FFmpeg can read (unknown format)".to_string()
        }
        other => format!("not a media file FFmpeg can read ({other})"),
    }
}

fn set_auto_threads(ctx: &mut ffmpeg::codec::Context) {
    set_threads(ctx, 0);
}

/// The decoder of video stream `st` of `path`, frame-threaded on `threads` threads (0:
/// FFmpeg picks).
fn open_video_decoder(
    path: &Path,
    st: &ffmpeg::format::stream::Stream,
    threads: usize,
) -> Result<ffmpeg::decoder::Video, MediaError> {
    video_decoder(path, st.parameters(), st.time_base(), threads)
}

/// The video decoder for stream parameters `par` whose packets are stamped in `time_base`.
fn video_decoder(
    path: &Path,
    par: ffmpeg::codec::Parameters,
    time_base: Rational,
    threads: usize,
) -> Result<ffmpeg::decoder::Video, MediaError> {
    let codec_name = par.id().name().to_string();
    let mut ctx = ffmpeg::codec::Context::from_parameters(par)
        .map_err(|e| MediaError::decode(path, "reading video stream parameters", e))?;
    set_threads(&mut ctx, threads);
    let mut dec = ctx.decoder();
    dec.set_packet_time_base(time_base);
    dec.video()
        .map_err(|e| MediaError::decode(path, format!("opening the {codec_name} video decoder"), e))
}

/// Frame threading on `count` threads (0: FFmpeg picks, one per core).
fn set_threads(ctx: &mut ffmpeg::codec::Context, count: usize) {
    ctx.set_threading(threading::Config {
        kind: threading::Type::Frame,
        count,
        ..Default::default()
    });
}

/// A second decoder of a file's picture, described by the first
/// ([`Decoder::picture_twin`]): for splitting a clip's decoding between two decoders.
/// Opening it reads the container's header again, but not FFmpeg's stream analysis
/// (`avformat_find_stream_info`, which reads and decodes the clip's first frames: on the
/// bench's 1080p H.264 file 3 packets, ≈ 30 ms): its decoder takes the first decoder's
/// stream parameters, which that analysis made.
pub struct PictureTwin {
    path: PathBuf,
    layout: PixelLayout,
    info: MediaInfo,
    offset_s: f64,
    /// Streams in the first decoder's input, and the picture's among them.
    streams: usize,
    index: usize,
    parameters: ffmpeg::codec::Parameters,
    packet_time_base: Rational,
    frame_dur_s: f64,
}

impl PictureTwin {
    /// A decoder of the same file's picture only (no sound), on `threads` threads
    /// ([`Decoder::set_video_threads`]). Where the header alone does not show the same
    /// stream (formats whose streams are found only by reading packets, as MPEG-TS), the
    /// file is opened and analysed the ordinary way.
    pub fn open(&self, threads: usize) -> Result<Decoder, MediaError> {
        let ctx = open_format_context(&self.path)?;
        // SAFETY: an open input context we own; `Input` closes it when dropped.
        let input = unsafe { ffmpeg::format::context::Input::wrap(ctx) };
        let same = input.nb_streams() as usize == self.streams
            && input.stream(self.index).is_some_and(|st| {
                st.parameters().id() == self.parameters.id()
                    && st.time_base() == self.packet_time_base
            });
        if !same {
            drop(input);
            let mut decoder = Decoder::open_with_video_threads(&self.path, self.layout, threads)?;
            decoder.skip_audio();
            return Ok(decoder);
        }
        let decoder = video_decoder(
            &self.path,
            self.parameters.clone(),
            self.packet_time_base,
            threads,
        )?;
        let video = VideoStream {
            index: self.index,
            decoder,
            time_base: to_f64(self.packet_time_base),
            frame_dur_s: self.frame_dur_s,
            next_pts_s: None,
            scaler: Scaler::default(),
        };
        Ok(Decoder::assemble(
            &self.path,
            Some(input),
            self.info.clone(),
            self.layout,
            self.offset_s,
            Some(video),
            None,
        ))
    }
}

impl Decoder {
    /// Open `path` and prepare to decode video frames into `layout`.
    pub fn open(path: &Path, layout: PixelLayout) -> Result<Decoder, MediaError> {
        Decoder::open_with_video_threads(path, layout, 0)
    }

    /// [`Decoder::open`], the picture decoded on `video_threads` threads (0: FFmpeg's
    /// choice, one per core; see [`Decoder::set_video_threads`]).
    pub fn open_with_video_threads(
        path: &Path,
        layout: PixelLayout,
        video_threads: usize,
    ) -> Result<Decoder, MediaError> {
        crate::init();
        let meta =
            std::fs::metadata(path).map_err(|e| MediaError::io(path, "could not open", e))?;
        if meta.is_dir() {
            return Err(MediaError::unreadable(path, "is a directory"));
        }
        if meta.len() == 0 {
            return Err(MediaError::unreadable(path, "file is empty"));
        }
        // HEIF and AVIF stills, which FFmpeg 5.1 cannot decode: libheif decodes the picture
        // now (as FFmpeg's stream analysis would), so a file it cannot read fails here.
        if let Some((info, rgb)) = heif::decode(path)? {
            return Decoder::still(path, layout, info, &rgb);
        }
        let input = {
            let mut ctx = open_format_context(path)?;
            // SAFETY: `ctx` is an open input context we own; on failure it is closed here,
            // on success `Input` closes it when dropped.
            unsafe {
                let res = ffi::avformat_find_stream_info(ctx, std::ptr::null_mut());
                if res < 0 {
                    ffi::avformat_close_input(&mut ctx);
                    return Err(MediaError::unreadable(
                        path,
                        describe_open_error(ffmpeg::Error::from(res)),
                    ));
                }
                ffmpeg::format::context::Input::wrap(ctx)
            }
        };

        let container = input.format().name().to_string();
        let image_demuxer = is_image_demuxer(&container);

        // Pick streams.
        let mut video_idx: Option<(usize, u64)> = None;
        let mut audio_idx: Option<(usize, bool)> = None;
        for st in input.streams() {
            let par = st.parameters();
            match par.medium() {
                media::Type::Video => {
                    if st.disposition().contains(Disposition::ATTACHED_PIC) {
                        continue;
                    }
                    let (w, h) = unsafe {
                        let p = par.as_ptr();
                        ((*p).width.max(0) as u64, (*p).height.max(0) as u64)
                    };
                    if w == 0 || h == 0 || par.id() == ffmpeg::codec::Id::None {
                        continue;
                    }
                    if video_idx.is_none_or(|(_, px)| w * h > px) {
                        video_idx = Some((st.index(), w * h));
                    }
                }
                media::Type::Audio => {
                    let (rate, ch) = unsafe {
                        let p = par.as_ptr();
                        ((*p).sample_rate, (*p).channels)
                    };
                    if rate <= 0 || ch <= 0 || par.id() == ffmpeg::codec::Id::None {
                        continue;
                    }
                    let default = st.disposition().contains(Disposition::DEFAULT);
                    if audio_idx.is_none_or(|(_, d)| default && !d) {
                        audio_idx = Some((st.index(), default));
                    }
                }
                _ => {}
            }
        }
        if video_idx.is_none() && audio_idx.is_none() {
            return Err(MediaError::NoStream {
                path: path.to_path_buf(),
            });
        }

        let fmt_duration = input.duration();
        let mut duration_s = (fmt_duration > 0 && fmt_duration != ffi::AV_NOPTS_VALUE)
            .then(|| fmt_duration as f64 / f64::from(ffi::AV_TIME_BASE));
        let start = unsafe { (*input.as_ptr()).start_time };
        let offset_s = if start != ffi::AV_NOPTS_VALUE {
            start as f64 / f64::from(ffi::AV_TIME_BASE)
        } else {
            0.0
        };

        // Video.
        let mut video = None;
        let mut video_info = None;
        if let Some((idx, _)) = video_idx {
            let st = input.stream(idx).expect("stream index from iteration");
            let codec_name = st.parameters().id().name().to_string();
            let decoder = open_video_decoder(path, &st, video_threads)?;
            let rate = if rational_ok(st.avg_frame_rate()) {
                st.avg_frame_rate()
            } else if rational_ok(st.rate()) {
                st.rate()
            } else {
                Rational(0, 1)
            };
            let stream_dur = if st.duration() > 0 && rational_ok(st.time_base()) {
                Some(st.duration() as f64 * to_f64(st.time_base()))
            } else {
                None
            };
            if duration_s.is_none() {
                duration_s = stream_dur;
            }
            let frame_count_estimate = if st.frames() > 0 {
                Some(st.frames() as u64)
            } else if image_demuxer {
                Some(1)
            } else {
                match (stream_dur.or(duration_s), rational_ok(rate)) {
                    (Some(d), true) => Some((d * to_f64(rate)).round() as u64),
                    _ => None,
                }
            };
            video_info = Some(VideoInfo {
                width: decoder.width(),
                height: decoder.height(),
                frame_rate: (rate.numerator(), rate.denominator()),
                frame_count_estimate,
                codec: codec_name,
            });
            let frame_dur_s = if rational_ok(rate) {
                1.0 / to_f64(rate)
            } else {
                1.0 / 25.0
            };
            video = Some(VideoStream {
                index: idx,
                decoder,
                time_base: to_f64(st.time_base()),
                frame_dur_s,
                next_pts_s: None,
                scaler: Scaler::default(),
            });
        }

        // Audio.
        let mut audio = None;
        let mut audio_info = None;
        if let Some((idx, _)) = audio_idx {
            let st = input.stream(idx).expect("stream index from iteration");
            let par = st.parameters();
            let codec_name = par.id().name().to_string();
            let mut ctx = ffmpeg::codec::Context::from_parameters(par)
                .map_err(|e| MediaError::decode(path, "reading audio stream parameters", e))?;
            set_auto_threads(&mut ctx);
            let mut dec = ctx.decoder();
            dec.set_packet_time_base(st.time_base());
            let decoder = dec.audio().map_err(|e| {
                MediaError::decode(path, format!("opening the {codec_name} audio decoder"), e)
            })?;
            if duration_s.is_none() && st.duration() > 0 && rational_ok(st.time_base()) {
                duration_s = Some(st.duration() as f64 * to_f64(st.time_base()));
            }
            let channels = decoder.channels();
            audio_info = Some(AudioInfo {
                sample_rate: decoder.rate(),
                channels,
                codec: codec_name,
            });
            audio = Some(AudioStream {
                index: idx,
                decoder,
                time_base: to_f64(st.time_base()),
                channels,
                next_pts_s: None,
            });
        }

        // MP4/MOV carry a full sample index up front: if it points past the
        // end of the file, the file was cut short (a faststart file cut in
        // half opens fine and would otherwise just decode "shorter").
        if container.starts_with("mov,mp4") {
            let wanted = [
                video.as_ref().map(|v| v.index),
                audio.as_ref().map(|a| a.index),
            ];
            if let Some(end) = index_end(&input, &wanted) {
                if end > meta.len() {
                    return Err(MediaError::unreadable(
                        path,
                        format!(
                            "file is truncated: it is {} bytes but its index refers to data up to byte {}",
                            meta.len(),
                            end
                        ),
                    ));
                }
            }
        }

        let kind = if video.is_some() {
            if image_demuxer {
                MediaKind::Image
            } else {
                MediaKind::Video
            }
        } else {
            MediaKind::Audio
        };
        if kind == MediaKind::Image {
            duration_s = None;
        }

        let info = MediaInfo {
            kind,
            container,
            duration_s,
            video: video_info,
            audio: audio_info,
        };
        Ok(Decoder::assemble(
            path,
            Some(input),
            info,
            layout,
            offset_s,
            video,
            audio,
        ))
    }

    /// A decoder at the start of its input, nothing read yet.
    fn assemble(
        path: &Path,
        input: Option<ffmpeg::format::context::Input>,
        info: MediaInfo,
        layout: PixelLayout,
        offset_s: f64,
        video: Option<VideoStream>,
        audio: Option<AudioStream>,
    ) -> Decoder {
        Decoder {
            path: path.to_path_buf(),
            input,
            info,
            layout,
            offset_s,
            video,
            audio,
            queue: VecDeque::new(),
            flushed: false,
            finished: false,
            bad_reads_in_a_row: 0,
            video_errors: 0,
            audio_errors: 0,
            frames_out: 0,
            selection: FrameSelection::All,
            video_end_ts: None,
            video_started: false,
        }
    }

    /// A decoder that yields one picture, already decoded (a HEIF/AVIF still), then ends.
    fn still(
        path: &Path,
        layout: PixelLayout,
        info: MediaInfo,
        picture: &frame::Video,
    ) -> Result<Decoder, MediaError> {
        let frame = to_video_frame(picture, layout, 0.0, &mut Scaler::default())
            .map_err(|e| MediaError::decode_msg(path, "converting the picture", e))?;
        let mut decoder = Decoder::assemble(path, None, info, layout, 0.0, None, None);
        decoder.queue.push_back(MediaFrame::Video(frame));
        // Nothing left to read: the queued picture, then the end.
        decoder.flushed = true;
        Ok(decoder)
    }

    /// Makes this decoder a picture-only one that starts at the last key frame at or
    /// before `t_s` (seconds, as frames are stamped), or with `after` the first one at or
    /// after it: the sound is dropped, the input is
    /// sought, and packets are read up to that key frame, which is decoded next. Returns
    /// its time, or `None` (decoder unchanged but for the sound) if the file has no video
    /// or cannot seek there. For splitting an analysis between two decoders (with
    /// [`Decoder::end_video_at`] on the first); frames before the returned time may still
    /// come out (leading pictures of an open GOP) and are the caller's to drop.
    pub fn start_video_at_key_frame(
        &mut self,
        t_s: f64,
        after: bool,
    ) -> Result<Option<f64>, MediaError> {
        self.skip_audio();
        let Some((packet, t)) = self.seek_video_key_packet(t_s, after) else {
            return Ok(None);
        };
        self.feed(&packet);
        Ok(Some(t))
    }

    /// The time of the key frame [`Decoder::start_video_at_key_frame`] would start at,
    /// found by seeking and reading packets, none of them decoded: cheap where the
    /// container has an index (MP4, Matroska). Where the decoder reads from afterwards is
    /// undefined until the next seek, so this is for choosing where to start.
    pub fn video_key_frame_time(&mut self, t_s: f64, after: bool) -> Option<f64> {
        self.seek_video_key_packet(t_s, after).map(|(_, t)| t)
    }

    /// Seeks to the key frame at or before `t_s` (`after`: at or after it) and reads up
    /// to its packet: the packet and its time, or `None` (no video, no seeking there, no
    /// timestamp).
    fn seek_video_key_packet(&mut self, t_s: f64, after: bool) -> Option<(Packet, f64)> {
        let (index, time_base) = self.video.as_ref().map(|v| (v.index, v.time_base))?;
        let target = ((t_s + self.offset_s) * f64::from(ffi::AV_TIME_BASE)) as i64;
        let input = self.input.as_mut()?;
        let sought = if after {
            input.seek(target, target..)
        } else {
            input.seek(target, ..target)
        };
        sought.ok()?;
        // Nothing reaches a decoder before the key frame, so it starts clean.
        for _ in 0..10_000 {
            let mut packet = Packet::empty();
            match packet.read(input) {
                Ok(()) if packet.stream() == index && packet.is_key() => {
                    let ts = packet.pts().or(packet.dts())?;
                    return Some((packet, ts as f64 * time_base - self.offset_s));
                }
                Ok(()) | Err(ffmpeg::Error::InvalidData) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// What a second decoder of this file's picture needs to open without analysing the
    /// file again ([`PictureTwin::open`]); `None` without a video stream (or for a still
    /// decoded at open).
    pub fn picture_twin(&self) -> Option<PictureTwin> {
        let v = self.video.as_ref()?;
        let input = self.input.as_ref()?;
        let st = input.stream(v.index)?;
        Some(PictureTwin {
            path: self.path.clone(),
            layout: self.layout,
            info: self.info.clone(),
            offset_s: self.offset_s,
            streams: input.nb_streams() as usize,
            index: v.index,
            parameters: st.parameters().clone(),
            packet_time_base: st.time_base(),
            frame_dur_s: v.frame_dur_s,
        })
    }

    /// Decodes the picture only from the next packet on: sound packets are read past, not
    /// decoded (another decoder may be hearing the sound).
    pub fn skip_audio(&mut self) {
        self.audio = None;
    }

    /// Decodes the sound only from the next packet on: picture packets are read past.
    pub fn skip_video(&mut self) {
        self.video = None;
        if self.input.is_none() {
            // A still's picture is decoded already: dropped here instead.
            self.queue.clear();
        }
    }

    /// Decodes the picture on `threads` threads (0: FFmpeg's choice, one per core — the
    /// default). Where several decoders share the cores (a clip split between decoders),
    /// fewer threads each save frame threading's overhead (on 2 cores, one thread each:
    /// ≈ 10 % of the CPU time of an H.264 decode). Only before the first video packet (also before
    /// [`Decoder::start_video_at_key_frame`]); refused after it.
    pub fn set_video_threads(&mut self, threads: usize) -> Result<(), MediaError> {
        if self.video_started {
            return Err(MediaError::invalid(
                "video thread count",
                "it can only be set before decoding starts",
            ));
        }
        let (Some(v), Some(input)) = (self.video.as_mut(), self.input.as_ref()) else {
            return Ok(());
        };
        let st = input
            .stream(v.index)
            .expect("the video stream's index is the input's");
        v.decoder = open_video_decoder(&self.path, &st, threads)?;
        self.select_video_frames(self.selection);
        Ok(())
    }

    /// Stops decoding video at `t_s` (seconds, as frames are stamped): video packets
    /// stamped at or after it are dropped from now on; the sound is unaffected. See
    /// [`Decoder::start_video_at_key_frame`].
    pub fn end_video_at(&mut self, t_s: f64) {
        if let Some(v) = self.video.as_ref() {
            self.video_end_ts = Some(((t_s + self.offset_s) / v.time_base).round() as i64);
        }
    }

    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container's metadata tags, then its streams' (FFmpeg's names: an MP4's `©too`
    /// is `encoder`): untrusted text, so at most [`MAX_TAGS`] of them, each key and value
    /// cut to [`MAX_TAG_BYTES`] bytes (at a character boundary).
    pub fn container_tags(&self) -> Vec<(String, String)> {
        let cut = |s: &str| {
            let mut end = s.len().min(MAX_TAG_BYTES);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        };
        let Some(input) = self.input.as_ref() else {
            return Vec::new();
        };
        let streams = input.streams().map(|st| st.metadata().to_owned());
        std::iter::once(input.metadata().to_owned())
            .chain(streams)
            .flat_map(|d| d.iter().map(|(k, v)| (cut(k), cut(v))).collect::<Vec<_>>())
            .take(MAX_TAGS)
            .collect()
    }

    /// Skip decoding the video frames that no other frame references (in H.264/HEVC with
    /// B-frames typically a third to a half of them), from the next packet on. Those frames
    /// are simply not returned; everything else decodes exactly as before. For analysis
    /// that does not need every frame (watermark detection of a long clip); never for
    /// re-encoding. Decoders without the notion (intra-only codecs) return every frame.
    /// Same as [`Decoder::select_video_frames`] with [`FrameSelection::Reference`] (or
    /// [`FrameSelection::All`] for `false`).
    pub fn skip_non_reference_frames(&mut self, skip: bool) {
        self.select_video_frames(if skip {
            FrameSelection::Reference
        } else {
            FrameSelection::All
        });
    }

    /// Which video frames to decode and return from the next packet on (see
    /// [`FrameSelection`]); audio is not affected. For analysis only, never for re-encoding.
    pub fn select_video_frames(&mut self, which: FrameSelection) {
        use ffmpeg::codec::discard::Discard;
        self.selection = which;
        if let Some(v) = self.video.as_mut() {
            v.decoder.skip_frame(match which {
                FrameSelection::All => Discard::Default,
                FrameSelection::Reference => Discard::NonReference,
                // Non-key packets never reach the decoder (see `feed`).
                FrameSelection::Key => Discard::Default,
            });
            // The reference-frame analysis skips the deblocking filter too: ≈ 17 % of an
            // H.264 decode, and block edges are averaged away on the watermark's coarse
            // analysis grid. Key frames (few) stay the very pictures of a full decode.
            v.decoder.skip_loop_filter(match which {
                FrameSelection::Reference => Discard::All,
                FrameSelection::All | FrameSelection::Key => Discard::Default,
            });
        }
    }

    /// The current [`FrameSelection`].
    pub fn video_frame_selection(&self) -> FrameSelection {
        self.selection
    }

    /// Number of packets (and decoded frames) the decoders rejected as corrupt and skipped
    /// so far, picture and sound together: [`Decoder::video_decode_errors`] +
    /// [`Decoder::audio_decode_errors`]. A packet that fails to decode — whatever FFmpeg
    /// says about it (invalid data, "not yet implemented" for a garbled AAC frame, …) — is
    /// counted and skipped, and decoding goes on with the next packets: a corrupt stretch
    /// in the middle of a file loses that stretch, not the rest. Only reading the file
    /// (packets that cannot be read at all, an I/O error) ends [`Decoder::next_frame`] with
    /// an error.
    pub fn decode_errors(&self) -> u64 {
        self.video_errors + self.audio_errors
    }

    /// Picture packets (or decoded pictures that could not be converted) skipped as corrupt
    /// so far (see [`Decoder::decode_errors`]).
    pub fn video_decode_errors(&self) -> u64 {
        self.video_errors
    }

    /// Sound packets (or decoded chunks that could not be converted) skipped as corrupt so
    /// far (see [`Decoder::decode_errors`]).
    pub fn audio_decode_errors(&self) -> u64 {
        self.audio_errors
    }

    /// Next video frame or audio chunk in file order; `Ok(None)` at the end.
    pub fn next_frame(&mut self) -> Result<Option<MediaFrame>, MediaError> {
        loop {
            if let Some(f) = self.queue.pop_front() {
                self.frames_out += 1;
                return Ok(Some(f));
            }
            if self.finished {
                return Ok(None);
            }
            if self.flushed {
                self.finished = true;
                if self.frames_out == 0 {
                    return Err(MediaError::decode_msg(
                        &self.path,
                        "decoding",
                        "no frame could be decoded (file is corrupt or truncated)",
                    ));
                }
                continue;
            }
            let Some(input) = self.input.as_mut() else {
                self.flushed = true;
                continue;
            };
            let mut packet = Packet::empty();
            match packet.read(input) {
                Ok(()) => {
                    self.bad_reads_in_a_row = 0;
                    self.feed(&packet);
                }
                Err(ffmpeg::Error::Eof) => {
                    if self.bad_reads_in_a_row > 0 {
                        self.finished = true;
                        return Err(MediaError::decode_msg(
                            &self.path,
                            "reading packets",
                            "the file ends with unreadable data (truncated or corrupt)",
                        ));
                    }
                    self.flush();
                    self.flushed = true;
                }
                Err(ffmpeg::Error::InvalidData) => {
                    self.bad_reads_in_a_row += 1;
                    if self.bad_reads_in_a_row > MAX_BAD_READS_IN_A_ROW {
                        self.finished = true;
                        return Err(MediaError::decode_msg(
                            &self.path,
                            "reading packets",
                            "too much unreadable data (truncated or corrupt file)",
                        ));
                    }
                }
                Err(e) => {
                    self.finished = true;
                    return Err(MediaError::decode(&self.path, "reading packets", e));
                }
            }
        }
    }

    fn feed(&mut self, packet: &Packet) {
        let idx = packet.stream();
        if self.video.as_ref().is_some_and(|v| v.index == idx) {
            self.video_started = true;
            if let Some(end) = self.video_end_ts {
                if packet.pts().or(packet.dts()).is_none_or(|ts| ts >= end) {
                    return;
                }
            }
            if self.selection == FrameSelection::Key {
                return self.decode_key_frame(packet);
            }
            let v = self.video.as_mut().expect("checked");
            // A packet the decoder refuses is skipped (see `decode_errors`); a full
            // decoder (EAGAIN, which `drain_video` empties) cannot happen here since every
            // packet is followed by a drain.
            if v.decoder.send_packet(packet).is_err() {
                self.video_errors += 1;
            }
            self.drain_video();
        } else if self.audio.as_ref().is_some_and(|a| a.index == idx) {
            let a = self.audio.as_mut().expect("checked");
            if a.decoder.send_packet(packet).is_err() {
                self.audio_errors += 1;
            }
            self.drain_audio();
        }
    }

    /// Key frames only: a key packet is decoded on its own (the decoder drained and reset
    /// after it), so that the frames skipped in between look like a fresh start, not like
    /// lost reference frames (which H.264 decoders answer by dropping or patching frames).
    /// Non-key packets are dropped.
    fn decode_key_frame(&mut self, packet: &Packet) {
        if !packet.is_key() {
            return;
        }
        let v = self.video.as_mut().expect("called for the video stream");
        if v.decoder.send_packet(packet).is_err() {
            self.video_errors += 1;
        }
        match v.decoder.send_eof() {
            Ok(()) | Err(ffmpeg::Error::Eof) => {}
            Err(_) => self.video_errors += 1,
        }
        self.drain_video();
        if let Some(v) = self.video.as_mut() {
            v.decoder.flush();
        }
    }

    fn flush(&mut self) {
        if let Some(v) = self.video.as_mut() {
            match v.decoder.send_eof() {
                Ok(()) | Err(ffmpeg::Error::Eof) => {}
                Err(_) => self.video_errors += 1,
            }
            self.drain_video();
        }
        if let Some(a) = self.audio.as_mut() {
            match a.decoder.send_eof() {
                Ok(()) | Err(ffmpeg::Error::Eof) => {}
                Err(_) => self.audio_errors += 1,
            }
            self.drain_audio();
        }
    }

    fn drain_video(&mut self) {
        let Some(v) = self.video.as_mut() else {
            return;
        };
        let mut errors_here = 0u32;
        loop {
            let mut f = frame::Video::empty();
            match v.decoder.receive_frame(&mut f) {
                Ok(()) => {
                    let pts_s = match f.timestamp() {
                        Some(ts) => ts as f64 * v.time_base - self.offset_s,
                        None => v.next_pts_s.unwrap_or(0.0),
                    };
                    let dur = unsafe { (*f.as_ptr()).pkt_duration };
                    let dur_s = if dur > 0 {
                        dur as f64 * v.time_base
                    } else {
                        v.frame_dur_s
                    };
                    v.next_pts_s = Some(pts_s + dur_s);
                    // A picture that cannot be converted (a damaged stream's odd frame) is
                    // skipped like an undecodable packet.
                    match to_video_frame(&f, self.layout, pts_s, &mut v.scaler) {
                        Ok(vf) => self.queue.push_back(MediaFrame::Video(vf)),
                        Err(_) => self.video_errors += 1,
                    }
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => break,
                Err(_) => {
                    self.video_errors += 1;
                    errors_here += 1;
                    if errors_here > MAX_BAD_READS_IN_A_ROW {
                        break;
                    }
                }
            }
        }
    }

    fn drain_audio(&mut self) {
        let Some(a) = self.audio.as_mut() else {
            return;
        };
        let mut errors_here = 0u32;
        loop {
            let mut f = frame::Audio::empty();
            match a.decoder.receive_frame(&mut f) {
                Ok(()) => {
                    let channels = if f.channels() > 0 {
                        f.channels()
                    } else {
                        a.channels
                    };
                    let rate = if f.rate() > 0 {
                        f.rate()
                    } else {
                        a.decoder.rate()
                    };
                    if channels == 0 || rate == 0 {
                        // Decoded sound without a channel count or sample rate: skipped.
                        self.audio_errors += 1;
                        continue;
                    }
                    let pts_s = match f.timestamp() {
                        Some(ts) => ts as f64 * a.time_base - self.offset_s,
                        None => a.next_pts_s.unwrap_or(0.0),
                    };
                    a.next_pts_s = Some(pts_s + f.samples() as f64 / f64::from(rate));
                    let Ok(samples) = convert::audio_frame_to_f32(&f, usize::from(channels)) else {
                        self.audio_errors += 1;
                        continue;
                    };
                    if samples.is_empty() {
                        continue;
                    }
                    self.queue.push_back(MediaFrame::Audio(AudioChunk {
                        sample_rate: rate,
                        channels,
                        samples,
                        pts_s,
                    }));
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => break,
                Err(_) => {
                    self.audio_errors += 1;
                    errors_here += 1;
                    if errors_here > MAX_BAD_READS_IN_A_ROW {
                        break;
                    }
                }
            }
        }
    }
}

/// Largest `pos + size` over the index entries of the given streams.
fn index_end(input: &ffmpeg::format::context::Input, streams: &[Option<usize>]) -> Option<u64> {
    let mut end: Option<u64> = None;
    for idx in streams.iter().flatten() {
        let Some(st) = input.stream(*idx) else {
            continue;
        };
        unsafe {
            let sp = st.as_ptr() as *mut ffi::AVStream;
            let n = ffi::avformat_index_get_entries_count(sp);
            for i in 0..n {
                let e = ffi::avformat_index_get_entry(sp, i);
                if e.is_null() || (*e).pos < 0 {
                    continue;
                }
                let this = (*e).pos as u64 + (*e).size().max(0) as u64;
                end = Some(end.map_or(this, |x| x.max(this)));
            }
        }
    }
    end
}

fn to_video_frame(
    f: &frame::Video,
    layout: PixelLayout,
    pts_s: f64,
    scaler: &mut Scaler,
) -> Result<VideoFrame, String> {
    let (w, h) = (f.width(), f.height());
    if w == 0 || h == 0 {
        return Err("decoded frame has no size".to_string());
    }
    let target = convert::layout_pixel(layout);
    let src_colour = Colour::of_frame(f);
    let planes =
        if f.format() == target && !(layout == PixelLayout::Yuv420p && src_colour.full_range) {
            convert::frame_to_planes(f, layout)
        } else {
            let dst_colour = match layout {
                // YUV output is always limited range, same matrix as the source.
                PixelLayout::Yuv420p => Colour {
                    full_range: false,
                    bt709: src_colour.bt709,
                },
                PixelLayout::Rgb24 => Colour {
                    full_range: true,
                    bt709: src_colour.bt709,
                },
            };
            let src_fmt = f.format();
            if src_fmt == Pixel::None {
                return Err("decoded frame has no pixel format".to_string());
            }
            let out = scaler.run(f, src_colour, target, w, h, dst_colour)?;
            convert::frame_to_planes(&out, layout)
        };
    Ok(VideoFrame {
        width: w,
        height: h,
        layout,
        planes,
        pts_s,
    })
}
