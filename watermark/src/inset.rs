//! A picture shown inside other footage (picture-in-picture, a reaction video's inset), found
//! from the frames alone, never the key: a rectangle whose four sides are edges that persist
//! over the clip. Two unrelated pictures meet along the inset's border in every frame, so
//! an edge lies there nearly always; inside ordinary footage an edge persists where the
//! scene is still, but seldom as four sides of one rectangle. Measured (session 23) on the
//! bench's sources sealed and shown at 50 % over other footage with every border 2 px off
//! the coarse grid (inside its pixels): bbb, gen-street and photo-zoom found to the pixel,
//! gen-beach with its bottom on the horizon inside it; scores 0.77–0.96. The unedited sources
//! score 0.14–0.57, gen-street (a still street) 0.69 on a window (0.76 before the grid
//! shifted by half a pixel was read too).

/// The edges are read on the luma's SCALE × SCALE means (a 1080p frame costs a sixteenth of
/// its pixels), on the grid and on the grid shifted by half a coarse pixel: an inset's border
/// is a step between two pictures, sharp on the grid whose lines it falls on (inside a coarse
/// pixel of the other, it splits its step between two lines). Each side is then placed to
/// the pixel on the frame itself.
const SCALE: usize = 4;
/// An edge within this many lines (of half a coarse pixel: 2 px each) of a line counts for
/// it. (Two, ±4 px as one coarse line either way was, raised the unedited sources' best
/// rectangles: carphone 0.57 → 0.68, gen-street 0.69 → 0.72.)
const NEAR: usize = 1;
/// Rectangles scoring this close to the best are as good: the largest of them is the inset.
const TIE: f32 = 0.05;
/// Frames followed: one every this many seconds per decoding part.
const EVERY_S: f64 = 0.5;
/// An edge: a step of at least this many levels between neighbouring pixels (of the
/// coarse luma), the largest of three in a row.
const EDGE_STEP: i32 = 10;
/// The rectangle is searched once this many frames were seen, and again as they double.
const MIN_FRAMES: u32 = 6;
/// Candidate lines per axis: the strongest local maxima of the edges' persistence.
const CANDIDATES: usize = 24;
/// An inset: its four sides an edge in at least this share of the frames (the unedited
/// sources' best rectangles 0.05–0.50, the insets 0.78–0.92).
const MIN_SCORE: f32 = 0.65;

/// Follows a clip's frames and finds the inset in them.
pub(crate) struct InsetFinder {
    /// The frame's size, and the coarse grid's.
    frame: (usize, usize),
    half: (usize, usize),
    /// Per coarse row and vertical line at half a coarse pixel (`pv`: `2·hw` lines, line
    /// `2x` at the right of coarse pixel `x`, line `2x + 1` 2 px further, read on the grid
    /// shifted by 2 px), how many frames had an edge there; per horizontal line at half a
    /// coarse pixel and coarse column, likewise (`ph`).
    pv: Vec<u16>,
    ph: Vec<u16>,
    frames: u32,
    /// Per part, the last frame followed.
    last: Vec<Option<f64>>,
    searched_at: u32,
    found: Option<(usize, usize, usize, usize)>,
}

impl InsetFinder {
    pub(crate) fn new(w: usize, h: usize) -> Self {
        let half = (w / SCALE, h / SCALE);
        InsetFinder {
            frame: (w, h),
            half,
            pv: vec![0; 2 * half.0 * half.1],
            ph: vec![0; 2 * half.0 * half.1],
            frames: 0,
            last: Vec::new(),
            searched_at: 0,
            found: None,
        }
    }

    /// The frame size it follows.
    pub(crate) fn frame(&self) -> (usize, usize) {
        self.frame
    }

    /// The next analysed frame's luma (`w·h`) of decoding part `part` at `pts_s`; the inset
    /// found so far: `(x, y, w, h)` in frame pixels.
    pub(crate) fn add(
        &mut self,
        y: &[u8],
        pts_s: f64,
        part: usize,
    ) -> Option<(usize, usize, usize, usize)> {
        let (w, h) = self.frame;
        let (hw, hh) = self.half;
        if hw < 16 || hh < 16 || y.len() < w * h || part >= 8 {
            return None;
        }
        if self.last.len() <= part {
            self.last.resize(part + 1, None);
        }
        if self.last[part].is_some_and(|l| pts_s - l < EVERY_S && pts_s >= l) {
            return self.found;
        }
        self.last[part] = Some(pts_s);
        if self.frames == u32::from(u16::MAX) {
            return self.found;
        }
        // 2 × 2 sums, from which the coarse means on the three grids come.
        let (q, qw) = (pair_sums(y, self.frame, self.half), 2 * hw + 1);
        // The SCALE × SCALE means (four 2 × 2 blocks each) on the grid (`(0, 0)`), on the
        // grid 2 px to the right (`(0, 1)`) and 2 px down (`(1, 0)`): `hh × hw` each, read
        // once (every edge test reads three steps, each two means).
        let means = |dr: usize, dc: usize| -> Vec<i32> {
            let mut m = Vec::with_capacity(hw * hh);
            for r in 0..hh {
                let (a, b) = (
                    &q[(2 * r + dr) * qw..][..qw],
                    &q[(2 * r + dr + 1) * qw..][..qw],
                );
                m.extend((0..hw).map(|x| {
                    let c = 2 * x + dc;
                    ((a[c] + a[c + 1] + b[c] + b[c + 1] + 8) / 16) as i32
                }));
            }
            m
        };
        // Vertical edges on the grid and on the one half a pixel (2 px) to the right;
        // horizontal edges on the grid and on the one half a pixel down.
        let (grid, right, down) = (means(0, 0), means(0, 1), means(1, 0));
        for (o, m) in [&grid, &right].into_iter().enumerate() {
            for (r, row) in m.chunks_exact(hw).enumerate() {
                edges(&row[..hw - o], |x| self.pv[r * 2 * hw + 2 * x + o] += 1);
            }
        }
        for (o, m) in [&grid, &down].into_iter().enumerate() {
            edges_down(m, hw, hh - o, |r, x| self.ph[(2 * r + o) * hw + x] += 1);
        }
        self.frames += 1;
        if self.frames >= MIN_FRAMES && self.frames >= 2 * self.searched_at {
            self.searched_at = self.frames;
            self.found = self.search().map(|at| refine(y, self.frame, at));
        }
        self.found
    }

    /// The best rectangle of persistent edges, when it scores [`MIN_SCORE`]: in frame pixels.
    fn search(&self) -> Option<(usize, usize, usize, usize)> {
        let (hw, hh) = self.half;
        // Lines at half a coarse pixel: vertical line `c` (of 2·hw) and horizontal line
        // `ρ` (of 2·hh) lie at frame pixel 2c + SCALE (2ρ + SCALE).
        let (lw, lh) = (2 * hw, 2 * hh);
        let n = self.frames as f32;
        // An edge within NEAR lines of its place counts (the border of a scaled inset falls
        // between pixels, and the encode moves its step by a pixel or two).
        let near = |p: &[u16], i: usize, step: usize, before: usize, after: usize| {
            let m = (i - before.min(NEAR) * step..=i + after.min(NEAR) * step)
                .step_by(step)
                .map(|j| p[j])
                .max()
                .unwrap_or(0);
            f32::from(m) / n
        };
        // Prefix sums down each vertical line (over coarse rows) and along each horizontal
        // one (over coarse columns).
        let mut cv = vec![0f32; lw * (hh + 1)];
        for r in 0..hh {
            for c in 0..lw {
                let v = near(&self.pv, r * lw + c, 1, c, lw - 1 - c);
                cv[(r + 1) * lw + c] = cv[r * lw + c] + v;
            }
        }
        let mut ch = vec![0f32; (hw + 1) * lh];
        for l in 0..lh {
            for x in 0..hw {
                let v = near(&self.ph, l * hw + x, hw, l, lh - 1 - l);
                ch[l * (hw + 1) + x + 1] = ch[l * (hw + 1) + x] + v;
            }
        }
        // A side between two lines across it covers the coarse pixels between them.
        let span = |l0: usize, l1: usize| (l0 / 2 + 1, l1 / 2 + 1);
        let side_v = |c: usize, l0: usize, l1: usize| {
            let (r0, r1) = span(l0, l1);
            (cv[r1 * lw + c] - cv[r0 * lw + c]) / (r1 - r0) as f32
        };
        let side_h = |l: usize, c0: usize, c1: usize| {
            let (x0, x1) = span(c0, c1);
            (ch[l * (hw + 1) + x1] - ch[l * (hw + 1) + x0]) / (x1 - x0) as f32
        };
        let top = |profile: Vec<f32>| {
            let mut at: Vec<usize> = (2..profile.len().saturating_sub(2))
                .filter(|&i| profile[i] > 0.0)
                .filter(|&i| profile[i] >= profile[i - 1] && profile[i] >= profile[i + 1])
                .collect();
            at.sort_by(|&a, &b| profile[b].total_cmp(&profile[a]).then(a.cmp(&b)));
            at.truncate(CANDIDATES);
            at
        };
        let cols = top((0..lw).map(|c| cv[hh * lw + c]).collect());
        let rows = top((0..lh).map(|l| ch[l * (hw + 1) + hw]).collect());
        let mut found = Vec::new();
        for &x0 in &cols {
            for &x1 in cols.iter().filter(|&&x1| x1 >= x0 + lw / 8) {
                for &y0 in &rows {
                    for &y1 in rows.iter().filter(|&&y1| y1 >= y0 + lh / 8) {
                        let s = side_v(x0, y0, y1)
                            .min(side_v(x1, y0, y1))
                            .min(side_h(y0, x0, x1))
                            .min(side_h(y1, x0, x1));
                        if s >= MIN_SCORE {
                            found.push((s, (x0, y0, x1, y1)));
                        }
                    }
                }
            }
        }
        // Of the rectangles scoring within TIE of the best, the largest: a still picture's
        // own edges (a horizon) persist inside the inset as its border does, and with two of
        // its sides make smaller rectangles that score as high (a beach at 40 %: 0.767
        // against the inset's 0.764).
        let (x0, y0, x1, y1) = largest_near_best(&found)?;
        // Each side at the line its edge is strongest on (of the three counted); then in
        // frame pixels.
        let strongest_v = |c: usize| {
            let (r0, r1) = span(y0, y1);
            (c.saturating_sub(1)..=(c + 1).min(lw - 1))
                .max_by_key(|&a| side_v_raw(&self.pv, lw, a, r0, r1))
                .unwrap_or(c)
        };
        let strongest_h = |l: usize| {
            let (c0, c1) = span(x0, x1);
            (l.saturating_sub(1)..=(l + 1).min(lh - 1))
                .max_by_key(|&a| side_h_raw(&self.ph, hw, a, c0, c1))
                .unwrap_or(l)
        };
        let px = |line: usize| 2 * line + SCALE;
        let (l, r) = (px(strongest_v(x0)), px(strongest_v(x1)));
        let (t, b) = (px(strongest_h(y0)), px(strongest_h(y1)));
        let (w, h) = self.frame;
        let (r, b) = (r.min(w), b.min(h));
        (r > l && b > t).then_some((l, t, r - l, b - t))
    }
}

/// Of `found` (score, rectangle as (x0, y0, x1, y1)), the largest rectangle scoring within
/// [`TIE`] of the best (ties: the higher score).
fn largest_near_best(found: &[(f32, Rect)]) -> Option<Rect> {
    let best = found.iter().map(|f| f.0).fold(f32::NEG_INFINITY, f32::max);
    let area = |&(x0, y0, x1, y1): &Rect| (x1 - x0) * (y1 - y0);
    found
        .iter()
        .filter(|f| f.0 >= best - TIE)
        .max_by(|a, b| area(&a.1).cmp(&area(&b.1)).then(a.0.total_cmp(&b.0)))
        .map(|f| f.1)
}

/// A rectangle of lines: (left, top, right, bottom).
type Rect = (usize, usize, usize, usize);

/// The luma `y` of a `w × h` frame summed over 2 × 2 blocks, `(2·hw + 1) × (2·hh + 1)` of
/// them for a coarse grid of `hw × hh` (rows past the frame's last pair left 0).
fn pair_sums(y: &[u8], (w, h): (usize, usize), (hw, hh): (usize, usize)) -> Vec<u32> {
    let (qw, qh) = (2 * hw + 1, 2 * hh + 1);
    let mut q = vec![0u32; qw * qh];
    for (r2, line) in q.chunks_exact_mut(qw).enumerate() {
        if 2 * r2 + 1 >= h {
            break;
        }
        for row in y[2 * r2 * w..][..2 * w].chunks_exact(w) {
            for (v, px) in line.iter_mut().zip(row.chunks_exact(2)) {
                *v += u32::from(px[0]) + u32::from(px[1]);
            }
        }
    }
    q
}

/// The edges along one row of coarse means `at`: each `x` where the step between pixels
/// `x` and `x + 1` is at least [`EDGE_STEP`] and the largest of three in a row.
fn edges(at: &[i32], mut mark: impl FnMut(usize)) {
    let d = |x: usize| (at[x + 1] - at[x]).abs();
    for x in 1..at.len().saturating_sub(2) {
        if is_edge(d(x - 1), d(x), d(x + 1)) {
            mark(x);
        }
    }
}

/// Whether the step `here` (between two coarse means) is an edge: at least [`EDGE_STEP`]
/// and the largest of it and its neighbours `before` and `after`.
fn is_edge(before: i32, here: i32, after: i32) -> bool {
    here >= EDGE_STEP && here >= before && here >= after
}

/// [`edges`] down every column of the first `len` rows of coarse means `m` (rows of `w`),
/// a row at a time: `mark(r, x)` for the edge between rows `r` and `r + 1` of column `x`.
fn edges_down(m: &[i32], w: usize, len: usize, mut mark: impl FnMut(usize, usize)) {
    if len < 4 {
        return;
    }
    let step = |r: usize| -> Vec<i32> {
        let (a, b) = (&m[r * w..][..w], &m[(r + 1) * w..][..w]);
        a.iter().zip(b).map(|(a, b)| (b - a).abs()).collect()
    };
    let (mut before, mut here) = (step(0), step(1));
    for r in 1..len - 2 {
        let after = step(r + 1);
        for (x, ((&c, &b), &a)) in here.iter().zip(&before).zip(&after).enumerate() {
            if is_edge(b, c, a) {
                mark(r, x);
            }
        }
        before = std::mem::replace(&mut here, after);
    }
}

/// The inset `at` found on the coarse grid, each side moved (by up to [`SCALE`] pixels)
/// to the frame line where this frame's luma steps most along it: the picture's grid
/// starts at its corner, and half a cell off costs the as-sealed test its mark.
fn refine(
    y: &[u8],
    (w, h): (usize, usize),
    (x, t, iw, ih): (usize, usize, usize, usize),
) -> (usize, usize, usize, usize) {
    // The step between column c − 1 and c over rows [r0, r1), and between rows.
    let col_step = |c: usize, r0: usize, r1: usize| -> u64 {
        (r0..r1)
            .map(|r| u64::from(y[r * w + c].abs_diff(y[r * w + c - 1])))
            .sum()
    };
    let row_step = |r: usize, c0: usize, c1: usize| -> u64 {
        (c0..c1)
            .map(|c| u64::from(y[r * w + c].abs_diff(y[(r - 1) * w + c])))
            .sum()
    };
    let best = |at: usize, len: usize, step: &dyn Fn(usize) -> u64| {
        (at.saturating_sub(SCALE).max(1)..=(at + SCALE).min(len - 1))
            .max_by(|&a, &b| step(a).cmp(&step(b)).then(b.cmp(&a)))
            .unwrap_or(at)
    };
    let (r0, r1) = (t + ih / 8, t + ih - ih / 8);
    let (c0, c1) = (x + iw / 8, x + iw - iw / 8);
    let l = best(x, w, &|c| col_step(c, r0, r1));
    let r = best(x + iw, w, &|c| col_step(c, r0, r1));
    let top = best(t, h, &|q| row_step(q, c0, c1));
    let bottom = best(t + ih, h, &|q| row_step(q, c0, c1));
    if r > l && bottom > top {
        (l, top, r - l, bottom - top)
    } else {
        (x, t, iw, ih)
    }
}

/// Σ of the vertical-edge counts of column `x` over rows `[y0, y1)`.
fn side_v_raw(p: &[u16], hw: usize, x: usize, y0: usize, y1: usize) -> u32 {
    (y0..y1).map(|r| u32::from(p[r * hw + x])).sum()
}

/// Σ of the horizontal-edge counts of row `r` over columns `[x0, x1)`.
fn side_h_raw(p: &[u16], hw: usize, r: usize, x0: usize, x1: usize) -> u32 {
    p[r * hw + x0..r * hw + x1]
        .iter()
        .map(|&v| u32::from(v))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of moving blocky texture (`t` moves it) with an inset of another moving
    /// texture at `(x, y, w, h)`.
    fn frame(
        fw: usize,
        fh: usize,
        t: usize,
        inset: Option<(usize, usize, usize, usize)>,
    ) -> Vec<u8> {
        let hash = |a: usize, b: usize, s: usize| {
            let mut v = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                ^ s as u64;
            v ^= v >> 29;
            v = v.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (v >> 56) as u8
        };
        let mut y = vec![0u8; fw * fh];
        for r in 0..fh {
            for c in 0..fw {
                // Blocks of 8 (smooth-ish texture), moving 5 px a frame.
                y[r * fw + c] = 20 + hash((c + 5 * t) / 8, (r + 3 * t) / 8, 1) / 2;
            }
        }
        if let Some((x0, y0, w, h)) = inset {
            for r in y0..y0 + h {
                for c in x0..x0 + w {
                    y[r * fw + c] = 110 + hash((c + 2 * t) / 6, (r + 5 * t) / 6, 2) / 2;
                }
            }
        }
        y
    }

    #[test]
    fn the_largest_rectangle_near_the_best_score_is_the_inset() {
        // A beach's horizon, an edge inside and the inset's left and bottom sides (0.767) against
        // the inset (0.764): the inset. Far below the best, a larger one is not.
        let (inset, horizon) = ((362, 12, 618, 156), (362, 87, 618, 156));
        assert_eq!(
            largest_near_best(&[(0.767, horizon), (0.764, inset)]),
            Some(inset)
        );
        assert_eq!(
            largest_near_best(&[(0.9, horizon), (0.7, inset)]),
            Some(horizon)
        );
        assert_eq!(
            largest_near_best(&[(0.8, inset), (0.8, inset)]),
            Some(inset)
        );
        assert_eq!(largest_near_best(&[]), None);
    }

    #[test]
    fn finds_an_inset_in_moving_footage_to_a_pixel_and_none_without() {
        let (w, h) = (640, 360);
        // Borders on the coarse grid's lines, and inside its pixels: half way, where the
        // step splits evenly between two lines (≈ 0.55 on the grid alone: not found), and a
        // quarter of the way.
        for inset in [
            (256, 36, 320, 180),
            (372, 16, 256, 144),
            (258, 38, 320, 180),
            (374, 18, 256, 144),
            (257, 39, 321, 181),
        ] {
            let mut f = InsetFinder::new(w, h);
            let mut found = None;
            for t in 0..12 {
                found = f.add(&frame(w, h, t, Some(inset)), t as f64 * 0.5, 0);
            }
            let (x, y, iw, ih) = found.expect("inset found");
            for (got, want) in [
                (x, inset.0),
                (y, inset.1),
                (x + iw, inset.0 + inset.2),
                (y + ih, inset.1 + inset.3),
            ] {
                assert!(
                    got.abs_diff(want) <= 2,
                    "{:?} for {inset:?}",
                    (x, y, iw, ih)
                );
            }
        }
        let mut f = InsetFinder::new(w, h);
        for t in 0..12 {
            assert_eq!(f.add(&frame(w, h, t, None), t as f64 * 0.5, 0), None);
        }
    }

    /// [`edges`] as first written: the means read through `at` for every step.
    fn edges_reference(at: impl Fn(usize) -> i32, len: usize, mut mark: impl FnMut(usize)) {
        let d = |x: usize| (at(x + 1) - at(x)).abs();
        for x in 1..len.saturating_sub(2) {
            let c = d(x);
            if c >= EDGE_STEP && c >= d(x - 1) && c >= d(x + 1) {
                mark(x);
            }
        }
    }

    /// The edge counts as first written (each step read from the 2 × 2 sums, three times per
    /// test): [`InsetFinder::add`]'s means read once must count the same edges.
    #[test]
    fn edges_on_means_read_once_match_the_reference() {
        for (w, h, seed) in [
            (1920usize, 1080usize, 1u32),
            (640, 272, 2),
            (176, 144, 3),
            (1283, 721, 4),
        ] {
            let mut s = seed;
            let y: Vec<u8> = (0..w * h)
                .map(|i| {
                    s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                    let block = ((i % w) / 37 + (i / w) / 23) as u32 * 41;
                    ((block + (s >> 28)) % 256) as u8
                })
                .collect();
            let mut f = InsetFinder::new(w, h);
            f.add(&y, 0.0, 0);
            let (hw, hh) = f.half;
            let (q, qw) = (pair_sums(&y, (w, h), (hw, hh)), 2 * hw + 1);
            let mean = |r2: usize, c2: usize| -> i32 {
                let i = r2 * qw + c2;
                ((q[i] + q[i + 1] + q[i + qw] + q[i + qw + 1] + 8) / 16) as i32
            };
            let (mut pv, mut ph) = (vec![0u16; 2 * hw * hh], vec![0u16; 2 * hw * hh]);
            for r in 0..hh {
                for o in 0..2 {
                    edges_reference(
                        |x| mean(2 * r, 2 * x + o),
                        hw - o,
                        |x| pv[r * 2 * hw + 2 * x + o] += 1,
                    );
                }
            }
            for x in 0..hw {
                for o in 0..2 {
                    edges_reference(
                        |r| mean(2 * r + o, 2 * x),
                        hh - o,
                        |r| ph[(2 * r + o) * hw + x] += 1,
                    );
                }
            }
            assert!(pv.iter().any(|&v| v > 0) && ph.iter().any(|&v| v > 0));
            assert_eq!(pv, f.pv, "{w}x{h}");
            assert_eq!(ph, f.ph, "{w}x{h}");
        }
    }
}
