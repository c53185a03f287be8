//! Lab (session 33, not the product): the mark's sign turned over in time, s_t = ±1 in
//! blocks of B frames, and the detector's residuals weighted by the same s_t (less their
//! mean, so that a static picture cancels exactly) before the plain detector's search.
//! watermark/README.md, "A mark that turns over in time"; driven by scripts/lab-turnover.
//!   embed W H B SEED < raw yuv420p > raw yuv420p   (B = 0: the mark as sealed today)
//!   detect W H B SEED < raw yuv420p                 (prints z and p; B = 0: the plain sum)
//! Environment: STRENGTH (the embedder's, default DEFAULT_STRENGTH), RAMP (frames over
//! which a turn is spread, default 0), OFFSET (detect: the copy's first frame is the
//! sealed clip's frame OFFSET, i.e. the schedule's phase), ZM=0 (detect: the signed sum
//! without its mean removed). The key is [SEED; 32], the riding mark off.
use hallmark_media::{PixelLayout, VideoFrame};
use hallmark_watermark::{AnalysisGrid, Payload, VideoDetector, VideoEmbedder, WatermarkKey};
use std::io::{Read, Write};

/// A numeric setting from the environment, `default` when unset or unreadable.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The schedule: blocks of `b` frames, + then −, the change spread over `ramp` frames
/// (a half cosine centred on each block boundary); b = 0: always +.
fn sign(i: usize, b: usize, ramp: usize) -> f32 {
    if b == 0 {
        return 1.0;
    }
    let block = |k: usize| {
        if (k / b).is_multiple_of(2) {
            1.0f32
        } else {
            -1.0
        }
    };
    if ramp == 0 {
        return block(i);
    }
    // Distance (in frames, from the frame's centre) to the nearest boundary after block 0.
    let pos = i as f32 + 0.5;
    let k = ((pos / b as f32).round() as usize).max(1);
    let edge = (k * b) as f32;
    let d = pos - edge;
    let half = ramp as f32 / 2.0;
    if d.abs() >= half {
        return block(i);
    }
    let before = block(k * b - 1);
    let after = -before;
    let t = (d + half) / ramp as f32; // 0 → 1 across the ramp
    let c = 0.5 - 0.5 * (std::f32::consts::PI * t).cos();
    before + (after - before) * c
}

/// The detector's weight for each of `n` frames read at phase `off`: the schedule's sign,
/// less its mean over the frames when `zero_mean` (a picture that holds still cancels).
fn weights(n: usize, b: usize, ramp: usize, off: usize, zero_mean: bool) -> Vec<f32> {
    let s: Vec<f32> = (0..n).map(|k| sign(k + off, b, ramp)).collect();
    let mean = if b > 0 && zero_mean && n > 0 {
        s.iter().sum::<f32>() / n as f32
    } else {
        0.0
    };
    s.into_iter().map(|v| v - mean).collect()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let number = |i: usize| a.get(i).and_then(|v| v.parse::<usize>().ok());
    let (Some(w), Some(h), Some(b), Some(seed)) = (number(2), number(3), number(4), number(5))
    else {
        eprintln!("usage: modulation_lab embed|detect WIDTH HEIGHT B SEED < raw yuv420p");
        std::process::exit(2);
    };
    let seed = seed as u8;
    let key = WatermarkKey::from_secret([seed; 32], 1);
    let payload = Payload {
        clip_id: 0x1234_5678_9abc_def0 ^ seed as u64,
        key_id: 1,
    };
    let n = w * h + 2 * w.div_ceil(2) * h.div_ceil(2);
    let mut buf = vec![0u8; n];
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut i = 0usize;
    let ramp: usize = setting("RAMP", 0);
    if a[1] == "embed" {
        let strength: f32 = setting("STRENGTH", 0.0);
        let mut emb = VideoEmbedder::new(&key, payload, strength)
            .riding(false)
            .turning(false);
        while input.read_exact(&mut buf).is_ok() {
            let c = w.div_ceil(2) * h.div_ceil(2);
            let mut f = VideoFrame {
                width: w as u32,
                height: h as u32,
                layout: PixelLayout::Yuv420p,
                planes: vec![
                    buf[..w * h].to_vec(),
                    buf[w * h..w * h + c].to_vec(),
                    buf[w * h + c..].to_vec(),
                ],
                pts_s: i as f64 / 30.0,
            };
            emb.embed(&mut f);
            let s = sign(i, b, ramp);
            for (o, m) in buf[..w * h].iter_mut().zip(&f.planes[0]) {
                let d = *m as i32 - *o as i32;
                *o = (*o as f32 + s * d as f32).round().clamp(0.0, 255.0) as u8;
            }
            out.write_all(&buf).unwrap();
            i += 1;
        }
    } else {
        let mut det = VideoDetector::new(&[key]);
        let grid = AnalysisGrid::new(w, h);
        let (wa, ha) = grid.grid_size();
        let mut all = Vec::new();
        while input.read_exact(&mut buf).is_ok() {
            all.push(grid.residual(&buf[..w * h]));
            i += 1;
        }
        // OFFSET: the copy's first frame is the sealed clip's frame OFFSET (a trim); ZM=0:
        // the signed sum as it is (the static host cancels only as far as the signs balance).
        let mut off: usize = setting("OFFSET", 0);
        // PHASE=auto: the phase read from the picture alone, without the key: the weighted
        // sum's energy per unit weight is largest where the weights follow the turns.
        if b > 0 && std::env::var("PHASE").is_ok_and(|v| v == "auto") {
            let mut best = (f64::MIN, 0usize);
            let mut line = String::new();
            for phi in (0..2 * b).step_by(8) {
                let mut d = vec![0f64; wa * ha];
                let mut ww = 0f64;
                for (r, &s) in all.iter().zip(&weights(i, b, ramp, phi, true)) {
                    let s = f64::from(s);
                    ww += s * s;
                    for (x, v) in d.iter_mut().zip(r) {
                        *x += s * *v as f64;
                    }
                }
                let e = d.iter().map(|x| x * x).sum::<f64>() / ww.max(1e-9);
                line += &format!(" {phi}:{:.0}", e);
                if e > best.0 {
                    best = (e, phi);
                }
            }
            eprintln!("phase energies{line} → {}", best.1);
            off = best.1;
        }
        let zm = std::env::var("ZM").map(|v| v != "0").unwrap_or(true);
        for (k, (r, &s)) in all.iter().zip(&weights(i, b, ramp, off, zm)).enumerate() {
            let r: Vec<f32> = r.iter().map(|v| v * s).collect();
            det.add_residual_of_frame(&r, (wa, ha), (w, h), k as f64 / 30.0);
        }
        let r = det.result();
        println!(
            "frames {i} z {:.2} p {:.3e} detected {} payload {}",
            r.score,
            r.p_value,
            r.detected,
            r.payload.map(|p| p == payload).unwrap_or(false)
        );
    }
}
