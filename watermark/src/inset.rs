//! A picture shown inside other footage (picture-in-picture, a reaction video's inset), found
//! from the frames alone, never the key: a rectangle whose four sides are edges that persist
//! over the clip. Two unrelated pictures meet along the inset's border in every frame, so
//! an edge lies there nearly always; inside ordinary footage an edge persists where the
//! scene is still, but seldom as four sides of one rectangle. Measured on the bench's
//! picture-in-picture repost (50 % over other footage, 40 % in a corner) of bbb, gen-street and
//! photo-pan: every inset found to a line, scores 0.78–0.92; the unedited sources score
//! 0.05–0.50 (gen-street, a still street: 0.50 on a window).

/// The edges are read on the luma's SCALE × SCALE means: an inset's border is a step between
/// two pictures, still sharp there when it falls on the coarse grid's lines (a border inside
/// a coarse pixel splits its step between two lines: not yet handled), and a 1080p frame
/// costs a sixteenth of its pixels twice over; each side is then placed to the pixel on the
/// frame itself.
const SCALE: usize = 4;
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
    /// Per coarse pixel, how many frames had a vertical edge at its right (`pv`) /
    /// a horizontal edge below it (`ph`).
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
            pv: vec![0; half.0 * half.1],
            ph: vec![0; half.0 * half.1],
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
        // SCALE × SCALE means.
        let mut g = vec![0i32; hw * hh];
        let mut sums = vec![0u32; hw];
        for (r, line) in g.chunks_exact_mut(hw).enumerate() {
            sums.iter_mut().for_each(|v| *v = 0);
            for row in y[SCALE * r * w..][..SCALE * w].chunks_exact(w) {
                for (v, px) in sums.iter_mut().zip(row.chunks_exact(SCALE)) {
                    *v += px.iter().map(|&p| u32::from(p)).sum::<u32>();
                }
            }
            let n = (SCALE * SCALE) as u32;
            for (o, &v) in line.iter_mut().zip(&sums) {
                *o = ((v + n / 2) / n) as i32;
            }
        }
        for (r, line) in g.chunks_exact(hw).enumerate() {
            let d: Vec<i32> = line.windows(2).map(|p| (p[1] - p[0]).abs()).collect();
            for x in 1..d.len().saturating_sub(1) {
                if d[x] >= EDGE_STEP && d[x] >= d[x - 1] && d[x] >= d[x + 1] {
                    self.pv[r * hw + x] += 1;
                }
            }
        }
        for r in 1..hh.saturating_sub(2) {
            let d = |r: usize, x: usize| (g[(r + 1) * hw + x] - g[r * hw + x]).abs();
            for x in 0..hw {
                let c = d(r, x);
                if c >= EDGE_STEP && c >= d(r - 1, x) && c >= d(r + 1, x) {
                    self.ph[r * hw + x] += 1;
                }
            }
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
        let n = self.frames as f32;
        // An edge within one line of its place counts (the border of a scaled inset falls
        // between pixels).
        let near = |p: &[u16], i: usize, step: usize, lo: bool, hi: bool| {
            let mut m = p[i];
            if lo {
                m = m.max(p[i - step]);
            }
            if hi {
                m = m.max(p[i + step]);
            }
            f32::from(m) / n
        };
        // Prefix sums down each column (vertical edges) and along each row (horizontal).
        let mut cv = vec![0f32; hw * (hh + 1)];
        for r in 0..hh {
            for x in 0..hw {
                let v = near(&self.pv, r * hw + x, 1, x > 0, x + 1 < hw);
                cv[(r + 1) * hw + x] = cv[r * hw + x] + v;
            }
        }
        let mut ch = vec![0f32; (hw + 1) * hh];
        for r in 0..hh {
            for x in 0..hw {
                let v = near(&self.ph, r * hw + x, hw, r > 0, r + 1 < hh);
                ch[r * (hw + 1) + x + 1] = ch[r * (hw + 1) + x] + v;
            }
        }
        let side_v =
            |x: usize, y0: usize, y1: usize| (cv[y1 * hw + x] - cv[y0 * hw + x]) / (y1 - y0) as f32;
        let side_h = |r: usize, x0: usize, x1: usize| {
            (ch[r * (hw + 1) + x1] - ch[r * (hw + 1) + x0]) / (x1 - x0) as f32
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
        let cols = top((0..hw).map(|x| cv[hh * hw + x]).collect());
        let rows = top((0..hh).map(|r| ch[r * (hw + 1) + hw]).collect());
        let mut best = (0f32, None);
        for &x0 in &cols {
            for &x1 in cols.iter().filter(|&&x1| x1 >= x0 + hw / 8) {
                for &y0 in &rows {
                    for &y1 in rows.iter().filter(|&&y1| y1 >= y0 + hh / 8) {
                        let s = side_v(x0, y0, y1)
                            .min(side_v(x1, y0, y1))
                            .min(side_h(y0, x0, x1))
                            .min(side_h(y1, x0, x1));
                        if s > best.0 {
                            best = (s, Some((x0, y0, x1, y1)));
                        }
                    }
                }
            }
        }
        let (score, (x0, y0, x1, y1)) = (best.0, best.1?);
        if score < MIN_SCORE {
            return None;
        }
        // Each side at the line its edge is strongest on (of the three counted), an edge at
        // `x` lying between coarse pixels `x` and `x + 1`; then in frame pixels,
        // the inset from the pixel after the first edge to the one before the second.
        let strongest_v = |x: usize| {
            (x.saturating_sub(1)..=(x + 1).min(hw - 2))
                .max_by(|&a, &b| {
                    side_v_raw(&self.pv, hw, a, y0, y1).cmp(&side_v_raw(&self.pv, hw, b, y0, y1))
                })
                .unwrap_or(x)
        };
        let strongest_h = |r: usize| {
            (r.saturating_sub(1)..=(r + 1).min(hh - 2))
                .max_by(|&a, &b| {
                    side_h_raw(&self.ph, hw, a, x0, x1).cmp(&side_h_raw(&self.ph, hw, b, x0, x1))
                })
                .unwrap_or(r)
        };
        let (l, r) = (SCALE * (strongest_v(x0) + 1), SCALE * (strongest_v(x1) + 1));
        let (t, b) = (SCALE * (strongest_h(y0) + 1), SCALE * (strongest_h(y1) + 1));
        let (w, h) = self.frame;
        let (r, b) = (r.min(w), b.min(h));
        (r > l && b > t).then_some((l, t, r - l, b - t))
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
    fn finds_an_inset_in_moving_footage_to_a_pixel_and_none_without() {
        let (w, h) = (640, 360);
        // (Borders on the coarse grid's lines, as the bench's are: a border inside a coarse
        // pixel splits its edge between two lines and scores ≈ 0.55 here — not found.)
        for inset in [(256, 36, 320, 180), (372, 16, 256, 144)] {
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
}
