//! Where the time of a watermark search goes: decode only (every frame, reference frames,
//! key frames), and decode + detection model + result for the full scan and for the key
//! frames alone (`verify --quick`'s first pass), wall and CPU seconds.
//!
//! `cargo run --release --locked -p hallmark-detector --example scan_speed -- CLIP [KEYFILE]`
//! (KEYFILE: a hex watermark key such as `$HALLMARK_HOME/keys/watermark.key`).

use std::time::Instant;

use hallmark_detector::scan::scan_frames;
use hallmark_detector::VideoScan;
use hallmark_media::{Decoder, FrameSelection, MediaFrame, PixelLayout};
use hallmark_watermark::{VideoDetector, WatermarkKey};

mod common;
use common::cpu_s;
#[path = "common/key.rs"]
mod key;

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let (t, c) = (Instant::now(), cpu_s());
    let out = f();
    println!(
        "{label:40} wall {:6.3} s  cpu {:6.3} s",
        t.elapsed().as_secs_f64(),
        cpu_s() - c
    );
    out
}

fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).expect("CLIP"));
    hallmark_media::init();
    let decode = |which: FrameSelection| {
        let mut d = Decoder::open(&path, PixelLayout::Yuv420p).expect("open");
        d.select_video_frames(which);
        let mut n = 0;
        while let Ok(Some(f)) = d.next_frame() {
            if let MediaFrame::Video(_) = f {
                n += 1;
            }
        }
        n
    };
    let n = timed("decode all frames", || decode(FrameSelection::All));
    println!("  {n} frames");
    let n = timed("decode reference frames only", || {
        decode(FrameSelection::Reference)
    });
    println!("  {n} frames");
    let n = timed("decode key frames only", || decode(FrameSelection::Key));
    println!("  {n} frames");
    // Optional second argument: a hex watermark key file (HALLMARK_HOME/keys/watermark.key).
    let key = match std::env::args().nth(2) {
        Some(p) => key::key_file(&p),
        None => WatermarkKey::generate(1).expect("key"),
    };
    let mut det = VideoDetector::new(std::slice::from_ref(&key));
    timed("scan: decode + model (skips as it does)", || {
        let mut d = Decoder::open(&path, PixelLayout::Yuv420p).expect("open");
        hallmark_detector::scan::scan(&mut d, &mut det, None, |_| {});
    });
    let r = timed("result()", || det.result());
    println!(
        "  frames {} z {:.2} p {:.2e} payload {:?}",
        r.frames_analysed, r.score, r.p_value, r.payload
    );
    let mut keyframes = VideoDetector::new(std::slice::from_ref(&key));
    timed("scan key frames: decode + model", || {
        let mut d = Decoder::open(&path, PixelLayout::Yuv420p).expect("open");
        scan_frames(&mut d, &mut keyframes, VideoScan::KeyFrames, None, |_| {});
    });
    let r = timed("result() of the key frames", || keyframes.result());
    println!(
        "  frames {} z {:.2} p {:.2e} payload {:?} timeline {:?}",
        r.frames_analysed, r.score, r.p_value, r.payload, r.timeline
    );
    // What skipping the non-reference frames costs in evidence: every frame, plain path.
    let mut all = VideoDetector::new(std::slice::from_ref(&key));
    let mut d = Decoder::open(&path, PixelLayout::Yuv420p).expect("open");
    while let Ok(Some(f)) = d.next_frame() {
        if let MediaFrame::Video(v) = f {
            all.add_frame(&v);
        }
    }
    let r = all.result();
    println!(
        "every frame (plain path): frames {} z {:.2} p {:.2e} payload {:?}",
        r.frames_analysed, r.score, r.p_value, r.payload
    );
}
