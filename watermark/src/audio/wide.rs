//! The sound's wider search: the mark after a tempo, speed or pitch change.
//!
//! A tempo change stretches the tiles in time (a tile of 64 ms lasts `64·a` ms, the period
//! `4.096·a` s), a pitch change moves the bands in frequency (band `[lo, hi)` lands on
//! `[lo·f, hi·f)`); a speed change does both. The plain detector's fixed framing then
//! measures tiles that straddle the embedder's, and the symbols lose their phase within a
//! few seconds. This search measures the kept sound again under a grid of hypotheses
//! `(a, f)`: one STFT of the sound at the plain framing (4 ms hop), band energies with the
//! band edges scaled by `f` (fractional bins at the edges), prefix-summed over frames, so
//! that a tile of any length is two look-ups; then the same folds, offset search and
//! payload decoding as the plain detector. The time grid is fine enough that the tiles
//! stay registered over the whole kept sound (its step shrinks with the sound's length);
//! it depends on that length only, never on the key or the sound's content, and every
//! hypothesis is counted in the p-value.

use super::{
    band_edges, AudioDetector, AUDIO_RATE, C, DET_FRAMES_PER_TILE, DET_HOP, FFT_LEN,
    PERIOD_SYMBOLS, SYMBOL_PHASES, SYM_TILES,
};
use crate::detect::par_map;
use crate::fft::Fft;
use std::f64::consts::{PI, SQRT_2};

/// Most sound kept for the wider search: its first 20 s at 16 kHz mono (1.3 MB); the
/// search's scratch (spectra, prefix sums) is ≈ 4 MB per 10 s of it. (30 s cost twice the
/// time on an unmarked sound: the fine grid's step shrinks as the kept sound grows.)
pub(crate) const WIDE_MAX_SAMPLES: usize = 20 * AUDIO_RATE as usize;
/// Less than this (3 s) is not searched: too few symbols to pay for the family.
const WIDE_MIN_SAMPLES: usize = 3 * AUDIO_RATE as usize;
/// The time scales searched: the sound's duration over the sealed sound's (tempo or speed
/// changes from 0.8× to 1.25× of the original duration).
const TIME_SCALE_MIN: f64 = 0.8;
const TIME_SCALE_MAX: f64 = 1.25;
/// The frequency scales counted (pitch within ±6 %, 1 % apart; a band is ≥ 12 % wide, and
/// measured, 1 % off keeps ≈ 90 % of z, 2 % off ≈ 70 %).
const FREQ_SCALES: [f64; 13] = [
    0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06,
];
/// Largest drift (seconds) at either end of the kept sound between the fine time grid's
/// neighbours (registered at its middle). Measured on 12 s of marked music: a scale 0.05 %
/// off (±3 ms at the ends) keeps 93 % of z, 0.1 % (±6 ms) 80 %, 0.2 % (±12 ms) 62 %; after
/// `atempo=1.2` (z 8.2 at best) 0.1 % off keeps ≈ 90 %.
const FINE_DRIFT_S: f64 = 0.003;
/// The coarse stage, which only picks where the fine grid is tried: the first 12 s, 8 of
/// the 16 time grids, every third frequency scale (3 % apart), a grid ≈ 5× as loose.
const COARSE_SAMPLES: usize = 12 * AUDIO_RATE as usize;
const COARSE_DRIFT_S: f64 = 0.016;
const COARSE_GRIDS: [usize; 8] = [0, 2, 4, 6, 8, 10, 12, 14];
/// How many coarse candidates the fine grid refines. 8, not 4: the coarse grid is ≈ 5× as
/// loose as the fine one and a true scale half-way between two of its points keeps about
/// half its z, among the noise's best (z ≈ 4.5 on 12 s): after `atempo=1.12` the true scale
/// ranked 6th for one fresh key in ≈ 600 (p 1 instead of z 8.6); measured cost on 12 s of
/// unmarked music 210 → 246 ms.
const CANDIDATES: usize = 8;
const HALF: usize = FFT_LEN / 2;

/// Log-spaced time scales over [`TIME_SCALE_MIN`, `TIME_SCALE_MAX`] such that neighbours
/// drift apart by at most `2·drift_s` over `samples`.
fn time_scales(samples: usize, drift_s: f64) -> Vec<f64> {
    let secs = (samples as f64 / AUDIO_RATE as f64).max(1.0);
    let step = (4.0 * drift_s / secs).min(0.02);
    let (lo, hi) = (TIME_SCALE_MIN.ln(), TIME_SCALE_MAX.ln());
    let n = ((hi - lo) / step).ceil() as usize + 1;
    (0..n)
        .map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// How many (time scale, frequency scale) hypotheses the p-value of a kept sound of
/// `samples` samples counts: the whole fine grid, whichever part of it the coarse stage
/// sent the search to (the maximum over a part is at most the maximum over all).
pub(crate) fn hypotheses(samples: usize) -> usize {
    if samples < WIDE_MIN_SAMPLES {
        0
    } else {
        time_scales(samples, FINE_DRIFT_S).len() * FREQ_SCALES.len()
    }
}

/// Power spectra of the analysis frames of the kept sound (frame `m` centred at
/// `m·DET_HOP + DET_HOP/2`, Hann window, silence before the start, as the plain framing),
/// bins `0..HALF` (DC left at 0).
struct Spectra {
    frames: usize,
    pow: Vec<f32>,
}

impl Spectra {
    fn new(x: &[f32]) -> Spectra {
        let end0 = DET_HOP / 2 + FFT_LEN / 2;
        let frames = if x.len() < end0 {
            0
        } else {
            (x.len() - end0) / DET_HOP + 1
        };
        let window = super::hann_pow(1.0);
        let fft = Fft::new(FFT_LEN);
        let (mut z, mut buf) = (Vec::with_capacity(FFT_LEN), Vec::with_capacity(FFT_LEN));
        let mut pow = vec![0f32; (frames + 1) * HALF];
        let sample = |m: usize, j: usize| -> f32 {
            let t = (m * DET_HOP + DET_HOP / 2 + j) as i64 - (FFT_LEN / 2) as i64;
            if t < 0 || m >= frames {
                0.0
            } else {
                x[t as usize]
            }
        };
        for m in (0..frames).step_by(2) {
            z.clear();
            z.extend((0..FFT_LEN).map(|j| C {
                re: (sample(m, j) * window[j]) as f64,
                im: (sample(m + 1, j) * window[j]) as f64,
            }));
            fft.run1d(&mut z, false, &mut buf);
            let (pa, pb) = pow[m * HALF..(m + 2) * HALF].split_at_mut(HALF);
            for k in 1..HALF {
                let (p, q) = (z[k], z[FFT_LEN - k]);
                let (ar, ai) = (p.re + q.re, p.im - q.im);
                let (br, bi) = (p.im + q.im, q.re - p.re);
                pa[k] = ((ar * ar + ai * ai) / 4.0) as f32;
                pb[k] = ((br * br + bi * bi) / 4.0) as f32;
            }
        }
        pow.truncate(frames * HALF);
        Spectra { frames, pow }
    }

    /// Prefix sums over the first `frames` frames of the band energies with the band edges
    /// scaled by `f`: `[m·nb + b]` = energy of band `b` in frames `0..m`. Bin `k` stands for `[k−½, k+½)`,
    /// so at `f = 1` the bands are exactly the plain detector's.
    fn band_prefix(&self, bands: &[(usize, usize)], f: f64, frames: usize) -> Vec<f64> {
        let nb = bands.len();
        let weights: Vec<Vec<(usize, f64)>> = bands
            .iter()
            .map(|&(lo, hi)| {
                let (a, b) = ((lo as f64 - 0.5) * f, (hi as f64 - 0.5) * f);
                (a.floor().max(1.0) as usize..=(b.ceil() as usize).min(HALF - 1))
                    .filter_map(|k| {
                        let w = ((k as f64 + 0.5).min(b) - (k as f64 - 0.5).max(a)).max(0.0);
                        (w > 0.0).then_some((k, w))
                    })
                    .collect()
            })
            .collect();
        let mut pre = vec![0f64; (frames + 1) * nb];
        for m in 0..frames {
            let p = &self.pow[m * HALF..(m + 1) * HALF];
            for (b, w) in weights.iter().enumerate() {
                let e: f64 = w.iter().map(|&(k, w)| p[k] as f64 * w).sum();
                pre[(m + 1) * nb + b] = pre[m * nb + b] + e;
            }
        }
        pre
    }
}

/// One fold per symbol phase, or per timeline bin.
pub(crate) type Folds = Vec<Vec<C>>;

/// The registration the wider search found best.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WideFound {
    pub z: f64,
    pub key: usize,
    pub sphase: usize,
    pub shift: usize,
    /// The sound's duration over the sealed sound's.
    pub time_scale: f64,
    /// The sound's frequencies over the sealed sound's.
    pub freq_scale: f64,
}

impl AudioDetector {
    /// The wider search over the kept sound: the best registration over the fine grid of
    /// time and frequency scales near the coarse stage's best candidates, its folds (for the
    /// payload) and, per timeline bin, the fold of its symbol phase there (empty: none);
    /// `None` if too little was kept.
    pub(crate) fn wide_search(&self) -> Option<(WideFound, Folds, Folds)> {
        if hypotheses(self.wide.len()) == 0 || self.keys.is_empty() {
            return None;
        }
        let spectra = Spectra::new(&self.wide);
        let bands = band_edges();
        // Coarse: every (a, f) of the loose grid on the first seconds, 8 time grids.
        let coarse_frames = spectra.frames.min(COARSE_SAMPLES / DET_HOP);
        let coarse_scales = time_scales(coarse_frames * DET_HOP, COARSE_DRIFT_S);
        let coarse_phases: Vec<usize> = COARSE_GRIDS
            .iter()
            .flat_map(|&g| [g, g + DET_FRAMES_PER_TILE])
            .collect();
        // Fine: every (a, f) of the counted grid near the best distinct candidates, on the
        // whole kept sound with all 16 time grids.
        let fine_scales = time_scales(self.wide.len(), FINE_DRIFT_S);
        let span = (TIME_SCALE_MAX / TIME_SCALE_MIN).ln();
        let coarse_step = span / (coarse_scales.len() - 1) as f64;
        let fine_step = span / (fine_scales.len() - 1) as f64;
        let reach = coarse_step / 2.0 + fine_step;
        let near = |a: f64, f: f64, (pa, pf): (f64, f64), times: f64| {
            (a / pa).ln().abs() <= times * reach && (f - pf).abs() < 0.015
        };
        // A clip id's whole pattern refines the candidates the keys' own patterns picked,
        // where they did on this sound (any choice of candidates keeps the bound: every
        // fine hypothesis is counted).
        let reused = self.known.as_ref().and_then(|_| self.wide_picks.get());
        let picked = match reused {
            Some(picked) => picked.clone(),
            None => {
                // Every hypothesis on its own core (`par_map` keeps the jobs' order, so the
                // answer is the one-thread answer bit for bit).
                let coarse_pres: Vec<(f64, Vec<f64>)> = FREQ_SCALES
                    .iter()
                    .step_by(3)
                    .map(|&f| (f, spectra.band_prefix(&bands, f, coarse_frames)))
                    .collect();
                let jobs: Vec<(&[f64], f64, f64)> = coarse_pres
                    .iter()
                    .flat_map(|(f, pre)| coarse_scales.iter().map(move |&a| (&pre[..], a, *f)))
                    .collect();
                let mut coarse = par_map(&jobs, |&(pre, a, f), _| {
                    let folds =
                        self.wide_folds(pre, coarse_frames, &bands, a, f, &COARSE_GRIDS, None);
                    (self.search_phases(&folds, &coarse_phases).0, a, f)
                });
                coarse.sort_by(|x, y| y.0.total_cmp(&x.0));
                let mut picked: Vec<(f64, f64)> = Vec::new();
                for &(_, a, f) in &coarse {
                    if picked.len() == CANDIDATES {
                        break;
                    }
                    if !picked.iter().any(|&p| near(a, f, p, 2.0)) {
                        picked.push((a, f));
                    }
                }
                if self.known.is_none() {
                    let _ = self.wide_picks.set(picked.clone());
                }
                picked
            }
        };
        let all_grids: Vec<usize> = (0..DET_FRAMES_PER_TILE).collect();
        let fine_pres: Vec<(f64, Vec<f64>, Vec<f64>)> = FREQ_SCALES
            .iter()
            .filter_map(|&f| {
                let scales: Vec<f64> = fine_scales
                    .iter()
                    .copied()
                    .filter(|&a| picked.iter().any(|&p| near(a, f, p, 1.0)))
                    .collect();
                (!scales.is_empty())
                    .then(|| (f, scales, spectra.band_prefix(&bands, f, spectra.frames)))
            })
            .collect();
        let jobs: Vec<(&[f64], f64, f64)> = fine_pres
            .iter()
            .flat_map(|(f, scales, pre)| scales.iter().map(move |&a| (&pre[..], a, *f)))
            .collect();
        let fine = par_map(&jobs, |&(pre, a, f), _| {
            let folds = self.wide_folds(pre, spectra.frames, &bands, a, f, &all_grids, None);
            let (z, key, sphase, shift) = self.search(&folds);
            WideFound {
                z,
                key,
                sphase,
                shift,
                time_scale: a,
                freq_scale: f,
            }
        });
        // The first of the largest, as one thread in the jobs' order would keep it.
        let mut best: Option<WideFound> = None;
        for found in fine {
            if best.is_none_or(|b| found.z > b.z) {
                best = Some(found);
            }
        }
        let found = best?;
        let pre = spectra.band_prefix(&bands, found.freq_scale, spectra.frames);
        let frames_per_s = AUDIO_RATE as f64 / DET_HOP as f64;
        let mut per_bin = vec![Vec::new(); self.bins.len()];
        let folds = self.wide_folds(
            &pre,
            spectra.frames,
            &bands,
            found.time_scale,
            found.freq_scale,
            &all_grids,
            Some((
                found.sphase,
                self.bins.width_s() * frames_per_s,
                self.pts0.unwrap_or(0.0).max(0.0) * frames_per_s,
                &mut per_bin,
            )),
        );
        Some((found, folds, per_bin))
    }

    /// The 32 folds (one per symbol phase) of the kept sound measured at time scale `a`:
    /// tile `k` of grid `g` spans the frames `a·(16k + g) .. a·(16k + g + 16)` (fractional
    /// frames interpolated in the prefix sums). With `bins` = (symbol phase, bin width and
    /// the sound's start in frames, per-bin folds), the symbols of that phase also go into
    /// the fold of the timeline bin where they start.
    #[allow(clippy::too_many_arguments)]
    fn wide_folds(
        &self,
        pre: &[f64],
        frames: usize,
        bands: &[(usize, usize)],
        a: f64,
        f: f64,
        grids: &[usize],
        mut bins: Option<(usize, f64, f64, &mut Vec<Vec<C>>)>,
    ) -> Vec<Vec<C>> {
        let nb = bands.len();
        let floors: Vec<f64> = bands
            .iter()
            .map(|&(lo, hi)| super::floor_energy(hi - lo) * a * f)
            .collect();
        // The prefix sums of every band at frame position `x` (fractional positions
        // interpolated): one row, or two rows and a weight, the same for every band.
        let row_at = |x: f64, out: &mut [f64]| {
            let i = x.floor() as usize;
            let fr = x - i as f64;
            let lo = &pre[i * nb..(i + 1) * nb];
            if fr > 0.0 && i < frames {
                let hi = &pre[(i + 1) * nb..(i + 2) * nb];
                for ((o, &l), &h) in out.iter_mut().zip(lo).zip(hi) {
                    *o = l + fr * (h - l);
                }
            } else {
                out.copy_from_slice(lo);
            }
        };
        let tile = DET_FRAMES_PER_TILE as f64;
        // Only the symbol phases of `grids` are written (the coarse stage's are half).
        let mut folds: Folds = vec![Vec::new(); SYMBOL_PHASES];
        for &g in grids {
            for parity in 0..SYM_TILES {
                folds[g + DET_FRAMES_PER_TILE * parity] = vec![C::default(); nb * PERIOD_SYMBOLS];
            }
        }
        // Logs and phasors in f32: any function of the sound keeps the bound, and this is
        // the search's hot loop.
        let (mut prev_e, mut prev_l) = (vec![0f64; nb], vec![0f32; nb]);
        let (mut e, mut l) = (vec![0f64; nb], vec![0f32; nb]);
        let floors10: Vec<f64> = floors.iter().map(|f| 10.0 * f).collect();
        // A tile's end is the next tile's start: each edge's sums are taken once.
        let (mut start, mut end) = (vec![0f64; nb], vec![0f64; nb]);
        let mut w = vec![0f64; nb];
        let kappa = (2.0 * PI / SQRT_2 / super::AUDIO_STEP) as f32;
        let mut v = vec![C::default(); nb];
        let (mut x, mut theta) = (vec![0f32; nb], vec![0f32; nb]);
        let (mut sin, mut cos) = (vec![0f32; nb], vec![0f32; nb]);
        let add = |into: &mut [C], v: &[C]| {
            for (x, y) in into.iter_mut().zip(v) {
                x.re += y.re;
                x.im += y.im;
            }
        };
        for &g in grids {
            for k in 0u64.. {
                let x0 = a * (k as f64 * tile + g as f64);
                let x1 = x0 + a * tile;
                if x1 > frames as f64 {
                    break;
                }
                if k == 0 {
                    row_at(x0, &mut start);
                } else {
                    std::mem::swap(&mut start, &mut end);
                }
                row_at(x1, &mut end);
                for (((e, x), (&s, &t)), &fl) in e
                    .iter_mut()
                    .zip(&mut x)
                    .zip(start.iter().zip(&end))
                    .zip(&floors)
                {
                    *e = (t - s).max(0.0);
                    *x = (*e + fl) as f32;
                }
                ln_each(&x, &mut l);
                if k > 0 {
                    let first = k - 1;
                    let parity = (first % SYM_TILES as u64) as usize;
                    let sphase = g + DET_FRAMES_PER_TILE * parity;
                    let col = ((first / SYM_TILES as u64) % PERIOD_SYMBOLS as u64) as usize;
                    for b in 0..nb {
                        theta[b] = kappa * (prev_l[b] - l[b]);
                    }
                    sin_cos_each(&theta, &mut sin, &mut cos);
                    // w = m / (m + 10) of m = min / floor, with one division, apart from
                    // the loop below so that it runs on vectors.
                    for (((w, &p), &e), &fl) in w.iter_mut().zip(&prev_e).zip(&e).zip(&floors10) {
                        let m = p.min(e);
                        *w = m / (m + fl);
                    }
                    for (((v, &w), &c), &s) in v.iter_mut().zip(&w).zip(&cos).zip(&sin) {
                        *v = C {
                            re: w * c as f64,
                            im: w * s as f64,
                        };
                    }
                    add(&mut folds[sphase][col * nb..(col + 1) * nb], &v);
                    if let Some((want, width, start, per_bin)) = bins.as_mut() {
                        // The symbol starts at tile k − 1, frame x0 − a·16.
                        let bin = ((x0 - a * tile + *start) / *width).max(0.0) as usize;
                        if let Some(into) = per_bin.get_mut(bin).filter(|_| sphase == *want) {
                            if into.is_empty() {
                                *into = vec![C::default(); nb * PERIOD_SYMBOLS];
                            }
                            add(&mut into[col * nb..(col + 1) * nb], &v);
                        }
                    }
                }
                std::mem::swap(&mut prev_e, &mut e);
                std::mem::swap(&mut prev_l, &mut l);
            }
        }
        folds
    }
}

/// `ln x` of each `x` (positive, finite, normal) into `out`, within ≈ 2e-7: the exponent's
/// share plus a series of the mantissa in `[√½, √2)`, without a branch, so that the loop
/// runs on whole vectors. The search takes a log per tile and band per hypothesis, and
/// libm's one call at a time was a seventh of it. (Any function of the sound keeps the
/// bound: the p-value does not rest on these being exact.)
fn ln_each(x: &[f32], out: &mut [f32]) {
    const K: [f32; 4] = [1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0];
    for (o, &x) in out.iter_mut().zip(x) {
        let bits = x.to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 127;
        let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        let big = m > std::f32::consts::SQRT_2;
        let (m, e) = if big { (m * 0.5, e + 1) } else { (m, e) };
        // ln m = 2·atanh(t), t = (m − 1)/(m + 1), |t| ≤ 0.1716.
        let t = (m - 1.0) / (m + 1.0);
        let t2 = t * t;
        let series = 1.0 + t2 * (K[0] + t2 * (K[1] + t2 * (K[2] + t2 * K[3])));
        *o = e as f32 * std::f32::consts::LN_2 + 2.0 * t * series;
    }
}

/// `sin θ` and `cos θ` of each `θ` (|θ| < 10⁵) into `sin` and `cos`, within ≈ 1e-6: a
/// quarter turn taken off (π/2 in two parts, so the reduction stays exact), two short
/// series on `[−π/4, π/4]`, and the quadrant's swap and signs by selects and sign bits —
/// no branch, so the loop runs on whole vectors (libm's `sin_cos` was a fifth of the
/// search; a branch per quadrant made a scalar version slower than libm).
fn sin_cos_each(theta: &[f32], sin: &mut [f32], cos: &mut [f32]) {
    const PI_2_HI: f32 = 1.570_312_5; // 8 significant bits: q·PI_2_HI is exact
    const PI_2_LO: f32 = (std::f64::consts::FRAC_PI_2 - 1.570_312_5) as f32;
    // Adding and taking off 1.5·2²³ rounds to the nearest integer (|x| < 2²²).
    const ROUND: f32 = 12_582_912.0;
    const S: [f32; 3] = [-1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0];
    const C: [f32; 4] = [-0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0];
    for ((&th, so), co) in theta.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
        let q = (th * std::f32::consts::FRAC_2_PI + ROUND) - ROUND;
        let qi = q as i32;
        let r = (th - q * PI_2_HI) - q * PI_2_LO;
        let r2 = r * r;
        let s = r + r * r2 * (S[0] + r2 * (S[1] + r2 * S[2]));
        let c = 1.0 + r2 * (C[0] + r2 * (C[1] + r2 * (C[2] + r2 * C[3])));
        // Quadrant q mod 4: (s, c), (c, −s), (−s, −c), (−c, s).
        let (bs, bc) = if qi & 1 != 0 { (c, s) } else { (s, c) };
        *so = f32::from_bits(bs.to_bits() ^ (((qi & 2) as u32) << 30));
        *co = f32::from_bits(bc.to_bits() ^ ((((qi + 1) & 2) as u32) << 30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Payload, WatermarkKey};
    use hallmark_media::{Decoder, MediaFrame, PixelLayout};

    #[test]
    fn vector_ln_and_sin_cos_match_libm() {
        let xs: Vec<f32> = (0..200_000)
            .map(|i| 10f64.powf(-30.0 + 60.0 * i as f64 / 200_000.0) as f32)
            .chain([
                1.0,
                std::f32::consts::SQRT_2,
                2.0,
                0.5,
                f32::MIN_POSITIVE,
                3e38,
            ])
            .collect();
        let mut ln = vec![0f32; xs.len()];
        ln_each(&xs, &mut ln);
        for (&x, &l) in xs.iter().zip(&ln) {
            let want = f64::from(x).ln();
            assert!((f64::from(l) - want).abs() < 1e-5, "ln {x}: {l} vs {want}");
        }
        let th: Vec<f32> = (0..200_000)
            .map(|i| (-300.0 + 600.0 * i as f64 / 200_000.0) as f32)
            .chain([
                0.0,
                -0.0,
                std::f32::consts::FRAC_PI_4,
                -std::f32::consts::FRAC_PI_2,
            ])
            .collect();
        let (mut s, mut c) = (vec![0f32; th.len()], vec![0f32; th.len()]);
        sin_cos_each(&th, &mut s, &mut c);
        for ((&t, &s), &c) in th.iter().zip(&s).zip(&c) {
            let t = f64::from(t);
            assert!((f64::from(s) - t.sin()).abs() < 2e-6, "sin {t}: {s}");
            assert!((f64::from(c) - t.cos()).abs() < 2e-6, "cos {t}: {c}");
        }
    }

    fn decode(path: &str) -> Vec<hallmark_media::AudioChunk> {
        let mut d = Decoder::open(std::path::Path::new(path), PixelLayout::Yuv420p).unwrap();
        let mut v = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            if let MediaFrame::Audio(a) = f {
                v.push(a);
            }
        }
        v
    }

    /// Measurement aid: WIDE_SRC=in.wav WIDE_FILTER=atempo=1.2 WIDE_A=0.833 WIDE_F=1 prints
    /// the wider search's z around those scales after marking and the attack.
    #[test]
    #[ignore]
    fn probe() {
        let Ok(src) = std::env::var("WIDE_SRC") else {
            return;
        };
        let key = WatermarkKey::from_secret([9; 32], 9);
        let mut emb = super::super::AudioEmbedder::new(
            &key,
            Payload {
                clip_id: 77,
                key_id: 9,
            },
            0.0,
        );
        let chunks = decode(&src);
        let (rate, ch) = (chunks[0].sample_rate, chunks[0].channels);
        let mut x = Vec::new();
        for c in chunks {
            for o in emb.process(c) {
                x.extend(o.samples);
            }
        }
        for o in emb.finish() {
            x.extend(o.samples);
        }
        let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write("/tmp/probe/marked.f32", raw).unwrap();
        let filter = std::env::var("WIDE_FILTER").unwrap();
        let out = format!(
            "/tmp/probe/att.{}",
            std::env::var("WIDE_EXT").unwrap_or("wav".into())
        );
        let st = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "f32le", "-ar"])
            .arg(rate.to_string())
            .arg("-ac")
            .arg(ch.to_string())
            .args(["-i", "/tmp/probe/marked.f32", "-af", &filter])
            .args(
                std::env::var("WIDE_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let mut det = AudioDetector::new(&[key]);
        for c in decode(&out) {
            det.push_chunk(&c);
        }
        let spectra = Spectra::new(&det.wide);
        let bands = band_edges();
        let a0: f64 = std::env::var("WIDE_A").unwrap().parse().unwrap();
        let f0: f64 = std::env::var("WIDE_F").unwrap().parse().unwrap();
        for df in [-0.02, -0.01, -0.005, 0.0, 0.005, 0.01, 0.02] {
            let f = f0 * (1.0 + df);
            let pre = spectra.band_prefix(&bands, f, spectra.frames);
            let mut line = format!("f {f:.4}:");
            for da in [
                -0.004, -0.002, -0.001, -0.0005, 0.0, 0.0005, 0.001, 0.002, 0.004,
            ] {
                let a = a0 * (1.0 + da);
                let grids: Vec<usize> = (0..16).collect();
                let folds = det.wide_folds(&pre, spectra.frames, &bands, a, f, &grids, None);
                line += &format!(" {:.1}", det.search(&folds).0);
            }
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::key::WatermarkKey;

    /// WIDE_TIME=file: times the stages of the wider search on it (unmarked: nothing found).
    #[test]
    #[ignore]
    fn stages() {
        let Ok(path) = std::env::var("WIDE_TIME") else {
            return;
        };
        let mut d = hallmark_media::Decoder::open(
            std::path::Path::new(&path),
            hallmark_media::PixelLayout::Yuv420p,
        )
        .unwrap();
        let mut det = AudioDetector::new(&[WatermarkKey::from_secret([3; 32], 3)]);
        while let Some(f) = d.next_frame().unwrap() {
            if let hallmark_media::MediaFrame::Audio(a) = f {
                det.add_chunk(&a);
            }
        }
        // Min and median of 7 runs each; z and p in full, to tell a change that keeps the
        // numbers from one that moves them.
        let runs = |f: &mut dyn FnMut()| {
            let mut t: Vec<f64> = (0..7)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            t.sort_by(f64::total_cmp);
            (t[0], t[3])
        };
        let mut frames = 0;
        let spec = runs(&mut || frames = Spectra::new(&det.wide).frames);
        let mut found = None;
        let wide = runs(&mut || found = det.wide_search().map(|w| w.0));
        let mut r = None;
        let all = runs(&mut || r = Some(det.result()));
        let r = r.unwrap();
        println!(
            "{frames} frames: spectra {spec:.1?} ms, wide_search {wide:.1?} ms, result {all:.1?} ms \
             (min, median); wide z {:.15}, result z {:.15} p {:e}",
            found.map_or(f64::NAN, |w| w.z),
            r.score,
            r.p_value
        );
    }
}
