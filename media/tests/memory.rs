//! Decoding streams: memory stays flat however long the input is.

mod common;

use common::media;
use hallmark_media::{Decoder, MediaFrame, PixelLayout};

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn decoding_a_long_clip_keeps_memory_flat() {
    // 10 loops of Big Buck Bunny: 53 s of 720p, 1320 frames = 1.8 GB if frames were kept.
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.mp4");
    let src = media("video/bigbuckbunny.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            "9",
            "-i",
        ])
        .arg(&src)
        .args(["-c", "copy"])
        .arg(&long)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());

    let before = peak_rss_kb();
    let mut decoder = Decoder::open(&long, PixelLayout::Yuv420p).unwrap();
    let (mut frames, mut samples) = (0u64, 0u64);
    while let Some(frame) = decoder.next_frame().unwrap() {
        match frame {
            MediaFrame::Video(_) => frames += 1,
            MediaFrame::Audio(a) => samples += a.samples.len() as u64,
        }
    }
    let grown_mb = (peak_rss_kb() - before) / 1024;
    assert!(frames >= 1300, "{frames} frames");
    assert!(samples > 0);
    println!("decoded {frames} frames; peak memory grew by {grown_mb} MB");
    assert!(
        grown_mb < 300,
        "peak memory grew by {grown_mb} MB while decoding"
    );
}
