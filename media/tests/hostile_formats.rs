//! Untrusted files are opened narrowly: formats that make FFmpeg read *other* files (HLS
//! playlists, concat lists, image-sequence patterns) are refused, by the decoder and by the
//! probe alike, while the formats hallmark reads still open.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::media;
use hallmark_media::{probe, Decoder, MediaError, PixelLayout};

/// A directory holding a real clip and a still, and three hostile files pointing at them.
struct Hostile {
    _dir: tempfile::TempDir,
    hls: PathBuf,
    concat: PathBuf,
    pattern: PathBuf,
}

fn hostile() -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(media("video/bikes.mp4"), d.join("clip.mp4")).unwrap();
    std::fs::copy(media("images/astronaut.png"), d.join("frame001.png")).unwrap();
    let hls = d.join("playlist.m3u8");
    std::fs::write(
        &hls,
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nclip.mp4\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    let concat = d.join("list.ffconcat");
    std::fs::write(&concat, "ffconcat version 1.0\nfile clip.mp4\n").unwrap();
    // The pattern's own file must exist (it is what was uploaded); FFmpeg's image2 demuxer
    // would read frame001.png instead.
    let pattern = d.join("frame%03d.png");
    std::fs::write(&pattern, "not an image\n").unwrap();
    Hostile {
        _dir: dir,
        hls,
        concat,
        pattern,
    }
}

/// What FFmpeg's own ffprobe makes of `path` without hallmark's restrictions: the demuxer
/// and the width of the first video stream it finds (proof that the file really points at
/// another one).
fn ffprobe_sees(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=format_name:stream=width",
        ])
        .args(["-of", "csv=p=0"])
        .arg(format!("file:{}", path.display()))
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn assert_refused(path: &Path, format: &str, reason: &str) {
    let from_decoder = match Decoder::open(path, PixelLayout::Yuv420p) {
        Ok(d) => panic!("{} opened as {:?}", path.display(), d.info()),
        Err(e) => e,
    };
    let from_probe = probe(path).expect_err("the probe refuses it too");
    for e in [from_decoder, from_probe] {
        match &e {
            MediaError::Refused {
                format: f,
                reason: r,
                ..
            } => {
                assert_eq!(f, format, "{e}");
                assert_eq!(r, reason, "{e}");
            }
            other => panic!("{}: not refused but {other:?}", path.display()),
        }
        let message = e.to_string();
        assert!(
            message.contains(&format!("format {format} is not accepted: {reason}")),
            "{message}"
        );
    }
}

#[test]
fn an_hls_playlist_is_refused() {
    let h = hostile();
    // Unrestricted, FFmpeg follows the playlist to the clip (640 px wide).
    let seen = ffprobe_sees(&h.hls);
    assert!(seen.starts_with("640 ") && seen.ends_with(" hls"), "{seen}");
    assert_refused(&h.hls, "hls", "playlists may point at other files");
}

#[test]
fn a_concat_list_is_refused() {
    let h = hostile();
    assert_eq!(ffprobe_sees(&h.concat), "640 concat");
    assert_refused(&h.concat, "concat", "playlists may point at other files");
}

#[test]
fn an_image_sequence_pattern_is_refused() {
    let h = hostile();
    // Unrestricted, the name is a pattern that reads frame001.png (512 px wide).
    assert_eq!(ffprobe_sees(&h.pattern), "512 image2");
    assert_refused(
        &h.pattern,
        "image2",
        "a file name with a pattern (%d, *, ?) stands for other files",
    );
}

#[test]
fn the_formats_hallmark_reads_still_open() {
    let dir = tempfile::tempdir().unwrap();
    // A JPEG is read by FFmpeg's image2 demuxer: accepted under a plain name.
    for (rel, container) in [
        ("video/bikes.mp4", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("audio/Front_Center.wav", "wav"),
        ("audio/music-introzik.ogg", "ogg"),
        ("images/astronaut.png", "png_pipe"),
        ("images/rocket.jpg", "image2"),
    ] {
        let path = media(rel);
        let d = Decoder::open(&path, PixelLayout::Yuv420p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.info().container, container, "{rel}");
        assert_eq!(probe(&path).unwrap().container, container, "{rel}");
    }
    // A playlist under a media file's name is still a playlist.
    let disguised = dir.path().join("holiday.mp4");
    std::fs::copy(media("video/bikes.mp4"), dir.path().join("clip.mp4")).unwrap();
    std::fs::write(
        &disguised,
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nclip.mp4\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    assert_refused(&disguised, "hls", "playlists may point at other files");
}
