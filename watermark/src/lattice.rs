//! Key-independent registration of rotated, stretched and mildly tilted copies: the mark's
//! tile repeats on a lattice, so the clip's summed residual correlates with itself at the
//! lattice's vectors whatever the key. The lattice is found from the residual's
//! autocorrelation (one FFT), then refined by how coherently the residual folds modulo the
//! tile under a projective map (the fold's energy beyond its diagonal). None of this looks
//! at a key, so under the null (content not marked with the key tested) the maps chosen
//! are fixed given the content and each is one more registration to count in the p-value,
//! not a search over the key's statistic.

use crate::analysis::TILE;
use crate::fft::{Fft, C};

/// Largest rotation of the lattice (degrees) looked for, either way.
pub(crate) const MAX_ROTATION_DEG: f64 = 12.0;
/// Lattice vector lengths looked for, in analysis pixels (64 at scale 1): 40 is a picture
/// shown at 1/1.6 of its size, 112 one cropped to 57 % of its width and scaled back, or
/// stretched 1.75× (e.g. a crop to 75 % of the width combined with a ×1.33 stretch).
const LEN_MIN: f64 = 40.0;
const LEN_MAX: f64 = 112.0;
/// Lags whose overlap is below this fraction of the image are not used (too few pairs).
const MIN_OVERLAP: f64 = 0.1;
/// Most coherence evaluations per seed's refinement.
const MAX_REFINE_EVALS: usize = 400;

/// A projective map from the analysis image to tile coordinates: the analysis pixel at
/// centred position `x = (u + ½ − w/2, v + ½ − h/2)` shows the tile's chip at
/// `A·x / (1 + p·x)` (modulo the tile, up to a shift). A scale `s` alone is `A = s·I`,
/// `p = 0`; a rotation, an anamorphic stretch or a shear is a general `A`; `p` is a mild
/// perspective (a screen filmed at an angle, a keystone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TileMap {
    /// Row-major 2×2.
    pub a: [f64; 4],
    pub p: [f64; 2],
}

impl TileMap {
    /// The map whose lattice (in the analysis image) is spanned by `b1`, `b2`: the tile's
    /// period vectors `(64, 0)`, `(0, 64)` land on them (`A = 64·B⁻¹`, `B = [b1 b2]`).
    pub(crate) fn from_lattice(b1: [f64; 2], b2: [f64; 2], p: [f64; 2]) -> Option<Self> {
        let det = b1[0] * b2[1] - b2[0] * b1[1];
        if det.abs() < 1e-6 || !det.is_finite() {
            return None;
        }
        let t = TILE as f64 / det;
        Some(TileMap {
            a: [t * b2[1], -t * b2[0], -t * b1[1], t * b1[0]],
            p,
        })
    }

    /// Tile coordinates of centred analysis position (x, y); `None` where the perspective
    /// denominator is not safely positive (never for the mild maps searched).
    #[inline]
    pub(crate) fn apply(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let d = 1.0 + self.p[0] * x + self.p[1] * y;
        if d <= 0.25 {
            return None;
        }
        let a = &self.a;
        Some(((a[0] * x + a[1] * y) / d, (a[2] * x + a[3] * y) / d))
    }

    /// The lattice vectors `(b1, b2)` of the affine part.
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

/// Calls `visit(pixel index, chip index)` for every analysis pixel the map puts on a chip.
#[inline]
pub(crate) fn for_each_chip(
    wa: usize,
    ha: usize,
    map: &TileMap,
    phase: (f64, f64),
    mut visit: impl FnMut(usize, usize),
) {
    let t = TILE as i64;
    for v in 0..ha {
        let y = v as f64 + 0.5 - ha as f64 / 2.0;
        for u in 0..wa {
            let x = u as f64 + 0.5 - wa as f64 / 2.0;
            if let Some((tx, ty)) = map.apply(x, y) {
                let cx = ((tx + phase.0).floor() as i64).rem_euclid(t) as usize;
                let cy = ((ty + phase.1).floor() as i64).rem_euclid(t) as usize;
                visit(v * wa + u, cy * TILE + cx);
            }
        }
    }
}

/// How coherently the image folds under `map`: the fold's energy beyond the sum of its
/// pixels' own energies (the cross terms between pixels folded together), relative to the
/// image's energy, summed over the four half-chip phases (at one phase alone a map that
/// drifts across the image can beat the true one whose chip borders fall mid-pixel). About
/// 0 for content unrelated to the tile; large and positive when a periodic mark is folded
/// onto itself.
pub(crate) fn coherence(img: &[f32], wa: usize, ha: usize, map: &TileMap) -> f64 {
    let n = TILE * TILE;
    let mut f = vec![0f32; 4 * n];
    let mut own = 0f64;
    let t = TILE as i64;
    let chip = |c: f64| (c.floor() as i64).rem_euclid(t) as usize;
    for v in 0..ha {
        let y = v as f64 + 0.5 - ha as f64 / 2.0;
        for u in 0..wa {
            let x = u as f64 + 0.5 - wa as f64 / 2.0;
            if let Some((tx, ty)) = map.apply(x, y) {
                let s = img[v * wa + u];
                own += (s * s) as f64;
                let (x0, x1, y0, y1) = (chip(tx), chip(tx + 0.5), chip(ty), chip(ty + 0.5));
                f[y0 * TILE + x0] += s;
                f[n + y0 * TILE + x1] += s;
                f[2 * n + y1 * TILE + x0] += s;
                f[3 * n + y1 * TILE + x1] += s;
            }
        }
    }
    if own <= 1e-12 {
        return 0.0;
    }
    let folded: f64 = f.iter().map(|&v| (v as f64) * (v as f64)).sum();
    (folded - 4.0 * own) / own
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
        let mut x = vec![C::default(); pw * ph];
        for v in 0..ha {
            for u in 0..wa {
                let s = img[v * wa + u] as f64;
                x[v * pw + u] = C { re: s, im: s * s };
            }
        }
        fft2(&mut x, pw, ph, false);
        let mut y = vec![C::default(); pw * ph];
        for ky in 0..ph {
            for kx in 0..pw {
                let k = ky * pw + kx;
                let nk = ((ph - ky) % ph) * pw + (pw - kx) % pw;
                let (a, b) = (x[k], x[nk]);
                // Ŝ = (X[k] + conj X[−k]) / 2,  Ŝ² = (X[k] − conj X[−k]) / 2i.
                let (sr, si) = ((a.re + b.re) / 2.0, (a.im - b.im) / 2.0);
                let (qr, qi) = ((a.im + b.im) / 2.0, (b.re - a.re) / 2.0);
                // |Ŝ|² + i·|Ŝ²|²: transforms back to R + i·D (both real).
                y[k] = C {
                    re: sr * sr + si * si,
                    im: qr * qr + qi * qi,
                };
            }
        }
        fft2(&mut y, pw, ph, true);
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

/// 2-D transform of a `pw × ph` row-major array (powers of two), in place.
fn fft2(x: &mut [C], pw: usize, ph: usize, inverse: bool) {
    let (fw, fh) = (Fft::new(pw), Fft::new(ph));
    let mut buf = Vec::with_capacity(pw.max(ph));
    for row in x.chunks_exact_mut(pw) {
        fw.run1d(row, inverse, &mut buf);
    }
    let mut col = vec![C::default(); ph];
    for c in 0..pw {
        for (r, v) in col.iter_mut().enumerate() {
            *v = x[r * pw + c];
        }
        fh.run1d(&mut col, inverse, &mut buf);
        for (r, v) in col.iter().enumerate() {
            x[r * pw + c] = *v;
        }
    }
}

/// Steps of the lattice search: angle (degrees) and period length (analysis pixels).
const ANGLE_STEP: f64 = 0.25;
const LEN_STEP: f64 = 0.5;
/// Period lengths per axis kept for pairing, at each angle.
const PER_AXIS: usize = 6;

/// Every lattice point `m·b1 + n·b2` (m ≥ 0, not both 0, up to sign) whose lag fits in the
/// image, summed: the autocorrelation's evidence that `b1`, `b2` span the mark's lattice.
fn lattice_score(ac: &AutoCorrelation, b1: [f64; 2], b2: [f64; 2], axes: bool) -> f64 {
    let (wa, ha) = (ac.wa as f64, ac.ha as f64);
    let mut total = 0.0;
    for m in 0..=4i32 {
        for n in -4..=4i32 {
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

/// Lattices of the family searched — a rotation of up to ±[`MAX_ROTATION_DEG`] and two
/// period lengths (uniform scale and anamorphic stretch) — scored by [`lattice_score`],
/// best first, at most `count` of them and none within a pixel of a better one. Each
/// angle keeps the best [`PER_AXIS`] lengths along each axis, which are then paired.
fn best_lattices(ac: &AutoCorrelation, count: usize) -> Vec<(f64, [f64; 2], [f64; 2])> {
    let steps_a = (2.0 * MAX_ROTATION_DEG / ANGLE_STEP).round() as i64;
    let lens: Vec<f64> = (0..=((LEN_MAX - LEN_MIN) / LEN_STEP).round() as i64)
        .map(|i| LEN_MIN + i as f64 * LEN_STEP)
        .collect();
    let mut all: Vec<(f64, [f64; 2], [f64; 2])> = Vec::new();
    for ia in 0..=steps_a {
        let ang = (ia as f64 * ANGLE_STEP - MAX_ROTATION_DEG).to_radians();
        let (c, s) = (ang.cos(), ang.sin());
        let axis = |dir: [f64; 2]| {
            let mut scored: Vec<(f64, f64)> = lens
                .iter()
                .map(|&l| {
                    let z: f64 = (1..=3)
                        .map(|m| ac.lerp([dir[0] * l * m as f64, dir[1] * l * m as f64]))
                        .sum();
                    (z, l)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.truncate(PER_AXIS);
            scored
        };
        let (d1, d2) = ([c, s], [-s, c]);
        for &(_, l1) in &axis(d1) {
            for &(_, l2) in &axis(d2) {
                let (b1, b2) = ([d1[0] * l1, d1[1] * l1], [d2[0] * l2, d2[1] * l2]);
                all.push((lattice_score(ac, b1, b2, true), b1, b2));
            }
        }
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
    out
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
    let mut x = vec![C::default(); pw * ph];
    for v in 0..ha {
        for u in 0..wa {
            x[v * pw + u].re = img[v * wa + u] as f64;
        }
    }
    fft2(&mut x, pw, ph, false);
    let power: Vec<f64> = x.iter().map(|c| c.re * c.re + c.im * c.im).collect();
    let smooth = box_blur_wrapped(&power, pw, ph, WHITEN_RADIUS);
    for (c, &p) in x.iter_mut().zip(&smooth) {
        let g = if p > 1e-12 { 1.0 / p.sqrt() } else { 0.0 };
        c.re *= g;
        c.im *= g;
    }
    x[0] = C::default();
    fft2(&mut x, pw, ph, true);
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

/// Refines a map by coordinate ascent of [`coherence`] over its lattice vectors and its
/// perspective, steps halving when no coordinate improves.
fn refine(img: &[f32], wa: usize, ha: usize, b1: [f64; 2], b2: [f64; 2]) -> (f64, TileMap) {
    let mut x = [b1[0], b1[1], b2[0], b2[1], 0.0, 0.0];
    // Perspective in units of 1/(128 analysis pixels): 0.08 is a keystone whose far edge is
    // 8 % shorter than its near one, across the grid's height.
    let pu = 1.0 / 128.0;
    let map_of =
        |x: &[f64; 6]| TileMap::from_lattice([x[0], x[1]], [x[2], x[3]], [x[4] * pu, x[5] * pu]);
    let eval = |x: &[f64; 6]| map_of(x).map_or(f64::NEG_INFINITY, |m| coherence(img, wa, ha, &m));
    let mut best = eval(&x);
    let mut step = [0.5, 0.5, 0.5, 0.5, 0.02, 0.02];
    let min_step = [0.02, 0.02, 0.02, 0.02, 0.001, 0.001];
    let mut evals = 1;
    while evals < MAX_REFINE_EVALS {
        let mut improved = false;
        for i in 0..6 {
            for dir in [1.0, -1.0] {
                let mut y = x;
                y[i] += dir * step[i];
                // Mild perspective only.
                if i >= 4 && y[i].abs() > 0.25 {
                    continue;
                }
                let v = eval(&y);
                evals += 1;
                if v > best {
                    best = v;
                    x = y;
                    improved = true;
                    break;
                }
            }
        }
        if !improved {
            if step.iter().zip(&min_step).all(|(s, m)| s <= m) {
                break;
            }
            for s in step.iter_mut() {
                *s /= 2.0;
            }
        }
    }
    (best, map_of(&x).expect("refined from a valid map"))
}

/// Candidates of the uniform-scale rotation family the keys test (upright and mirrored).
pub(crate) const ROTATION_CANDIDATES: usize = 160;
/// Candidates of the general family (rotation with two period lengths: an anamorphic
/// stretch, perhaps turned) tested as found, in every orientation.
pub(crate) const LATTICE_CANDIDATES: usize = 8;
/// Of those, the best refined by [`coherence`] (shear and perspective too) and tested
/// again, in every orientation.
pub(crate) const REFINED_CANDIDATES: usize = 4;

/// A map for the keys to test, and how many of [`Orientation::ALL`](crate::Orientation)'s
/// first orientations to test it in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub map: TileMap,
    pub orientations: usize,
}

/// The candidate maps for a summed analysis image: at most [`ROTATION_CANDIDATES`] rotations
/// (2 orientations each), [`LATTICE_CANDIDATES`] general lattices and [`REFINED_CANDIDATES`]
/// refined ones (8 orientations each), chosen from the whitened image's autocorrelation and
/// coherence alone — never a key — so that under the null each is a fixed registration
/// given the content. Images too small to hold two periods of the lattice give none.
pub(crate) fn candidate_maps(img: &[f32], wa: usize, ha: usize) -> Vec<Candidate> {
    if wa < 2 * LEN_MIN as usize || ha < 2 * LEN_MIN as usize || img.len() != wa * ha {
        return Vec::new();
    }
    let img = &whiten(img, wa, ha);
    let ac = AutoCorrelation::new(img, wa, ha);
    let mut out: Vec<Candidate> = best_rotations(&ac, ROTATION_CANDIDATES)
        .into_iter()
        .filter_map(|(_, b1, b2)| TileMap::from_lattice(b1, b2, [0.0, 0.0]))
        .map(|map| Candidate {
            map,
            orientations: 2,
        })
        .collect();
    let general = best_lattices(&ac, LATTICE_CANDIDATES);
    for &(_, b1, b2) in &general {
        if let Some(map) = TileMap::from_lattice(b1, b2, [0.0, 0.0]) {
            out.push(Candidate {
                map,
                orientations: 8,
            });
        }
    }
    let mut refined: Vec<(f64, TileMap)> = general
        .iter()
        .take(REFINED_CANDIDATES)
        .map(|&(_, b1, b2)| refine(img, wa, ha, b1, b2))
        .collect();
    refined.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.extend(refined.into_iter().map(|(_, map)| Candidate {
        map,
        orientations: 8,
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lattice_maps_to_its_tile_and_back() {
        let b1 = [70.0, 5.0];
        let b2 = [-4.0, 66.0];
        let m = TileMap::from_lattice(b1, b2, [0.0, 0.0]).unwrap();
        let (t1, t2) = (
            m.apply(b1[0], b1[1]).unwrap(),
            m.apply(b2[0], b2[1]).unwrap(),
        );
        assert!((t1.0 - 64.0).abs() < 1e-9 && t1.1.abs() < 1e-9, "{t1:?}");
        assert!(t2.0.abs() < 1e-9 && (t2.1 - 64.0).abs() < 1e-9, "{t2:?}");
        let (c1, c2) = m.lattice();
        assert!((c1[0] - b1[0]).abs() < 1e-9 && (c2[1] - b2[1]).abs() < 1e-9);
        assert!(TileMap::from_lattice(b1, b1, [0.0, 0.0]).is_none());
    }

    /// A ±1 tile repeated under a rotated, stretched lattice, plus noise twice its size.
    #[test]
    fn a_rotated_stretched_lattice_is_found_without_the_tile() {
        let (wa, ha) = (228, 128);
        let mut state = 11u64;
        let mut rnd = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let tile: Vec<f64> = (0..TILE * TILE)
            .map(|_| if rnd() < 0.5 { -1.0 } else { 1.0 })
            .collect();
        let ang = 7f64.to_radians();
        let truth = TileMap::from_lattice(
            [72.0 * ang.cos(), 72.0 * ang.sin()],
            [-60.0 * ang.sin(), 60.0 * ang.cos()],
            [0.0, 0.0],
        )
        .unwrap();
        let mut img = vec![0f32; wa * ha];
        for_each_chip(wa, ha, &truth, (0.3, 0.6), |i, j| img[i] = tile[j] as f32);
        for v in img.iter_mut() {
            let noise = (rnd() - 0.5) * 2.0 * 3.0f64.sqrt() * 2.0; // sd 2
            *v += noise as f32;
        }
        let maps = candidate_maps(&img, wa, ha);
        assert!(!maps.is_empty());
        // The refined ones come last, the best first.
        let best = maps[maps.len() - REFINED_CANDIDATES].map;
        let (t1, _) = truth.lattice();
        // The refined map puts every corner of the image within half a chip of the truth.
        for (x, y) in [
            (-114.0, -64.0),
            (114.0, -64.0),
            (-114.0, 64.0),
            (114.0, 64.0),
        ] {
            let (a, b) = (best.apply(x, y).unwrap(), truth.apply(x, y).unwrap());
            assert!(
                (a.0 - b.0).hypot(a.1 - b.1) < 0.5,
                "corner ({x}, {y}): {a:?} vs {b:?}"
            );
        }
        // Pure noise folds incoherently; the mark does not.
        assert!(coherence(&img, wa, ha, &best) > 1.0);
        // The rotation family's best is this lattice's neighbour on its grid.
        let (r1, _) = maps[0].map.lattice();
        assert!(
            (r1[0] - t1[0]).hypot(r1[1] - t1[1]) < 8.0,
            "{r1:?} vs {t1:?}"
        );
    }
}
