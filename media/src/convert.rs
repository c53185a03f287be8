//! Pixel and sample conversions between FFmpeg frames and our plain buffers.

use std::path::Path;
use std::ptr;

use ffmpeg::ffi;
use ffmpeg::format::{Pixel, Sample};
use ffmpeg::frame;
use ffmpeg_next as ffmpeg;

use crate::{MediaError, PixelLayout, VideoFrame};

/// `file:` URL for a local path, so FFmpeg never interprets a user-supplied
/// name as another protocol (`http:`, `concat:`, ...).
pub(crate) fn file_url(path: &Path) -> Result<String, String> {
    let s = path
        .to_str()
        .ok_or_else(|| "path is not valid UTF-8 (FFmpeg needs a UTF-8 path)".to_string())?;
    if s.contains('\0') {
        return Err("path contains a NUL byte".to_string());
    }
    Ok(format!("file:{s}"))
}

pub(crate) fn layout_pixel(layout: PixelLayout) -> Pixel {
    match layout {
        PixelLayout::Yuv420p => Pixel::YUV420P,
        PixelLayout::Rgb24 => Pixel::RGB24,
    }
}

/// Colour description used to pick swscale's YUV<->RGB matrix and range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Colour {
    pub full_range: bool,
    pub bt709: bool,
}

impl Colour {
    /// What a decoded frame says about itself, with the usual guesses for
    /// untagged content (BT.709 from 720 lines up, BT.601 below).
    pub(crate) fn of_frame(f: &frame::Video) -> Colour {
        unsafe {
            let p = f.as_ptr();
            let fmt = f.format();
            let full_range = (*p).color_range == ffi::AVColorRange::AVCOL_RANGE_JPEG
                || matches!(
                    fmt,
                    Pixel::YUVJ420P
                        | Pixel::YUVJ422P
                        | Pixel::YUVJ444P
                        | Pixel::YUVJ440P
                        | Pixel::YUVJ411P
                );
            use ffi::AVColorSpace::*;
            let bt709 = match (*p).colorspace {
                AVCOL_SPC_BT709 => true,
                AVCOL_SPC_BT470BG | AVCOL_SPC_SMPTE170M | AVCOL_SPC_FCC | AVCOL_SPC_SMPTE240M => {
                    false
                }
                _ => guess_bt709(f.height()),
            };
            Colour { full_range, bt709 }
        }
    }

    /// The colour we write for a YUV output of the given height.
    pub(crate) fn for_output(height: u32, full_range: bool) -> Colour {
        Colour {
            full_range,
            bt709: guess_bt709(height),
        }
    }
}

pub(crate) fn guess_bt709(height: u32) -> bool {
    height >= 720
}

fn sws_coeffs(bt709: bool) -> *const i32 {
    unsafe {
        ffi::sws_getCoefficients(if bt709 {
            ffi::SWS_CS_ITU709
        } else {
            ffi::SWS_CS_DEFAULT
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SwsKey {
    src: (Pixel, u32, u32, Colour),
    dst: (Pixel, u32, u32, Colour),
}

/// A cached swscale context, rebuilt when the input or output changes.
pub(crate) struct Scaler {
    ctx: *mut ffi::SwsContext,
    key: Option<SwsKey>,
}

// SAFETY: the context is exclusively owned and only used through `&mut self`.
unsafe impl Send for Scaler {}

impl Default for Scaler {
    fn default() -> Self {
        Scaler {
            ctx: ptr::null_mut(),
            key: None,
        }
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        if !self.ctx.is_null() {
            unsafe { ffi::sws_freeContext(self.ctx) };
        }
    }
}

impl Scaler {
    /// Convert/scale `src` into a freshly allocated frame of `dst_fmt`, `dst_w`x`dst_h`.
    pub(crate) fn run(
        &mut self,
        src: &frame::Video,
        src_colour: Colour,
        dst_fmt: Pixel,
        dst_w: u32,
        dst_h: u32,
        dst_colour: Colour,
    ) -> Result<frame::Video, String> {
        let key = SwsKey {
            src: (src.format(), src.width(), src.height(), src_colour),
            dst: (dst_fmt, dst_w, dst_h, dst_colour),
        };
        if self.key != Some(key) {
            if !self.ctx.is_null() {
                unsafe { ffi::sws_freeContext(self.ctx) };
                self.ctx = ptr::null_mut();
                self.key = None;
            }
            let flags = ffi::SWS_BICUBIC | ffi::SWS_ACCURATE_RND | ffi::SWS_FULL_CHR_H_INT;
            let ctx = unsafe {
                ffi::sws_getContext(
                    src.width() as i32,
                    src.height() as i32,
                    src.format().into(),
                    dst_w as i32,
                    dst_h as i32,
                    dst_fmt.into(),
                    flags,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null(),
                )
            };
            if ctx.is_null() {
                return Err(format!(
                    "cannot convert pixel format {:?} {}x{} to {:?} {}x{}",
                    src.format(),
                    src.width(),
                    src.height(),
                    dst_fmt,
                    dst_w,
                    dst_h
                ));
            }
            unsafe {
                ffi::sws_setColorspaceDetails(
                    ctx,
                    sws_coeffs(src_colour.bt709),
                    i32::from(src_colour.full_range),
                    sws_coeffs(dst_colour.bt709),
                    i32::from(dst_colour.full_range),
                    0,
                    1 << 16,
                    1 << 16,
                );
            }
            self.ctx = ctx;
            self.key = Some(key);
        }
        let mut out = frame::Video::new(dst_fmt, dst_w, dst_h);
        if unsafe { (*out.as_ptr()).data[0].is_null() } {
            return Err("out of memory allocating a video frame".to_string());
        }
        let h = unsafe {
            ffi::sws_scale(
                self.ctx,
                (*src.as_ptr()).data.as_ptr() as *const *const u8,
                (*src.as_ptr()).linesize.as_ptr(),
                0,
                src.height() as i32,
                (*out.as_mut_ptr()).data.as_ptr(),
                (*out.as_mut_ptr()).linesize.as_ptr(),
            )
        };
        if h <= 0 {
            return Err("swscale failed".to_string());
        }
        unsafe {
            let p = out.as_mut_ptr();
            (*p).color_range = if dst_colour.full_range {
                ffi::AVColorRange::AVCOL_RANGE_JPEG
            } else {
                ffi::AVColorRange::AVCOL_RANGE_MPEG
            };
            (*p).colorspace = if dst_colour.bt709 {
                ffi::AVColorSpace::AVCOL_SPC_BT709
            } else {
                ffi::AVColorSpace::AVCOL_SPC_SMPTE170M
            };
        }
        Ok(out)
    }
}

/// (bytes per row, rows) of each plane of a tightly packed frame.
fn plane_geometry(width: u32, height: u32, layout: PixelLayout) -> Vec<(usize, usize)> {
    let (w, h) = (width as usize, height as usize);
    match layout {
        PixelLayout::Yuv420p => vec![
            (w, h),
            (w.div_ceil(2), h.div_ceil(2)),
            (w.div_ceil(2), h.div_ceil(2)),
        ],
        PixelLayout::Rgb24 => vec![(w * 3, h)],
    }
}

/// Copy an FFmpeg frame that is already in `layout`'s pixel format into tightly packed planes.
pub(crate) fn frame_to_planes(f: &frame::Video, layout: PixelLayout) -> Vec<Vec<u8>> {
    debug_assert_eq!(f.format(), layout_pixel(layout));
    plane_geometry(f.width(), f.height(), layout)
        .into_iter()
        .enumerate()
        .map(|(i, (row, rows))| {
            let mut out = Vec::with_capacity(row * rows);
            unsafe {
                let p = f.as_ptr();
                let base = (*p).data[i];
                let ls = (*p).linesize[i] as isize;
                for r in 0..rows {
                    let src = base.offset(r as isize * ls);
                    out.extend_from_slice(std::slice::from_raw_parts(src, row));
                }
            }
            out
        })
        .collect()
}

/// Build an FFmpeg frame (in `frame.layout`'s pixel format) from a validated [`VideoFrame`].
pub(crate) fn planes_to_frame(v: &VideoFrame) -> Result<frame::Video, MediaError> {
    v.validate()?;
    let mut f = frame::Video::new(layout_pixel(v.layout), v.width, v.height);
    if unsafe { (*f.as_ptr()).data[0].is_null() } {
        return Err(MediaError::invalid(
            "video frame",
            "out of memory allocating a frame",
        ));
    }
    // Zeroed first: swscale reads past the last pixel of a row (the chroma of an odd width),
    // and av_frame_get_buffer leaves the padding unset (the output differed between runs).
    unsafe {
        for &buf in (*f.as_ptr()).buf.iter().filter(|b| !b.is_null()) {
            ptr::write_bytes((*buf).data, 0, (*buf).size);
        }
    }
    for (i, (row, rows)) in plane_geometry(v.width, v.height, v.layout)
        .into_iter()
        .enumerate()
    {
        let src = &v.planes[i];
        unsafe {
            let p = f.as_mut_ptr();
            let base = (*p).data[i];
            let ls = (*p).linesize[i] as isize;
            for r in 0..rows {
                let dst = base.offset(r as isize * ls);
                ptr::copy_nonoverlapping(src[r * row..].as_ptr(), dst, row);
            }
        }
    }
    Ok(f)
}

/// Interleaved `f32` samples from a decoded audio frame of any sample format.
pub(crate) fn audio_frame_to_f32(f: &frame::Audio, channels: usize) -> Result<Vec<f32>, String> {
    let n = f.samples();
    let fmt = f.format();
    let mut out = vec![0f32; n * channels];
    if n == 0 || channels == 0 {
        return Ok(out);
    }
    unsafe {
        let ext = (*f.as_ptr()).extended_data;
        if ext.is_null() {
            return Err("audio frame has no data".to_string());
        }
        let planar = fmt.is_planar();
        macro_rules! read {
            ($t:ty, $conv:expr) => {{
                let conv = $conv;
                if planar {
                    for c in 0..channels {
                        let p = (*ext.add(c)) as *const $t;
                        for i in 0..n {
                            out[i * channels + c] = conv(*p.add(i));
                        }
                    }
                } else {
                    let p = (*ext) as *const $t;
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = conv(*p.add(i));
                    }
                }
            }};
        }
        match fmt {
            Sample::U8(_) => read!(u8, |v: u8| (f32::from(v) - 128.0) / 128.0),
            Sample::I16(_) => read!(i16, |v: i16| f32::from(v) / 32768.0),
            Sample::I32(_) => read!(i32, |v: i32| (f64::from(v) / 2_147_483_648.0) as f32),
            Sample::I64(_) => read!(i64, |v: i64| (v as f64 / 9_223_372_036_854_775_808.0)
                as f32),
            Sample::F32(_) => read!(f32, |v: f32| v),
            Sample::F64(_) => read!(f64, |v: f64| v as f32),
            Sample::None => return Err("audio frame has no sample format".to_string()),
        }
    }
    Ok(out)
}

/// Write interleaved `f32` samples (`n` per channel) into an allocated audio frame.
pub(crate) fn f32_to_audio_frame(
    samples: &[f32],
    channels: usize,
    f: &mut frame::Audio,
) -> Result<(), String> {
    let n = samples.len() / channels;
    if f.samples() < n {
        return Err("audio frame too small".to_string());
    }
    let fmt = f.format();
    unsafe {
        let ext = (*f.as_mut_ptr()).extended_data;
        if ext.is_null() || (*ext).is_null() {
            return Err("out of memory allocating an audio frame".to_string());
        }
        let planar = fmt.is_planar();
        macro_rules! write {
            ($t:ty, $conv:expr) => {{
                let conv = $conv;
                if planar {
                    for c in 0..channels {
                        let p = (*ext.add(c)) as *mut $t;
                        for i in 0..n {
                            *p.add(i) = conv(samples[i * channels + c]);
                        }
                    }
                } else {
                    let p = (*ext) as *mut $t;
                    for (i, s) in samples.iter().enumerate() {
                        *p.add(i) = conv(*s);
                    }
                }
            }};
        }
        match fmt {
            // Inverse of the decoding scale (2^(bits-1)), so integer PCM round-trips exactly.
            Sample::U8(_) => write!(u8, |v: f32| (v * 128.0 + 128.0).round().clamp(0.0, 255.0)
                as u8),
            Sample::I16(_) => write!(i16, |v: f32| (v * 32768.0).round().clamp(-32768.0, 32767.0)
                as i16),
            Sample::I32(_) => write!(i32, |v: f32| (f64::from(v) * 2_147_483_648.0)
                .round()
                .clamp(-2_147_483_648.0, 2_147_483_647.0)
                as i32),
            Sample::I64(_) => write!(i64, |v: f32| (f64::from(v.clamp(-1.0, 1.0))
                * 9.223_372_036_854_775e18)
                as i64),
            Sample::F32(_) => write!(f32, |v: f32| v),
            Sample::F64(_) => write!(f64, f64::from),
            Sample::None => return Err("audio encoder has no sample format".to_string()),
        }
    }
    Ok(())
}
