//! Key-independent registration of rotated and stretched copies: the mark's tile repeats on
//! a lattice, so the clip's summed residual correlates with itself at the lattice's vectors
//! whatever the key. The residual is whitened (its spectrum flattened, so that the content's
//! own long-range structure — edges along a direction — no longer correlates), its
//! autocorrelation taken with one FFT, and lattices of the searched family scored by the sum
//! of the autocorrelation over their points. None of this looks at a key, so under the null
//! (content not marked with the key tested) the maps chosen are fixed given the content, and
//! each is one more registration to count in the p-value, not a search over the key's
//! statistic.

use crate::analysis::TILE;
use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;

/// Largest rotation of the lattice (degrees) looked for, either way.
pub(crate) const MAX_ROTATION_DEG: f64 = 12.0;
/// Lattice vector lengths looked for, in analysis pixels (64 at scale 1): 40 is a picture
/// shown at 1/1.6 of its size, 112 one cropped to 57 % of its width and scaled back, or
/// stretched 1.75× (e.g. a crop to 75 % of the width combined with a ×1.33 stretch).
const LEN_MIN: f64 = 40.0;
const LEN_MAX: f64 = 112.0;
/// Lags whose overlap is below this fraction of the image are not used (too few pairs).
const MIN_OVERLAP: f64 = 0.1;
/// Distance (analysis pixels) from the lags [`periodicity`] is told to leave out within
/// which it does not look: the camera's path is measured to a pixel or two, and the
/// copies' peak is as wide.
const LEFT_OUT_R: f64 = 4.0;

/// A linear map from the analysis image to tile coordinates: the analysis pixel at centred
/// position `x = (u + ½ − w/2, v + ½ − h/2)` shows the tile's chip at `A·x` (modulo the tile,
/// up to a shift). A scale `s` alone is `A = s·I`; a rotation, an anamorphic stretch or a
/// shear is a general `A`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TileMap {
    /// Row-major 2×2.
    pub a: [f64; 4],
}

impl TileMap {
    /// The map whose lattice (in the analysis image) is spanned by `b1`, `b2`: the tile's
    /// period vectors `(64, 0)`, `(0, 64)` land on them (`A = 64·B⁻¹`, `B = [b1 b2]`).
    pub(crate) fn from_lattice(b1: [f64; 2], b2: [f64; 2]) -> Option<Self> {
        let det = b1[0] * b2[1] - b2[0] * b1[1];
        if det.abs() < 1e-6 || !det.is_finite() {
            return None;
        }
        let t = TILE as f64 / det;
        Some(TileMap {
            a: [t * b2[1], -t * b2[0], -t * b1[1], t * b1[0]],
        })
    }

    /// Tile coordinates of centred analysis position (x, y).
    #[inline]
    pub(crate) fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let a = &self.a;
        (a[0] * x + a[1] * y, a[2] * x + a[3] * y)
    }

    /// The lattice vectors `(b1, b2)`.
    pub(crate) fn lattice(&self) -> ([f64; 2], [f64; 2]) {
        let a = &self.a;
        let det = a[0] * a[3] - a[1] * a[2];
        let t = TILE as f64 / det;
        ([t * a[3], -t * a[2]], [-t * a[1], t * a[0]])
    }
}

/// Folds the analysis image modulo the tile under `map`, the chip grid offset by `phase`
/// chips: `F_j = Σ` of the pixels the map puts on chip `j` (row-major tile index).
pub(crate) fn fold_map(
    img: &[f32],
    wa: usize,
    ha: usize,
    map: &TileMap,
    phase: (f64, f64),
) -> Vec<f64> {
    let mut f = vec![0f64; TILE * TILE];
    for_each_chip(wa, ha, map, phase, |i, j| f[j] += img[i] as f64);
    f
}

/// `x.floor() as i64`, exactly (for |x| < 2⁶³), without the call to libm's `floor` that
/// baseline x86-64 makes of it: two per analysis pixel per candidate map were a third of the
/// lattice stage's folds.
#[inline]
fn floor_i64(x: f64) -> i64 {
    let i = x as i64;
    i - i64::from((i as f64) > x)
}

/// Calls `visit(pixel index, chip index)` for every analysis pixel.
#[inline]
pub(crate) fn for_each_chip(
    wa: usize,
    ha: usize,
    map: &TileMap,
    phase: (f64, f64),
    mut visit: impl FnMut(usize, usize),
) {
    let t = TILE as i64;
    let a = &map.a;
    for v in 0..ha {
        let y = v as f64 + 0.5 - ha as f64 / 2.0;
        let x0 = 0.5 - wa as f64 / 2.0;
        // Along a row the tile coordinates grow by the map's first column per pixel.
        let (mut tx, mut ty) = (
            a[0] * x0 + a[1] * y + phase.0,
            a[2] * x0 + a[3] * y + phase.1,
        );
        for u in 0..wa {
            let cx = floor_i64(tx).rem_euclid(t) as usize;
            let cy = floor_i64(ty).rem_euclid(t) as usize;
            visit(v * wa + u, cy * TILE + cx);
            tx += a[0];
            ty += a[2];
        }
    }
}

/// Normalised autocorrelation of an image: `z(v) = Σ S(x)S(x+v) / √Σ S(x)²S(x+v)²` for
/// every lag, from one forward and one inverse FFT of the zero-padded image.
struct AutoCorrelation {
    wa: usize,
    ha: usize,
    /// Padded sizes (powers of two, at least twice the image's).
    pw: usize,
    ph: usize,
    z: Vec<f64>,
}

impl AutoCorrelation {
    fn new(img: &[f32], wa: usize, ha: usize) -> Self {
        let (pw, ph) = ((2 * wa).next_power_of_two(), (2 * ha).next_power_of_two());
        // S + i·S² in one transform; their spectra are separated by symmetry.
        let mut x = vec![Complex64::default(); pw * ph];
        for v in 0..ha {
            for u in 0..wa {
                let s = img[v * wa + u] as f64;
                x[v * pw + u] = Complex64::new(s, s * s);
            }
        }
        fft2(&mut x, pw, ph, false, ha);
        let mut y = vec![Complex64::default(); pw * ph];
        for ky in 0..ph {
            for kx in 0..pw {
                let k = ky * pw + kx;
                let nk = ((ph - ky) % ph) * pw + (pw - kx) % pw;
                let (a, b) = (x[k], x[nk]);
                // Ŝ = (X[k] + conj X[−k]) / 2,  Ŝ² = (X[k] − conj X[−k]) / 2i.
                let (sr, si) = ((a.re + b.re) / 2.0, (a.im - b.im) / 2.0);
                let (qr, qi) = ((a.im + b.im) / 2.0, (b.re - a.re) / 2.0);
                // |Ŝ|² + i·|Ŝ²|²: transforms back to R + i·D (both real).
                y[k] = Complex64::new(sr * sr + si * si, qr * qr + qi * qi);
            }
        }
        fft2(&mut y, pw, ph, true, ph);
        // The inverse transform carries a factor n: R = re/n, D = im/n.
        let n = (pw * ph) as f64;
        let z = y
            .iter()
            .map(|c| {
                if c.im > 1e-9 {
                    c.re / (c.im * n).sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        AutoCorrelation { wa, ha, pw, ph, z }
    }

    /// z at an integer lag (0 where the overlap is too small).
    fn at(&self, dx: i64, dy: i64) -> f64 {
        let (wa, ha) = (self.wa as i64, self.ha as i64);
        if dx.abs() >= wa || dy.abs() >= ha {
            return 0.0;
        }
        let overlap = ((wa - dx.abs()) * (ha - dy.abs())) as f64;
        if overlap < MIN_OVERLAP * (wa * ha) as f64 {
            return 0.0;
        }
        let (x, y) = (
            dx.rem_euclid(self.pw as i64) as usize,
            dy.rem_euclid(self.ph as i64) as usize,
        );
        self.z[y * self.pw + x]
    }

    /// z at a real lag, bilinearly interpolated.
    fn lerp(&self, v: [f64; 2]) -> f64 {
        let (x0, y0) = (v[0].floor(), v[1].floor());
        let (fx, fy) = (v[0] - x0, v[1] - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        (self.at(x0, y0) * (1.0 - fx) + self.at(x0 + 1, y0) * fx) * (1.0 - fy)
            + (self.at(x0, y0 + 1) * (1.0 - fx) + self.at(x0 + 1, y0 + 1) * fx) * fy
    }
}

/// 2-D transform of a `pw × ph` row-major array, in place (`inverse` unscaled). The
/// forward transform's input is zero below its first `rows` rows, and of the inverse's
/// output only the first `rows` are computed (the others are left partly transformed):
/// the zero-padded images' transforms skip the rows that hold nothing.
fn fft2(a: &mut [Complex64], pw: usize, ph: usize, inverse: bool, rows: usize) {
    let mut planner = FftPlanner::new();
    let (along, down) = if inverse {
        (planner.plan_fft_inverse(pw), planner.plan_fft_inverse(ph))
    } else {
        (planner.plan_fft_forward(pw), planner.plan_fft_forward(ph))
    };
    let mut scratch = vec![
        Complex64::default();
        along
            .get_inplace_scratch_len()
            .max(down.get_inplace_scratch_len())
    ];
    let rows = rows.min(ph) * pw;
    if !inverse {
        along.process_with_scratch(&mut a[..rows], &mut scratch);
    }
    let mut t = vec![Complex64::default(); pw * ph];
    transpose::transpose(a, &mut t, pw, ph);
    down.process_with_scratch(&mut t, &mut scratch);
    transpose::transpose(&t, a, ph, pw);
    if inverse {
        along.process_with_scratch(&mut a[..rows], &mut scratch);
    }
}

/// Steps of the lattice search: angle (degrees) and period length (analysis pixels).
const ANGLE_STEP: f64 = 0.25;
const LEN_STEP: f64 = 0.5;
/// Period lengths per axis kept for pairing, at each angle.
const PER_AXIS: usize = 6;
/// Largest shear (degrees) of the general lattices: the angle between their two period
/// vectors may differ from a right angle by this much either way.
const MAX_SHEAR_DEG: f64 = 12.0;
/// General lattices scored in full, of the best by the quick score.
const PRESCREEN: usize = 256;

/// Every lattice point `m·b1 + n·b2` (m ≥ 0, not both 0, up to sign) whose lag fits in the
/// image, summed: the autocorrelation's evidence that `b1`, `b2` span the mark's lattice.
fn lattice_score(ac: &AutoCorrelation, b1: [f64; 2], b2: [f64; 2], axes: bool) -> f64 {
    let (wa, ha) = (ac.wa as f64, ac.ha as f64);
    let mut total = 0.0;
    // Points further out overlap the image too little to count (and cost time).
    for m in 0..=3i32 {
        for n in -2..=2i32 {
            if (m == 0 && n <= 0) || (!axes && (m == 0 || n == 0)) {
                continue;
            }
            let v = [
                m as f64 * b1[0] + n as f64 * b2[0],
                m as f64 * b1[1] + n as f64 * b2[1],
            ];
            if v[0].abs() < wa - 1.0 && v[1].abs() < ha - 1.0 {
                // The mark's z at a lag grows as √overlap: weight by it.
                let overlap = (1.0 - v[0].abs() / wa) * (1.0 - v[1].abs() / ha);
                total += ac.lerp(v) * overlap.sqrt();
            }
        }
    }
    total
}

/// Rotations with a uniform scale (`b2` the quarter turn of `b1`), scored by
/// [`lattice_score`], best first: `count` of them, on a grid of [`ROT_ANGLE_STEP`] degrees and
/// [`ROT_LEN_STEP`] pixels (fine enough for the keyed test to be within ≈ ¼ chip).
pub(crate) const ROT_ANGLE_STEP: f64 = 0.125;
pub(crate) const ROT_LEN_STEP: f64 = 0.25;
fn best_rotations(ac: &AutoCorrelation, count: usize) -> Vec<(f64, [f64; 2], [f64; 2])> {
    let steps_a = (2.0 * MAX_ROTATION_DEG / ROT_ANGLE_STEP).round() as i64;
    let steps_l = ((LEN_MAX - LEN_MIN) / ROT_LEN_STEP).round() as i64;
    let mut all = Vec::with_capacity(((steps_a + 1) * (steps_l + 1)) as usize);
    for ia in 0..=steps_a {
        let ang = (ia as f64 * ROT_ANGLE_STEP - MAX_ROTATION_DEG).to_radians();
        let (c, s) = (ang.cos(), ang.sin());
        for il in 0..=steps_l {
            let l = LEN_MIN + il as f64 * ROT_LEN_STEP;
            let (b1, b2) = ([c * l, s * l], [-s * l, c * l]);
            all.push((lattice_score(ac, b1, b2, true), b1, b2));
        }
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    all.truncate(count);
    all
}

/// Lattices of the family searched — a rotation of up to ±[`MAX_ROTATION_DEG`], two
/// period lengths (uniform scale and anamorphic stretch) and a shear of up to
/// ±[`MAX_SHEAR_DEG`] — scored by [`lattice_score`], best first, at most `count` of them and
/// none within a pixel of a better one. Each direction keeps the best [`PER_AXIS`] lengths,
/// which are then paired (first by a quick score, then the best [`PRESCREEN`] in full).
fn best_lattices(ac: &AutoCorrelation, count: usize) -> Vec<(f64, [f64; 2], [f64; 2])> {
    let steps_a = (2.0 * MAX_ROTATION_DEG / ANGLE_STEP).round() as i64;
    let shear_steps = (MAX_SHEAR_DEG / ANGLE_STEP).round() as i64;
    let lens: Vec<f64> = (0..=((LEN_MAX - LEN_MIN) / LEN_STEP).round() as i64)
        .map(|i| LEN_MIN + i as f64 * LEN_STEP)
        .collect();
    // The best lengths along a direction at `deg` degrees.
    let axis = |deg: f64| {
        let (s, c) = deg.to_radians().sin_cos();
        let mut scored: Vec<(f64, [f64; 2])> = lens
            .iter()
            .map(|&l| {
                let z: f64 = (1..=3)
                    .map(|m| ac.lerp([c * l * m as f64, s * l * m as f64]))
                    .sum();
                (z, [c * l, s * l])
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(PER_AXIS);
        scored
    };
    // b1 at every angle of the rotation; b2 a quarter turn further, give or take the shear
    // (each direction's lengths measured once).
    let first: Vec<_> = (0..=steps_a)
        .map(|ia| axis(ia as f64 * ANGLE_STEP - MAX_ROTATION_DEG))
        .collect();
    let second: Vec<_> = (0..=steps_a + 2 * shear_steps)
        .map(|k| axis(90.0 + k as f64 * ANGLE_STEP - MAX_ROTATION_DEG - MAX_SHEAR_DEG))
        .collect();
    // Every pair, first by a quick score (the two axes and the two diagonals b1 ± b2, which
    // tell the shear); the best PRESCREEN of them by the full one.
    let mut all: Vec<(f64, [f64; 2], [f64; 2])> = Vec::new();
    for (ia, along_b1) in first.iter().enumerate() {
        for along_b2 in &second[ia..=ia + 2 * shear_steps as usize] {
            for &(z1, b1) in along_b1 {
                for &(z2, b2) in along_b2 {
                    let quick = z1
                        + z2
                        + ac.lerp([b1[0] + b2[0], b1[1] + b2[1]])
                        + ac.lerp([b1[0] - b2[0], b1[1] - b2[1]]);
                    all.push((quick, b1, b2));
                }
            }
        }
    }
    if all.len() > PRESCREEN {
        all.select_nth_unstable_by(PRESCREEN, |a, b| b.0.total_cmp(&a.0));
        all.truncate(PRESCREEN);
    }
    for cand in all.iter_mut() {
        cand.0 = lattice_score(ac, cand.1, cand.2, true);
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<(f64, [f64; 2], [f64; 2])> = Vec::new();
    for cand in all {
        if out.len() >= count {
            break;
        }
        let near = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).hypot(a[1] - b[1]) <= 1.0;
        if !out.iter().any(|o| near(o.1, cand.1) && near(o.2, cand.2)) {
            out.push(cand);
        }
    }
    // Each beside its refined copy: the copy is closer to the autocorrelation's peak, which
    // is not always where the key's chips fold best (a keystone's lattice is not one lattice
    // across the frame), so the grid point stays a candidate too.
    let refined: Vec<_> = out
        .iter()
        .map(|&c| refine(ac, c))
        .zip(out.iter())
        .filter(|(r, c)| r.1 != c.1 || r.2 != c.2)
        .map(|(r, _)| r)
        .collect();
    out.extend(refined);
    out
}

/// A lattice `(score, b1, b2)` moved off the search's grid (¼° and ½ pixel: at the third
/// period that is up to ¾ pixel, most of a chip) onto the autocorrelation's own peaks: at
/// each lattice point [`lattice_score`] sums, the highest integer lag within a pixel of it
/// and that peak's sub-pixel centre (a parabola through it and its neighbours, along each
/// axis); then the `b1`, `b2` that fit those centres best (least squares, each point weighted
/// by its peak's height and overlap), twice. The peaks are the autocorrelation's, never a
/// key's, so the refined lattice is as fixed given the content as the grid point it started
/// from. A fit that would move the furthest point by more than two pixels is not taken.
fn refine(ac: &AutoCorrelation, cand: (f64, [f64; 2], [f64; 2])) -> (f64, [f64; 2], [f64; 2]) {
    let (wa, ha) = (ac.wa as f64, ac.ha as f64);
    let (mut b1, mut b2) = (cand.1, cand.2);
    for _ in 0..2 {
        // Normal equations of Σ w·|q − m·b1 − n·b2|², one per coordinate.
        let (mut smm, mut smn, mut snn) = (0.0, 0.0, 0.0);
        let (mut smq, mut snq) = ([0.0; 2], [0.0; 2]);
        for m in 0..=3i32 {
            for n in -2..=2i32 {
                if m == 0 && n <= 0 {
                    continue;
                }
                let (mf, nf) = (m as f64, n as f64);
                let v = [mf * b1[0] + nf * b2[0], mf * b1[1] + nf * b2[1]];
                if v[0].abs() >= wa - 2.0 || v[1].abs() >= ha - 2.0 {
                    continue;
                }
                let (cx, cy) = (v[0].round() as i64, v[1].round() as i64);
                let Some((h, px, py)) = (-1..=1)
                    .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                    .map(|(dx, dy)| (ac.at(cx + dx, cy + dy), cx + dx, cy + dy))
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                else {
                    continue;
                };
                if h <= 0.0 {
                    continue;
                }
                let centre = |l: f64, c: f64, r: f64| {
                    let d = l - 2.0 * c + r;
                    if d < 0.0 {
                        (0.5 * (l - r) / d).clamp(-0.5, 0.5)
                    } else {
                        0.0
                    }
                };
                let q = [
                    px as f64 + centre(ac.at(px - 1, py), h, ac.at(px + 1, py)),
                    py as f64 + centre(ac.at(px, py - 1), h, ac.at(px, py + 1)),
                ];
                let overlap = (1.0 - v[0].abs() / wa) * (1.0 - v[1].abs() / ha);
                let w = h * overlap.sqrt();
                smm += w * mf * mf;
                smn += w * mf * nf;
                snn += w * nf * nf;
                for k in 0..2 {
                    smq[k] += w * mf * q[k];
                    snq[k] += w * nf * q[k];
                }
            }
        }
        let det = smm * snn - smn * smn;
        if det.abs() < 1e-9 * (smm * snn).max(1e-300) {
            break;
        }
        let mut n1 = [0.0; 2];
        let mut n2 = [0.0; 2];
        for k in 0..2 {
            n1[k] = (snn * smq[k] - smn * snq[k]) / det;
            n2[k] = (smm * snq[k] - smn * smq[k]) / det;
        }
        // At the furthest point scored (3·b1 ± 2·b2) the move stays within the peaks'
        // search (a pixel) and the grid's own miss there (¾ pixel), give or take.
        let moved = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
        if 3.0 * moved(n1, b1) + 2.0 * moved(n2, b2) > 2.0
            || !(n1[0].is_finite() && n2[1].is_finite())
        {
            break;
        }
        (b1, b2) = (n1, n2);
    }
    (lattice_score(ac, b1, b2, true), b1, b2)
}

/// Half-width (bins of the padded spectrum) of the window [`whiten`] averages the power
/// over: about one period of the mark's spectral comb at scale 1 (the padded spectrum is
/// at least twice the image, so a 64-pixel period puts the comb's teeth ≥ 8 bins apart
/// across the width, ≥ 4 down the height).
const WHITEN_RADIUS: usize = 4;

/// The image with its spectrum flattened: each frequency divided by the root of the mean
/// power around it. The clip's summed content is far from white — edges along a direction
/// correlate with themselves at every lag along it, and fold coherently under any map
/// whose lattice lies along them — while the mark's periodic tile puts its power on a comb
/// of sharp teeth that stand out of any local average. After this the content is close to
/// white noise at every lag, and the mark's lattice is what remains.
fn whiten(img: &[f32], wa: usize, ha: usize) -> Vec<f32> {
    let (pw, ph) = ((2 * wa).next_power_of_two(), (2 * ha).next_power_of_two());
    let mut x = vec![Complex64::default(); pw * ph];
    for v in 0..ha {
        for u in 0..wa {
            x[v * pw + u].re = img[v * wa + u] as f64;
        }
    }
    fft2(&mut x, pw, ph, false, ha);
    let power: Vec<f64> = x.iter().map(|c| c.re * c.re + c.im * c.im).collect();
    let smooth = box_blur_wrapped(&power, pw, ph, WHITEN_RADIUS);
    for (c, &p) in x.iter_mut().zip(&smooth) {
        let g = if p > 1e-12 { 1.0 / p.sqrt() } else { 0.0 };
        c.re *= g;
        c.im *= g;
    }
    x[0] = Complex64::default();
    fft2(&mut x, pw, ph, true, ha);
    let mut out = vec![0f32; wa * ha];
    for v in 0..ha {
        for u in 0..wa {
            out[v * wa + u] = x[v * pw + u].re as f32;
        }
    }
    out
}

/// Mean over the `(2r+1)²` window around every element of a `w × h` array, wrapping
/// around its edges (a spectrum is periodic).
fn box_blur_wrapped(a: &[f64], w: usize, h: usize, r: usize) -> Vec<f64> {
    let blur_line = |line: &[f64], out: &mut [f64]| {
        let n = line.len();
        let k = (2 * r + 1).min(n);
        let mut acc: f64 = (0..k).map(|i| line[(i + n - r % n) % n]).sum();
        for (i, o) in out.iter_mut().enumerate() {
            *o = acc / k as f64;
            acc += line[(i + r + 1) % n] - line[(i + n - r % n) % n];
        }
    };
    let mut rows = vec![0f64; w * h];
    for (src, dst) in a.chunks_exact(w).zip(rows.chunks_exact_mut(w)) {
        blur_line(src, dst);
    }
    let mut out = vec![0f64; w * h];
    let (mut col, mut blurred) = (vec![0f64; h], vec![0f64; h]);
    for c in 0..w {
        for (r_, v) in col.iter_mut().enumerate() {
            *v = rows[r_ * w + c];
        }
        blur_line(&col, &mut blurred);
        for (r_, v) in blurred.iter().enumerate() {
            out[r_ * w + c] = *v;
        }
    }
    out
}

/// Candidates of the uniform-scale rotation family the keys test (upright and mirrored).
pub(crate) const ROTATION_CANDIDATES: usize = 160;
/// Candidates of the general family (rotation with two period lengths: an anamorphic
/// stretch, perhaps turned or sheared) tested as found, in every orientation. 32, not 8:
/// a camera move filmed at a slight angle (a keystone) leaves the riding sums' mark on a
/// lattice sheared by ≈ 1–3°, which the content riding with it pushed below the eighth
/// place (photo-pan at half the perspective row's keystone: z 1.4 → 10.6); each more
/// candidate is 8 more hypotheses per key of the 384 → 576 the stage counts.
pub(crate) const LATTICE_CANDIDATES: usize = 32;
/// General lattices tested: each candidate and its [`refine`]d copy (the bound counts both,
/// found or not: 832 hypotheses per key and phase and shift instead of 576).
pub(crate) const LATTICE_MAPS: usize = 2 * LATTICE_CANDIDATES;

/// A map for the keys to test, and how many of [`Orientation::ALL`](crate::Orientation)'s
/// first orientations to test it in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub map: TileMap,
    pub orientations: usize,
}

/// A straight run of lags (analysis pixels), from one end to the other.
pub(crate) type LagSegment = ((f64, f64), (f64, f64));

/// The lags (of the half plane [`periodicity`] looks at) within [`LEFT_OUT_R`] of some
/// segments and of their opposites, drawn once for every reading it is asked about.
pub(crate) struct LeftOutLags {
    out: Vec<bool>,
}

impl LeftOutLags {
    const REACH: i64 = LEN_MAX as i64;
    const SIDE: usize = (2 * Self::REACH + 1) as usize;

    pub(crate) fn new(segments: &[LagSegment]) -> Self {
        let reach = Self::REACH;
        let mut out = vec![false; Self::SIDE * (reach as usize + 1)];
        let r = LEFT_OUT_R.ceil() as i64;
        for &(a, b) in segments {
            for ((ax, ay), (bx, by)) in [(a, b), ((-a.0, -a.1), (-b.0, -b.1))] {
                let (ux, uy) = (bx - ax, by - ay);
                let len2 = ux * ux + uy * uy;
                let (y0, y1) = (ay.min(by).floor() as i64 - r, ay.max(by).ceil() as i64 + r);
                let (x0, x1) = (ax.min(bx).floor() as i64 - r, ax.max(bx).ceil() as i64 + r);
                for dy in y0.max(0)..=y1.min(reach) {
                    for dx in x0.max(-reach)..=x1.min(reach) {
                        let (px, py) = (dx as f64 - ax, dy as f64 - ay);
                        let t = if len2 > 0.0 {
                            ((px * ux + py * uy) / len2).clamp(0.0, 1.0)
                        } else {
                            0.0
                        };
                        if (px - t * ux).hypot(py - t * uy) <= LEFT_OUT_R {
                            out[dy as usize * Self::SIDE + (dx + reach) as usize] = true;
                        }
                    }
                }
            }
        }
        LeftOutLags { out }
    }

    /// Whether the lag `(dx, dy)` (|dx|, dy ≤ [`LEN_MAX`], dy ≥ 0) is left out.
    fn contains(&self, dx: i64, dy: i64) -> bool {
        self.out[dy as usize * Self::SIDE + (dx + Self::REACH) as usize]
    }
}

/// How far the whitened image's autocorrelation peak over the lattice's lengths
/// ([`LEN_MIN`]–[`LEN_MAX`]) stands out of the rest of that annulus, in its standard
/// deviations, above the autocorrelation at 0.6 and 0.8 of the same lag (a ridge running in
/// from the origin is not a lattice point): a tile repeated over the image puts an isolated
/// peak there under any rotation, mirror or crop. The lags `left_out` are not looked at:
/// content moving at a steady speed repeats too — the turning mark's readings sum it into
/// copies of one sign 4 s of motion apart, with a ridge along the motion (an unmarked pan
/// over a star field stood out by 16–21 at its 4 s displacement, and by 9 just beside it)
/// — and the caller knows the camera's path. Key-free. `None` for images too small to hold
/// two periods.
pub(crate) fn periodicity(
    img: &[f32],
    wa: usize,
    ha: usize,
    left_out: &LeftOutLags,
) -> Option<f64> {
    if wa < 2 * LEN_MIN as usize || ha < 2 * LEN_MIN as usize || img.len() != wa * ha {
        return None;
    }
    let reach = LEN_MAX as i64;
    let ac = AutoCorrelation::new(&whiten(img, wa, ha), wa, ha);
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    let mut peak = (0i64, 0i64, f64::NEG_INFINITY);
    // Half the plane: z(v) = z(−v).
    for dy in 0..=reach {
        for dx in -reach..=reach {
            let len = ((dx * dx + dy * dy) as f64).sqrt();
            if !(LEN_MIN..=LEN_MAX).contains(&len)
                || (dy == 0 && dx < 0)
                || left_out.contains(dx, dy)
            {
                continue;
            }
            let z = ac.at(dx, dy);
            if z == 0.0 {
                continue; // too little overlap
            }
            n += 1.0;
            sum += z;
            sq += z * z;
            if z > peak.2 {
                peak = (dx, dy, z);
            }
        }
    }
    let mean = sum / n;
    let sd = (sq / n - mean * mean).max(0.0).sqrt();
    let (dx, dy) = (peak.0 as f64, peak.1 as f64);
    let nearer = [0.6, 0.8]
        .iter()
        .map(|f| ac.lerp([f * dx, f * dy]))
        .fold(mean, f64::max);
    (n > 1.0 && sd > 0.0).then(|| (peak.2 - nearer) / sd)
}

/// The candidate maps for a summed analysis image: at most [`ROTATION_CANDIDATES`] rotations
/// (2 orientations each) and [`LATTICE_MAPS`] general lattices (8 orientations each),
/// chosen from the whitened image's autocorrelation alone — never a key — so that under the
/// null each is a fixed registration given the content. Images too small to hold two
/// periods of the lattice give none.
pub(crate) fn candidate_maps(img: &[f32], wa: usize, ha: usize) -> Vec<Candidate> {
    if wa < 2 * LEN_MIN as usize || ha < 2 * LEN_MIN as usize || img.len() != wa * ha {
        return Vec::new();
    }
    let ac = AutoCorrelation::new(&whiten(img, wa, ha), wa, ha);
    // The two families side by side (≈ 20 and 30 ms at 16:9): the lattice stage runs after
    // the last frame, where a core left idle is time added to the scan.
    let (rotations, general) = std::thread::scope(|s| {
        let rotations = s.spawn(|| best_rotations(&ac, ROTATION_CANDIDATES));
        let general = best_lattices(&ac, LATTICE_CANDIDATES);
        (
            rotations.join().expect("the rotation search panicked"),
            general,
        )
    });
    let rotations = rotations.into_iter().map(|c| (c, 2));
    let general = general.into_iter().map(|c| (c, 8));
    rotations
        .chain(general)
        .filter_map(|((_, b1, b2), orientations)| {
            TileMap::from_lattice(b1, b2).map(|map| Candidate { map, orientations })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_i64_is_floor() {
        for x in [
            -3.5,
            -3.0,
            -2.999_999,
            -0.5,
            -0.0,
            0.0,
            1e-300,
            0.5,
            2.0,
            63.999,
            1e15 + 0.5,
        ] {
            assert_eq!(floor_i64(x), x.floor() as i64, "{x}");
        }
        for i in -100_000..100_000 {
            let x = i as f64 * 0.013_7;
            assert_eq!(floor_i64(x), x.floor() as i64, "{x}");
        }
    }

    #[test]
    fn a_lattice_maps_to_its_tile_and_back() {
        let b1 = [70.0, 5.0];
        let b2 = [-4.0, 66.0];
        let m = TileMap::from_lattice(b1, b2).unwrap();
        let (t1, t2) = (m.apply(b1[0], b1[1]), m.apply(b2[0], b2[1]));
        assert!((t1.0 - 64.0).abs() < 1e-9 && t1.1.abs() < 1e-9, "{t1:?}");
        assert!(t2.0.abs() < 1e-9 && (t2.1 - 64.0).abs() < 1e-9, "{t2:?}");
        let (c1, c2) = m.lattice();
        assert!((c1[0] - b1[0]).abs() < 1e-9 && (c2[1] - b2[1]).abs() < 1e-9);
        assert!(TileMap::from_lattice(b1, b1).is_none());
    }

    /// Uniform numbers in [0, 1) from a seed (a linear congruential generator).
    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        }
    }

    /// A ±1 tile.
    fn random_tile(rnd: &mut impl FnMut() -> f64) -> Vec<f64> {
        (0..TILE * TILE)
            .map(|_| if rnd() < 0.5 { -1.0 } else { 1.0 })
            .collect()
    }

    /// `tile` repeated under `map` over a `wa × ha` image, plus uniform noise of sd 2.
    fn tiled_with_noise(
        wa: usize,
        ha: usize,
        map: &TileMap,
        tile: &[f64],
        rnd: &mut impl FnMut() -> f64,
    ) -> Vec<f32> {
        let mut img = vec![0f32; wa * ha];
        for_each_chip(wa, ha, map, (0.3, 0.6), |i, j| img[i] = tile[j] as f32);
        for v in img.iter_mut() {
            *v += ((rnd() - 0.5) * 2.0 * 3.0f64.sqrt() * 2.0) as f32;
        }
        img
    }

    /// A ±1 tile repeated under a rotated lattice, plus noise twice its size; and the same
    /// tile under an anamorphic stretch, and under a shear.
    #[test]
    fn rotated_and_stretched_lattices_are_found_without_the_tile() {
        let (wa, ha) = (228, 128);
        let mut rnd = lcg(11);
        let tile = random_tile(&mut rnd);
        let ang = 7f64.to_radians();
        let (c, s) = (ang.cos(), ang.sin());
        for (truth, family) in [
            ([[72.0 * c, 72.0 * s], [-72.0 * s, 72.0 * c]], 2),
            ([[80.0, 0.0], [0.0, 58.0]], 8),
            // Sheared: the middle of a screen filmed slightly from the side (the bench's
            // "mild perspective" at its centre: periods 3.5° off a right angle).
            ([[67.1, 0.96], [3.05, 65.7]], 8),
            // Sheared the other way and more (9.9°): a stronger slant.
            ([[66.0, 2.0], [-13.0, 63.5]], 8),
        ] {
            let map = TileMap::from_lattice(truth[0], truth[1]).unwrap();
            let img = tiled_with_noise(wa, ha, &map, &tile, &mut rnd);
            let maps = candidate_maps(&img, wa, ha);
            // Every rotation; of the general family those more than a pixel from a better one
            // (here 26 of 32 on one image), each with its refined copy where that moved: the
            // bound counts all LATTICE_MAPS anyway.
            let general = maps.iter().filter(|m| m.orientations == 8).count();
            assert_eq!(maps.len() - general, ROTATION_CANDIDATES);
            assert!((LATTICE_CANDIDATES / 2..=LATTICE_MAPS).contains(&general));
            // The best of its family puts every corner of the image within half a chip of
            // the truth (the grid's steps are ⅛° and ¼ pixel).
            let best = maps.iter().find(|m| m.orientations == family).unwrap().map;
            for (x, y) in [
                (-114.0, -64.0),
                (114.0, -64.0),
                (-114.0, 64.0),
                (114.0, 64.0),
            ] {
                let (a, b) = (best.apply(x, y), map.apply(x, y));
                assert!(
                    (a.0 - b.0).hypot(a.1 - b.1) < 0.5,
                    "{truth:?}, corner ({x}, {y}): {a:?} vs {b:?}"
                );
            }
        }
    }

    /// A lattice between the general search's grid points (¼°, ½ pixel): the grid's best
    /// misses the image's corners by most of a chip (0.82), its refined copy by a tenth at
    /// most (0.03 measured).
    #[test]
    fn a_lattice_off_the_grid_is_refined_towards_it() {
        let (wa, ha) = (228, 128);
        let mut rnd = lcg(5);
        let tile = random_tile(&mut rnd);
        // Periods 65.77 and 66.31 pixels, 1.9° and 2.7° off the axes.
        let truth = [[65.734, 2.181], [-3.123, 66.236]];
        let map = TileMap::from_lattice(truth[0], truth[1]).unwrap();
        let img = tiled_with_noise(wa, ha, &map, &tile, &mut rnd);
        let ac = AutoCorrelation::new(&whiten(&img, wa, ha), wa, ha);
        let found = best_lattices(&ac, LATTICE_CANDIDATES);
        // The worst corner's distance (chips) from where the truth puts it.
        let miss = |b1: [f64; 2], b2: [f64; 2]| {
            let m = TileMap::from_lattice(b1, b2).unwrap();
            [
                (-114.0, -64.0),
                (114.0, -64.0),
                (-114.0, 64.0),
                (114.0, 64.0),
            ]
            .iter()
            .map(|&(x, y)| {
                let (a, b) = (m.apply(x, y), map.apply(x, y));
                (a.0 - b.0).hypot(a.1 - b.1)
            })
            .fold(0.0, f64::max)
        };
        let grid = found.len() / 2;
        let best = |c: &[(f64, [f64; 2], [f64; 2])]| {
            c.iter()
                .map(|c| miss(c.1, c.2))
                .fold(f64::INFINITY, f64::min)
        };
        let (on_grid, refined) = (best(&found[..grid]), best(&found[grid..]));
        assert!(
            on_grid > 0.25,
            "the grid's best already within {on_grid} chip"
        );
        assert!(
            refined < 0.6 * on_grid,
            "refined {refined} vs grid {on_grid}"
        );
    }
}
