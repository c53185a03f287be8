//! A corrupt stretch in the middle of a file: the packets that fail to decode are counted and
//! skipped, and decoding goes on to the end (the picture and the sound after the stretch
//! still come out), whatever frames are selected.

use std::path::{Path, PathBuf};

use hallmark_media::{Decoder, FrameSelection, MediaFrame, PixelLayout};

fn media(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel)
}

/// Offset and size of the top-level `mdat` box of an MP4.
fn mdat_range(bytes: &[u8]) -> (usize, usize) {
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if &bytes[pos + 4..pos + 8] == b"mdat" {
            return (pos + 8, size - 8);
        }
        assert!(size >= 8, "unexpected box size at {pos}");
        pos += size;
    }
    panic!("no mdat box");
}

/// 10.6 s of Big Buck Bunny (looped once) at 640×360, a key frame every second, with AAC
/// sound, written by the ffmpeg CLI with its index in front (`+faststart`).
fn clip(dir: &Path) -> PathBuf {
    let out = dir.join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-stream_loop", "1", "-i"])
        .arg(media("video/bigbuckbunny.mp4"))
        .args([
            "-vf",
            "scale=640:360",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "25", "-c:a", "aac", "-movflags", "+faststart"])
        .arg(&out)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());
    out
}

/// `src` with the middle tenth of its media data (45–55 %) overwritten with noise.
fn corrupt_copy(src: &Path, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    let (start, len) = mdat_range(&bytes);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
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

/// What decoding to the end gave: video frame times, the end of the last sound chunk,
/// errors (total, picture, sound), or the error that ended decoding.
struct Run {
    video_pts: Vec<f64>,
    audio_end: f64,
    errors: (u64, u64, u64),
    ended_by: Option<String>,
}

fn run(path: &Path, which: FrameSelection) -> Run {
    let mut d = Decoder::open(path, PixelLayout::Yuv420p).unwrap();
    d.select_video_frames(which);
    let mut r = Run {
        video_pts: Vec::new(),
        audio_end: 0.0,
        errors: (0, 0, 0),
        ended_by: None,
    };
    loop {
        match d.next_frame() {
            Ok(Some(MediaFrame::Video(f))) => r.video_pts.push(f.pts_s),
            Ok(Some(MediaFrame::Audio(a))) => {
                let frames = a.samples.len() / usize::from(a.channels);
                r.audio_end = a.pts_s + frames as f64 / f64::from(a.sample_rate);
            }
            Ok(None) => break,
            Err(e) => {
                r.ended_by = Some(e.to_string());
                break;
            }
        }
    }
    r.errors = (
        d.decode_errors(),
        d.video_decode_errors(),
        d.audio_decode_errors(),
    );
    r
}

#[test]
fn a_corrupt_stretch_is_skipped_and_the_rest_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let good = clip(dir.path());
    let bad = corrupt_copy(&good, dir.path());
    let duration = Decoder::open(&good, PixelLayout::Yuv420p)
        .unwrap()
        .info()
        .duration_s
        .unwrap();
    for which in [
        FrameSelection::All,
        FrameSelection::Reference,
        FrameSelection::Key,
    ] {
        let clean = run(&good, which);
        let r = run(&bad, which);
        println!(
            "{which:?}: {} of {} pictures (last at {:.2} s), sound to {:.2} of {:.2} s, \
             errors {:?}, ended by {:?}",
            r.video_pts.len(),
            clean.video_pts.len(),
            r.video_pts.last().copied().unwrap_or(f64::NAN),
            r.audio_end,
            clean.audio_end,
            r.errors,
            r.ended_by
        );
        assert_eq!(clean.errors, (0, 0, 0), "{which:?}");
        assert!(
            clean.ended_by.is_none() && r.ended_by.is_none(),
            "{which:?}"
        );
        // Before, a garbled AAC packet ("not yet implemented in FFmpeg") ended decoding
        // there, at about 4 s; now both streams' corrupt packets are counted and skipped.
        assert!(r.errors.2 > 0, "{which:?}: {:?}", r.errors);
        if which != FrameSelection::Key {
            // (The key frames alone may all decode: the stretch hit the frames between.)
            assert!(r.errors.1 > 0, "{which:?}: {:?}", r.errors);
        }
        assert_eq!(r.errors.0, r.errors.1 + r.errors.2);
        // The sound and the picture after the corrupt stretch (every key frame from 7 s on,
        // one per second) come out.
        assert!(r.audio_end > duration - 0.2, "{which:?}: {}", r.audio_end);
        let late = |pts: &[f64]| pts.iter().filter(|t| **t >= 7.0).count();
        assert!(late(&r.video_pts) >= 4, "{which:?}: {:?}", r.video_pts);
        assert_eq!(late(&r.video_pts), late(&clean.video_pts), "{which:?}");
        assert!(r.video_pts.len() < clean.video_pts.len(), "{which:?}");
    }
}
