//! Key frames for newsrooms (`hallmark verify --keyframes DIR`): a video's key frames as
//! JPEG, for reverse image search, named by their time.
//!
//! Only the key frames are decoded (each on its own, as the quick scan does), so this costs
//! little beside the search. Encoders put a key frame at every scene cut (x264's
//! `scenecut`) and at regular intervals; the regular ones inside a held shot add nothing
//! to a search, so a key frame is written only where the picture changed from the last one
//! written ([`SCENE_CHANGE`]).

use std::path::{Path, PathBuf};

use hallmark_media::{Decoder, FrameSelection, MediaFrame, MediaKind, PixelLayout, VideoFrame};
use serde::Serialize;

/// At most this many images are written per file.
pub const MAX_KEY_FRAMES: usize = 200;

/// Mean absolute difference (0–255) of two key frames' 16×16 brightness grids above which
/// the second is worth its own search. A held shot's repeated key frames differ by about
/// 0–2; moving footage one second apart by 6–80 (the shared clips), a cut by 20 or more,
/// so most key frames of moving footage are kept.
pub const SCENE_CHANGE: f64 = 8.0;

const JPEG_QUALITY: u8 = 90;

/// One key frame written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyFrameImage {
    /// Its presentation time, in seconds from the start.
    pub time_s: f64,
    /// Where it was written.
    pub path: String,
    pub width: u32,
    pub height: u32,
}

/// Writes the key frames of the video at `path` that start a scene into `dir` (which must
/// exist), as `<file stem>-t<hh>h<mm>m<ss.mmm>s.jpg`. A file without a moving picture
/// writes nothing.
pub fn write(path: &Path, dir: &Path) -> Result<Vec<KeyFrameImage>, String> {
    let mut decoder = Decoder::open(path, PixelLayout::Rgb24).map_err(|e| e.to_string())?;
    if decoder.info().kind != MediaKind::Video || decoder.info().video.is_none() {
        return Ok(Vec::new());
    }
    decoder.skip_audio();
    decoder.select_video_frames(FrameSelection::Key);
    let stem = safe_stem(path);
    let mut written = Vec::new();
    let mut last: Option<Vec<f64>> = None;
    loop {
        let frame = match decoder.next_frame() {
            Ok(Some(MediaFrame::Video(frame))) => frame,
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) if written.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        };
        let grid = brightness_grid(&frame);
        let new_scene = last
            .as_ref()
            .is_none_or(|l| mean_difference(l, &grid) > SCENE_CHANGE);
        if !new_scene {
            continue;
        }
        last = Some(grid);
        let file = dir.join(format!("{stem}-{}.jpg", time_name(frame.pts_s)));
        encode_jpeg(&frame, &file)?;
        written.push(KeyFrameImage {
            time_s: (frame.pts_s * 1000.0).round() / 1000.0,
            path: file.display().to_string(),
            width: frame.width,
            height: frame.height,
        });
        if written.len() == MAX_KEY_FRAMES {
            break;
        }
    }
    Ok(written)
}

/// The file's stem, reduced to characters safe in any file name (at most 64).
fn safe_stem(path: &Path) -> String {
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if stem.is_empty() {
        "video".into()
    } else {
        stem
    }
}

/// "t00h01m05.280s": sorts by time, reads as a time.
pub fn time_name(t_s: f64) -> String {
    let ms = (t_s.max(0.0) * 1000.0).round() as u64;
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    format!("t{h:02}h{m:02}m{:02}.{:03}s", rest / 1000, rest % 1000)
}

/// The frame's mean brightness over a 16×16 grid.
fn brightness_grid(frame: &VideoFrame) -> Vec<f64> {
    const N: usize = 16;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let rgb = &frame.planes[0];
    let mut sums = vec![0.0; N * N];
    let mut counts = vec![0u32; N * N];
    // Every 4th pixel each way is plenty for a 16×16 grid.
    for y in (0..h).step_by(4) {
        for x in (0..w).step_by(4) {
            let i = (y * w + x) * 3;
            let Some(px) = rgb.get(i..i + 3) else {
                continue;
            };
            let luma =
                0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2]);
            let cell = (y * N / h.max(1)) * N + x * N / w.max(1);
            sums[cell] += luma;
            counts[cell] += 1;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(s, &c)| if c > 0 { s / f64::from(c) } else { 0.0 })
        .collect()
}

fn mean_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len().max(1) as f64
}

fn encode_jpeg(frame: &VideoFrame, file: &PathBuf) -> Result<(), String> {
    let (Ok(w), Ok(h)) = (u16::try_from(frame.width), u16::try_from(frame.height)) else {
        return Err(format!(
            "a {}×{} picture is too large for JPEG",
            frame.width, frame.height
        ));
    };
    let encoder = jpeg_encoder::Encoder::new_file(file, JPEG_QUALITY)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    encoder
        .encode(&frame.planes[0], w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time() {
        assert_eq!(time_name(0.0), "t00h00m00.000s");
        assert_eq!(time_name(65.28), "t00h01m05.280s");
        assert_eq!(time_name(3725.0), "t01h02m05.000s");
        assert!(time_name(9.5) < time_name(10.0));
    }
}
