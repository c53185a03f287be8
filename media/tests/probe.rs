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
