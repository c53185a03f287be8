//! HEIF (HEVC) and AVIF (AV1) stills, which FFmpeg 5.1 cannot decode, decoded through libheif
//! into one frame like any other still: made from shared photos by `scripts/make-heif-fixtures`
//! (testdata/heif/), and c2pa-rs's own HEIF/AVIF photos (testdata/c2pa-rs/).

mod common;

use std::path::{Path, PathBuf};

use common::media;
use hallmark_media::{Decoder, MediaError, MediaFrame, MediaKind, PixelLayout, VideoFrame};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

/// The file's only picture (checked: exactly one frame, then the end), and the decoder's info.
fn still(path: &Path, layout: PixelLayout) -> (hallmark_media::MediaInfo, VideoFrame) {
    let mut dec = Decoder::open(path, layout).unwrap_or_else(|e| panic!("{e}"));
    let info = dec.info().clone();
    let Some(MediaFrame::Video(frame)) = dec.next_frame().unwrap() else {
        panic!("{}: no picture", path.display());
    };
    assert!(dec.next_frame().unwrap().is_none(), "one picture only");
    assert!(
        dec.next_frame().unwrap().is_none(),
        "and the end stays the end"
    );
    assert_eq!(dec.decode_errors(), 0);
    frame.validate().unwrap();
    assert_eq!(frame.layout, layout);
    assert_eq!(frame.pts_s, 0.0);
    (info, frame)
}

/// Peak signal-to-noise ratio (dB) of two pictures of one size and layout, over every byte.
fn psnr(a: &VideoFrame, b: &VideoFrame) -> f64 {
    assert_eq!((a.width, a.height, a.layout), (b.width, b.height, b.layout));
    let (sum, n) = a
        .planes
        .iter()
        .zip(&b.planes)
        .flat_map(|(p, q)| p.iter().zip(q))
        .fold((0f64, 0usize), |(s, n), (&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            (s + d * d, n + 1)
        });
    10.0 * (255.0f64 * 255.0 / (sum / n as f64)).log10()
}

#[test]
fn heif_and_avif_stills_decode_close_to_the_photo_they_were_made_from() {
    for (file, source, container, codec) in [
        ("heif/chelsea.heic", "images/chelsea.png", "heif", "hevc"),
        ("heif/chelsea.avif", "images/chelsea.png", "avif", "av1"),
        // 10 bits a sample in the file: 8 bits out, like every other frame.
        (
            "heif/coffee-10bit.heic",
            "images/coffee.png",
            "heif",
            "hevc",
        ),
    ] {
        for layout in [PixelLayout::Rgb24, PixelLayout::Yuv420p] {
            let (info, frame) = still(&testdata(file), layout);
            // The photo as FFmpeg decodes the PNG, in the same layout by the same conversion.
            let (_, original) = still(&media(source), layout);
            assert_eq!(info.kind, MediaKind::Image, "{file}");
            assert_eq!(info.container, container, "{file}");
            assert_eq!(info.duration_s, None, "{file}");
            assert!(info.audio.is_none(), "{file}");
            let video = info.video.as_ref().unwrap();
            assert_eq!(video.codec, codec, "{file}");
            assert_eq!(video.frame_count_estimate, Some(1), "{file}");
            assert_eq!(
                (video.width, video.height),
                (original.width, original.height),
                "{file}"
            );
            assert_eq!((frame.width, frame.height), (video.width, video.height));
            let db = psnr(&frame, &original);
            eprintln!("{file} {layout:?}: PSNR {db:.1} dB against {source}");
            assert!(db > 30.0, "{file} {layout:?}: PSNR {db:.1} dB");
        }
    }
}

/// c2pa-rs's own photos (made by other tools: a `mif1` HEIF with a thumbnail, an AVIF).
#[test]
fn other_tools_heif_and_avif_photos_decode() {
    for (file, size) in [
        ("c2pa-rs/sample1.heif", (1440, 960)),
        ("c2pa-rs/sample1.avif", (1204, 800)),
    ] {
        let (info, frame) = still(&testdata(file), PixelLayout::Yuv420p);
        let video = info.video.unwrap();
        assert_eq!((video.width, video.height), size, "{file}");
        assert_eq!((frame.width, frame.height), size, "{file}");
        // A photo, not a flat or black picture.
        let luma = &frame.planes[0];
        let mean = luma.iter().map(|&v| f64::from(v)).sum::<f64>() / luma.len() as f64;
        let var = luma
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / luma.len() as f64;
        assert!(
            mean > 30.0 && var.sqrt() > 10.0,
            "{file}: mean {mean}, sd {}",
            var.sqrt()
        );
    }
}

fn open_error(path: &Path) -> String {
    match Decoder::open(path, PixelLayout::Yuv420p) {
        Ok(mut dec) => match dec.next_frame() {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[test]
fn damaged_heif_and_avif_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["heif/chelsea.heic", "heif/chelsea.avif"] {
        let bytes = std::fs::read(testdata(file)).unwrap();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let what = if name.ends_with("avif") {
            "AVIF"
        } else {
            "HEIF"
        };

        // Cut short: the picture's data is missing.
        for keep in [bytes.len() / 2, 600, 40] {
            let cut = dir.path().join(format!("cut-{keep}-{name}"));
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            let err = Decoder::open(&cut, PixelLayout::Yuv420p)
                .err()
                .unwrap_or_else(|| panic!("{name} cut to {keep} bytes decoded"));
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    MediaError::Unreadable { .. } | MediaError::Decode { .. }
                ),
                "{text}"
            );
            assert!(text.contains(&cut.display().to_string()), "{text}");
            if keep > 40 {
                // Still recognised by its brands: libheif's reason, named.
                assert!(
                    text.contains(&format!("{what} file libheif cannot read")),
                    "{text}"
                );
            }
        }

        // The header's item boxes garbled: refused with libheif's reason.
        let meta = bytes.windows(4).position(|w| w == b"meta").unwrap();
        let mut garbled = bytes.clone();
        for b in &mut garbled[meta + 8..meta + 120] {
            *b ^= 0x5a;
        }
        let path = dir.path().join(format!("garbled-{name}"));
        std::fs::write(&path, &garbled).unwrap();
        let text = open_error(&path);
        assert!(
            text.contains(&format!("{what} file libheif cannot read")),
            "{text}"
        );

        // Bytes flipped all over the file, 40 ways: an error or a (damaged) picture of the
        // right size, never a crash.
        for seed in 0..40u64 {
            let mut flipped = bytes.clone();
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % flipped.len() as u64) as usize;
                flipped[i] ^= (x >> 32) as u8 | 1;
            }
            let path = dir.path().join(format!("flipped-{seed}-{name}"));
            std::fs::write(&path, &flipped).unwrap();
            if let Ok(mut dec) = Decoder::open(&path, PixelLayout::Yuv420p) {
                if let Ok(Some(MediaFrame::Video(frame))) = dec.next_frame() {
                    frame.validate().unwrap();
                    assert!(u64::from(frame.width) * u64::from(frame.height) <= 64 << 20);
                }
            }
        }
    }
}

/// A header that declares a picture over 64 Mpx (its `ispe` box says 9000x9000) is refused
/// from the headers, before anything is allocated for it.
#[test]
fn pictures_over_64_megapixels_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(testdata("heif/chelsea.avif")).unwrap();
    // `ispe`: full-box header (4 bytes), then width and height, 32 bits each, big-endian.
    let ispe = bytes.windows(4).position(|w| w == b"ispe").unwrap() + 8;
    bytes[ispe..ispe + 4].copy_from_slice(&9000u32.to_be_bytes());
    bytes[ispe + 4..ispe + 8].copy_from_slice(&9000u32.to_be_bytes());
    let path = dir.path().join("huge.avif");
    std::fs::write(&path, &bytes).unwrap();
    let err = Decoder::open(&path, PixelLayout::Yuv420p)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("9000x9000") && err.contains("64 Mpx"), "{err}");
}

/// Files that merely carry a HEIF name, and the MP4 family (brands of their own), are not
/// libheif's: FFmpeg opens or refuses them as before.
#[test]
fn only_heif_brands_take_the_libheif_path() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.heic");
    let bytes: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(&noise, &bytes).unwrap();
    let err = Decoder::open(&noise, PixelLayout::Yuv420p)
        .err()
        .unwrap()
        .to_string();
    assert!(!err.contains("libheif"), "{err}");

    let mp4 = Decoder::open(&media("video/bikes.mp4"), PixelLayout::Yuv420p).unwrap();
    assert!(mp4.info().container.starts_with("mov,mp4"));
}

/// An animated AVIF (brand `avis`) is a sequence: FFmpeg decodes its AV1 track frame by frame,
/// where libheif would give only its still picture.
#[test]
fn an_animated_avif_stays_ffmpegs_to_decode_frame_by_frame() {
    let path = testdata("heif/carphone-animated.avif");
    let mut dec = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
    let info = dec.info().clone();
    assert_eq!(info.kind, MediaKind::Video, "{info:?}");
    assert!(info.container.starts_with("mov,mp4"), "{info:?}");
    let mut frames = 0;
    while let Some(f) = dec.next_frame().unwrap() {
        if let MediaFrame::Video(v) = f {
            assert_eq!((v.width, v.height), (176, 144));
            frames += 1;
        }
    }
    assert_eq!(frames, 15);
}

/// Decoders on several threads at once (the detector opens a file more than once): the same
/// pictures as one at a time.
#[test]
fn heif_stills_decode_the_same_on_several_threads_at_once() {
    let files = [
        "heif/chelsea.heic",
        "heif/chelsea.avif",
        "c2pa-rs/sample1.avif",
    ];
    let alone: Vec<VideoFrame> = files
        .iter()
        .map(|f| still(&testdata(f), PixelLayout::Yuv420p).1)
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let alone = &alone;
            s.spawn(move || {
                for round in 0..6 {
                    let i = (t + round) % files.len();
                    let (_, frame) = still(&testdata(files[i]), PixelLayout::Yuv420p);
                    assert!(frame == alone[i], "{} differs on thread {t}", files[i]);
                }
            });
        }
    });
}
