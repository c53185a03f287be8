//! Benchmark (ignored; `cargo test --release -p hallmark-watermark --test dwtdct_speed --
//! --ignored --nocapture`): what the third-party search adds to a verify, on a 10 s 1080p
//! 30 fps H.264 clip (Big Buck Bunny scaled up and looped), against `ffmpeg -f null`
//! decoding the same clip. Prints the ratios; asserts nothing about time.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use hallmark_media::{Decoder, MediaFrame, PixelLayout};
use hallmark_watermark::ThirdPartyDetector;

fn ffmpeg(args: &[&str]) {
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ffmpeg {args:?}");
}

#[test]
#[ignore]
fn third_party_scan_cost_on_10s_1080p() {
    let dir = std::env::temp_dir().join(format!("dwtdct-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("bbb-1080p-10s.mp4");
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/media/video/bigbuckbunny.mp4");
    ffmpeg(&[
        "-stream_loop",
        "1",
        "-i",
        src.to_str().unwrap(),
        "-t",
        "10",
        "-an",
        "-vf",
        "scale=1920:1080,fps=30",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
        clip.to_str().unwrap(),
    ]);
    // The peer: FFmpeg's own decode, all threads.
    let t = Instant::now();
    ffmpeg(&["-i", clip.to_str().unwrap(), "-f", "null", "-"]);
    let ffmpeg_s = t.elapsed().as_secs_f64();

    hallmark_media::init();
    let mut d = Decoder::open(&clip, PixelLayout::Yuv420p).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        if let MediaFrame::Video(f) = f {
            frames.push(f);
        }
    }
    assert_eq!(frames.len(), 300);
    let time = |step: usize| {
        let mut det = ThirdPartyDetector::new();
        let t = Instant::now();
        for f in frames.iter().step_by(step) {
            det.add_frame(f);
        }
        let r = det.result();
        assert!(r.iter().all(|m| !m.detected));
        (t.elapsed().as_secs_f64(), det.frames())
    };
    // What the scan takes of a 1080p clip: 2 frames a second (every 15th at 30 fps; 4 a
    // second of frames up to 1024², `hallmark_detector`'s `third_party::REFERENCE_PIXELS`),
    // and every frame.
    let (sampled_s, sampled_n) = time(15);
    let (all_s, all_n) = time(1);
    eprintln!("10 s 1080p30 H.264: ffmpeg -f null decode {ffmpeg_s:.2} s");
    eprintln!(
        "third-party search, {sampled_n} sampled frames (the scan's share): {sampled_s:.3} s = {:.3}x ffmpeg's decode ({:.1} ms a frame)",
        sampled_s / ffmpeg_s,
        1e3 * sampled_s / sampled_n as f64
    );
    eprintln!(
        "third-party search, all {all_n} frames: {all_s:.2} s = {:.2}x ffmpeg's decode",
        all_s / ffmpeg_s
    );
    let _ = std::fs::remove_dir_all(&dir);
}
