//! A header-only look at a file: container, streams, size and rate, without decoding.
//!
//! `Decoder::open` runs FFmpeg's stream analysis, which decodes frames (tens of ms at 1080p);
//! a verifier that only needs to describe a file whose signed hash already matched uses this.

use std::path::Path;
use std::ptr;

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

use crate::{AudioInfo, MediaError, MediaInfo, MediaKind, VideoInfo};

/// Reads container headers only. Fields the headers do not carry are left out; a file this
/// accepts may still fail to decode (use [`crate::Decoder::open`] to know that).
pub fn probe(path: &Path) -> Result<MediaInfo, MediaError> {
    crate::init();
    let meta = std::fs::metadata(path).map_err(|e| MediaError::io(path, "could not open", e))?;
    if meta.is_dir() {
        return Err(MediaError::unreadable(path, "is a directory"));
    }
    // HEIF and AVIF stills, which FFmpeg 5.1 cannot read: libheif's headers.
    if let Some(info) = crate::decode::probe_still(path)? {
        return Ok(info);
    }
    let mut ctx = crate::decode::open_format_context(path)?;
    // SAFETY: plain libavformat calls; the context is closed on every path below.
    unsafe {
        // Raw streams (MP3, PNG…) leave sizes and rates to the analysis that decodes a little.
        if incomplete(ctx) && ffi::avformat_find_stream_info(ctx, ptr::null_mut()) < 0 {
            ffi::avformat_close_input(&mut ctx);
            return Err(MediaError::unreadable(
                path,
                "could not read the stream parameters",
            ));
        }
        let info = describe(ctx);
        ffi::avformat_close_input(&mut ctx);
        info.ok_or(MediaError::NoStream {
            path: path.to_path_buf(),
        })
    }
}

unsafe fn incomplete(ctx: *mut ffi::AVFormatContext) -> bool {
    let streams = std::slice::from_raw_parts((*ctx).streams, (*ctx).nb_streams as usize);
    streams.is_empty()
        || streams.iter().any(|&st| {
            let par = (*st).codecpar;
            match (*par).codec_type {
                ffi::AVMediaType::AVMEDIA_TYPE_VIDEO => (*par).width <= 0 || (*par).height <= 0,
                ffi::AVMediaType::AVMEDIA_TYPE_AUDIO => {
                    (*par).sample_rate <= 0 || (*par).channels <= 0
                }
                _ => false,
            }
        })
}

unsafe fn describe(ctx: *mut ffi::AVFormatContext) -> Option<MediaInfo> {
    let container = std::ffi::CStr::from_ptr((*(*ctx).iformat).name)
        .to_string_lossy()
        .into_owned();
    let mut video: Option<VideoInfo> = None;
    let mut audio: Option<AudioInfo> = None;
    let streams = std::slice::from_raw_parts((*ctx).streams, (*ctx).nb_streams as usize);
    for &st in streams {
        let par = (*st).codecpar;
        let codec = ffmpeg::codec::Id::from((*par).codec_id).name().to_string();
        match (*par).codec_type {
            ffi::AVMediaType::AVMEDIA_TYPE_VIDEO
                if (*st).disposition & ffi::AV_DISPOSITION_ATTACHED_PIC == 0
                    && (*par).width > 0
                    && video.is_none() =>
            {
                let rate = (*st).avg_frame_rate;
                video = Some(VideoInfo {
                    width: (*par).width as u32,
                    height: (*par).height as u32,
                    frame_rate: (rate.num, rate.den),
                    frame_count_estimate: ((*st).nb_frames > 0).then_some((*st).nb_frames as u64),
                    codec,
                });
            }
            ffi::AVMediaType::AVMEDIA_TYPE_AUDIO if (*par).sample_rate > 0 && audio.is_none() => {
                audio = Some(AudioInfo {
                    sample_rate: (*par).sample_rate as u32,
                    channels: (*par).channels.max(0) as u16,
                    codec,
                });
            }
            _ => {}
        }
    }
    let image = crate::decode::is_image_demuxer(&container);
    let kind = match (&video, &audio) {
        (Some(_), _) if image => MediaKind::Image,
        (Some(_), _) => MediaKind::Video,
        (None, Some(_)) => MediaKind::Audio,
        (None, None) => return None,
    };
    let duration = (*ctx).duration;
    let duration_s = (kind != MediaKind::Image && duration > 0 && duration != ffi::AV_NOPTS_VALUE)
        .then(|| duration as f64 / f64::from(ffi::AV_TIME_BASE));
    Some(MediaInfo {
        kind,
        container,
        duration_s,
        video,
        audio,
    })
}
