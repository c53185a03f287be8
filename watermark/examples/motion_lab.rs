//! Lab (not the product; scripts/lab-riding-mark runs it): does a mark that rides the
//! content's global motion cost fewer bytes, and can a detector that follows the same motion
//! find it? See watermark/README.md, "A mark that rides the camera".
//!
//!   motion_lab embed  W H static|moving  < raw yuv420p > raw yuv420p
//!   motion_lab detect W H static|track   < raw yuv420p      (prints p, z, payload)
//!   motion_lab track  W H -              < raw yuv420p      (the tracker's cost a frame)
//!
//! Environment: FPS (30); LAB_ZOOM (track zoom as well as translation); LAB_ANCHOR=N (the
//! mark back at rest every N frames, both sides); LAB_ANCHOR_OFFSET=K (detect: the clip's
//! first frame was frame K of a stretch); LAB_VERBOSE (embed: the motion per frame on
//! stderr); LAB_POS=LOG (detect: that log's motion instead of the tracker's); LAB_NO_LK
//! (phase correlation alone, no Gauss-Newton refinement); LAB_EXPLAIN=R (ride a frame's
//! motion only when its prediction error is below R × that of no motion; off by default, as
//! in the README's table); LAB_GENTLE=F (ride only motion of at most F × the frame's height
//! and 0.5 % of zoom a frame; off by default); LAB_ROWS=R (the tracking grid's rows, a power
//! of two, 256); LAB_GN=K (Gauss-Newton passes at most, 8).
use std::io::{Read, Write};

use hallmark_media::{PixelLayout, VideoFrame};
use hallmark_watermark::{AnalysisGrid, Payload, VideoDetector, VideoEmbedder, WatermarkKey};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

const CUT_PEAK: f32 = 0.03;

struct Tracker {
    grid: AnalysisGrid,
    win: Vec<f32>,
    fwd: std::sync::Arc<dyn Fft<f32>>,
    inv: std::sync::Arc<dyn Fft<f32>>,
    prev: Option<Vec<Complex32>>,
    prev_grid: Vec<f32>,
    /// Accumulated content motion, frame pixels: x' = c + zoom (x − c) + pos.
    pos: (f64, f64),
    zoom: f64,
    /// The last frame's prediction error under its motion over that under none.
    explained: f64,
    px_per_cell: f64,
    /// Rows of the tracking grid and of the phase correlation's square (a power of two).
    n: usize,
    /// The settings, read once (see the module's documentation).
    zoom_on: bool,
    refine_on: bool,
    passes: usize,
    explain: f64,
    gentle: f64,
}

/// `name`'s value parsed, or `default` when unset or unparsable.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Tracker {
    fn new(w: usize, h: usize) -> Tracker {
        let n = Some(setting("LAB_ROWS", 256usize))
            .filter(|v| v.is_power_of_two() && *v >= 32)
            .unwrap_or(256);
        let grid = AnalysisGrid::with_rows(w, h, n);
        let mut p = FftPlanner::new();
        let hann: Vec<f32> = (0..n)
            .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * (i as f32 + 0.5) / n as f32).cos())
            .collect();
        let win = (0..n * n).map(|i| hann[i / n] * hann[i % n]).collect();
        Tracker {
            grid,
            win,
            fwd: p.plan_fft_forward(n),
            inv: p.plan_fft_inverse(n),
            prev: None,
            prev_grid: Vec::new(),
            pos: (0.0, 0.0),
            zoom: 1.0,
            explained: 1.0,
            px_per_cell: h as f64 / n as f64,
            n,
            zoom_on: std::env::var_os("LAB_ZOOM").is_some(),
            refine_on: std::env::var_os("LAB_NO_LK").is_none(),
            passes: setting("LAB_GN", 8),
            explain: setting("LAB_EXPLAIN", 0.0),
            gentle: setting("LAB_GENTLE", 0.0),
        }
    }

    fn fft2(&self, x: &mut [Complex32], inverse: bool) {
        let n = self.n;
        let f = if inverse { &self.inv } else { &self.fwd };
        for row in x.chunks_exact_mut(n) {
            f.process(row);
        }
        let mut col = vec![Complex32::default(); n];
        for c in 0..n {
            for r in 0..n {
                col[r] = x[r * n + c];
            }
            f.process(&mut col);
            for r in 0..n {
                x[r * n + c] = col[r];
            }
        }
    }

    /// Feeds the next frame's luma; returns (motion since the previous frame in frame
    /// pixels, peak, cut).
    fn next(&mut self, y: &[u8]) -> ((f64, f64), f32, bool) {
        let n = self.n;
        let g = self.grid.downscale(y);
        let (wa, ha) = self.grid.grid_size();
        let (x0, y0) = (wa.saturating_sub(n) / 2, ha.saturating_sub(n) / 2);
        let mut a = vec![Complex32::default(); n * n];
        let mut mean = 0f32;
        let mut cnt = 0f32;
        for r in 0..n.min(ha) {
            for c in 0..n.min(wa) {
                mean += g[(y0 + r) * wa + x0 + c];
                cnt += 1.0;
            }
        }
        mean /= cnt.max(1.0);
        for r in 0..n.min(ha) {
            for c in 0..n.min(wa) {
                a[r * n + c] = Complex32::new(
                    (g[(y0 + r) * wa + x0 + c] - mean) * self.win[r * n + c],
                    0.0,
                );
            }
        }
        self.fft2(&mut a, false);
        let Some(prev) = self.prev.take() else {
            self.prev = Some(a);
            self.prev_grid = g;
            return ((0.0, 0.0), 1.0, false);
        };
        let mut x: Vec<Complex32> = a
            .iter()
            .zip(&prev)
            .map(|(f, p)| {
                let c = f * p.conj();
                let m = c.norm();
                if m > 1e-9 {
                    c / m
                } else {
                    Complex32::default()
                }
            })
            .collect();
        self.prev = Some(a);
        self.fft2(&mut x, true);
        let v: Vec<f32> = x.iter().map(|c| c.re / (n * n) as f32).collect();
        let (mut bi, mut bv) = (0, f32::MIN);
        for (i, &s) in v.iter().enumerate() {
            if s > bv {
                bv = s;
                bi = i;
            }
        }
        let (pr, pc) = (bi / n, bi % n);
        let at = |r: isize, c: isize| {
            v[(r.rem_euclid(n as isize) as usize) * n + c.rem_euclid(n as isize) as usize]
        };
        let sub = |m: f32, c: f32, p: f32| {
            let d = m - 2.0 * c + p;
            if d < 0.0 {
                (0.5 * (m - p) / d) as f64
            } else {
                0.0
            }
        };
        let (pr_i, pc_i) = (pr as isize, pc as isize);
        let dy = sub(at(pr_i - 1, pc_i), bv, at(pr_i + 1, pc_i));
        let dx = sub(at(pr_i, pc_i - 1), bv, at(pr_i, pc_i + 1));
        let wrap = |i: usize| {
            if i > n / 2 {
                i as f64 - n as f64
            } else {
                i as f64
            }
        };
        // Peak at s: this frame is the previous one moved by s.
        let mut s = (wrap(pc) + dx, wrap(pr) + dy);
        let mut a = 1.0;
        let prev_grid = &self.prev_grid;
        if self.refine_on && bv >= CUT_PEAK {
            (a, s) = refine(prev_grid, &g, wa, ha, s, self.zoom_on, self.passes);
        }
        // Ride only a motion that explains the frame: the prediction error under it well
        // below the error of no motion (several layers moving apart, a flat picture, a
        // diverged fit: the mark stays put).
        let explained = prediction_error(prev_grid, &g, wa, ha, a, s)
            / prediction_error(prev_grid, &g, wa, ha, 1.0, (0.0, 0.0)).max(1e-9);
        self.explained = explained;
        self.prev_grid = g;
        // A motion too small to change the prediction error much (under half a cell and
        // 0.2 % of zoom a frame: a slow push-in) is ridden whatever it explains.
        let tiny = s.0.hypot(s.1) < 0.5 && (a - 1.0).abs() < 0.002;
        if self.explain > 0.0
            && bv >= CUT_PEAK
            && !tiny
            && (explained.is_nan() || explained >= self.explain)
        {
            (a, s) = (1.0, (0.0, 0.0));
        }
        // Ride only gentle motion: at most this fraction of the frame's height a frame, and
        // a zoom of at most half a percent a frame (a camera move, not a bus passing under
        // the lens).
        if self.gentle > 0.0
            && (s.0.hypot(s.1) > self.gentle * ha as f64 || (a - 1.0).abs() > 0.005)
        {
            (a, s) = (1.0, (0.0, 0.0));
        }
        let s = (s.0 * self.px_per_cell, s.1 * self.px_per_cell);
        let cut = bv < CUT_PEAK;
        if cut {
            self.pos = (0.0, 0.0);
            self.zoom = 1.0;
        } else {
            // Compose: this frame's motion after the accumulated one.
            self.pos = (a * self.pos.0 + s.0, a * self.pos.1 + s.1);
            self.zoom *= a;
        }
        (s, bv, cut)
    }
}

fn read_frame(r: &mut impl Read, w: usize, h: usize, pts: f64) -> Option<VideoFrame> {
    let mut f = VideoFrame::black(w as u32, h as u32, PixelLayout::Yuv420p, pts);
    for p in f.planes.iter_mut() {
        if r.read_exact(p).is_err() {
            return None;
        }
    }
    Some(f)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: motion_lab embed W H static|moving | detect W H static|track (raw yuv420p on stdin)";
    let size = |i: usize| {
        args.get(i)
            .and_then(|a| a.parse::<usize>().ok())
            .filter(|&v| v >= 16)
    };
    let (Some(w), Some(h), Some(mode)) = (size(2), size(3), args.get(4).map(String::as_str)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let fps: f64 = setting("FPS", 30.0);
    let key = WatermarkKey::from_secret([7; 32], 1);
    let payload = Payload {
        clip_id: 0x1234_5678_9abc_def0,
        key_id: 1,
    };
    let mut stdin = std::io::stdin().lock();
    let mut tracker = Tracker::new(w, h);
    let verbose = std::env::var_os("LAB_VERBOSE").is_some();
    // Anchors: the mark is back at rest every this many frames (both sides know when).
    let anchor: usize = setting("LAB_ANCHOR", 0);
    match args[1].as_str() {
        "embed" => {
            let mut emb = VideoEmbedder::new(&key, payload, 0.0);
            let mut out = std::io::stdout().lock();
            let mut i = 0usize;
            while let Some(mut f) = read_frame(&mut stdin, w, h, i as f64 / fps) {
                let (s, peak, cut) = tracker.next(&f.planes[0]);
                if anchor > 0 && i.is_multiple_of(anchor) {
                    tracker.pos = (0.0, 0.0);
                    tracker.zoom = 1.0;
                }
                if verbose {
                    eprintln!(
                        "{i} s=({:.2},{:.2}) pos=({:.1},{:.1}) zoom {:.5} peak {peak:.3} explained {:.3}{}",
                        s.0,
                        s.1,
                        tracker.pos.0,
                        tracker.pos.1,
                        tracker.zoom,
                        tracker.explained,
                        if cut { " CUT" } else { "" }
                    );
                }
                if mode == "moving" {
                    emb.embed_warped(&mut f, tracker.zoom, tracker.pos);
                } else {
                    emb.embed(&mut f);
                }
                for p in &f.planes {
                    out.write_all(p).unwrap();
                }
                i += 1;
            }
        }
        "detect" => {
            let mut det = VideoDetector::new(&[key]);
            let grid = AnalysisGrid::new(w, h);
            let (wa, ha) = grid.grid_size();
            let mut i = 0;
            let mut cuts = 0;
            // Where the sealed clip's anchors fall in this one (an excerpt's first frame
            // was frame `anchor_offset` of a stretch).
            let anchor_offset: usize = setting("LAB_ANCHOR_OFFSET", 0);
            // Oracle: the embedder's motion (its LAB_VERBOSE log) instead of the tracker's.
            let oracle: Option<Vec<(f64, (f64, f64))>> = std::env::var("LAB_POS").ok().map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| {
                        let p = l.split("pos=(").nth(1).unwrap();
                        let (p, rest) = p.split_once(')').unwrap();
                        let mut it = p.split(',').map(|v| v.parse::<f64>().unwrap());
                        let zoom = rest.split_whitespace().nth(1).unwrap().parse().unwrap();
                        (zoom, (it.next().unwrap(), it.next().unwrap()))
                    })
                    .collect()
            });
            while let Some(fr) = read_frame(&mut stdin, w, h, i as f64 / fps) {
                let (_, _, cut) = tracker.next(&fr.planes[0]);
                if anchor > 0 && (i + anchor_offset).is_multiple_of(anchor) {
                    tracker.pos = (0.0, 0.0);
                    tracker.zoom = 1.0;
                }
                cuts += cut as usize;
                let (zoom, pos) = oracle
                    .as_ref()
                    .map_or((tracker.zoom, tracker.pos), |o| o[i]);
                let r = if mode == "track" {
                    grid.residual(&warped_luma(&fr.planes[0], w, h, zoom, pos))
                } else {
                    grid.residual(&fr.planes[0])
                };
                det.add_residual(&r, wa, ha, fr.pts_s);
                i += 1;
            }
            let d = det.result();
            println!(
                "frames {i} cuts {cuts} p {:.2e} z {:.2} payload {} wide {} scale {:?}",
                d.p_value,
                d.score,
                d.payload.map_or("none".into(), |p| if p == payload {
                    "exact".to_string()
                } else {
                    "WRONG".into()
                }),
                d.wide_search,
                d.scale
            );
        }
        "track" => {
            // The tracker alone, and the full-resolution warp back, timed per frame.
            let (mut tracking, mut warping, mut n) = (0f64, 0f64, 0usize);
            while let Some(fr) = read_frame(&mut stdin, w, h, n as f64 / fps) {
                let t = std::time::Instant::now();
                tracker.next(&fr.planes[0]);
                tracking += t.elapsed().as_secs_f64();
                let t = std::time::Instant::now();
                std::hint::black_box(warped_luma(&fr.planes[0], w, h, tracker.zoom, tracker.pos));
                warping += t.elapsed().as_secs_f64();
                n += 1;
            }
            let per = |s: f64| 1e3 * s / n.max(1) as f64;
            println!(
                "frames {n}: tracking {:.2} ms a frame, warp back {:.2} ms a frame",
                per(tracking),
                per(warping)
            );
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

/// Gauss-Newton refinement of the content's motion from `prev` to `cur` (grid cells):
/// `x' = c + a (x − c) + t`, `a` fixed at 1 unless `zoom`; starts from translation `d`.
/// Returns `(a, t)`.
fn refine(
    prev: &[f32],
    cur: &[f32],
    w: usize,
    h: usize,
    d: (f64, f64),
    zoom: bool,
    passes: usize,
) -> (f64, (f64, f64)) {
    let sample = |x: f64, y: f64| -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (ax, ay) = ((x - x0) as f32, (y - y0) as f32);
        let (i, j) = (x0 as usize, y0 as usize);
        let p = |r: usize, c: usize| prev[r * w + c];
        let top = p(j, i) * (1.0 - ax) + p(j, i + 1) * ax;
        let bot = p(j + 1, i) * (1.0 - ax) + p(j + 1, i + 1) * ax;
        top * (1.0 - ay) + bot * ay
    };
    // The grid's centre is the frame's centre.
    let (cx, cy) = (w as f64 / 2.0 - 0.5, h as f64 / 2.0 - 0.5);
    // Inverse map: q = c + b (x − c) + u.
    let (mut b, mut u) = (1.0f64, (-d.0, -d.1));
    let m = 4.0;
    for _ in 0..passes {
        let mut ata = [[0f64; 3]; 3];
        let mut atb = [0f64; 3];
        for y in 1..h - 1 {
            let qy = cy + b * (y as f64 - cy) + u.1;
            if qy < m || qy > h as f64 - 1.0 - m {
                continue;
            }
            for x in 1..w - 1 {
                let qx = cx + b * (x as f64 - cx) + u.0;
                if qx < m || qx > w as f64 - 1.0 - m {
                    continue;
                }
                let v = sample(qx, qy);
                let gx = 0.5 * (sample(qx + 1.0, qy) - sample(qx - 1.0, qy)) as f64;
                let gy = 0.5 * (sample(qx, qy + 1.0) - sample(qx, qy - 1.0)) as f64;
                let e = (cur[y * w + x] - v) as f64;
                // cur − prev(q + δq) ≈ e − g·δq, δq = (x − c) δb + δu.
                let j = [gx * (x as f64 - cx) + gy * (y as f64 - cy), gx, gy];
                for r in 0..3 {
                    for c in 0..3 {
                        ata[r][c] += j[r] * j[c];
                    }
                    atb[r] += j[r] * e;
                }
            }
        }
        // Solve ata δ = atb for δ = (δb, δu); without zoom δb = 0.
        let delta = if zoom {
            solve3(ata, atb)
        } else {
            let det = ata[1][1] * ata[2][2] - ata[1][2] * ata[2][1];
            (det.abs() >= 1e-9).then(|| {
                [
                    0.0,
                    (ata[2][2] * atb[1] - ata[1][2] * atb[2]) / det,
                    (ata[1][1] * atb[2] - ata[2][1] * atb[1]) / det,
                ]
            })
        };
        let Some(delta) = delta else { break };
        b += delta[0];
        u = (u.0 + delta[1], u.1 + delta[2]);
        if delta[0].abs() * w as f64 + delta[1].abs() + delta[2].abs() < 1e-4 {
            break;
        }
    }
    // Forward: x' = c + (q − c − u) / b.
    let a = 1.0 / b;
    (a, (-u.0 * a, -u.1 * a))
}

/// Mean squared error of `cur(x)` against `prev(c + (x − c − t)/a)` (grid cells) over the
/// middle of the frame (a fifth off each side, so that both motions are judged on the same
/// pixels and nothing falls outside).
fn prediction_error(prev: &[f32], cur: &[f32], w: usize, h: usize, a: f64, t: (f64, f64)) -> f64 {
    let (cx, cy) = (w as f64 / 2.0 - 0.5, h as f64 / 2.0 - 0.5);
    let (mut sum, mut n) = (0f64, 0usize);
    for y in h / 5..h - h / 5 {
        let qy = (cy + (y as f64 - cy - t.1) / a).clamp(0.0, h as f64 - 1.001);
        let (y0, fy) = (qy.floor() as usize, qy - qy.floor());
        for x in w / 5..w - w / 5 {
            let qx = (cx + (x as f64 - cx - t.0) / a).clamp(0.0, w as f64 - 1.001);
            let (x0, fx) = (qx.floor() as usize, qx - qx.floor());
            let p = |r: usize, c: usize| f64::from(prev[r.min(h - 1) * w + c.min(w - 1)]);
            let top = p(y0, x0) * (1.0 - fx) + p(y0, x0 + 1) * fx;
            let bot = p(y0 + 1, x0) * (1.0 - fx) + p(y0 + 1, x0 + 1) * fx;
            let e = f64::from(cur[y * w + x]) - (top * (1.0 - fy) + bot * fy);
            sum += e * e;
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// Cramer's rule.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut out = [0f64; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut m = a;
        for r in 0..3 {
            m[r][k] = b[r];
        }
        *o = det(m) / d;
    }
    Some(out)
}

/// `a(x) = y(x + round(d))`, edges replicated.
fn shifted_luma(y: &[u8], w: usize, h: usize, d: (f64, f64)) -> Vec<u8> {
    let (dx, dy) = (d.0.round() as isize, d.1.round() as isize);
    let mut out = vec![0u8; w * h];
    for r in 0..h as isize {
        let sr = (r + dy).clamp(0, h as isize - 1) as usize;
        let src = &y[sr * w..][..w];
        let dst = &mut out[r as usize * w..][..w];
        for (c, o) in dst.iter_mut().enumerate() {
            *o = src[(c as isize + dx).clamp(0, w as isize - 1) as usize];
        }
    }
    out
}

/// `a(x) = y(c + zoom (x − c) + d)`, bilinear, edges clamped; integer copy when `zoom` is 1.
fn warped_luma(y: &[u8], w: usize, h: usize, zoom: f64, d: (f64, f64)) -> Vec<u8> {
    if zoom == 1.0 {
        return shifted_luma(y, w, h, d);
    }
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let mut out = vec![0u8; w * h];
    for r in 0..h {
        let sy = (cy + zoom * (r as f64 + 0.5 - cy) + d.1 - 0.5).clamp(0.0, h as f64 - 1.001);
        let (y0, fy) = (sy.floor() as usize, (sy - sy.floor()) as f32);
        let y1 = (y0 + 1).min(h - 1);
        for c in 0..w {
            let sx = (cx + zoom * (c as f64 + 0.5 - cx) + d.0 - 0.5).clamp(0.0, w as f64 - 1.001);
            let (x0, fx) = (sx.floor() as usize, (sx - sx.floor()) as f32);
            let x1 = (x0 + 1).min(w - 1);
            let p = |r: usize, c: usize| f32::from(y[r * w + c]);
            let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
            let bot = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
            out[r * w + c] = (top * (1.0 - fy) + bot * fy + 0.5) as u8;
        }
    }
    out
}
