//! The fixed analysis grid, the keyed tile, resampling and the texture mask.

use crate::code::CODED_BITS;
use crate::fft::{Fft, C};
use crate::key::WatermarkKey;

/// Rows of the analysis grid. Analysis pixels are square, so a frame of `w×h` maps to
/// `ceil(w·ANALYSIS_ROWS/h) × ANALYSIS_ROWS`, independent of the frame's resolution.
pub const ANALYSIS_ROWS: usize = 128;
/// Side of the keyed tile (analysis pixels), repeated over the whole frame.
pub const TILE: usize = 64;
/// Chips of the tile that carry the sync (presence) pattern; the rest carry payload.
pub const SYNC_CHIPS: usize = TILE * TILE / 4;

/// The keyed tile of one key: signs, roles and the spectra the detector correlates with.
pub(crate) struct KeyPattern {
    /// ±1 per chip.
    pub sign: Vec<f32>,
    /// `None` = sync chip, `Some(k)` = carries coded bit k.
    pub role: Vec<Option<u16>>,
    /// FFT of the sync pattern (sign on sync chips, 0 elsewhere).
    pub sync_hat: Vec<C>,
    /// FFT of the sync indicator.
    pub mask_hat: Vec<C>,
}

impl KeyPattern {
    pub(crate) fn new(key: &WatermarkKey, fft: &Fft) -> Self {
        let n = TILE * TILE;
        let mut rng = key.rng(b"tile-signs");
        let sign: Vec<f32> = (0..n)
            .map(|_| if rng.next_u64() >> 63 == 1 { 1.0 } else { -1.0 })
            .collect();
        // Keyed permutation of the chips: the first SYNC_CHIPS are sync, the rest are
        // dealt round-robin to the coded bits (so every bit is spread over the tile).
        let mut perm: Vec<usize> = (0..n).collect();
        let mut rng = key.rng(b"tile-roles");
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            perm.swap(i, j);
        }
        let mut role = vec![None; n];
        for (rank, &chip) in perm.iter().enumerate().skip(SYNC_CHIPS) {
            role[chip] = Some(((rank - SYNC_CHIPS) % CODED_BITS) as u16);
        }
        let mut sync_hat: Vec<C> = (0..n)
            .map(|j| C {
                re: if role[j].is_none() {
                    sign[j] as f64
                } else {
                    0.0
                },
                im: 0.0,
            })
            .collect();
        let mut mask_hat: Vec<C> = (0..n)
            .map(|j| C {
                re: if role[j].is_none() { 1.0 } else { 0.0 },
                im: 0.0,
            })
            .collect();
        fft.run2d(&mut sync_hat, false);
        fft.run2d(&mut mask_hat, false);
        KeyPattern {
            sign,
            role,
            sync_hat,
            mask_hat,
        }
    }

    /// The ±1 tile that the embedder adds, for these coded bits.
    pub(crate) fn embed_tile(&self, coded: &[u8]) -> Vec<f32> {
        self.sign
            .iter()
            .zip(&self.role)
            .map(|(&s, r)| match r {
                None => s,
                Some(k) => {
                    if coded[*k as usize] == 1 {
                        s
                    } else {
                        -s
                    }
                }
            })
            .collect()
    }
}

/// Analysis-grid geometry of one frame size.
#[derive(Clone)]
pub(crate) struct Geometry {
    pub w: usize,
    pub h: usize,
    pub wa: usize,
    pub ha: usize,
    /// Frame→analysis binning (only used when the frame is at least as tall as the grid).
    /// Column range `[start, end)` of each analysis column.
    colrange: Vec<(u32, u32)>,
    rowbin: Vec<u32>,
    inv_count: Vec<f32>,
    /// Analysis→frame bilinear taps per frame column / row: (i0, i1, weight of i1).
    col_taps: Vec<(u32, u32, f32)>,
    row_taps: Vec<(u32, u32, f32)>,
    /// Frame→analysis bilinear taps for frames shorter than the grid.
    up_col: Vec<(u32, u32, f32)>,
    up_row: Vec<(u32, u32, f32)>,
}

fn taps(n_out: usize, n_in: usize, scale: f64) -> Vec<(u32, u32, f32)> {
    // Output pixel i samples input coordinate (i + 0.5) * scale - 0.5.
    (0..n_out)
        .map(|i| {
            let c = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i0 = c.floor() as usize;
            let i1 = (i0 + 1).min(n_in - 1);
            (i0 as u32, i1 as u32, (c - i0 as f64) as f32)
        })
        .collect()
}

impl Geometry {
    pub(crate) fn new(w: usize, h: usize) -> Self {
        let f = ANALYSIS_ROWS as f64 / h as f64;
        let ha = ANALYSIS_ROWS;
        let wa = ((w as f64 * f).ceil() as usize).max(1);
        let colbin: Vec<u32> = (0..w)
            .map(|x| (((x as f64 + 0.5) * f) as usize).min(wa - 1) as u32)
            .collect();
        let rowbin: Vec<u32> = (0..h)
            .map(|y| (((y as f64 + 0.5) * f) as usize).min(ha - 1) as u32)
            .collect();
        let mut cc = vec![0u32; wa];
        let mut rc = vec![0u32; ha];
        colbin.iter().for_each(|&b| cc[b as usize] += 1);
        rowbin.iter().for_each(|&b| rc[b as usize] += 1);
        let mut inv_count = vec![0f32; wa * ha];
        for v in 0..ha {
            for u in 0..wa {
                let c = cc[u] * rc[v];
                inv_count[v * wa + u] = if c > 0 { 1.0 / c as f32 } else { 0.0 };
            }
        }
        let mut colrange = vec![(0u32, 0u32); wa];
        for (x, &b) in colbin.iter().enumerate() {
            let r = &mut colrange[b as usize];
            if r.1 == 0 {
                r.0 = x as u32;
            }
            r.1 = x as u32 + 1;
        }
        Geometry {
            w,
            h,
            wa,
            ha,
            colrange,
            rowbin,
            inv_count,
            col_taps: taps(w, wa, f),
            row_taps: taps(h, ha, f),
            up_col: taps(wa, w, 1.0 / f),
            up_row: taps(ha, h, 1.0 / f),
        }
    }

    /// Luma plane → analysis grid (box filter, or bilinear for frames shorter than the grid).
    pub(crate) fn downscale(&self, y: &[u8]) -> Vec<f32> {
        let (w, wa, ha) = (self.w, self.wa, self.ha);
        let mut out = vec![0f32; wa * ha];
        if self.h >= ha {
            let mut row_acc = vec![0u32; wa];
            let mut cur = self.rowbin[0];
            for yy in 0..self.h {
                let rb = self.rowbin[yy];
                if rb != cur {
                    let dst = &mut out[cur as usize * wa..(cur as usize + 1) * wa];
                    for (d, a) in dst.iter_mut().zip(row_acc.iter_mut()) {
                        *d = *a as f32;
                        *a = 0;
                    }
                    cur = rb;
                }
                let line = &y[yy * w..(yy + 1) * w];
                for (acc, &(a, b)) in row_acc.iter_mut().zip(&self.colrange) {
                    *acc += line[a as usize..b as usize]
                        .iter()
                        .map(|&p| p as u32)
                        .sum::<u32>();
                }
            }
            let dst = &mut out[cur as usize * wa..(cur as usize + 1) * wa];
            for (d, a) in dst.iter_mut().zip(row_acc.iter()) {
                *d = *a as f32;
            }
            for (o, ic) in out.iter_mut().zip(&self.inv_count) {
                *o *= ic;
            }
        } else {
            for (v, &(r0, r1, rw)) in self.up_row.iter().enumerate() {
                for (u, &(c0, c1, cw)) in self.up_col.iter().enumerate() {
                    let p = |r: u32, c: u32| y[r as usize * w + c as usize] as f32;
                    let top = p(r0, c0) * (1.0 - cw) + p(r0, c1) * cw;
                    let bot = p(r1, c0) * (1.0 - cw) + p(r1, c1) * cw;
                    out[v * wa + u] = top * (1.0 - rw) + bot * rw;
                }
            }
        }
        out
    }

    /// Adds the analysis-grid signal `wm` (bilinearly upscaled) to the luma plane.
    pub(crate) fn add_upscaled(&self, y: &mut [u8], wm: &[f32]) {
        let wa = self.wa;
        let mut row = vec![0f32; wa];
        for (yy, &(r0, r1, rw)) in self.row_taps.iter().enumerate() {
            let a = &wm[r0 as usize * wa..(r0 as usize + 1) * wa];
            let b = &wm[r1 as usize * wa..(r1 as usize + 1) * wa];
            for ((o, &p), &q) in row.iter_mut().zip(a).zip(b) {
                *o = p * (1.0 - rw) + q * rw;
            }
            let line = &mut y[yy * self.w..(yy + 1) * self.w];
            for (px, &(c0, c1, cw)) in line.iter_mut().zip(&self.col_taps) {
                let d = row[c0 as usize] * (1.0 - cw) + row[c1 as usize] * cw;
                // +0.5 and truncation instead of round(): no libm call per pixel; values
                // below −0.5 truncate towards zero and are clamped to 0 all the same.
                *px = ((*px as f32 + d + 0.5) as i32).clamp(0, 255) as u8;
            }
        }
    }
}

/// 3×3 box mean with clamped edges.
pub(crate) fn box3(x: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut t = vec![0f32; w * h];
    for r in 0..h {
        let row = &x[r * w..(r + 1) * w];
        let out = &mut t[r * w..(r + 1) * w];
        for c in 0..w {
            let l = row[c.saturating_sub(1)];
            let rr = row[(c + 1).min(w - 1)];
            out[c] = l + row[c] + rr;
        }
    }
    let mut o = vec![0f32; w * h];
    for r in 0..h {
        let up = r.saturating_sub(1);
        let dn = (r + 1).min(h - 1);
        for c in 0..w {
            o[r * w + c] = (t[up * w + c] + t[r * w + c] + t[dn * w + c]) / 9.0;
        }
    }
    o
}

/// High-pass residual and its local activity (mean |residual| over 3×3).
pub(crate) fn residual_and_activity(x: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let b = box3(x, w, h);
    let r: Vec<f32> = x.iter().zip(&b).map(|(a, b)| a - b).collect();
    let abs: Vec<f32> = r.iter().map(|v| v.abs()).collect();
    let act = box3(&abs, w, h);
    (r, act)
}

/// Detector pre-filter: the residual, normalised by local activity and clipped, so that
/// neither strong edges nor any single region dominate the correlation.
pub(crate) fn whitened_residual(x: &[f32], w: usize, h: usize) -> Vec<f32> {
    const ACT_EPS: f32 = 1.0;
    const CLIP: f32 = 3.0;
    let (r, act) = residual_and_activity(x, w, h);
    r.iter()
        .zip(&act)
        .map(|(r, a)| (r / (a + ACT_EPS)).clamp(-CLIP, CLIP))
        .collect()
}

/// Perceptual mask: ≈0 on flat areas, up to `MASK_MAX` in texture.
pub(crate) fn texture_mask(x: &[f32], w: usize, h: usize) -> Vec<f32> {
    const ACT_REF: f32 = 4.0;
    const MASK_MIN: f32 = 0.08;
    const MASK_MAX: f32 = 1.6;
    let (_, act) = residual_and_activity(x, w, h);
    let act = box3(&act, w, h);
    act.iter()
        .map(|a| (a / ACT_REF).clamp(MASK_MIN, MASK_MAX))
        .collect()
}
