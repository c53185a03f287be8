//! The fixed analysis grid, the keyed tile, resampling and the texture mask.

use crate::code::CODED_BITS;
use crate::key::WatermarkKey;

/// Rows of the analysis grid. Analysis pixels are square, so a frame of `w×h` maps to
/// `ceil(w·ANALYSIS_ROWS/h) × ANALYSIS_ROWS`, independent of the frame's resolution — up to
/// [`MAX_GRID_ASPECT`]: wider frames get wider analysis pixels instead of more columns.
pub const ANALYSIS_ROWS: usize = 128;
/// The analysis grid is at most this many times as wide as it is tall (4:1, 512 × 128 at
/// [`ANALYSIS_ROWS`]): a frame wider than that (a 4096×16 strip would otherwise get a
/// 32768-column grid, 16 MB per analysis image and a scale search of ≈ 21 000 scales) is
/// binned onto `MAX_GRID_ASPECT·rows` columns of analysis pixels that are wider than tall.
/// Embedder and detector share the grid, so such frames are still marked and found; frames
/// up to 4:1 (every common format, 32:9 included) are unaffected.
pub const MAX_GRID_ASPECT: usize = 4;

/// The width of a `w × h` frame in the analysis pixels of its `rows`-row grid (the grid's
/// columns are this rounded up; capped grids: exactly their columns). A frame mirrored left
/// to right shows column `x` of the grid at `width − x`: where the width is not whole, the
/// mirrored picture's analysis pixels straddle the sealed ones (see `VideoDetector`'s
/// as-sealed registration).
pub fn width_in_analysis_pixels(w: usize, h: usize, rows: usize) -> f64 {
    let (w, h, rows) = (w.max(1), h.max(1), rows.max(1));
    let f = rows as f64 / h as f64;
    let square = ((w as f64 * f).ceil() as usize).max(1);
    let cap = MAX_GRID_ASPECT.saturating_mul(rows);
    if square > cap {
        cap as f64
    } else {
        w as f64 * f
    }
}

/// A picture placed inside a larger canvas (letterboxed into 9:16, padded at an offset) is
/// surrounded by bars of one colour. Lines whose mean distance from the bar's colour is at
/// most this many levels belong to the bar: the encoder's ringing next to the picture
/// measured 1.6–4.6 (x264 CRF 23), the picture's own first line 18 or more.
const BAR_TOLERANCE: u32 = 8;
/// Or the bars are a blurred, enlarged copy of the picture (the common 9:16 repost of a
/// landscape clip): smooth lines — a mean step between neighbouring pixels of at most
/// `SMOOTH_ALONG` levels, and from the line before of at most `SMOOTH_ACROSS` (blurred bars
/// measured ≤ 0.5 and ≤ 1.4 at CRF 23, the encoder's ringing in the last lines before the
/// picture up to 4.6) — that end at a step: the picture's first line, at a mean distance of
/// at least `PICTURE_STEP` from the bar's last (measured 11–69, where the picture's own
/// lines may be as smooth as the bars: a night street, 0.2).
const SMOOTH_ALONG: u32 = 1;
const SMOOTH_ACROSS: u32 = 5;
const PICTURE_STEP: u32 = 8;

/// The picture inside bars, when the frame has some: `(x, y, w, h)` in frame pixels, found
/// from the frame's luma alone (`w·h` bytes, row-major). Each side's bar is the run of lines
/// from that edge that stay within `BAR_TOLERANCE` of the edge line's mean, or else smooth
/// lines that end at a step (`SMOOTH_ALONG`); runs thinner than 1 % of the frame (an
/// encoder's padding line) do not count. `None` when the bars take under 5 % of the frame's
/// width and of its height, or when the box left is under a fifth of the frame in either
/// direction (a dark or flat frame, not a picture in bars; a 2.35:1 picture letterboxed into
/// 9:16 fills 24 % of the height).
pub fn content_box(y: &[u8], w: usize, h: usize) -> Option<(usize, usize, usize, usize)> {
    if w == 0 || h == 0 || y.len() < w * h {
        return None;
    }
    let px = |x: usize, r: usize| u32::from(y[r * w + x]);
    let top = bar(h, |i| (0..w).map(move |x| px(x, i)));
    let bottom = bar(h - top.0, |i| (0..w).map(move |x| px(x, h - 1 - i)));
    let (top, bottom) = paired(top, bottom, h);
    let (y0, y1) = (top, h - bottom);
    // Columns over the rows between the top and bottom bars only.
    let left = bar(w, |i| (y0..y1).map(move |r| px(i, r)));
    let right = bar(w - left.0, |i| (y0..y1).map(move |r| px(w - 1 - i, r)));
    let (left, right) = paired(left, right, w);
    let (x0, x1) = (left, w - right);
    let (bw, bh) = (x1.saturating_sub(x0), y1 - y0);
    // Bars of under 5 % are the picture's own more likely than a canvas's (photo-pan's
    // pan leaves 16 black rows of 720), and a picture 2 % smaller is the plain search's.
    let framed = (h - bh) * 20 >= h || (w - bw) * 20 >= w;
    (framed && bw * 5 >= w && bh * 5 >= h).then_some((x0, y0, bw, bh))
}

/// Two opposite bars `(lines, smooth)` of a frame `len` lines across: a smooth bar counts
/// only opposite one as wide (within 1 % of the frame, two lines at least), as a centred
/// repost makes them — a smooth sky above a sharp horizon has no twin below.
fn paired(a: (usize, bool), b: (usize, bool), len: usize) -> (usize, usize) {
    let twins = a.1 && b.1 && a.0.abs_diff(b.0) <= (len / 100).max(2);
    let keep = |(lines, smooth): (usize, bool)| if smooth && !twins { 0 } else { lines };
    (keep(a), keep(b))
}

/// The bar at one edge: how many of the `len` lines from it (`line(i)`: the pixels of the
/// i-th) are bar by [`content_box`]'s rules, never all of them; and whether it is smooth
/// rather than uniform.
fn bar<I: Iterator<Item = u32>>(len: usize, line: impl Fn(usize) -> I) -> (usize, bool) {
    if len == 0 {
        return (0, false);
    }
    // (Σ value, Σ |step to the next pixel|, pixels) of a line.
    let stats = |i: usize| {
        let mut prev = None;
        line(i).fold((0u64, 0u64, 0u64), |(s, a, n), v| {
            let step = prev.map_or(0, |p: u32| p.abs_diff(v));
            prev = Some(v);
            (s + u64::from(v), a + u64::from(step), n + 1)
        })
    };
    // Σ |line i − line i−1| and the pixels.
    let across = |i: usize| {
        line(i)
            .zip(line(i - 1))
            .fold((0u64, 0u64), |(d, n), (a, b)| {
                (d + u64::from(a.abs_diff(b)), n + 1)
            })
    };
    let (sum, along, n) = stats(0);
    let n = n.max(1);
    let colour = (sum / n) as u32;
    let within = |i: usize| {
        let (d, m) = line(i).fold((0u64, 0u64), |(d, m), v| {
            (d + u64::from(v.abs_diff(colour)), m + 1)
        });
        d <= u64::from(BAR_TOLERANCE) * m.max(1)
    };
    let uniform = (0..len).take_while(|&i| within(i)).count();
    // Smooth lines ending at a step; where they reach further than the uniform run (a
    // gradient stays within the tolerance for a while) they are the bar.
    let smooth = if along <= u64::from(SMOOTH_ALONG) * n.saturating_sub(1) {
        (1..len)
            .find_map(|i| {
                let (d, m) = across(i);
                if d >= u64::from(PICTURE_STEP) * m {
                    return Some(i);
                }
                let (_, a, m) = stats(i);
                let still = d <= u64::from(SMOOTH_ACROSS) * m
                    && a <= u64::from(SMOOTH_ALONG) * m.saturating_sub(1);
                (!still).then_some(0)
            })
            .unwrap_or(0)
    } else {
        0
    };
    let (run, smooth) = if smooth > uniform {
        (smooth, true)
    } else {
        (uniform, false)
    };
    if run * 100 < len || run == len {
        (0, false)
    } else {
        (run, smooth)
    }
}

/// Side of the keyed tile (analysis pixels), repeated over the whole frame.
pub const TILE: usize = 64;
/// Chips of the tile that carry the sync (presence) pattern; the rest carry payload.
pub const SYNC_CHIPS: usize = TILE * TILE / 4;

/// The keyed tile of one key: signs and roles (the detector derives the spectra it
/// correlates with, one per orientation).
#[derive(Clone)]
pub(crate) struct KeyPattern {
    /// ±1 per chip.
    pub sign: Vec<f32>,
    /// `None` = sync chip, `Some(k)` = carries coded bit k.
    pub role: Vec<Option<u16>>,
}

impl KeyPattern {
    pub(crate) fn new(key: &WatermarkKey) -> Self {
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
        KeyPattern { sign, role }
    }

    /// The tile that carries `coded` as one known pattern: every chip's sign as the
    /// embedder adds it, all of them read as sync (a clip id named for the mark elsewhere).
    pub(crate) fn carrying(&self, coded: &[u8]) -> KeyPattern {
        KeyPattern {
            sign: self.embed_tile(coded),
            role: vec![None; self.role.len()],
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

/// The analysis grid of one frame size: how a `w×h` luma plane maps onto the
/// `grid_w × rows` grid of square analysis pixels (box filter when the frame is at least
/// as tall as the grid, bilinear interpolation when it is shorter).
///
/// Public so that other implementations of the detector front end (the candle model in
/// `hallmark-detector`) can use exactly the same bins and taps.
#[derive(Clone, Debug)]
pub struct AnalysisGrid {
    pub(crate) w: usize,
    pub(crate) h: usize,
    pub(crate) wa: usize,
    pub(crate) ha: usize,
    /// Frame→analysis binning (only used when the frame is at least as tall as the grid):
    /// analysis column / row of each frame column / row (monotone), the frame column and
    /// row range `[start, end)` of each analysis column / row, and 1 / pixels per cell.
    colbin: Vec<u32>,
    rowbin: Vec<u32>,
    colrange: Vec<(u32, u32)>,
    rowrange: Vec<(u32, u32)>,
    inv_count: Vec<f32>,
    /// Analysis→frame bilinear taps per frame column / row: (i0, i1, weight of i1).
    col_taps: Vec<(u32, u32, f32)>,
    row_taps: Vec<(u32, u32, f32)>,
    /// Frame→analysis bilinear taps for frames shorter than the grid.
    up_col: Vec<(u32, u32, f32)>,
    up_row: Vec<(u32, u32, f32)>,
    /// Cells averaged over their span of the frame, pixels cut by a cell's edge weighted
    /// by their share ([`AnalysisGrid::for_reading`]), instead of over the pixels whose
    /// centres fall in the cell: the spans' columns and rows, made once per grid.
    area: Option<(Vec<MovedSpan>, Vec<MovedSpan>)>,
}

/// A bilinear tap `(i0, i1, weight of i1)`.
pub type Tap = (u32, u32, f32);

/// The analysis-grid geometry used by the embedder and the detector.
pub(crate) type Geometry = AnalysisGrid;

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

/// `[start, end)` of every bin of a monotone binning (empty bins get `(0, 0)`).
fn ranges(bins: &[u32], n: usize) -> Vec<(u32, u32)> {
    let mut r = vec![(0u32, 0u32); n];
    for (x, &b) in bins.iter().enumerate() {
        let e = &mut r[b as usize];
        if e.1 == 0 {
            e.0 = x as u32;
        }
        e.1 = x as u32 + 1;
    }
    r
}

/// Rows summed in `u16` before widening: 257 × 255 < 65536.
const U16_ROWS: usize = 257;

impl AnalysisGrid {
    /// The grid of [`ANALYSIS_ROWS`] rows for a `w×h` frame (both at least 1).
    pub fn new(w: usize, h: usize) -> Self {
        Self::with_rows(w, h, ANALYSIS_ROWS)
    }

    /// A grid of `rows` rows (the watermark itself always uses [`ANALYSIS_ROWS`]), at most
    /// [`MAX_GRID_ASPECT`]` · rows` columns wide.
    pub fn with_rows(w: usize, h: usize, rows: usize) -> Self {
        let (w, h, rows) = (w.max(1), h.max(1), rows.max(1));
        let f = rows as f64 / h as f64;
        let ha = rows;
        let square = ((w as f64 * f).ceil() as usize).max(1);
        let wa = square.min(MAX_GRID_ASPECT.saturating_mul(rows));
        // Horizontal frame→grid factor: `f` (square analysis pixels) unless capped.
        let fx = if wa < square { wa as f64 / w as f64 } else { f };
        let colbin: Vec<u32> = (0..w)
            .map(|x| (((x as f64 + 0.5) * fx) as usize).min(wa - 1) as u32)
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
        AnalysisGrid {
            w,
            h,
            wa,
            ha,
            colrange: ranges(&colbin, wa),
            rowrange: ranges(&rowbin, ha),
            colbin,
            rowbin,
            inv_count,
            col_taps: taps(w, wa, fx),
            row_taps: taps(h, ha, f),
            up_col: taps(wa, w, 1.0 / fx),
            up_row: taps(ha, h, 1.0 / f),
            area: None,
        }
    }

    /// The detector's grid of `rows` rows for a `w × h` frame: as [`AnalysisGrid::with_rows`],
    /// but where a cell spans fewer than [`AREA_BELOW_PX`] frame pixels (a 240p or 360p
    /// copy on 128 rows, a 720p frame on the fine stage's 256) its cells average the frame
    /// over their exact span. Binned by pixel centres, such cells hold one pixel or two
    /// (240p: 1.875 a cell), which shifts each cell's centre by up to a quarter of a cell,
    /// and the mark's chips with it. The embedder and the motion tracker keep the pixel-centre
    /// bins (the mark is written from the grid by interpolation; their bins only weigh it).
    pub fn for_reading(w: usize, h: usize, rows: usize) -> Self {
        let mut grid = Self::with_rows(w, h, rows);
        if grid.is_box() && (grid.h as f64) < AREA_BELOW_PX * grid.ha as f64 {
            grid.area = Some((
                moved_spans(&grid.even_spans(Axis::Columns), grid.w, 1.0, 0.0),
                moved_spans(&grid.even_spans(Axis::Rows), grid.h, 1.0, 0.0),
            ));
        }
        grid
    }

    /// Whether cells average their exact span of the frame ([`AnalysisGrid::for_reading`]).
    pub fn is_area(&self) -> bool {
        self.area.is_some()
    }

    /// Frame size `(w, h)` this grid is for.
    pub fn frame_size(&self) -> (usize, usize) {
        (self.w, self.h)
    }

    /// Grid size `(columns, rows)`.
    pub fn grid_size(&self) -> (usize, usize) {
        (self.wa, self.ha)
    }

    /// The frame's width in analysis pixels (`w · rows / h`, or the columns of a capped
    /// grid): the grid's columns are this rounded up.
    pub fn width_in_analysis_pixels(&self) -> f64 {
        width_in_analysis_pixels(self.w, self.h, self.ha)
    }

    /// Whether the frame is box-filtered down to the grid (it is at least as tall as the
    /// grid); otherwise it is interpolated bilinearly up to it.
    pub fn is_box(&self) -> bool {
        self.h >= self.ha
    }

    /// Box filter: the analysis column of every frame column (monotone).
    pub fn column_bins(&self) -> &[u32] {
        &self.colbin
    }

    /// Box filter: the analysis row of every frame row (monotone).
    pub fn row_bins(&self) -> &[u32] {
        &self.rowbin
    }

    /// Box filter: `1 / (frame pixels in the cell)` per analysis pixel (row-major; 0 for
    /// an empty cell).
    pub fn inverse_counts(&self) -> &[f32] {
        &self.inv_count
    }

    /// Bilinear taps (frames shorter than the grid): per analysis column, then per
    /// analysis row, `(i0, i1, weight of i1)` into the frame's columns / rows. The value is
    /// `top·(1−rw) + bottom·rw` with `top = p(r0,c0)·(1−cw) + p(r0,c1)·cw`, in that order.
    pub fn bilinear_taps(&self) -> (&[Tap], &[Tap]) {
        (&self.up_col, &self.up_row)
    }

    /// Luma plane (`w·h` bytes, no padding) → analysis grid (box filter, or bilinear for
    /// frames shorter than the grid), row-major `grid_w × rows`.
    pub fn downscale(&self, y: &[u8]) -> Vec<f32> {
        let (w, wa, ha) = (self.w, self.wa, self.ha);
        assert!(y.len() >= w * self.h, "luma plane smaller than the frame");
        if let Some((cols, rows)) = &self.area {
            return self.average_spans(y, cols, rows);
        }
        if self.h >= ha {
            return self.grid_of_box_sums(&self.box_sums(y));
        }
        let mut out = vec![0f32; wa * ha];
        for (v, &(r0, r1, rw)) in self.up_row.iter().enumerate() {
            for (u, &(c0, c1, cw)) in self.up_col.iter().enumerate() {
                let p = |r: u32, c: u32| y[r as usize * w + c as usize] as f32;
                let top = p(r0, c0) * (1.0 - cw) + p(r0, c1) * cw;
                let bot = p(r1, c0) * (1.0 - cw) + p(r1, c1) * cw;
                out[v * wa + u] = top * (1.0 - rw) + bot * rw;
            }
        }
        out
    }

    /// Box filter ([`AnalysisGrid::is_box`] grids): the integer sum of the frame pixels of
    /// every cell, row-major `grid_w × rows` (what [`AnalysisGrid::downscale`] multiplies
    /// by [`AnalysisGrid::inverse_counts`]).
    fn box_sums(&self, y: &[u8]) -> Vec<u32> {
        let (w, wa, ha) = (self.w, self.wa, self.ha);
        assert!(y.len() >= w * self.h, "luma plane smaller than the frame");
        assert!(self.is_box(), "box sums of a frame shorter than the grid");
        let mut out = vec![0u32; wa * ha];
        // Each analysis row is a run of frame rows: sum the run column by column in u16
        // (vectorises; exact up to 257 rows), then the columns of each cell.
        let mut acc16 = vec![0u16; w];
        for (v, &(r0, r1)) in self.rowrange.iter().enumerate() {
            let cell = &mut out[v * wa..(v + 1) * wa];
            let mut r = r0 as usize;
            while r < r1 as usize {
                let end = (r + U16_ROWS).min(r1 as usize);
                acc16.iter_mut().for_each(|a| *a = 0);
                for line in y[r * w..end * w].chunks_exact(w) {
                    for (a, &p) in acc16.iter_mut().zip(line) {
                        *a += p as u16;
                    }
                }
                for (c, &(a, b)) in cell.iter_mut().zip(&self.colrange) {
                    *c += acc16[a as usize..b as usize]
                        .iter()
                        .map(|&p| p as u32)
                        .sum::<u32>();
                }
                r = end;
            }
        }
        out
    }

    /// Cell sums ([`AnalysisGrid::box_sums`]) → the analysis grid, exactly as
    /// [`AnalysisGrid::downscale`] computes it (each sum × 1/count in f32).
    fn grid_of_box_sums(&self, sums: &[u32]) -> Vec<f32> {
        sums.iter()
            .zip(&self.inv_count)
            .map(|(&c, &i)| c as f32 * i)
            .collect()
    }

    /// Where every cell of this grid is a union of whole cells of `fine` (same frame, both
    /// box grids; the 128-row grid in the 256- or 512-row one: both bin frame row `y` at
    /// `⌊(y + ½)·rows/h⌋` and the rows' ratio is a power of two, so the bins nest exactly):
    /// per column and per row of `fine`, the column / row of this grid it lies in (a
    /// column or row of `fine` that no frame pixel falls in, whose sums are 0, goes with
    /// its left / upper neighbour). `None` where they do not nest. Checked pixel by pixel
    /// against both grids' own bins, so nothing rests on the arithmetic argument.
    fn nesting_in(&self, fine: &AnalysisGrid) -> Option<(Vec<u32>, Vec<u32>)> {
        if !self.is_box() || !fine.is_box() || self.frame_size() != fine.frame_size() {
            return None;
        }
        let map = |coarse: &[u32], fine_bins: &[u32], n: usize| {
            let mut m = vec![u32::MAX; n];
            for (&c, &f) in coarse.iter().zip(fine_bins) {
                let e = &mut m[f as usize];
                if *e == u32::MAX {
                    *e = c;
                } else if *e != c {
                    return None;
                }
            }
            let mut last = 0;
            for e in &mut m {
                if *e == u32::MAX {
                    *e = last;
                }
                last = *e;
            }
            Some(m)
        };
        Some((
            map(&self.colbin, &fine.colbin, fine.wa)?,
            map(&self.rowbin, &fine.rowbin, fine.ha)?,
        ))
    }

    /// `(self.residual(y), fine.residual(y))`, bit for bit, from one pass over the frame's
    /// pixels where this grid's cells are unions of `fine`'s (checked per call, column by column
    /// and row by row):
    /// `fine`'s integer cell sums, and this grid's summed from them (integers: the same
    /// sums in any order). Otherwise two passes.
    pub fn residuals_with(&self, fine: &AnalysisGrid, y: &[u8]) -> (Vec<f32>, Vec<f32>) {
        let nest = if self.is_area() || fine.is_area() {
            None
        } else {
            self.nesting_in(fine)
        };
        let Some((cols, rows)) = nest else {
            return (self.residual(y), fine.residual(y));
        };
        let sums = fine.box_sums(y);
        let mut coarse = vec![0u32; self.wa * self.ha];
        for (line, &v) in sums.chunks_exact(fine.wa).zip(&rows) {
            let dst = &mut coarse[v as usize * self.wa..(v as usize + 1) * self.wa];
            for (&s, &u) in line.iter().zip(&cols) {
                dst[u as usize] += s;
            }
        }
        (
            whitened_residual(&self.grid_of_box_sums(&coarse), self.wa, self.ha),
            whitened_residual(&fine.grid_of_box_sums(&sums), fine.wa, fine.ha),
        )
    }

    /// The detector's pre-filtered analysis image of one luma plane:
    /// [`whitened_residual`] of [`AnalysisGrid::downscale`].
    pub fn residual(&self, y: &[u8]) -> Vec<f32> {
        whitened_residual(&self.downscale(y), self.wa, self.ha)
    }

    /// Each cell's span of frame coordinates along `axis`: [`AnalysisGrid::even_spans`]
    /// for area cells, else its pixels `[a, b)`.
    fn cell_spans(&self, axis: Axis) -> Vec<(f64, f64)> {
        if self.is_area() {
            return self.even_spans(axis);
        }
        let range = match axis {
            Axis::Columns => &self.colrange,
            Axis::Rows => &self.rowrange,
        };
        range
            .iter()
            .map(|&(a, b)| (f64::from(a), f64::from(b)))
            .collect()
    }

    /// Each cell's span `[u·p, (u + 1)·p)` of frame coordinates along `axis`, for cells `p`
    /// frame pixels wide.
    fn even_spans(&self, axis: Axis) -> Vec<(f64, f64)> {
        let cells = match axis {
            Axis::Columns => self.wa,
            Axis::Rows => self.ha,
        };
        // Square cells, unless the grid's width is capped (then the columns share it).
        let square = self.h as f64 / self.ha as f64;
        let per = match axis {
            Axis::Columns if (self.w as f64 / square).ceil() as usize > self.wa => {
                self.w as f64 / self.wa as f64
            }
            _ => square,
        };
        (0..cells)
            .map(|u| (u as f64 * per, (u + 1) as f64 * per))
            .collect()
    }

    /// The grid of cells averaging the frame over `cols` × `rows` (each cell's span along
    /// each axis, [`moved_spans`]).
    fn average_spans(&self, y: &[u8], cols: &[MovedSpan], rows: &[MovedSpan]) -> Vec<f32> {
        let (w, wa, ha) = (self.w, self.wa, self.ha);
        let mut grid = vec![0f32; wa * ha];
        let mut acc = vec![0f32; w];
        // Whole rows summed as integers (most of a cell's rows at 1080p), the rows cut by
        // the span's ends weighted.
        let mut whole = vec![0u32; w];
        for (v, row) in rows.iter().enumerate() {
            acc.iter_mut().for_each(|a| *a = 0.0);
            whole.iter_mut().for_each(|a| *a = 0);
            for (k, &wr) in row.weights.iter().enumerate() {
                let line = &y[(row.first + k) * w..][..w];
                if wr == 1.0 {
                    for (a, &p) in whole.iter_mut().zip(line) {
                        *a += u32::from(p);
                    }
                } else {
                    for (a, &p) in acc.iter_mut().zip(line) {
                        *a += wr * f32::from(p);
                    }
                }
            }
            for (a, &n) in acc.iter_mut().zip(&whole) {
                *a += n as f32;
            }
            for (g, col) in grid[v * wa..(v + 1) * wa].iter_mut().zip(cols) {
                let s: f32 = acc[col.first..]
                    .iter()
                    .zip(&col.weights)
                    .map(|(a, wc)| a * wc)
                    .sum();
                *g = s / (row.length * col.length);
            }
        }
        grid
    }

    /// [`AnalysisGrid::residual`] of the frame warped back along `m` (the content's motion
    /// since the mark was at rest, `x = c + zoom·(X − c) + shift`): each cell averages the
    /// frame over the span its own pixels moved to, pixels cut by the span's ends weighted
    /// by the share it covers, the frame's edge repeated where they moved out of it. At
    /// full resolution, not on the grid: interpolating chip-sized features on the grid cost
    /// 7 % of the mark's z (README). The spans were rounded to whole frame pixels: an eighth
    /// of a cell at 1080p, but half a cell at 240p, where it cost the riding mark a fifth of
    /// its z (photo-pan's seal at 240p, CRF 23: 9.7, 11.6 with the copy scaled back to
    /// 720p first). `None` for frames shorter than the grid.
    pub fn residual_warped(&self, y: &[u8], m: crate::motion::Motion) -> Option<Vec<f32>> {
        let (w, h) = (self.w, self.h);
        if !self.is_box() || y.len() < w * h {
            return None;
        }
        let cols = moved_spans(&self.cell_spans(Axis::Columns), w, m.zoom, m.shift.0);
        let rows = moved_spans(&self.cell_spans(Axis::Rows), h, m.zoom, m.shift.1);
        Some(whitened_residual(
            &self.average_spans(y, &cols, &rows),
            self.wa,
            self.ha,
        ))
    }

    /// Gives grid columns that no frame column falls in (the last one, when `w·rows/h` is
    /// just over a whole number: 640×272 → 302 columns, the 302nd empty) their left
    /// neighbour's value instead of the 0 [`AnalysisGrid::downscale`] leaves there, so the
    /// embedder's texture mask does not see an edge at the frame's border.
    pub(crate) fn fill_empty_columns(&self, x: &mut [f32]) {
        if self.h < self.ha {
            return;
        }
        for (u, &(a, b)) in self.colrange.iter().enumerate().skip(1) {
            if a == b {
                for row in x.chunks_exact_mut(self.wa) {
                    row[u] = row[u - 1];
                }
            }
        }
    }

    /// The analysis-grid signal `wm` bilinearly upscaled to the frame, into `out`
    /// (`w·h` values, row-major).
    pub(crate) fn upscale_into(&self, wm: &[f32], out: &mut [f32]) {
        let wa = self.wa;
        let mut row = vec![0f32; wa];
        for (yy, &(r0, r1, rw)) in self.row_taps.iter().enumerate() {
            let a = &wm[r0 as usize * wa..(r0 as usize + 1) * wa];
            let b = &wm[r1 as usize * wa..(r1 as usize + 1) * wa];
            for ((o, &p), &q) in row.iter_mut().zip(a).zip(b) {
                *o = p * (1.0 - rw) + q * rw;
            }
            let line = &mut out[yy * self.w..(yy + 1) * self.w];
            for (px, &(c0, c1, cw)) in line.iter_mut().zip(&self.col_taps) {
                *px = row[c0 as usize] * (1.0 - cw) + row[c1 as usize] * cw;
            }
        }
    }
}

/// The frame pixels one analysis cell's pixels moved to along one axis
/// ([`AnalysisGrid::residual_warped`]): from `first`, each with the share of it the span
/// covers, and the span's length (the weights' sum).
#[derive(Clone, Debug)]
struct MovedSpan {
    first: usize,
    weights: Vec<f32>,
    length: f32,
}

/// Cells narrower than this many frame pixels average their exact span
/// ([`AnalysisGrid::for_reading`]). Measured on the bench's eight seals after 240p at CRF 23
/// and 30 (session 40): the fixed sums' z +0 to +5 %, the riding sums' +1 to +13 %.
pub const AREA_BELOW_PX: f64 = 3.0;

/// An axis of the frame.
#[derive(Clone, Copy)]
enum Axis {
    Columns,
    Rows,
}

/// Per cell of `range` (its span `[a, b)` of an axis of `n` pixels), the span
/// `[c + zoom·(a − c) + shift, c + zoom·(b − c) + shift)` (`c = n/2`), clamped to the frame
/// and at least one pixel long (where it moved out of the frame: the edge pixel).
fn moved_spans(range: &[(f64, f64)], n: usize, zoom: f64, shift: f64) -> Vec<MovedSpan> {
    let c = n as f64 / 2.0;
    let at = |x: f64| c + zoom * (x - c) + shift;
    let n = n as f64;
    range
        .iter()
        .map(|&(a, b)| {
            let from = at(a).clamp(0.0, n - 1.0);
            let to = at(b).clamp(0.0, n).max(from + 1.0);
            let first = from.floor();
            let weights = (first as usize..to.ceil() as usize)
                .map(|p| {
                    let p = p as f64;
                    ((p + 1.0).min(to) - p.max(from)) as f32
                })
                .collect();
            MovedSpan {
                first: first as usize,
                weights,
                length: (to - from) as f32,
            }
        })
        .collect()
}

/// The mean SSIM (ffmpeg's form: 8×8 windows every 4 pixels) between a luma plane `y`
/// and `y + k·d`, as a function of the mark's scale `k`, from per-window sums.
pub(crate) struct SsimOfScale {
    /// Per window: Σy, Σy², Σd, Σd², Σyd.
    windows: Vec<[f64; 5]>,
}

impl SsimOfScale {
    pub(crate) fn new(y: &[u8], d: &[f32], w: usize, h: usize) -> Self {
        // Sums over 4×4 blocks (f32: 16 terms each, exact enough), then 2×2 blocks of them
        // form each 8×8 window (f64).
        let (bw, bh) = (w / 4, h / 4);
        let mut blocks = vec![[0f32; 5]; bw * bh];
        for r in 0..bh * 4 {
            let row = &y[r * w..r * w + bw * 4];
            let drow = &d[r * w..r * w + bw * 4];
            let brow = &mut blocks[(r / 4) * bw..(r / 4 + 1) * bw];
            for (b, (px, dx)) in brow
                .iter_mut()
                .zip(row.chunks_exact(4).zip(drow.chunks_exact(4)))
            {
                let mut s = [0f32; 5];
                for (&p, &m) in px.iter().zip(dx) {
                    let p = f32::from(p);
                    s[0] += p;
                    s[1] += p * p;
                    s[2] += m;
                    s[3] += m * m;
                    s[4] += p * m;
                }
                for (acc, v) in b.iter_mut().zip(s) {
                    *acc += v;
                }
            }
        }
        let mut windows = Vec::with_capacity(bw.saturating_sub(1) * bh.saturating_sub(1));
        for r in 0..bh.saturating_sub(1) {
            for c in 0..bw.saturating_sub(1) {
                let mut s = [0f64; 5];
                for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    for (acc, &v) in s.iter_mut().zip(&blocks[(r + dr) * bw + c + dc]) {
                        *acc += f64::from(v);
                    }
                }
                windows.push(s);
            }
        }
        SsimOfScale { windows }
    }

    /// The largest scale `k ≤ 1` of the mark whose mean SSIM is at least `target`. The
    /// loss grows ≈ k², so the first guess is `√((1 − target)/(1 − S(1)))`, refined twice
    /// the same way and then nudged down until the target holds.
    pub(crate) fn largest_scale(&self, target: f64) -> f64 {
        let loss = |k: f64| (1.0 - self.at(k)).max(1e-12);
        let budget = 1.0 - target;
        let mut k = 1.0f64;
        let mut l = loss(k);
        if l <= budget {
            return k;
        }
        for _ in 0..3 {
            k = (k * (budget / l).sqrt()).min(1.0);
            l = loss(k);
        }
        while l > budget && k > 1e-3 {
            k *= 0.98;
            l = loss(k);
        }
        k
    }

    /// Mean SSIM with the mark scaled by `k` (1 when the frame is smaller than a window).
    pub(crate) fn at(&self, k: f64) -> f64 {
        if self.windows.is_empty() {
            return 1.0;
        }
        const N: f64 = 64.0;
        let c1 = (0.01f64 * 255.0).powi(2) * N * N;
        let c2 = (0.03f64 * 255.0).powi(2) * N * N;
        let total: f64 = self
            .windows
            .iter()
            .map(|&[sa, saa, sd, sdd, sad]| {
                let sb = sa + k * sd;
                let sbb = saa + 2.0 * k * sad + k * k * sdd;
                let sab = saa + k * sad;
                let vars = N * (saa + sbb) - sa * sa - sb * sb;
                let covar = N * sab - sa * sb;
                (2.0 * sa * sb + c1) * (2.0 * covar + c2) / ((sa * sa + sb * sb + c1) * (vars + c2))
            })
            .sum();
        total / self.windows.len() as f64
    }
}

/// The mean SSIM (ffmpeg's `ssim` filter: 8×8 windows every 4 pixels) of two `w×h` luma
/// planes, exactly (integer sums per 4×4 block); 1 when the frame is smaller than a window.
/// The embedder checks its budget with it on the rounded frame it writes.
pub(crate) fn frame_ssim(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
    let (bw, bh) = (w / 4, h / 4);
    if bw < 2 || bh < 2 {
        return 1.0;
    }
    // Per 4×4 block: Σa, Σb, Σa², Σb², Σab (at most 16·255² < 2³²).
    let mut blocks = vec![[0u32; 5]; bw * bh];
    for r in 0..bh * 4 {
        let (ra, rb) = (&a[r * w..r * w + bw * 4], &b[r * w..r * w + bw * 4]);
        let brow = &mut blocks[(r / 4) * bw..(r / 4 + 1) * bw];
        for (blk, (pa, pb)) in brow
            .iter_mut()
            .zip(ra.chunks_exact(4).zip(rb.chunks_exact(4)))
        {
            for (&x, &y) in pa.iter().zip(pb) {
                let (x, y) = (u32::from(x), u32::from(y));
                blk[0] += x;
                blk[1] += y;
                blk[2] += x * x;
                blk[3] += y * y;
                blk[4] += x * y;
            }
        }
    }
    const N: f64 = 64.0;
    let c1 = (0.01f64 * 255.0).powi(2) * N * N;
    let c2 = (0.03f64 * 255.0).powi(2) * N * N;
    let mut total = 0.0;
    for r in 0..bh - 1 {
        for c in 0..bw - 1 {
            let mut s = [0f64; 5];
            for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                for (acc, &v) in s.iter_mut().zip(&blocks[(r + dr) * bw + c + dc]) {
                    *acc += f64::from(v);
                }
            }
            let [sa, sb, saa, sbb, sab] = s;
            let vars = N * (saa + sbb) - sa * sa - sb * sb;
            let covar = N * sab - sa * sb;
            total += (2.0 * sa * sb + c1) * (2.0 * covar + c2)
                / ((sa * sa + sb * sb + c1) * (vars + c2));
        }
    }
    total / ((bw - 1) * (bh - 1)) as f64
}

/// 3×3 box mean with clamped edges.
///
/// Both passes run on whole rows (three shifted slices added), which the compiler turns into
/// vector code; per element the additions are those of the index-clamped form, in its order
/// (`(left + centre) + right`, then `(up + centre) + down`), so the result is the same to the
/// bit (`grid_tests::box3_on_rows_matches_the_clamped_reference`).
pub(crate) fn box3(x: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut t = vec![0f32; w * h];
    if w == 0 || h == 0 {
        return t;
    }
    for (row, out) in x[..w * h].chunks_exact(w).zip(t.chunks_exact_mut(w)) {
        if w == 1 {
            out[0] = row[0] + row[0] + row[0];
            continue;
        }
        out[0] = row[0] + row[0] + row[1];
        for (o, ((l, c), r)) in out[1..w - 1]
            .iter_mut()
            .zip(row.iter().zip(&row[1..]).zip(&row[2..]))
        {
            *o = l + c + r;
        }
        out[w - 1] = row[w - 2] + row[w - 1] + row[w - 1];
    }
    let mut o = vec![0f32; w * h];
    for (r, out) in o.chunks_exact_mut(w).enumerate() {
        let line = |i: usize| &t[i * w..(i + 1) * w];
        let (up, mid, dn) = (line(r.saturating_sub(1)), line(r), line((r + 1).min(h - 1)));
        for (o, ((u, m), d)) in out.iter_mut().zip(up.iter().zip(mid).zip(dn)) {
            *o = (u + m + d) / 9.0;
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

/// Added to the local activity before dividing by it (whitening).
pub const WHITEN_ACT_EPS: f32 = 1.0;
/// The whitened residual is clipped to `±WHITEN_CLIP`.
pub const WHITEN_CLIP: f32 = 3.0;

/// Detector pre-filter on a `w×h` analysis image: the high-pass residual (pixel − 3×3 mean,
/// edges clamped), divided by its local activity (3×3 mean of |residual|) +
/// [`WHITEN_ACT_EPS`] and clipped to ±[`WHITEN_CLIP`], so that neither strong edges nor
/// any single region dominate the correlation.
pub fn whitened_residual(x: &[f32], w: usize, h: usize) -> Vec<f32> {
    let (r, act) = residual_and_activity(x, w, h);
    r.iter()
        .zip(&act)
        .map(|(r, a)| (r / (a + WHITEN_ACT_EPS)).clamp(-WHITEN_CLIP, WHITEN_CLIP))
        .collect()
}

/// Perceptual mask: a floor of `MASK_MIN` on flat areas, up to `MASK_MAX` in texture.
pub(crate) fn texture_mask(x: &[f32], w: usize, h: usize) -> Vec<f32> {
    const ACT_REF: f32 = 4.0;
    // With `MAX_GAIN` 4.5, flat areas get up to 0.9 of a level: rounded, ±1 on blobs of
    // about a chip, not nothing (0.08 until 2026-12-04, which rounded to an unmarked sky).
    const MASK_MIN: f32 = 0.2;
    // ... but only where the area is not empty: an exactly uniform area (letterbox bars, a
    // synthetic slate; a decoded night sky measures 0.04–0.08 here) keeps the old floor,
    // which rounds to nothing. The floor ramps up over `EMPTY_ACT`.
    const MASK_MIN_EMPTY: f32 = 0.08;
    const EMPTY_ACT: f32 = 0.03;
    const MASK_MAX: f32 = 1.6;
    let (_, act) = residual_and_activity(x, w, h);
    let act = box3(&act, w, h);
    act.iter()
        .map(|&a| {
            let floor = MASK_MIN_EMPTY + (MASK_MIN - MASK_MIN_EMPTY) * (a / EMPTY_ACT).min(1.0);
            (a / ACT_REF).clamp(floor, MASK_MAX)
        })
        .collect()
}

#[cfg(test)]
mod grid_tests {
    use super::*;

    /// `box3` as it was written first: every element from clamped indices.
    fn box3_reference(x: &[f32], w: usize, h: usize) -> Vec<f32> {
        let mut t = vec![0f32; w * h];
        for r in 0..h {
            for c in 0..w {
                let row = &x[r * w..(r + 1) * w];
                t[r * w + c] = row[c.saturating_sub(1)] + row[c] + row[(c + 1).min(w - 1)];
            }
        }
        let mut o = vec![0f32; w * h];
        for r in 0..h {
            let (up, dn) = (r.saturating_sub(1), (r + 1).min(h - 1));
            for c in 0..w {
                o[r * w + c] = (t[up * w + c] + t[r * w + c] + t[dn * w + c]) / 9.0;
            }
        }
        o
    }

    #[test]
    fn box3_on_rows_matches_the_clamped_reference() {
        // Values with fractions and mixed signs, so that the order of additions shows.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for (w, h) in [
            (1, 1),
            (1, 5),
            (5, 1),
            (2, 2),
            (3, 7),
            (228, 128),
            (157, 128),
        ] {
            let x: Vec<f32> = (0..w * h)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 20_000) as f32 / 37.0 - 270.0
                })
                .collect();
            let (a, b) = (box3(&x, w, h), box3_reference(&x, w, h));
            assert!(
                a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{w}×{h}"
            );
        }
    }

    #[test]
    fn the_grid_is_capped_at_four_to_one_and_unchanged_below() {
        // Common shapes keep square analysis pixels.
        for (w, h, wa) in [
            (1280, 720, 228),
            (1920, 1080, 228),
            (3840, 1080, 456),
            (720, 1280, 72),
        ] {
            assert_eq!(AnalysisGrid::new(w, h).grid_size(), (wa, 128), "{w}x{h}");
        }
        // A strip: 512 columns (not 32768), every frame column in a bin, bins monotone.
        for (w, h) in [(4096, 16), (8192, 512), (100_000, 128)] {
            let g = AnalysisGrid::new(w, h);
            assert_eq!(
                g.grid_size(),
                (MAX_GRID_ASPECT * ANALYSIS_ROWS, 128),
                "{w}x{h}"
            );
            let bins = g.column_bins();
            assert_eq!(bins.len(), w);
            assert!(bins.windows(2).all(|p| p[0] <= p[1]), "{w}x{h}");
            assert_eq!(
                *bins.last().unwrap() as usize,
                g.grid_size().0 - 1,
                "{w}x{h}"
            );
            let flat = g.downscale(&vec![77u8; w * h]);
            assert!(flat.iter().all(|&v| (v - 77.0).abs() < 1e-3), "{w}x{h}");
        }
        // A tall needle: one column.
        assert_eq!(AnalysisGrid::new(16, 4096).grid_size(), (1, 128));
    }

    #[test]
    fn the_frame_width_in_analysis_pixels_rounds_up_to_the_grid() {
        for w in (1..4000).step_by(7).chain([4096, 8192, 100_000]) {
            for (h, rows) in [(16, 128), (240, 128), (1080, 128), (1080, 256), (4096, 128)] {
                let g = AnalysisGrid::with_rows(w, h, rows);
                let width = g.width_in_analysis_pixels();
                assert_eq!(
                    width.ceil() as usize,
                    g.grid_size().0,
                    "{w}x{h}, {rows} rows"
                );
            }
        }
    }
}

#[cfg(test)]
mod nesting_tests {
    use super::*;
    use crate::detect::fine_rows;

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    /// The 128-row grid's cells are unions of the fine grid's for every frame shape the
    /// scan meets (odd sizes, capped strips and portrait frames included), and the
    /// residuals from one pass are bit for bit those of two.
    #[test]
    fn the_coarse_grid_nests_in_the_fine_one_and_one_pass_gives_both() {
        for (w, h) in [
            (1920, 1080),
            (1280, 720),
            (640, 272),
            (1080, 1920),
            (720, 1280),
            (853, 480),
            (1366, 768),
            (3840, 1080),
            (4096, 300),
            (300, 257),
            (999, 777),
        ] {
            let coarse = AnalysisGrid::new(w, h);
            let fine = AnalysisGrid::with_rows(w, h, fine_rows(w, h));
            assert!(coarse.nesting_in(&fine).is_some(), "{w}x{h}");
            let y = noise(w * h, (w * 31 + h) as u32);
            let (c, f) = coarse.residuals_with(&fine, &y);
            let (c0, f0) = (coarse.residual(&y), fine.residual(&y));
            assert!(
                c.iter().zip(&c0).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{w}x{h}"
            );
            assert!(
                f.iter().zip(&f0).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{w}x{h}"
            );
            assert_eq!((c.len(), f.len()), (c0.len(), f0.len()));
        }
        // Grids that do not nest (2 rows in 3, a frame shorter than the fine grid: 176x144
        // is interpolated up to 256 rows) are told apart and still get both residuals, from
        // two passes.
        for (w, h, a, b) in [(640, 200, 2, 3), (176, 144, 128, 256), (640, 200, 128, 256)] {
            let y = noise(w * h, 5);
            let (a, b) = (
                AnalysisGrid::with_rows(w, h, a),
                AnalysisGrid::with_rows(w, h, b),
            );
            assert!(a.nesting_in(&b).is_none(), "{w}x{h}");
            let (c, f) = a.residuals_with(&b, &y);
            assert_eq!((c, f), (a.residual(&y), b.residual(&y)));
        }
    }
}

#[cfg(test)]
mod ssim_tests {
    use super::*;

    /// SSIM of `y` against `y + k·d` straight from the definition (8×8 windows every 4
    /// pixels, as ffmpeg's `ssim` filter).
    fn direct(y: &[u8], d: &[f32], w: usize, h: usize, k: f64) -> f64 {
        let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
        let (mut total, mut n) = (0.0, 0);
        for y0 in (0..h.saturating_sub(7)).step_by(4) {
            for x0 in (0..w.saturating_sub(7)).step_by(4) {
                let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for r in y0..y0 + 8 {
                    for c in x0..x0 + 8 {
                        let a = f64::from(y[r * w + c]);
                        let b = a + k * f64::from(d[r * w + c]);
                        (sa, sb, saa, sbb, sab) =
                            (sa + a, sb + b, saa + a * a, sbb + b * b, sab + a * b);
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
        total / n as f64
    }

    #[test]
    fn ssim_of_scale_matches_the_definition_and_meets_its_budget() {
        let (w, h) = (70, 45); // not multiples of 4 or 8
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            state >> 16
        };
        // Texture on the left, flat on the right: the budget must bind somewhere.
        let y: Vec<u8> = (0..w * h)
            .map(|i| {
                if i % w < w / 2 {
                    (next() % 200) as u8 + 20
                } else {
                    128
                }
            })
            .collect();
        let d: Vec<f32> = (0..w * h).map(|_| (next() % 9) as f32 - 4.0).collect();
        let s = SsimOfScale::new(&y, &d, w, h);
        for k in [0.0, 0.3, 1.0] {
            let (got, want) = (s.at(k), direct(&y, &d, w, h, k));
            assert!((got - want).abs() < 1e-9, "k {k}: {got} vs {want}");
        }
        assert!(
            s.at(1.0) < 0.99,
            "the test mark must cost something: {}",
            s.at(1.0)
        );
        let k = s.largest_scale(0.995);
        assert!(k > 0.0 && k < 1.0, "k {k}");
        assert!(s.at(k) >= 0.995, "budget broken: {}", s.at(k));
        assert!(s.at(k * 1.05) < 0.995, "k {k} is not near the largest");
        assert_eq!(
            s.largest_scale(0.5),
            1.0,
            "a budget the mark meets leaves it whole"
        );
        // The exact form on two 8-bit planes (what the embedder checks after rounding).
        let marked: Vec<u8> = y
            .iter()
            .zip(&d)
            .map(|(&p, &m)| (f32::from(p) + 0.4 * m).round().clamp(0.0, 255.0) as u8)
            .collect();
        let as_mark: Vec<f32> = marked
            .iter()
            .zip(&y)
            .map(|(&m, &p)| f32::from(m) - f32::from(p))
            .collect();
        let (got, want) = (
            frame_ssim(&y, &marked, w, h),
            direct(&y, &as_mark, w, h, 1.0),
        );
        assert!((got - want).abs() < 1e-9, "frame_ssim {got} vs {want}");
        assert_eq!(frame_ssim(&y, &y, w, h), 1.0);
    }
}

#[cfg(test)]
mod content_box_tests {
    use super::*;

    /// A `w × h` frame of `fill` with a noisy picture (values 40–200) at `(x, y, pw, ph)`.
    fn framed(w: usize, h: usize, picture: (usize, usize, usize, usize), fill: u8) -> Vec<u8> {
        let (x0, y0, pw, ph) = picture;
        let mut s = 12345u32;
        let mut y = vec![fill; w * h];
        for r in y0..y0 + ph {
            for c in x0..x0 + pw {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                y[r * w + c] = 40 + (s >> 24) as u8 % 160;
            }
        }
        y
    }

    #[test]
    fn finds_the_picture_inside_bars_and_nothing_in_an_ordinary_frame() {
        // Letterboxed into 9:16 (1080×460 in 1080×1920), with the encoder's ringing: the
        // lines next to the picture a few levels off black.
        let mut y = framed(1080, 1920, (0, 730, 1080, 460), 16);
        for c in 0..1080 {
            y[729 * 1080 + c] = 16 + (c % 5) as u8;
            y[1190 * 1080 + c] = 16 + (c % 9) as u8;
        }
        assert_eq!(content_box(&y, 1080, 1920), Some((0, 730, 1080, 460)));
        // Padded into a 1.3× canvas at an offset: bars on all four sides, of another colour.
        let y = framed(832, 354, (44, 56, 640, 272), 128);
        assert_eq!(content_box(&y, 832, 354), Some((44, 56, 640, 272)));
        // No bars.
        let y = framed(640, 360, (0, 0, 640, 360), 0);
        assert_eq!(content_box(&y, 640, 360), None);
        // One black line at the bottom (an encoder's padding): not a bar; 2 % of the
        // height in black lines (the picture's own): not a canvas.
        let y = framed(640, 360, (0, 0, 640, 359), 16);
        assert_eq!(content_box(&y, 640, 360), None);
        let y = framed(1280, 720, (0, 0, 1280, 704), 16);
        assert_eq!(content_box(&y, 1280, 720), None);
        // A black frame, and a picture too small to be the content.
        assert_eq!(content_box(&vec![16; 640 * 360], 640, 360), None);
        let y = framed(640, 360, (300, 150, 100, 70), 16);
        assert_eq!(content_box(&y, 640, 360), None);
        // A blurred, enlarged copy as the bars (a 9:16 repost): smooth, not uniform (a
        // gradient the uniform rule would cut short), ending at the picture's first line.
        let smooth = |x: usize, r: usize| 60 + (x / 30 + r / 40) as u8;
        let mut y = framed(540, 960, (0, 365, 540, 230), 0);
        for r in (0..365).chain(595..960) {
            for x in 0..540 {
                y[r * 540 + x] = smooth(x, r);
            }
        }
        assert_eq!(content_box(&y, 540, 960), Some((0, 365, 540, 230)));
        // Not centred: a smooth band at the top only is no bar.
        for r in 595..960 {
            y.copy_within((r - 230) * 540..(r - 229) * 540, r * 540);
        }
        assert_eq!(content_box(&y, 540, 960), None);
        // A smooth sky above a sharp picture: no twin below, no box.
        let mut y = framed(1280, 720, (0, 0, 1280, 720), 0);
        for r in 0..200 {
            for x in 0..1280 {
                y[r * 1280 + x] = smooth(x, r);
            }
        }
        assert_eq!(content_box(&y, 1280, 720), None);
        // Malformed input.
        assert_eq!(content_box(&[], 640, 360), None);
        assert_eq!(content_box(&y, 0, 360), None);
    }
}

#[cfg(test)]
mod area_tests {
    use super::*;

    /// A vertical ramp, each frame row its index.
    fn ramp(w: usize, h: usize) -> Vec<u8> {
        (0..h)
            .flat_map(|r| std::iter::repeat_n(r as u8, w))
            .collect()
    }

    /// A 240p copy on the 128-row grid: 1.875 frame rows a cell. Binned by pixel centres,
    /// a ramp's cells step unevenly (cells of one row and of two: each cell's centre up to
    /// a quarter of a cell off, and the mark's chips with it; steps of 1.5 to 2.5 rows);
    /// averaged over their spans, every step is the same.
    #[test]
    fn the_cells_of_a_small_frame_are_evenly_spaced_over_it() {
        let (w, h) = (426, 240);
        let y = ramp(w, h);
        let steps = |g: &AnalysisGrid| -> Vec<f32> {
            let x = g.downscale(&y);
            let (wa, ha) = g.grid_size();
            (1..ha)
                .map(|v| x[v * wa + 7] - x[(v - 1) * wa + 7])
                .collect()
        };
        let read = AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS);
        assert!(read.is_area());
        let even = h as f32 / ANALYSIS_ROWS as f32;
        // (The ramp is a staircase of whole rows: a span's mean is its centre's to within
        // an eighth of a row.)
        for (v, s) in steps(&read).iter().enumerate() {
            assert!((s - even).abs() < 0.1, "step {v}: {s}");
        }
        let centres = AnalysisGrid::with_rows(w, h, ANALYSIS_ROWS);
        assert!(!centres.is_area());
        let worst = steps(&centres)
            .iter()
            .map(|s| (s - even).abs())
            .fold(0f32, f32::max);
        assert!(worst > 0.3, "pixel-centre bins step evenly too: {worst}");
        // Tall frames keep the pixel-centre bins (8.4 frame pixels a cell at 1080p).
        assert!(!AnalysisGrid::for_reading(1920, 1080, ANALYSIS_ROWS).is_area());
        assert!(AnalysisGrid::for_reading(1280, 720, 2 * ANALYSIS_ROWS).is_area());
    }

    /// Where cells are whole pixels (two rows and two columns each) the spans are the
    /// pixel bins, and a frame at rest warped back is its own residual.
    #[test]
    fn area_cells_of_whole_pixels_are_the_pixel_bins_and_rest_is_no_warp() {
        let (w, h) = (512, 256);
        let y: Vec<u8> = (0..w * h).map(|i| (i * 7919 % 251) as u8).collect();
        let (read, centres) = (
            AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS),
            AnalysisGrid::with_rows(w, h, ANALYSIS_ROWS),
        );
        assert!(read.is_area());
        let (a, b) = (read.downscale(&y), centres.downscale(&y));
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-3));
        let y = ramp(426, 240);
        let g = AnalysisGrid::for_reading(426, 240, ANALYSIS_ROWS);
        assert_eq!(
            g.residual_warped(&y, crate::motion::Motion::REST),
            Some(g.residual(&y))
        );
    }

    /// A frame moved by a fraction of a pixel and warped back by that motion reads about
    /// as the frame itself: the warp follows the motion to within the share of a pixel,
    /// not to the nearest pixel.
    #[test]
    fn a_warp_follows_a_fraction_of_a_pixel() {
        let (w, h) = (426, 240);
        // A smooth pattern: sampled at x and at x + 0.5 it differs only by its slope.
        let pattern = |x: f64, y: f64| 128.0 + 60.0 * (x / 9.0).sin() * (y / 11.0).cos();
        let frame = |dx: f64| -> Vec<u8> {
            (0..h)
                .flat_map(|r| {
                    (0..w).map(move |c| pattern(c as f64 + 0.5 - dx, r as f64 + 0.5).round() as u8)
                })
                .collect()
        };
        let g = AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS);
        let at_rest = g.downscale(&frame(0.0));
        let moved = frame(0.5);
        let m = crate::motion::Motion {
            zoom: 1.0,
            shift: (0.5, 0.0),
        };
        let cols = moved_spans(&g.cell_spans(Axis::Columns), w, m.zoom, m.shift.0);
        let rows = moved_spans(&g.cell_spans(Axis::Rows), h, m.zoom, m.shift.1);
        let back = g.average_spans(&moved, &cols, &rows);
        let (wa, _) = g.grid_size();
        // Away from the edges (repeated where the motion left the frame).
        let err = |x: &[f32]| {
            x.iter()
                .zip(&at_rest)
                .enumerate()
                .filter(|(i, _)| (2..wa - 2).contains(&(i % wa)))
                .map(|(_, (a, b))| (a - b).abs())
                .fold(0f32, f32::max)
        };
        assert!(err(&back) < 0.8, "warped back: {}", err(&back));
        // Unwarped, the half pixel shows.
        assert!(err(&g.downscale(&moved)) > 2.0);
    }
}
