//! The header-only probe agrees with the full decoder on real files.

mod common;

use common::media;
use hallmark_media::{probe, Decoder, PixelLayout};

#[test]
fn probe_matches_decoder_info() {
    for rel in [
        "video/bigbuckbunny.mp4",
        "video/bikes.mp4",
        "video/carphone_pristine.mp4",
        "audio/Front_Center.wav",
        "audio/music-introzik.ogg",
        "images/astronaut.png",
        "images/rocket.jpg",
    ] {
        let path = media(rel);
        let quick = probe(&path).unwrap();
        let full = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
        let full = full.info();
        assert_eq!(quick.kind, full.kind, "{rel}");
        assert_eq!(quick.container, full.container, "{rel}");
        let dims = |i: &hallmark_media::MediaInfo| i.video.as_ref().map(|v| (v.width, v.height));
        let rate =
            |i: &hallmark_media::MediaInfo| i.audio.as_ref().map(|a| (a.sample_rate, a.channels));
        assert_eq!(dims(&quick), dims(full), "{rel}");
        assert_eq!(rate(&quick), rate(full), "{rel}");
    }
}

#[test]
fn probe_rejects_non_media() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video\n".repeat(100)).unwrap();
    assert!(probe(&text).is_err());
    assert!(probe(dir.path()).is_err());
}

/// HEIF and AVIF stills, which FFmpeg 5.1 cannot read, are described from libheif's headers,
/// as the decoder describes them.
#[test]
fn probe_describes_heif_and_avif_stills() {
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    for rel in [
        "heif/chelsea.heic",
        "heif/chelsea.avif",
        "c2pa-rs/sample1.heif",
        "c2pa-rs/sample1.avif",
    ] {
        let path = testdata.join(rel);
        let quick = probe(&path).unwrap();
        let full = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
        assert_eq!(&quick, full.info(), "{rel}");
        assert_eq!(quick.kind, hallmark_media::MediaKind::Image, "{rel}");
    }
}
