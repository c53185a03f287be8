mod common;

use std::path::Path;

use common::{fast, media, transcode};
use hallmark_media::{Decoder, MediaError, OutputFormat, PixelLayout};

/// Open and decode to the end; return the first error.
fn decode_err(path: &Path) -> MediaError {
    let mut dec = match Decoder::open(path, PixelLayout::Yuv420p) {
        Ok(d) => d,
        Err(e) => return e,
    };
    loop {
        match dec.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("{} decoded without error", path.display()),
            Err(e) => return e,
        }
    }
}

fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.mp4");
    std::fs::write(&p, b"").unwrap();
    let e = decode_err(&p);
    let msg = e.to_string();
    assert!(
        msg.contains("could not read media") && msg.contains("empty"),
        "{msg}"
    );
}

#[test]
fn missing_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = decode_err(&dir.path().join("nope.mp4"));
    assert!(matches!(e, MediaError::Io { .. }), "{e}");
    let e = decode_err(dir.path());
    assert!(e.to_string().contains("directory"), "{e}");
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in [
        "random.mp4",
        "random.bin",
        "random.wav",
        "random.png",
        "random.jpg",
        "random.mp3",
    ]
    .iter()
    .enumerate()
    {
        for size in [16, 4096, 200_000] {
            let p = dir.path().join(name);
            std::fs::write(
                &p,
                pseudo_random(
                    size,
                    0x9E37_79B9_7F4A_7C15 ^ (i as u64 * 7919 + size as u64),
                ),
            )
            .unwrap();
            let e = decode_err(&p);
            let msg = e.to_string();
            assert!(
                msg.contains("could not read media") || msg.contains("could not decode"),
                "{name} ({size} bytes): {msg}"
            );
        }
    }
}

#[test]
fn truncated_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(media("video/bigbuckbunny.mp4")).unwrap();
    let p = dir.path().join("half.mp4");
    std::fs::write(&p, &src[..src.len() / 2]).unwrap();
    let e = decode_err(&p);
    let msg = e.to_string();
    assert!(msg.contains("not a media file FFmpeg can read"), "{msg}");
}

#[test]
fn truncated_faststart_mp4() {
    // moov first: the file opens, but the media data stops half-way.
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.mp4");
    transcode(
        &media("video/bikes.mp4"),
        &full,
        OutputFormat::Mp4,
        PixelLayout::Yuv420p,
        &fast(),
    );
    let bytes = std::fs::read(&full).unwrap();
    let p = dir.path().join("half.mp4");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = decode_err(&p);
    let msg = e.to_string();
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn text_renamed_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.mp4");
    let text = "This is not a video.\nJust some notes about hallmark.\n".repeat(200);
    std::fs::write(&p, text).unwrap();
    let e = decode_err(&p);
    let msg = e.to_string();
    assert!(msg.contains("could not read media"), "{msg}");
}

#[test]
fn damaged_images() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["images/rocket.jpg", "images/astronaut.png"] {
        let src = std::fs::read(media(name)).unwrap();
        let ext = Path::new(name).extension().unwrap().to_str().unwrap();
        // Header only.
        let p = dir.path().join(format!("head.{ext}"));
        std::fs::write(&p, &src[..64]).unwrap();
        let e = decode_err(&p);
        assert!(
            e.to_string().contains("could not read media")
                || e.to_string().contains("could not decode"),
            "{name}: {e}"
        );
    }
}
