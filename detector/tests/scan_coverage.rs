//! What a scan reports about its coverage: a corrupt stretch in the middle of a clip is
//! counted and skipped, and the picture and the sound after it are still analysed.

use std::path::{Path, PathBuf};

use hallmark_detector::scan::{scan_frames, AudioScan, ScanCoverage};
use hallmark_detector::VideoScan;
use hallmark_media::{Decoder, MediaFrame, PixelLayout};
use hallmark_watermark::{VideoDetection, VideoDetector, WatermarkKey};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel)
}

fn key() -> WatermarkKey {
    WatermarkKey::from_secret([7; 32], 1)
}

/// 10.6 s of Big Buck Bunny (looped once) at 640×360, a key frame every second, with AAC
/// sound (ffmpeg CLI, index in front).
fn clip(dir: &Path) -> PathBuf {
    let out = dir.join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-stream_loop", "1", "-i"])
        .arg(shared("video/bigbuckbunny.mp4"))
        .args([
            "-vf",
            "scale=640:360",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-g", "25", "-c:a", "aac", "-movflags", "+faststart"])
        .arg(&out)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());
    out
}

/// `src` with the middle tenth of its media data (`mdat`, 45–55 %) overwritten with noise.
fn corrupt_copy(src: &Path, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    let mut pos = 0usize;
    let (start, len) = loop {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if &bytes[pos + 4..pos + 8] == b"mdat" {
            break (pos + 8, size - 8);
        }
        assert!(size >= 8);
        pos += size;
    };
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for b in &mut bytes[start + len * 45 / 100..start + len * 55 / 100] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = (seed >> 24) as u8;
    }
    let out = dir.join("corrupt.mp4");
    std::fs::write(&out, bytes).unwrap();
    out
}

/// The full scan's reference-frame pass (split in two on two cores or more) with the sound
/// heard on the way.
fn scan(path: &Path) -> (ScanCoverage, VideoDetection, AudioScan) {
    let k = key();
    let mut d = Decoder::open(path, PixelLayout::Yuv420p).unwrap();
    let mut det = VideoDetector::new(std::slice::from_ref(&k));
    let mut sound = AudioScan::new(std::slice::from_ref(&k));
    let coverage = scan_frames(
        &mut d,
        &mut det,
        VideoScan::ReferenceFrames,
        None,
        |frame| {
            if let MediaFrame::Audio(chunk) = frame {
                sound.add_chunk(chunk);
            }
        },
    );
    (coverage, det.result(), sound)
}

#[test]
fn a_corrupt_stretch_is_counted_and_the_rest_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let good = clip(dir.path());
    let bad = corrupt_copy(&good, dir.path());

    let (clean, clean_found, clean_sound) = scan(&good);
    let (coverage, found, sound) = scan(&bad);
    println!(
        "clean: {clean:?}, sound {:.2} s",
        clean_sound.seconds_heard()
    );
    println!(
        "corrupt: {coverage:?}, sound {:.2} s; timeline {:?}",
        sound.seconds_heard(),
        found.timeline
    );
    let total = clean.total_s.expect("an MP4 knows its duration");
    assert!((total - 10.6).abs() < 0.1, "{total}");
    assert_eq!(clean.decode_errors, 0);
    assert_eq!(clean.stopped_by, None);
    // Every second of the clean clip has analysed frames (0 … 10).
    assert_eq!(clean.seconds_analysed, total.ceil());
    assert_eq!(clean.frames_analysed, clean_found.frames_analysed);
    assert!(clean_sound.seconds_heard() > total - 0.1);

    // The corrupt copy: errors counted, nothing stops the scan, the picture after the
    // stretch (from 7 s on) is analysed and so is the sound to the end.
    assert!(coverage.decode_errors > 0, "{coverage:?}");
    assert_eq!(coverage.stopped_by, None);
    assert_eq!(coverage.total_s, clean.total_s);
    assert_eq!(coverage.frames_analysed, found.frames_analysed);
    assert!(coverage.frames_analysed < clean.frames_analysed);
    assert!(found.timeline.len() == 11, "{:?}", found.timeline);
    assert!(found.timeline[7..].iter().all(Option::is_some));
    // At most the corrupt tenth and the rest of its last second are lost.
    assert!(
        coverage.seconds_analysed >= total.ceil() - 3.0
            && coverage.seconds_analysed < clean.seconds_analysed + 1.0,
        "{coverage:?}"
    );
    assert!(
        sound.seconds_heard() > total - 3.0 && sound.seconds_heard() < total,
        "{}",
        sound.seconds_heard()
    );
    assert_eq!(sound.chunks_ignored(), 0);
}
