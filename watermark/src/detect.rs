//! Detection: accumulate whitened residuals, register by scale search + FFT shift search,
//! compute a family-wise p-value from the sync pattern alone, then decode the payload.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::analysis::{AnalysisGrid, KeyPattern, ANALYSIS_ROWS, MAX_GRID_ASPECT, TILE};
use crate::code;
use crate::fft::{Fft, C};
use crate::key::{Payload, WatermarkKey};
use hallmark_media::{PixelLayout, VideoFrame};

/// p-value at or below which a watermark is reported as present.
pub const DETECT_P: f64 = 1e-6;
/// p-values in `(DETECT_P, INCONCLUSIVE_P)` are reported as inconclusive.
pub const INCONCLUSIVE_P: f64 = 0.01;
/// Smallest and largest scale (original chip size / observed chip size, on the analysis
/// grid) searched. 0.866 is a crop to 75 % of the area, 0.707 a crop to half the area.
pub const SCALE_MIN: f64 = 0.65;
pub const SCALE_MAX: f64 = 1.25;
/// Most timeline bins a detector keeps (per analysis-grid size; memory: one analysis-grid
/// image per bin, ≈ 117 kB at 16:9, so ≤ 60 MB). Bins are one second wide until a frame falls
/// past the last of them; then neighbouring bins are merged in pairs (2 s, 4 s, …) as often
/// as needed, so the bins always cover the whole clip ([`VideoDetection::timeline_bin_s`]).
pub const MAX_TIMELINE_BINS: usize = 512;
/// The longest clip (seconds) whose timeline bins are one second wide: longer clips get wider
/// bins, never a shorter timeline.
pub const MAX_TIMELINE_SECONDS: usize = MAX_TIMELINE_BINS;

/// Longest image side the scale grid is made fine enough for ([`scale_grid`]): the widest
/// analysis grid, so at most ≈ 340 scales are searched whatever the frame's shape.
const MAX_SEARCH_LEN: usize = MAX_GRID_ASPECT * ANALYSIS_ROWS;
/// Most analysis-grid sizes whose running sums a detector keeps at once (a file whose frames
/// change size keeps one set of sums per size, each up to `MAX_TIMELINE_BINS + 1` analysis
/// images): a further size replaces the one with the fewest frames, so a file cannot grow
/// the detector's memory by changing its frame size over and over.
pub const MAX_GRID_SIZES: usize = 3;

/// The outcome of [`VideoDetector::result`].
#[derive(Debug, Clone, PartialEq)]
pub struct VideoDetection {
    /// `p_value <= DETECT_P`.
    pub detected: bool,
    /// `DETECT_P < p_value < INCONCLUSIVE_P`.
    pub inconclusive: bool,
    /// Family-wise p-value of the presence test (sync pattern only), corrected for every
    /// key, scale and shift tried. An upper bound under the null (see README).
    pub p_value: f64,
    /// Normalised correlation (z-score) of the best registration.
    pub score: f64,
    /// Decoded payload, if the presence test reached `INCONCLUSIVE_P` and the CRC checks.
    pub payload: Option<Payload>,
    /// Fraction of coded payload bits whose hard decision disagrees with the decoded
    /// codeword (a raw channel bit-error estimate); `None` if no decoding was attempted.
    pub bit_error_estimate: Option<f64>,
    pub frames_analysed: u64,
    /// Per bin of [`VideoDetection::timeline_bin_s`] seconds from the clip's start (bin `i`
    /// is `[i·w, (i+1)·w)`), up to the bin of the last analysed frame: single-test p-value of
    /// the sync correlation at the clip's registration; `None` where no frame was analysed.
    pub timeline: Vec<Option<f64>>,
    /// Width of the timeline's bins in seconds: 1 for clips up to [`MAX_TIMELINE_SECONDS`],
    /// else the power of two that keeps them within [`MAX_TIMELINE_BINS`].
    pub timeline_bin_s: f64,
    /// The tests `p_value` is corrected for on top of the registration search: the whole
    /// clip plus every segment that may be searched ([`segment_windows`]; 1 with
    /// [`VideoDetector::whole_clip_only`]).
    pub family_size: usize,
    /// Key id of the key that matched best (set when `p_value < INCONCLUSIVE_P`).
    pub key_id: Option<u8>,
    /// Which of the keys the detector was given matched best (set with `key_id`): keys that
    /// share a one-byte id are told apart by it, each having been tried.
    pub key_index: Option<usize>,
    /// Registration: scale and cyclic shift (dx, dy) of the best match.
    pub scale: Option<f64>,
    pub shift: Option<(usize, usize)>,
}

/// Running sums of one analysis-grid size.
struct Accum {
    wa: usize,
    ha: usize,
    sum: Vec<f32>,
    frames: u64,
    /// Per timeline bin: the summed residuals and their frame count.
    bins: TimeBins<(Vec<f32>, u64)>,
}

/// Sums of what was added at given times, per time bin. Bins are one second wide until a
/// time falls past the first `max` of them; then neighbouring bins are merged in pairs
/// (2 s, 4 s, …) as often as needed, so the bins always cover everything added and there
/// are never more than `max`. Which bin a value ends in depends only on its time and on the
/// latest time added, not on the order of the additions.
pub(crate) struct TimeBins<V> {
    max: usize,
    width_s: f64,
    bins: BTreeMap<usize, V>,
}

impl<V> TimeBins<V> {
    pub(crate) fn new(max: usize) -> Self {
        TimeBins {
            max: max.max(1),
            width_s: 1.0,
            bins: BTreeMap::new(),
        }
    }

    /// The width of the bins in seconds (a power of two).
    pub(crate) fn width_s(&self) -> f64 {
        self.width_s
    }

    /// The bin holding time `t_s` (seconds; a non-finite or negative time counts as 0), the
    /// bins first widened (pairs merged with `merge`) until it is one of the first `max`.
    pub(crate) fn bin_of(&mut self, t_s: f64, merge: impl Fn(&mut V, V)) -> &mut V
    where
        V: Default,
    {
        let t = if t_s.is_finite() { t_s.max(0.0) } else { 0.0 };
        let index = loop {
            let i = (t / self.width_s).floor();
            if i < self.max as f64 {
                break i as usize;
            }
            self.width_s *= 2.0;
            for (i, v) in std::mem::take(&mut self.bins) {
                match self.bins.entry(i / 2) {
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(v);
                    }
                    std::collections::btree_map::Entry::Occupied(mut e) => merge(e.get_mut(), v),
                }
            }
        };
        self.bins.entry(index).or_default()
    }

    /// Bins from the first to the last one holding anything (0 when empty).
    pub(crate) fn len(&self) -> usize {
        self.bins.last_key_value().map_or(0, |(&i, _)| i + 1)
    }

    pub(crate) fn get(&self, index: usize) -> Option<&V> {
        self.bins.get(&index)
    }

    /// The bins in `[from, to)` that hold anything.
    pub(crate) fn range(&self, from: usize, to: usize) -> impl Iterator<Item = &V> {
        self.bins.range(from..to).map(|(_, v)| v)
    }
}

/// Adds `b` to `a` element by element (`a` empty: takes `b`).
pub(crate) fn add_into(a: &mut Vec<f32>, b: &[f32]) {
    if a.is_empty() {
        a.extend_from_slice(b);
    } else {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

/// Accumulates frames of one clip and tests them against a set of keys.
pub struct VideoDetector {
    keys: Vec<(u8, KeyPattern)>,
    fft: Fft,
    accs: Vec<Accum>,
    /// Analysis grid of the last frame size seen by [`VideoDetector::add_frame`].
    grid: Option<AnalysisGrid>,
    frames: u64,
    frame_step: u64,
    seen: u64,
    /// Test the whole clip only, not also its halves and quarters.
    whole_clip_only: bool,
}

/// The luma plane the detector analyses: the Y plane of a `Yuv420p` frame, or BT.601
/// limited-range luma computed from an `Rgb24` frame; `None` for a malformed frame.
pub fn frame_luma(frame: &VideoFrame) -> Option<Cow<'_, [u8]>> {
    if frame.validate().is_err() {
        return None;
    }
    match frame.layout {
        PixelLayout::Yuv420p => Some(Cow::Borrowed(&frame.planes[0])),
        PixelLayout::Rgb24 => Some(Cow::Owned(
            frame.planes[0]
                .chunks_exact(3)
                .map(|p| {
                    let y = 16.0
                        + (65.481 * p[0] as f32 + 128.553 * p[1] as f32 + 24.966 * p[2] as f32)
                            / 255.0;
                    y.round().clamp(0.0, 255.0) as u8
                })
                .collect(),
        )),
    }
}

/// Sub-chip phases (x, y) of the fold grid, in chips. Phase 0 is searched at every scale;
/// the others refine the best scales (a crop can put chip borders mid-pixel).
const PHASES: [(f64, f64); 4] = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)];
/// Scales (best by phase-0 score) whose neighbourhoods get the phase refinement.
const REFINE_SCALES: usize = 6;

/// Folds an analysis-grid image modulo the tile at scale `s` (about the image centre), with
/// the chip grid offset by `phase` chips.
fn fold(img: &[f32], wa: usize, ha: usize, s: f64, phase: (f64, f64)) -> Vec<f64> {
    let t = TILE as i64;
    let bin = |n: usize, i: usize, ph: f64| -> usize {
        (((i as f64 + 0.5 - n as f64 / 2.0) * s + ph).floor() as i64).rem_euclid(t) as usize
    };
    let bx: Vec<usize> = (0..wa).map(|u| bin(wa, u, phase.0)).collect();
    let mut f = vec![0f64; TILE * TILE];
    for v in 0..ha {
        let by = bin(ha, v, phase.1);
        let row = &mut f[by * TILE..(by + 1) * TILE];
        let mut acc = [0f32; TILE];
        for (&x, &b) in img[v * wa..(v + 1) * wa].iter().zip(&bx) {
            acc[b] += x;
        }
        for (r, a) in row.iter_mut().zip(acc) {
            *r += a as f64;
        }
    }
    f
}

/// z-scores of the sync correlation for every cyclic shift: (best z, best shift index).
///
/// `z_hat` is the FFT of `F + i·F²` (the fold and its square packed into one complex
/// transform); both correlations come back from one inverse transform as `c + i·e`.
fn best_shift(fft: &Fft, z_hat: &[C], key: &KeyPattern, work: &mut Vec<C>) -> (f64, usize) {
    let t = TILE;
    work.clear();
    for ky in 0..t {
        for kx in 0..t {
            let k = ky * t + kx;
            let nk = ((t - ky) % t) * t + (t - kx) % t;
            let (a, b) = (z_hat[k], z_hat[nk]);
            // F̂ = (Z[k] + conj Z[−k]) / 2,  F²̂ = (Z[k] − conj Z[−k]) / 2i.
            let f = C {
                re: (a.re + b.re) / 2.0,
                im: (a.im - b.im) / 2.0,
            };
            let g = C {
                re: (a.im + b.im) / 2.0,
                im: (b.re - a.re) / 2.0,
            };
            let c = key.sync_hat[k].conj_mul(f);
            let e = key.mask_hat[k].conj_mul(g);
            // c + i·e
            work.push(C {
                re: c.re - e.im,
                im: c.im + e.re,
            });
        }
    }
    fft.run2d(work, true);
    // The inverse transform carries a factor n = TILE²; c/√e needs one √n removed.
    let n = (TILE * TILE) as f64;
    let mut best = (f64::NEG_INFINITY, 0);
    for (i, v) in work.iter().enumerate() {
        if v.im > 1e-9 {
            let z = v.re / (v.im * n).sqrt();
            if z > best.0 {
                best = (z, i);
            }
        }
    }
    best
}

/// z of the sync correlation at one given shift (direct sum).
fn z_at(f: &[f64], key: &KeyPattern, shift: usize) -> f64 {
    let (dy, dx) = (shift / TILE, shift % TILE);
    let (mut c, mut e) = (0.0, 0.0);
    for j in 0..TILE * TILE {
        if key.role[j].is_none() {
            let (jy, jx) = (j / TILE, j % TILE);
            let v = f[((jy + dy) % TILE) * TILE + (jx + dx) % TILE];
            c += key.sign[j] as f64 * v;
            e += v * v;
        }
    }
    if e > 1e-9 {
        c / e.sqrt()
    } else {
        0.0
    }
}

/// One-sided Hoeffding bound for a Rademacher sum: P(Z ≥ z) ≤ exp(−z²/2).
fn single_p(z: f64) -> f64 {
    if z <= 0.0 {
        1.0
    } else {
        (-z * z / 2.0).exp()
    }
}

/// The candidate scales for an analysis image whose longer side is `len`: a geometric
/// grid fine enough that the fold drifts by at most ¼ chip at the image border.
pub(crate) fn scale_grid(len: usize) -> Vec<f64> {
    // Grids are at most MAX_GRID_ASPECT·ANALYSIS_ROWS wide (`AnalysisGrid`); a residual
    // handed in from elsewhere never gets a finer (longer) search than that either.
    let step = 1.0 + 1.0 / len.clamp(16, MAX_SEARCH_LEN) as f64;
    let mut v = Vec::new();
    let mut s = SCALE_MIN;
    while s <= SCALE_MAX {
        v.push(s);
        s *= step;
    }
    if !v.iter().any(|&x| (x - 1.0).abs() < 1e-12) {
        v.push(1.0);
    }
    v
}

impl VideoDetector {
    /// A detector for any of `keys`.
    pub fn new(keys: &[WatermarkKey]) -> Self {
        let fft = Fft::new(TILE);
        let keys = keys
            .iter()
            .map(|k| (k.key_id(), KeyPattern::new(k, &fft)))
            .collect();
        VideoDetector {
            keys,
            fft,
            accs: Vec::new(),
            grid: None,
            frames: 0,
            frame_step: 1,
            seen: 0,
            whole_clip_only: false,
        }
    }

    /// Tests the whole clip only, not also its halves and quarters (see
    /// [`VideoDetector::result`]): for a sparse sample of a clip's frames (its key frames)
    /// whose result only decides whether a full scan must follow — the full scan searches
    /// the segments itself. Saves up to six registration searches (clips of 4 s or more)
    /// where the mark is not found.
    pub fn whole_clip_only(mut self) -> Self {
        self.whole_clip_only = true;
        self
    }

    /// Analyse only every `step`-th frame handed to [`VideoDetector::add_frame`] or
    /// [`VideoDetector::add_residual`] (speed).
    pub fn with_frame_step(mut self, step: u64) -> Self {
        self.frame_step = step.max(1);
        self
    }

    /// Counts one handed-in frame; whether the frame step selects it.
    fn take_frame(&mut self) -> bool {
        self.seen += 1;
        (self.seen - 1).is_multiple_of(self.frame_step)
    }

    /// Adds one decoded frame (`Yuv420p` or `Rgb24`; others are ignored).
    pub fn add_frame(&mut self, frame: &VideoFrame) {
        if !self.take_frame() {
            return;
        }
        let Some(y) = frame_luma(frame) else { return };
        let (w, h) = (frame.width as usize, frame.height as usize);
        if self.grid.as_ref().is_none_or(|g| g.frame_size() != (w, h)) {
            self.grid = Some(AnalysisGrid::new(w, h));
        }
        let grid = self.grid.as_ref().expect("grid just set");
        let (wa, ha) = grid.grid_size();
        let r = grid.residual(&y);
        self.accumulate(&r, wa, ha, frame.pts_s);
    }

    /// Adds the detector's pre-filtered analysis image of one frame, computed elsewhere
    /// (the candle model in `hallmark-detector`): `residual` is
    /// [`AnalysisGrid::residual`](crate::AnalysisGrid::residual) of the frame's luma,
    /// row-major `grid_w × grid_h`, and `pts_s` the frame's time in seconds. A residual
    /// whose length is not `grid_w·grid_h`, or that holds a non-finite value, is ignored.
    pub fn add_residual(&mut self, residual: &[f32], grid_w: usize, grid_h: usize, pts_s: f64) {
        if !self.take_frame() {
            return;
        }
        if grid_w == 0
            || grid_h == 0
            || grid_w > MAX_GRID_ASPECT.saturating_mul(grid_h)
            || residual.len() != grid_w * grid_h
            || !residual.iter().all(|v| v.is_finite())
        {
            return;
        }
        self.accumulate(residual, grid_w, grid_h, pts_s);
    }

    /// Adds one frame's residual to the running sums of its grid size.
    fn accumulate(&mut self, r: &[f32], wa: usize, ha: usize, pts_s: f64) {
        let idx = match self.accs.iter().position(|a| a.wa == wa && a.ha == ha) {
            Some(i) => i,
            None => {
                if self.accs.len() >= MAX_GRID_SIZES {
                    // The sums with the fewest frames (the oldest of equals) make room.
                    if let Some(i) = (0..self.accs.len()).min_by_key(|&i| self.accs[i].frames) {
                        self.accs.remove(i);
                    }
                }
                self.accs.push(Accum {
                    wa,
                    ha,
                    sum: vec![0.0; wa * ha],
                    frames: 0,
                    bins: TimeBins::new(MAX_TIMELINE_BINS),
                });
                self.accs.len() - 1
            }
        };
        let acc = &mut self.accs[idx];
        for (s, v) in acc.sum.iter_mut().zip(r) {
            *s += v;
        }
        acc.frames += 1;
        self.frames += 1;
        let bin = acc.bins.bin_of(pts_s, |a, b| {
            add_into(&mut a.0, &b.0);
            a.1 += b.1;
        });
        add_into(&mut bin.0, r);
        bin.1 += 1;
    }

    /// The normalised sync correlation (z) of key `key_index` at one fixed registration,
    /// without any search. Under the null it is a normalised Rademacher sum, so
    /// `P(z ≥ t) ≤ exp(−t²/2)` and it is ≈ N(0,1): the calibration check of the statistic.
    pub fn score_at(&self, key_index: usize, scale: f64, shift: (usize, usize)) -> Option<f64> {
        let acc = self.accs.iter().max_by_key(|a| a.frames)?;
        let (_, key) = self.keys.get(key_index)?;
        let f = fold(&acc.sum, acc.wa, acc.ha, scale, (0.0, 0.0));
        Some(z_at(&f, key, (shift.1 % TILE) * TILE + shift.0 % TILE))
    }

    /// The registration search over one summed residual image: the best (z, key index,
    /// scale index, shift, phase) over every key, scale on `scales`, phase and shift.
    fn search(&self, img: &[f32], wa: usize, ha: usize, scales: &[f64]) -> Registration {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        // Evaluates one (scale, phase): best (z, key index, shift).
        let evaluate = |si: usize, phase: (f64, f64), work: &mut Vec<C>| {
            let f = fold(img, wa, ha, scales[si], phase);
            let mut z_hat: Vec<C> = f.iter().map(|&v| C { re: v, im: v * v }).collect();
            self.fft.run2d(&mut z_hat, false);
            let mut best = (f64::NEG_INFINITY, 0usize, 0usize);
            for (ki, (_, key)) in self.keys.iter().enumerate() {
                let (z, d) = best_shift(&self.fft, &z_hat, key, work);
                if z > best.0 {
                    best = (z, ki, d);
                }
            }
            best
        };
        // Pass 1: phase 0 at every scale. Pass 2: all phases around the best scales.
        // The p-value below counts every (key, scale, phase, shift) of the full grid, so
        // searching only part of it keeps the bound valid.
        let mut per_scale = vec![(f64::NEG_INFINITY, 0usize, 0usize); scales.len()];
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let evaluate = &evaluate;
                    sc.spawn(move || {
                        let mut work = Vec::with_capacity(TILE * TILE);
                        (t..scales.len())
                            .step_by(threads)
                            .map(|si| (si, evaluate(si, PHASES[0], &mut work)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (si, b) in h.join().expect("search thread panicked") {
                    per_scale[si] = b;
                }
            }
        });
        let mut order: Vec<usize> = (0..scales.len()).collect();
        order.sort_by(|a, b| per_scale[*b].0.total_cmp(&per_scale[*a].0));
        let mut refine: Vec<usize> = order
            .iter()
            .take(REFINE_SCALES)
            .flat_map(|&si| [si.saturating_sub(1), si, (si + 1).min(scales.len() - 1)])
            .collect();
        refine.sort_unstable();
        refine.dedup();
        let best0 = order[0];
        // (z, key index, scale index, shift, phase)
        let mut best = (
            per_scale[best0].0,
            per_scale[best0].1,
            best0,
            per_scale[best0].2,
            PHASES[0],
        );
        let jobs: Vec<(usize, (f64, f64))> = refine
            .iter()
            .flat_map(|&si| PHASES.iter().map(move |&ph| (si, ph)))
            .collect();
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (jobs, evaluate) = (&jobs, &evaluate);
                    sc.spawn(move || {
                        let mut work = Vec::with_capacity(TILE * TILE);
                        (t..jobs.len())
                            .step_by(threads)
                            .map(|j| (jobs[j], evaluate(jobs[j].0, jobs[j].1, &mut work)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for ((si, ph), (z, ki, d)) in h.join().expect("search thread panicked") {
                    if z > best.0 {
                        best = (z, ki, si, d, ph);
                    }
                }
            }
        });
        let (z, key, scale, shift, phase) = best;
        Registration {
            z,
            key,
            scale,
            shift,
            phase,
        }
    }

    /// Runs the registration search and the tests on everything added so far.
    pub fn result(&self) -> VideoDetection {
        let empty = VideoDetection {
            detected: false,
            inconclusive: false,
            p_value: 1.0,
            score: 0.0,
            payload: None,
            bit_error_estimate: None,
            frames_analysed: self.frames,
            timeline: Vec::new(),
            timeline_bin_s: 1.0,
            family_size: 1,
            key_id: None,
            key_index: None,
            scale: None,
            shift: None,
        };
        let Some(acc) = self.accs.iter().max_by_key(|a| a.frames) else {
            return empty;
        };
        if self.keys.is_empty() {
            return empty;
        }
        let (wa, ha) = (acc.wa, acc.ha);
        let scales = scale_grid(wa.max(ha));
        // The whole clip first; then, for clips of 4 s or more, segments of it (halves,
        // quarters, … with windows half a segment apart: `segment_windows`), so that foreign
        // footage spliced around a marked stretch cannot drown the mark (each second's
        // content adds to the fold's energy, marked or not). Which segments are tested
        // depends only on the frames' times, never on the key: the family is the Bonferroni
        // union of those tests, and once the whole clip alone proves the mark within it the
        // segments are not searched (reporting family × p_whole, an upper bound).
        let segments: Vec<(usize, usize)> = if self.whole_clip_only {
            Vec::new()
        } else {
            segment_windows(acc.bins.len(), acc.bins.width_s())
                .into_iter()
                .filter(|&(from, to)| {
                    let frames: u64 = acc.bins.range(from, to).map(|b| b.1).sum();
                    frames > 0 && frames < acc.frames
                })
                .collect()
        };
        let family = (1 + segments.len()) as f64;
        let hypotheses = (self.keys.len() * scales.len() * PHASES.len() * TILE * TILE) as f64;
        let p_of = |z: f64| search_p(hypotheses, z);
        let whole = self.search(&acc.sum, wa, ha, &scales);
        let mut best = (whole, Cow::Borrowed(&acc.sum[..]));
        if family * p_of(best.0.z) > DETECT_P {
            for &(from, to) in &segments {
                let mut sum = vec![0.0f32; wa * ha];
                for (img, _) in acc.bins.range(from, to) {
                    add_into(&mut sum, img);
                }
                let found = self.search(&sum, wa, ha, &scales);
                if found.z > best.0.z {
                    best = (found, Cow::Owned(sum));
                }
            }
        }
        let (
            Registration {
                z,
                key: ki,
                scale: si,
                shift: d,
                phase,
            },
            summed,
        ) = best;
        let p_value = (family * p_of(z)).min(1.0);
        let (key_id, key) = (&self.keys[ki].0, &self.keys[ki].1);
        let s = scales[si];

        let mut out = VideoDetection {
            detected: p_value <= DETECT_P,
            inconclusive: p_value > DETECT_P && p_value < INCONCLUSIVE_P,
            p_value,
            score: z,
            frames_analysed: self.frames,
            timeline_bin_s: acc.bins.width_s(),
            family_size: 1 + segments.len(),
            ..empty
        };
        if p_value < INCONCLUSIVE_P {
            out.key_id = Some(*key_id);
            out.key_index = Some(ki);
            out.scale = Some(s);
            out.shift = Some((d % TILE, d / TILE));
            let f = fold(&summed, wa, ha, s, phase);
            let (payload, ber) = decode_payload(&f, key, *key_id, d);
            out.payload = payload;
            out.bit_error_estimate = Some(ber);
        }
        out.timeline = (0..acc.bins.len())
            .map(|i| {
                acc.bins.get(i).map(|(img, _)| {
                    let f = fold(img, wa, ha, s, phase);
                    single_p(z_at(&f, key, d))
                })
            })
            .collect();
        out
    }
}

/// The Bonferroni bound over `hypotheses` tests of a normalised correlation `z` whose null
/// tail is `P(z ≥ t) ≤ exp(−t²/2)` (Hoeffding): `min(1, hypotheses · exp(−z²/2))`.
pub(crate) fn search_p(hypotheses: f64, z: f64) -> f64 {
    if z > 0.0 {
        (hypotheses.ln() - z * z / 2.0).exp().min(1.0)
    } else {
        1.0
    }
}

/// Where the search found the key's pattern best, and how well (z).
struct Registration {
    z: f64,
    key: usize,
    scale: usize,
    shift: usize,
    phase: (f64, f64),
}

/// Clips whose timeline bins span at least this many seconds are also searched in segments
/// (see [`segment_windows`]).
pub const SEGMENTS_FROM_S: usize = 4;
/// No segment is shorter than this (seconds).
pub const MIN_SEGMENT_S: f64 = 1.0;

/// How many levels of segments (halves, quarters, eighths, sixteenths) a clip whose timeline
/// spans `span_s` seconds is searched in: none under [`SEGMENTS_FROM_S`]; down to quarters
/// under 60 s, eighths under 10 min, sixteenths beyond (so a clip's shortest segment is at
/// most a sixteenth of it, and an hour needs at most 57 searches); never a segment shorter
/// than [`MIN_SEGMENT_S`].
pub fn segment_levels(span_s: f64) -> u32 {
    if span_s.is_nan() || span_s < SEGMENTS_FROM_S as f64 {
        return 0;
    }
    let cap = if span_s < 60.0 {
        2
    } else if span_s < 600.0 {
        3
    } else {
        4
    };
    let fit = (span_s / MIN_SEGMENT_S).log2().floor().min(64.0) as u32;
    cap.min(fit)
}

/// The segments a clip of `bins` timeline bins of `bin_s` seconds is searched in when the
/// whole clip does not prove the mark, as ranges `[from, to)` of bin indices: at each level
/// `ℓ` of [`segment_levels`], windows of `bins/2^ℓ` bins every half window (the halves and
/// the middle half, the quarters and the three between them, …: `2^(ℓ+1) − 1` windows), so
/// that a marked stretch of up to half a window lies wholly inside one window of that level
/// wherever it is. Windows that are empty or the whole clip are left out, as are repeats.
/// Depends only on the timeline's extent (the frames' times), never on a key: at most 3, 10,
/// 25 or 56 windows for 1 to 4 levels.
pub fn segment_windows(bins: usize, bin_s: f64) -> Vec<(usize, usize)> {
    let levels = segment_levels(bins as f64 * bin_s);
    let mut out: Vec<(usize, usize)> = Vec::new();
    for level in 1..=levels {
        let steps = 1usize << (level + 1);
        for i in 0..steps - 1 {
            let (from, to) = (i * bins / steps, (i + 2) * bins / steps);
            if to > from && (from, to) != (0, bins) && !out.contains(&(from, to)) {
                out.push((from, to));
            }
        }
    }
    out
}

/// Soft payload decoding at a registration: per coded bit the correlation of its chips
/// with their signs, then Viterbi and CRC. The plain correlation is the maximum-likelihood
/// metric when the chips' noise is alike (normalising each bit by its own energy, as
/// before, shrank the most reliable bits: a 3 s crop + CRF 30 + darker copy decoded at
/// coded BER 0.138 this way and not at 0.149 that way). Returns the payload (if the CRC
/// checks, list-decoded: `code::decode`) and the raw coded-bit error estimate.
fn decode_payload(f: &[f64], key: &KeyPattern, key_id: u8, shift: usize) -> (Option<Payload>, f64) {
    let (dy, dx) = (shift / TILE, shift % TILE);
    let mut soft = vec![0f64; code::CODED_BITS];
    for j in 0..TILE * TILE {
        if let Some(k) = key.role[j] {
            let (jy, jx) = (j / TILE, j % TILE);
            let v = f[((jy + dy) % TILE) * TILE + (jx + dx) % TILE];
            soft[k as usize] += key.sign[j] as f64 * v;
        }
    }
    code::decode(&soft, key_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_windows_cover_every_short_stretch_and_depend_on_the_length_only() {
        // Below 4 s nothing; then at most 3 + 7 (+ 15 (+ 31)) windows by length.
        assert!(segment_windows(3, 1.0).is_empty());
        assert_eq!(segment_windows(4, 1.0).len(), 7);
        assert_eq!(segment_windows(59, 1.0).len(), 10);
        assert_eq!(segment_windows(420, 1.0).len(), 25);
        assert_eq!(segment_windows(450, 8.0).len(), 56);
        for (bins, bin_s) in [
            (4, 1.0),
            (5, 1.0),
            (59, 1.0),
            (61, 1.0),
            (420, 1.0),
            (450, 8.0),
        ] {
            let windows = segment_windows(bins, bin_s);
            assert!(windows
                .iter()
                .all(|&(a, b)| a < b && b <= bins && (a, b) != (0, bins)));
            let mut unique = windows.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), windows.len(), "repeats for {bins} bins");
            // Every stretch of up to half the shortest window lies wholly inside a window.
            let levels = segment_levels(bins as f64 * bin_s);
            let half = bins >> (levels + 1);
            for from in 0..bins.saturating_sub(half) {
                let to = from + half.max(1);
                assert!(
                    windows.iter().any(|&(a, b)| a <= from && to <= b),
                    "{bins} bins: [{from}, {to}) in no window of {windows:?}"
                );
            }
        }
    }

    /// Textured frames (a fixed pseudo-random luma) of `w×h`.
    fn textured(w: u32, h: u32, seed: u32) -> VideoFrame {
        let mut f = VideoFrame::black(w, h, PixelLayout::Yuv420p, 0.0);
        let mut state = seed;
        for p in f.planes[0].iter_mut() {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *p = 40 + (state >> 16) as u8 % 160;
        }
        f
    }

    #[test]
    fn a_strip_is_searched_on_the_capped_grid_and_its_mark_found() {
        let key = WatermarkKey::generate(1).unwrap();
        let payload = Payload {
            clip_id: 0x0123_4567_89ab_cdef,
            key_id: key.key_id(),
        };
        let mut emb = crate::VideoEmbedder::new(&key, payload, crate::DEFAULT_STRENGTH);
        let mut det = VideoDetector::new(std::slice::from_ref(&key));
        // 16:1, 256 rows: a 2048-column grid uncapped.
        for i in 0..6 {
            let mut f = textured(4096, 256, i + 1);
            f.pts_s = i as f64 / 25.0;
            emb.embed(&mut f);
            det.add_frame(&f);
        }
        assert_eq!(det.accs.len(), 1);
        assert_eq!((det.accs[0].wa, det.accs[0].ha), (512, 128));
        let r = det.result();
        assert!(r.detected, "p {}", r.p_value);
        assert_eq!(r.payload, Some(payload));
        // The search's size is that of a 4:1 grid's.
        assert_eq!(scale_grid(32768).len(), scale_grid(512).len());
        assert!(scale_grid(512).len() < 400);
    }

    #[test]
    fn frames_of_ever_new_sizes_keep_few_sums() {
        let key = WatermarkKey::generate(1).unwrap();
        let mut det = VideoDetector::new(std::slice::from_ref(&key));
        // A steady size with many frames, interleaved with a new size every frame.
        for i in 0..40u32 {
            det.add_frame(&textured(320, 240, 1));
            det.add_frame(&textured(64 + 8 * i, 480, 2));
            assert!(det.accs.len() <= MAX_GRID_SIZES);
        }
        let steady = det.accs.iter().find(|a| a.wa == 171).expect("kept");
        assert_eq!(steady.frames, 40);
        assert_eq!(det.frames, 80);
    }

    #[test]
    fn time_bins_widen_in_pairs_whatever_the_order() {
        let merge = |a: &mut u64, b: u64| *a += b;
        let times: Vec<f64> = (0..3000).map(|i| i as f64 * 0.37).collect();
        let mut forward = TimeBins::new(16);
        for &t in &times {
            *forward.bin_of(t, merge) += 1;
        }
        let mut backward = TimeBins::new(16);
        for &t in times.iter().rev() {
            *backward.bin_of(t, merge) += 1;
        }
        // 3000 · 0.37 s ≈ 1110 s in ≤ 16 bins: 128 s each (64 s would need 18).
        assert_eq!(forward.width_s(), 128.0);
        assert_eq!(forward.len(), 9);
        assert_eq!(backward.width_s(), forward.width_s());
        for i in 0..forward.len() {
            assert_eq!(forward.get(i), backward.get(i), "bin {i}");
            let expected = times
                .iter()
                .filter(|t| (**t / 128.0).floor() as usize == i)
                .count() as u64;
            assert_eq!(forward.get(i), Some(&expected), "bin {i}");
        }
        // Bad times count as 0; a huge one widens the bins but never panics.
        let mut odd = TimeBins::new(4);
        *odd.bin_of(f64::NAN, merge) += 1;
        *odd.bin_of(-5.0, merge) += 1;
        *odd.bin_of(f64::MAX, merge) += 1;
        assert_eq!(odd.get(0), Some(&2));
        assert!(odd.len() <= 4 && odd.width_s().is_finite());
    }
}
