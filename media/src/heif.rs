//! HEIF (HEVC) and AVIF (AV1) stills, which FFmpeg 5.1 cannot decode, through libheif
//! (`libheif-rs` over the system's libheif 1.15, whose HEVC and AV1 decoders — libde265,
//! dav1d, libaom — are linked in, no plugin directory).
//!
//! Only the primary picture is read (thumbnails, depth and alpha pictures are ignored), with
//! its rotation, mirroring and crop applied, as 8-bit RGB: libheif converts by the file's own
//! colour description (matrix, range, bit depth), and [`crate::decode`] takes it from there
//! exactly as it takes a PNG that FFmpeg decoded to RGB.

use std::io::Read as _;
use std::path::Path;

use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg_next as ffmpeg;
use libheif_rs::{
    check_file_type, ColorSpace, DecodingOptions, FileTypeResult, HeifContext, ImageHandle,
    LibHeif, RgbChroma,
};

use crate::{MediaError, MediaInfo, MediaKind, VideoInfo};

/// The largest picture decoded: 64 Mpx (8192 × 8192), refused from the file's headers before
/// anything is allocated. libheif's own limits (32768 px a side, 512 MB memory blocks, box
/// counts and nesting) stay on as well.
pub const MAX_STILL_PIXELS: u64 = 64 << 20;

/// Bytes read to recognise the file: the `ftyp` box, whose brands say HEIF or AVIF.
const SNIFF_BYTES: u64 = 4096;

/// Which of the two a file is, by its brands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StillFormat {
    Heif,
    Avif,
}

impl StillFormat {
    /// [`MediaInfo::container`]'s name for it.
    fn container(self) -> &'static str {
        match self {
            StillFormat::Heif => "heif",
            StillFormat::Avif => "avif",
        }
    }

    /// [`VideoInfo::codec`]'s name (FFmpeg's) for the primary picture's coding.
    fn codec(self) -> &'static str {
        match self {
            StillFormat::Heif => "hevc",
            StillFormat::Avif => "av1",
        }
    }
}

/// Whether `path` is a HEIF or AVIF still, by libheif's reading of its first bytes (its
/// `ftyp` brands). `None` for everything else, FFmpeg's to open — including MP4 and MOV,
/// whose brands are not HEIF's.
pub(crate) fn sniff(path: &Path) -> Option<StillFormat> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(SNIFF_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    if head.len() < 12 {
        return None;
    }
    // Image sequences (an animated AVIF, a HEIF burst) are FFmpeg's: it decodes their track
    // frame by frame, where libheif would give the one still picture.
    // SAFETY: the buffer and its length are valid for the call; libheif only reads it.
    let main = unsafe { libheif_sys::heif_read_main_brand(head.as_ptr(), head.len() as i32) };
    if [b"avis", b"msf1", b"hevc", b"hevx", b"hevm", b"hevs"]
        .iter()
        .any(|b| main == u32::from_be_bytes(**b))
    {
        return None;
    }
    // `mif1` alone as main brand is only a "maybe" for libheif; the compatible brands settle it.
    match check_file_type(&head) {
        FileTypeResult::Supported | FileTypeResult::MayBe => {}
        FileTypeResult::Unsupported | FileTypeResult::No => return None,
    }
    let has = |brand: &[u8; 4]| {
        // SAFETY: the buffer and its length are valid for the call; libheif only reads it.
        unsafe {
            libheif_sys::heif_has_compatible_brand(
                head.as_ptr(),
                head.len() as i32,
                brand.as_ptr().cast(),
            ) == 1
        }
    };
    if has(b"avif") {
        Some(StillFormat::Avif)
    } else if [b"heic", b"heix", b"heim", b"heis", b"mif1"]
        .iter()
        .any(|b| has(b))
    {
        Some(StillFormat::Heif)
    } else {
        None
    }
}

/// libheif, initialised once for the process and never released: `heif_deinit` (run when a
/// `LibHeif` is dropped and no other is alive) frees tables that a decode on another thread
/// may be using.
fn libheif() -> &'static LibHeif {
    static LIB: std::sync::OnceLock<LibHeif> = std::sync::OnceLock::new();
    LIB.get_or_init(LibHeif::new)
}

/// An opened HEIF/AVIF file: libheif's context and the primary picture's handle.
struct Opened {
    // The handle borrows nothing in Rust's eyes but needs the context alive: kept together,
    // the handle dropped first.
    handle: ImageHandle,
    _context: HeifContext<'static>,
    width: u32,
    height: u32,
}

fn heif_error(path: &Path, format: StillFormat, e: &libheif_rs::HeifError) -> MediaError {
    let what = match format {
        StillFormat::Heif => "HEIF",
        StillFormat::Avif => "AVIF",
    };
    let message = if e.message.is_empty() {
        format!("{:?}", e.sub_code)
    } else {
        e.message.clone()
    };
    MediaError::unreadable(path, format!("{what} file libheif cannot read: {message}"))
}

/// Reads the file's headers and its primary picture's size, refusing pictures over
/// [`MAX_STILL_PIXELS`].
fn open(path: &Path, format: StillFormat) -> Result<Opened, MediaError> {
    let name = path.to_str().ok_or_else(|| {
        MediaError::unreadable(path, "path is not valid UTF-8 (libheif needs a UTF-8 path)")
    })?;
    if name.contains('\0') {
        return Err(MediaError::unreadable(path, "path contains a NUL byte"));
    }
    libheif();
    let context = HeifContext::read_from_file(name).map_err(|e| heif_error(path, format, &e))?;
    let handle = context
        .primary_image_handle()
        .map_err(|e| heif_error(path, format, &e))?;
    let (width, height) = (handle.width(), handle.height());
    if width == 0 || height == 0 {
        return Err(MediaError::unreadable(path, "the picture has no size"));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_STILL_PIXELS {
        return Err(MediaError::unreadable(
            path,
            format!(
                "the picture is {width}x{height}: over the {} Mpx hallmark decodes",
                MAX_STILL_PIXELS >> 20
            ),
        ));
    }
    Ok(Opened {
        handle,
        _context: context,
        width,
        height,
    })
}

fn info(format: StillFormat, width: u32, height: u32) -> MediaInfo {
    MediaInfo {
        kind: MediaKind::Image,
        container: format.container().to_string(),
        duration_s: None,
        video: Some(VideoInfo {
            width,
            height,
            // As FFmpeg describes a single PNG or JPEG: one frame at its default 25 fps.
            frame_rate: (25, 1),
            frame_count_estimate: Some(1),
            codec: format.codec().to_string(),
        }),
        audio: None,
    }
}

/// The headers' description of a HEIF/AVIF still (no decoding), or `None` when `path` is
/// not one (see [`sniff`]).
pub(crate) fn probe(path: &Path) -> Result<Option<MediaInfo>, MediaError> {
    let Some(format) = sniff(path) else {
        return Ok(None);
    };
    let opened = open(path, format)?;
    Ok(Some(info(format, opened.width, opened.height)))
}

/// The decoded primary picture as an FFmpeg RGB24 frame, with the file's description; `None`
/// when `path` is not a HEIF/AVIF still.
pub(crate) fn decode(path: &Path) -> Result<Option<(MediaInfo, frame::Video)>, MediaError> {
    let Some(format) = sniff(path) else {
        return Ok(None);
    };
    let opened = open(path, format)?;
    let mut options = DecodingOptions::new()
        .ok_or_else(|| MediaError::unreadable(path, "libheif could not allocate its options"))?;
    // 10- and 12-bit pictures come out as 8 bits like every other frame hallmark analyses.
    options.set_convert_hdr_to_8bit(true);
    let image = libheif()
        .decode(
            &opened.handle,
            ColorSpace::Rgb(RgbChroma::Rgb),
            Some(options),
        )
        .map_err(|e| heif_error(path, format, &e))?;
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > MAX_STILL_PIXELS {
        return Err(MediaError::decode_msg(
            path,
            "decoding the picture",
            format!("libheif returned a {width}x{height} picture"),
        ));
    }
    let planes = image.planes();
    let plane = planes
        .interleaved
        .filter(|p| p.storage_bits_per_pixel == 24 && p.width >= width && p.height >= height)
        .ok_or_else(|| {
            MediaError::decode_msg(
                path,
                "decoding the picture",
                "libheif did not return 8-bit RGB",
            )
        })?;
    let mut out = frame::Video::new(Pixel::RGB24, width, height);
    // SAFETY: a frame FFmpeg allocated for this size and format (checked non-null); each row
    // copies `width * 3` bytes inside both buffers (libheif's plane holds `height` rows of
    // `stride` ≥ `width * 3` bytes).
    unsafe {
        let p = out.as_mut_ptr();
        if (*p).data[0].is_null() {
            return Err(MediaError::decode_msg(
                path,
                "decoding the picture",
                "out of memory allocating a frame",
            ));
        }
        // Zeroed first: swscale reads past the last pixel of a row (the chroma of an odd
        // width), and FFmpeg's own decoders hand it zeroed padding too; unset bytes there
        // made the conversion differ from run to run.
        let buf = (*p).buf[0];
        if !buf.is_null() {
            std::ptr::write_bytes((*buf).data, 0, (*buf).size);
        }
        let row = width as usize * 3;
        let dst_stride = (*p).linesize[0] as isize;
        if plane.stride < row || (dst_stride as usize) < row {
            return Err(MediaError::decode_msg(
                path,
                "decoding the picture",
                "libheif returned rows shorter than the picture",
            ));
        }
        for r in 0..height as usize {
            let src = &plane.data[r * plane.stride..r * plane.stride + row];
            let dst = (*p).data[0].offset(r as isize * dst_stride);
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, row);
        }
    }
    Ok(Some((info(format, width, height), out)))
}
