//! Shared helpers for the watermark tests: real frames and simple in-Rust attacks.
#![allow(dead_code)]

use hallmark_media::{Decoder, MediaFrame, PixelLayout, VideoFrame};
use hallmark_watermark::{Payload, VideoEmbedder, WatermarkKey, DEFAULT_STRENGTH};
use std::path::{Path, PathBuf};

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel)
}

pub fn decode(path: &Path, max: usize) -> Vec<VideoFrame> {
    let mut d = Decoder::open(path, PixelLayout::Yuv420p).expect("open");
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().expect("decode") {
        if let MediaFrame::Video(v) = f {
            out.push(v);
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

pub fn key(seed: u8, id: u8) -> WatermarkKey {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    WatermarkKey::from_secret(s, id)
}

pub fn payload(k: &WatermarkKey) -> Payload {
    Payload {
        clip_id: 0x0123_4567_89ab_cdef,
        key_id: k.key_id(),
    }
}

pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Mean SSIM of two luma planes over 8×8 windows with stride 4 (standard constants).
pub fn ssim(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mut total, mut n) = (0.0, 0usize);
    for y0 in (0..h.saturating_sub(7)).step_by(4) {
        for x0 in (0..w.saturating_sub(7)).step_by(4) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in y0..y0 + 8 {
                for x in x0..x0 + 8 {
                    let (p, q) = (a[y * w + x] as f64, b[y * w + x] as f64);
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let (ma, mb) = (sa / 64.0, sb / 64.0);
            let (va, vb, cov) = (
                saa / 64.0 - ma * ma,
                sbb / 64.0 - mb * mb,
                sab / 64.0 - ma * mb,
            );
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            n += 1;
        }
    }
    total / n.max(1) as f64
}

/// Bilinear resample of one plane (pixel-centre aligned); box pre-filter when shrinking ≥2×.
pub fn resize_plane(p: &[u8], w: usize, h: usize, nw: usize, nh: usize) -> Vec<u8> {
    let (mut src, mut sw, mut shh) = (p.to_vec(), w, h);
    while sw >= 2 * nw && shh >= 2 * nh {
        let (hw, hh) = (sw / 2, shh / 2);
        let mut o = vec![0u8; hw * hh];
        for y in 0..hh {
            for x in 0..hw {
                let s = src[2 * y * sw + 2 * x] as u32
                    + src[2 * y * sw + 2 * x + 1] as u32
                    + src[(2 * y + 1) * sw + 2 * x] as u32
                    + src[(2 * y + 1) * sw + 2 * x + 1] as u32;
                o[y * hw + x] = ((s + 2) / 4) as u8;
            }
        }
        src = o;
        sw = hw;
        shh = hh;
    }
    let mut out = vec![0u8; nw * nh];
    let fx = sw as f64 / nw as f64;
    let fy = shh as f64 / nh as f64;
    for y in 0..nh {
        let cy = ((y as f64 + 0.5) * fy - 0.5).clamp(0.0, (shh - 1) as f64);
        let y0 = cy.floor() as usize;
        let y1 = (y0 + 1).min(shh - 1);
        let wy = cy - y0 as f64;
        for x in 0..nw {
            let cx = ((x as f64 + 0.5) * fx - 0.5).clamp(0.0, (sw - 1) as f64);
            let x0 = cx.floor() as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let wx = cx - x0 as f64;
            let g = |yy: usize, xx: usize| src[yy * sw + xx] as f64;
            let v = (g(y0, x0) * (1.0 - wx) + g(y0, x1) * wx) * (1.0 - wy)
                + (g(y1, x0) * (1.0 - wx) + g(y1, x1) * wx) * wy;
            out[y * nw + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn crop_plane(p: &[u8], w: usize, x0: usize, y0: usize, cw: usize, ch: usize) -> Vec<u8> {
    let mut o = Vec::with_capacity(cw * ch);
    for y in y0..y0 + ch {
        o.extend_from_slice(&p[y * w + x0..y * w + x0 + cw]);
    }
    o
}

pub fn resize(f: &VideoFrame, nw: usize, nh: usize) -> VideoFrame {
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, chh) = (w.div_ceil(2), h.div_ceil(2));
    let (ncw, nch) = (nw.div_ceil(2), nh.div_ceil(2));
    VideoFrame {
        width: nw as u32,
        height: nh as u32,
        layout: PixelLayout::Yuv420p,
        planes: vec![
            resize_plane(&f.planes[0], w, h, nw, nh),
            resize_plane(&f.planes[1], cw, chh, ncw, nch),
            resize_plane(&f.planes[2], cw, chh, ncw, nch),
        ],
        pts_s: f.pts_s,
    }
}

/// Crop (even offsets) of `cw×ch` at (`x0`,`y0`).
pub fn crop(f: &VideoFrame, x0: usize, y0: usize, cw: usize, ch: usize) -> VideoFrame {
    let w = f.width as usize;
    let (x0, y0) = (x0 & !1, y0 & !1);
    let (cw, ch) = (cw & !1, ch & !1);
    VideoFrame {
        width: cw as u32,
        height: ch as u32,
        layout: PixelLayout::Yuv420p,
        planes: vec![
            crop_plane(&f.planes[0], w, x0, y0, cw, ch),
            crop_plane(&f.planes[1], w.div_ceil(2), x0 / 2, y0 / 2, cw / 2, ch / 2),
            crop_plane(&f.planes[2], w.div_ceil(2), x0 / 2, y0 / 2, cw / 2, ch / 2),
        ],
        pts_s: f.pts_s,
    }
}

/// Crop to `area` of the frame with the crop's centre at (`cx`,`cy`) (fractions), then
/// rescale back to the original size when `rescale`.
pub fn crop_area(f: &VideoFrame, area: f64, cx: f64, cy: f64, rescale: bool) -> VideoFrame {
    let (w, h) = (f.width as usize, f.height as usize);
    let side = area.sqrt();
    let (cw, ch) = ((w as f64 * side) as usize, (h as f64 * side) as usize);
    let x0 = ((cx * w as f64) - cw as f64 / 2.0).clamp(0.0, (w - cw) as f64) as usize;
    let y0 = ((cy * h as f64) - ch as f64 / 2.0).clamp(0.0, (h - ch) as f64) as usize;
    let c = crop(f, x0, y0, cw, ch);
    if rescale {
        resize(&c, w, h)
    } else {
        c
    }
}

/// Luma y → a·(y−128)+128+b, chroma saturation scaled by `sat`.
pub fn tone(f: &VideoFrame, gain: f64, offset: f64, sat: f64) -> VideoFrame {
    let mut o = f.clone();
    for p in o.planes[0].iter_mut() {
        *p = (gain * (*p as f64 - 128.0) + 128.0 + offset)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    for plane in o.planes[1..].iter_mut() {
        for p in plane.iter_mut() {
            *p = (sat * (*p as f64 - 128.0) + 128.0)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    o
}

/// Brightness multiply (of luma, as a video filter would on full-range values).
pub fn brightness(f: &VideoFrame, k: f64) -> VideoFrame {
    let mut o = f.clone();
    for p in o.planes[0].iter_mut() {
        *p = (*p as f64 * k).round().clamp(0.0, 255.0) as u8;
    }
    o
}

/// Additive uniform-ish noise of standard deviation `sigma` (deterministic).
pub fn noise(f: &VideoFrame, sigma: f64, seed: u64) -> VideoFrame {
    let mut o = f.clone();
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for p in o.planes[0].iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let u = (s >> 11) as f64 / (1u64 << 53) as f64;
        let n = (u - 0.5) * sigma * 12f64.sqrt();
        *p = (*p as f64 + n).round().clamp(0.0, 255.0) as u8;
    }
    o
}

/// JPEG-like: 8×8 DCT of luma, uniform quantisation with step `q` growing with frequency,
/// inverse.
#[allow(clippy::needless_range_loop)]
pub fn jpeg_like(f: &VideoFrame, q: f64) -> VideoFrame {
    let mut o = f.clone();
    let (w, h) = (f.width as usize, f.height as usize);
    let mut cosv = [[0f64; 8]; 8];
    for (k, row) in cosv.iter_mut().enumerate() {
        for (n, c) in row.iter_mut().enumerate() {
            let a = if k == 0 {
                (1.0f64 / 8.0).sqrt()
            } else {
                (2.0f64 / 8.0).sqrt()
            };
            *c = a * ((2 * n + 1) as f64 * k as f64 * std::f64::consts::PI / 16.0).cos();
        }
    }
    let mut blk = [[0f64; 8]; 8];
    let mut t = [[0f64; 8]; 8];
    let mut c = [[0f64; 8]; 8];
    for by in (0..h - h % 8).step_by(8) {
        for bx in (0..w - w % 8).step_by(8) {
            for y in 0..8 {
                for x in 0..8 {
                    blk[y][x] = f.planes[0][(by + y) * w + bx + x] as f64 - 128.0;
                }
            }
            for u in 0..8 {
                for x in 0..8 {
                    t[u][x] = (0..8).map(|y| cosv[u][y] * blk[y][x]).sum();
                }
            }
            for u in 0..8 {
                for v in 0..8 {
                    let s: f64 = (0..8).map(|x| cosv[v][x] * t[u][x]).sum();
                    let step = q * (1.0 + (u + v) as f64 / 2.0);
                    c[u][v] = (s / step).round() * step;
                }
            }
            for u in 0..8 {
                for x in 0..8 {
                    t[u][x] = (0..8).map(|v| cosv[v][x] * c[u][v]).sum();
                }
            }
            for y in 0..8 {
                for x in 0..8 {
                    let s: f64 = (0..8).map(|u| cosv[u][y] * t[u][x]).sum();
                    o.planes[0][(by + y) * w + bx + x] =
                        (s + 128.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    o
}

/// Re-encodes frames with the ffmpeg CLI (`args` are the output codec options, `ext` the
/// container extension) and decodes the result. The CLI is installed by `scripts/setup`; its
/// absence fails the test rather than skipping it.
pub fn ffmpeg_round_trip(
    frames: &[VideoFrame],
    fps: f64,
    args: &[&str],
    ext: &str,
) -> Vec<VideoFrame> {
    // Unique per call: tests of one binary run in parallel, often with the same options. A
    // file in the temp dir itself, removed after: no directory to share or clean up.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!(
        "hallmark-wm-{}-rt-{call}-{}.{ext}",
        std::process::id(),
        args.join("_").replace(['/', ':', '='], "-")
    ));
    ffmpeg_encode(frames, fps, args, &out);
    let v = decode(&out, usize::MAX);
    let _ = std::fs::remove_file(&out);
    v
}

/// Runs the ffmpeg CLI with `args` (after `-nostdin -y -v error`); a failure fails the test.
pub fn ffmpeg_cli(args: &[&str]) {
    let st = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .status()
        .expect("ffmpeg CLI (installed by scripts/setup)");
    assert!(st.success(), "ffmpeg {args:?}");
}

/// Feeds `frames` (Yuv420p) as raw video at `fps` to the ffmpeg CLI with the output options
/// `args`, writing `out`.
pub fn ffmpeg_encode(frames: &[VideoFrame], fps: f64, args: &[&str], out: &Path) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let (w, h) = (frames[0].width, frames[0].height);
    let mut child = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
        ])
        .arg(format!("{w}x{h}"))
        .args(["-r", &fps.to_string(), "-i", "-"])
        .args(args)
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg CLI (installed by scripts/setup)");
    {
        let stdin = child.stdin.as_mut().expect("ffmpeg stdin");
        for f in frames {
            for p in &f.planes {
                stdin.write_all(p).expect("feeding ffmpeg");
            }
        }
    }
    let st = child.wait().expect("ffmpeg exit status");
    assert!(st.success(), "ffmpeg failed for {args:?}");
}

/// `frames` marked with `k` and its [`payload`] at the default strength.
pub fn mark(frames: &[VideoFrame], k: &WatermarkKey) -> Vec<VideoFrame> {
    let mut emb = VideoEmbedder::new(k, payload(k), DEFAULT_STRENGTH);
    frames
        .iter()
        .map(|f| {
            let mut m = f.clone();
            emb.embed(&mut m);
            m
        })
        .collect()
}
