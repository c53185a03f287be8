//! The content's global motion frame to frame (translation and zoom about the frame's
//! centre), for a mark that rides the camera: the embedder carries the tile along with a
//! gentle camera move instead of leaving it in place for x264 to code again in every
//! predicted frame, and puts it back at rest at every anchor ([`ANCHOR_S`]); the detector
//! follows the same motion on the frames it is given and sums them warped back to their
//! anchor. See README, "A mark that rides the camera".
//!
//! Both sides decide from the picture alone (never the key) which motion is ridden: only
//! a *gentle* one (a camera move, not a bus under the lens) that *explains the frame* (the
//! prediction error under it well below the error under none), or a *tiny* one (a slow
//! push-in, whose error barely changes either way). Otherwise the mark stays where it is.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::analysis::AnalysisGrid;

/// Seconds between anchors: at every multiple of it on the frames' clock (from the clip's
/// first frame, time 0) the mark is at rest (between frames, the share of a frame's motion
/// since that instant). Content behind a riding mark moves with it, so a clip adds up to
/// little more than one frame's evidence per stretch between anchors; every 2 s buys the
/// evidence back at a few points of size (README).
pub const ANCHOR_S: f64 = 2.0;

/// Lags of the pictures behind their timestamps that the detector also follows a riding
/// clip at ([`Anchors::Lagged`]): a frame-rate change by `ffmpeg -r` keeps a 30 fps clip's
/// pictures 47–75 ms behind their new times (measured on photo-pan, to 25 and to 24 fps; it
/// drops a frame only once the pictures lag by more than one), a screen recording by what
/// its capture and the player add. Each covers ≈ 1/60 s either side: on photo-pan's
/// screen-recording row lags 1/30 and 2/30 s proved the mark, 0 and 1/10 s did not (README).
pub const LAGS: [f64; 3] = [1.0 / 30.0, 2.0 / 30.0, 3.0 / 30.0];

/// Rows of the tracking grid, both sides: the motion must be read to a fraction of a pixel
/// for x264 to predict the riding mark (128 rows cost photo-pan 1.30× the plain bytes
/// instead of 1.16×, README), and the detector must read the motion the embedder read: on
/// 128 rows it read photo-zoom's 0.29 % a frame as 0.04 % (riding z 5.8 against 20.2 on
/// 256 rows, the embedder's grid).
pub const TRACK_ROWS: usize = 256;

/// A phase-correlation peak below this: no common content (a cut, a flash). Unrelated
/// pictures peak at ≈ 4.5/128 on the 128² correlation (0.035 measured on noise).
const CUT_PEAK: f32 = 0.06;
/// A motion is ridden only when its prediction error is below this share of the error
/// under no motion ("explains the frame").
const EXPLAIN: f64 = 0.5;
/// A tiny motion (below) is ridden when its prediction error is below this share of the
/// error under none (judged over [`EXPLAIN_MEMORY_S`]): a slow push-in's error falls by
/// about a half (photo-pushin: 0.45–0.68 a frame), a drift read in a scene of moving
/// characters barely at all (Big Buck Bunny: 0.74–1.0), and there the detector's reading
/// of it disagrees with the embedder's: at 0.8 Big Buck Bunny's mark rode part of the
/// time, for no bytes saved, and its z after CRF 23 fell from 20.3 to 16.4.
const EXPLAIN_TINY: f64 = 0.65;
/// The time over which a motion's share of the frame explained is judged (an exponential
/// mean).
const EXPLAIN_MEMORY_S: f64 = 0.3;
/// Gentle: at most this many frame heights a second of shift…
const GENTLE_SHIFT_PER_S: f64 = 0.6;
/// …and this much zoom a second (0.5 % a frame at 30 fps).
const GENTLE_ZOOM_PER_S: f64 = 0.15;
/// Tiny (ridden whatever it explains): under this many frame heights a second…
const TINY_SHIFT_PER_S: f64 = 0.058;
/// …and this much zoom a second (0.2 % a frame at 30 fps).
const TINY_ZOOM_PER_S: f64 = 0.06;
/// A step this short is from one frame to the next (≥ 20 fps): the embedder's, which sees
/// every frame.
const ONE_FRAME_S: f64 = 0.05;
/// A cell of the tracking grid within this many luma levels of what it was is unchanged…
const STILL_LEVELS: f32 = 2.0;
/// …and one unchanged this long, where the picture shows an edge ([`EDGE_LEVELS`] a cell),
/// is taken for an overlay burnt in over the picture (a caption, a logo)…
const OVERLAY_S: f32 = 0.7;
const EDGE_LEVELS: f32 = 4.0;
/// …where such cells are between these shares of the cells with an edge (fewer: the odd
/// cell any clip has; more: the camera more likely stood still)…
const MIN_OVERLAY: f64 = 0.02;
const MAX_OVERLAY: f64 = 0.35;
/// …and the motion fitted without them explains the rest this well (a camera's move over
/// a still scene explains all but 0.5–15 % of the frame's change; characters moving over a
/// still background, far less).
const OVERLAY_EXPLAIN: f64 = 0.2;
/// Half-resolution grids smaller than this each way are not tracked.
const MIN_CELLS: usize = 8;
/// Frames further apart than this (a key-frame scan, a gap in the file) are not followed.
const MAX_STEP_S: f64 = 0.5;
/// The detector follows a frame at most every this many seconds: the content behind a
/// riding mark changes slowly, so frames close in time add little (photo-pan, -zoom,
/// -pushin after CRF 23: the riding z within 2 % following every reference frame or one
/// every 0.25, 0.35 or 0.45 s), and each costs a tracking step.
pub const FOLLOW_S: f64 = 0.35;
/// Gauss–Newton passes at most on the half-resolution grid (from the phase correlation's
/// start), then on the full one: the embedder's, and the detector's (each analysed frame;
/// from the same start, two passes read the embedder's motion to within 2 % of its z).
const COARSE_PASSES: usize = 4;
const EMBED_PASSES: usize = 8;
const DETECT_PASSES: usize = 2;

/// A motion `x' = c + zoom·(x − c) + shift` in frame pixels, `c` the frame's centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Motion {
    pub zoom: f64,
    pub shift: (f64, f64),
}

impl Motion {
    /// No motion.
    pub const REST: Motion = Motion {
        zoom: 1.0,
        shift: (0.0, 0.0),
    };

    /// This motion, then `next`.
    pub fn then(self, next: Motion) -> Motion {
        Motion {
            zoom: self.zoom * next.zoom,
            shift: (
                next.zoom * self.shift.0 + next.shift.0,
                next.zoom * self.shift.1 + next.shift.1,
            ),
        }
    }

    /// The share `f` (0–1) of this motion, as if it went on at a steady pace.
    fn part(self, f: f64) -> Motion {
        Motion {
            zoom: self.zoom.powf(f),
            shift: (self.shift.0 * f, self.shift.1 * f),
        }
    }

    /// Whether the mark under it is where it was to within a tenth of a pixel everywhere
    /// in a frame `w` wide and `h` high.
    pub fn is_rest(self, w: usize, h: usize) -> bool {
        let r = 0.5 * (w.max(h) as f64);
        (self.zoom - 1.0).abs() * r + self.shift.0.abs().max(self.shift.1.abs()) < 0.1
    }
}

/// Follows a clip's frames in order (one decoding order: a scan's part) and says, for each,
/// where the mark rides: the motion from the last anchor to this frame, or `None` where
/// that is not known (a stretch that began between anchors, after a gap).
pub struct Ride {
    tracker: Tracker,
    since_anchor: Option<Motion>,
    /// The same at each of [`LAGS`].
    since_lagged: [Option<Motion>; LAGS.len()],
    last_pts: Option<f64>,
    /// Frames followed from the previous one, and of those the ones whose motion was
    /// ridden (the camera moved).
    steps: u64,
    ridden: u64,
    followed: Option<Followed>,
}

impl Ride {
    /// The embedder's, for frames `w × h` (every frame, unmarked).
    pub fn for_embedder(w: usize, h: usize) -> Ride {
        Ride::new(w, h, EMBED_PASSES)
    }

    /// The detector's, for frames `w × h` (the analysed ones, marked or not).
    pub fn for_detector(w: usize, h: usize) -> Ride {
        Ride::new(w, h, DETECT_PASSES)
    }

    fn new(w: usize, h: usize, passes: usize) -> Ride {
        Ride {
            tracker: Tracker::new(w, h, TRACK_ROWS, passes),
            since_anchor: None,
            since_lagged: [None; LAGS.len()],
            last_pts: None,
            steps: 0,
            ridden: 0,
            followed: None,
        }
    }

    /// Whether the detector follows a frame at `pts_s` ([`FOLLOW_S`] after the last one).
    pub fn follows(&self, pts_s: f64) -> bool {
        self.last_pts
            .is_none_or(|l| !(pts_s - l < FOLLOW_S && pts_s >= l))
    }

    /// Steps followed from the previous frame, and how many of them rode a motion.
    pub fn steps(&self) -> (u64, u64) {
        (self.steps, self.ridden)
    }

    /// The frame size this follows.
    pub fn frame_size(&self) -> (usize, usize) {
        self.tracker.grid.frame_size()
    }

    /// The next frame's luma (`w·h`, unmarked for the embedder) at `pts_s`: the motion
    /// from the last anchor to it.
    pub fn next(&mut self, y: &[u8], pts_s: f64) -> Option<Motion> {
        let last = self.last_pts.replace(pts_s);
        let step_s = last.map(|l| pts_s - l);
        let ok_step = step_s.is_some_and(|s| s > 0.0 && s <= MAX_STEP_S);
        let motion = self.tracker.next(y, step_s.filter(|_| ok_step));
        let last = last.filter(|_| ok_step);
        let followed = match (last, motion) {
            (None, _) => Followed::Start,
            (Some(_), Step::Cut) => Followed::Cut,
            (Some(_), Step::Still) => Followed::Step(Motion::REST),
            (Some(_), Step::Ride(m)) => {
                self.ridden += 1;
                Followed::Step(m)
            }
        };
        if last.is_some() {
            self.steps += 1;
        }
        self.followed = Some(followed);
        self.since_anchor = since_anchor(
            self.since_anchor,
            last,
            pts_s,
            followed,
            Anchors::Phase(0.0),
        );
        for (since, &lag) in self.since_lagged.iter_mut().zip(&LAGS) {
            *since = since_anchor(*since, last, pts_s, followed, Anchors::Lagged(lag));
        }
        self.since_anchor
    }

    /// The motion from the last anchor to the last frame given to [`Ride::next`] were the
    /// pictures behind their timestamps by each of [`LAGS`].
    pub fn since_lagged_anchors(&self) -> [Option<Motion>; LAGS.len()] {
        self.since_lagged
    }

    /// What the last frame given to [`Ride::next`] was, from the one before.
    pub(crate) fn followed(&self) -> Option<Followed> {
        self.followed
    }
}

/// What a followed frame was, from the one followed before it (its part's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Followed {
    /// The first frame, or the first after a gap: not followed from the one before.
    Start,
    /// A new shot (no common content).
    Cut,
    /// The motion ridden from the frame before ([`Motion::REST`]: none ridden).
    Step(Motion),
}

/// Where a clip's anchors lie on its frames' clock: the seal's own rule, or the rules the
/// detector replays for a clip whose clock is not the seal's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Anchors {
    /// At `phase + k·`[`ANCHOR_S`] for every k: the seal's own at phase 0; another phase
    /// for a clip trimmed off its anchors.
    Phase(f64),
    /// At the clip's first instant (time 0), then at `lag + k·`[`ANCHOR_S`] for k ≥ 1: a
    /// copy whose pictures lag their timestamps by `lag` seconds — `ffmpeg -r 25` keeps a
    /// 30 fps clip's pictures 47–75 ms behind their new times (it drops a frame only once
    /// it lags more than a frame), a screen recording shows what the player showed a
    /// moment before. The first picture is still the seal's first, at rest.
    Lagged(f64),
}

impl Anchors {
    /// The stretch between anchors a time lies in (a millisecond of slack for times
    /// rounded by the container).
    fn stretch(self, t: f64) -> f64 {
        match self {
            Anchors::Phase(phase) => ((t - phase + 1e-3) / ANCHOR_S).floor(),
            Anchors::Lagged(lag) => ((t - lag + 1e-3) / ANCHOR_S).floor().max(0.0),
        }
    }

    /// The time of the anchor that begins stretch `k`.
    fn time(self, k: f64) -> f64 {
        match self {
            Anchors::Phase(phase) => phase + k * ANCHOR_S,
            Anchors::Lagged(lag) if k > 0.0 => lag + k * ANCHOR_S,
            Anchors::Lagged(_) => 0.0,
        }
    }
}

/// Where the mark rides at `pts_s`, for anchors `anchors`: the motion from the last anchor,
/// given `since` (that at the frame followed before, at `last`; `None` for a frame not
/// followed from one) and what this frame was from it; `None` where it is not known.
/// [`Ride::next`]'s rule (phase 0); the detector replays it for other phases on a clip
/// trimmed off its anchors, and for lagged ones.
pub(crate) fn since_anchor(
    since: Option<Motion>,
    last: Option<f64>,
    pts_s: f64,
    followed: Followed,
    anchors: Anchors,
) -> Option<Motion> {
    let (last, step) = match (last, followed) {
        (Some(last), Followed::Step(step)) => (last, step),
        (Some(last), Followed::Cut) => {
            // A new shot: the mark rests on its first frame (where an encoder puts a key
            // frame, so that a key-frame scan finds it at rest there). The detector, whose
            // frames are further apart than one, does not know what moved between the cut
            // and this frame: unknown until the next anchor.
            return (pts_s - last <= ONE_FRAME_S).then_some(Motion::REST);
        }
        _ => {
            // The first frame (or the first after a gap): at rest only on an anchor.
            let k = anchors.stretch(pts_s);
            return (pts_s - anchors.time(k) < 1e-3).then_some(Motion::REST);
        }
    };
    let k = anchors.stretch(pts_s);
    if k > anchors.stretch(last) {
        // The anchor's time lay in (last, pts]: the mark was at rest at that instant
        // (between frames, as a steady motion would have it), so it rode the step's share
        // since then. The same whichever frames the two sides see.
        let t = anchors.time(k);
        let f = ((pts_s - t) / (pts_s - last)).clamp(0.0, 1.0);
        Some(step.part(f))
    } else {
        since.map(|m| m.then(step))
    }
}

/// What the tracker read from one frame to the next.
enum Step {
    /// No common content (a cut, a flash).
    Cut,
    /// The mark stays where it is: no motion the rule rides, or none known.
    Still,
    /// The camera's motion, ridden.
    Ride(Motion),
}

/// Frame-to-frame global motion: phase correlation of the central square of a box grid
/// for a start, then Gauss–Newton on the whole grid for translation and zoom.
struct Tracker {
    grid: AnalysisGrid,
    n: usize,
    win: Vec<f32>,
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    prev_hat: Option<Vec<Complex32>>,
    prev: Vec<f32>,
    /// Frame pixels per grid cell, across and down.
    px: (f64, f64),
    /// The last step's zoom: where Gauss–Newton starts (a camera's zoom changes slowly).
    zoom: f64,
    /// The previous frame on the half-resolution grid.
    prev_half: Vec<f32>,
    /// How much of the frames the motions explained lately (see [`EXPLAIN_MEMORY_S`]);
    /// `None` at the start and after a cut.
    explained: Option<f64>,
    still: StillCells,
    passes: usize,
}

impl Tracker {
    fn new(w: usize, h: usize, rows: usize, passes: usize) -> Tracker {
        let rows = rows.next_power_of_two().max(32);
        let grid = AnalysisGrid::with_rows(w, h, rows);
        // The phase correlation (a start for Gauss–Newton, within a cell) on the central
        // square at half the grid's resolution.
        let n = rows / 2;
        let (wa, ha) = grid.grid_size();
        let hann: Vec<f32> = (0..n)
            .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * (i as f32 + 0.5) / n as f32).cos())
            .collect();
        let mut p = FftPlanner::new();
        Tracker {
            win: (0..n * n).map(|i| hann[i / n] * hann[i % n]).collect(),
            fwd: p.plan_fft_forward(n),
            inv: p.plan_fft_inverse(n),
            prev_hat: None,
            prev: Vec::new(),
            px: (w as f64 / wa as f64, h as f64 / ha as f64),
            grid,
            n,
            zoom: 1.0,
            prev_half: Vec::new(),
            explained: None,
            still: StillCells::default(),
            passes,
        }
    }

    fn fft2(&self, x: &mut [Complex32], inverse: bool) {
        let n = self.n;
        let f = if inverse { &self.inv } else { &self.fwd };
        f.process(x);
        let mut t = vec![Complex32::default(); n * n];
        transpose::transpose(x, &mut t, n, n);
        f.process(&mut t);
        transpose::transpose(&t, x, n, n);
    }

    /// The ridden motion from the previous frame to this one (`step_s` seconds later;
    /// `None`: not followed from the previous one), or `None` where the rule rides none.
    fn next(&mut self, y: &[u8], step_s: Option<f64>) -> Step {
        let n = self.n;
        let (wa, ha) = self.grid.grid_size();
        // The half-resolution grid (2 × 2 means): the phase correlation and a first fit.
        let (wh, hh) = (wa / 2, ha / 2);
        if wh < MIN_CELLS || hh < MIN_CELLS {
            // A sliver of a frame (1×4096): nothing to track.
            return Step::Still;
        }
        let g = self.grid.downscale(y);
        let mut g2 = vec![0f32; wh * hh];
        for (r, line) in g2.chunks_exact_mut(wh).enumerate() {
            let (a, b) = (&g[2 * r * wa..][..wa], &g[(2 * r + 1) * wa..][..wa]);
            for (c, o) in line.iter_mut().enumerate() {
                *o = 0.25 * (a[2 * c] + a[2 * c + 1] + b[2 * c] + b[2 * c + 1]);
            }
        }
        let (x0, y0) = (wh.saturating_sub(n) / 2, hh.saturating_sub(n) / 2);
        let (cw, ch) = (n.min(wh), n.min(hh));
        let mut a = vec![Complex32::default(); n * n];
        let half = |r: usize, c: usize| g2[(y0 + r) * wh + x0 + c];
        let mut mean = 0f32;
        for r in 0..ch {
            for c in 0..cw {
                mean += half(r, c);
            }
        }
        mean /= (cw * ch).max(1) as f32;
        for r in 0..ch {
            for c in 0..cw {
                a[r * n + c].re = (half(r, c) - mean) * self.win[r * n + c];
            }
        }
        self.fft2(&mut a, false);
        let prev_hat = self.prev_hat.replace(a);
        let prev = std::mem::replace(&mut self.prev, g);
        let prev_half = std::mem::replace(&mut self.prev_half, g2);
        let overlay = self.still.update(&prev, &self.prev, wa, ha, step_s);
        let (Some(step_s), Some(prev_hat)) = (step_s, prev_hat) else {
            return Step::Still;
        };
        let cur = &self.prev;
        let a = self.prev_hat.as_ref().expect("just set");
        let mut x: Vec<Complex32> = a
            .iter()
            .zip(&prev_hat)
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
        self.fft2(&mut x, true);
        let v: Vec<f32> = x.iter().map(|c| c.re / (n * n) as f32).collect();
        let (bi, &peak) = v
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("n > 0");
        if peak < CUT_PEAK {
            self.explained = None;
            return Step::Cut;
        }
        let (pr, pc) = ((bi / n) as isize, (bi % n) as isize);
        let at = |r: isize, c: isize| {
            v[(r.rem_euclid(n as isize) as usize) * n + c.rem_euclid(n as isize) as usize]
        };
        let sub = |m: f32, c: f32, p: f32| {
            let d = m - 2.0 * c + p;
            if d < 0.0 {
                f64::from(0.5 * (m - p) / d)
            } else {
                0.0
            }
        };
        let wrap = |i: isize| if i > n as isize / 2 { i - n as isize } else { i } as f64;
        let start = (
            wrap(pc) + sub(at(pr, pc - 1), peak, at(pr, pc + 1)),
            wrap(pr) + sub(at(pr - 1, pc), peak, at(pr + 1, pc)),
        );
        // The camera's motion and how much of the frame it explains. A caption or a logo
        // burnt in over a camera's move stays where it is and would pull the fit towards
        // none: where some of the picture has not changed for a while, the fit leaves it
        // out, and is kept if the rest is then a camera move.
        let fit = |mask: Option<&Overlay>| {
            refine(
                (&prev_half, &self.prev_half),
                wh,
                hh,
                (self.zoom, start),
                COARSE_PASSES,
                mask.map(|m| &m.half[..]),
            )
            .and_then(|(z, s)| {
                let full = mask.map(|m| &m.full[..]);
                refine(
                    (&prev, cur),
                    wa,
                    ha,
                    (z, (2.0 * s.0, 2.0 * s.1)),
                    self.passes,
                    full,
                )
            })
        };
        let explained = |zoom: f64, s: (f64, f64), mask: Option<&Overlay>| {
            let (moved, none) =
                prediction_errors(&prev, cur, wa, ha, zoom, s, mask.map(|m| &m.full[..]));
            moved / none.max(1e-9)
        };
        // The masked fit is judged at once (it is kept only if it explains the rest); the
        // plain one only once its motion is gentle, as before overlays were looked for.
        let masked = overlay.as_ref().and_then(|m| {
            let (zoom, s) = fit(Some(m))?;
            let e = explained(zoom, s, Some(m));
            (e < OVERLAY_EXPLAIN).then_some((zoom, s, Some(e)))
        });
        let Some((zoom, s, judged)) = masked.or_else(|| fit(None).map(|(z, s)| (z, s, None)))
        else {
            self.zoom = 1.0;
            return Step::Still;
        };
        self.zoom = zoom;
        // The rule, per second of the step.
        let shift_h = s.0.hypot(s.1) / ha as f64 / step_s;
        let zoom_s = (zoom - 1.0).abs() / step_s;
        let tiny = shift_h < TINY_SHIFT_PER_S && zoom_s < TINY_ZOOM_PER_S;
        let gentle = shift_h <= GENTLE_SHIFT_PER_S && zoom_s <= GENTLE_ZOOM_PER_S;
        if !gentle {
            return Step::Still;
        }
        let explained = judged.unwrap_or_else(|| explained(zoom, s, None));
        if explained.is_nan() {
            return Step::Still;
        }
        // Judged over the last few tenths of a second, not one frame: a drift read in a
        // scene of moving characters explains a frame now and then (Big Buck Bunny: one
        // frame in ten under 0.8), and each step ridden moves the mark for the rest of the
        // stretch; a camera move explains every frame. The detector's steps are that long.
        let explained = explained.min(1.5);
        let a = 1.0 - (-step_s / EXPLAIN_MEMORY_S).exp();
        let mean = self
            .explained
            .map_or(explained, |m| m + a * (explained - m));
        self.explained = Some(mean);
        let limit = if tiny { EXPLAIN_TINY } else { EXPLAIN };
        if mean >= limit {
            return Step::Still;
        }
        Step::Ride(Motion {
            zoom,
            shift: (s.0 * self.px.0, s.1 * self.px.1),
        })
    }
}

/// What has not changed in a clip's picture for a while, cell by cell of the tracking grid:
/// an overlay burnt in over it.
#[derive(Default)]
struct StillCells {
    /// What each cell was when it last changed by more than [`STILL_LEVELS`], and how long
    /// ago that was.
    held: Vec<f32>,
    since_s: Vec<f32>,
}

/// The cells of an overlay (grown by one each way: its edges mix it with the picture
/// behind), on the tracking grid and on its half-resolution grid.
struct Overlay {
    full: Vec<bool>,
    half: Vec<bool>,
}

impl StillCells {
    /// The frame `cur` (`w × h` cells) `step_s` after `prev` (`None`: not followed from
    /// it): the overlay over it, if any.
    fn update(
        &mut self,
        prev: &[f32],
        cur: &[f32],
        w: usize,
        h: usize,
        step_s: Option<f64>,
    ) -> Option<Overlay> {
        let Some(step_s) =
            step_s.filter(|_| prev.len() == cur.len() && self.held.len() == cur.len())
        else {
            self.held = cur.to_vec();
            self.since_s = vec![0.0; cur.len()];
            return None;
        };
        let mut still = vec![false; w * h];
        let (mut edges, mut overlay) = (0usize, 0usize);
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let i = y * w + x;
                let changed = (cur[i] - self.held[i]).abs() > STILL_LEVELS;
                if changed {
                    self.held[i] = cur[i];
                    self.since_s[i] = 0.0;
                } else {
                    self.since_s[i] += step_s as f32;
                }
                let edge = (cur[i + 1] - cur[i - 1])
                    .abs()
                    .max((cur[i + w] - cur[i - w]).abs());
                if edge > 2.0 * EDGE_LEVELS {
                    edges += 1;
                    if !changed && self.since_s[i] >= OVERLAY_S {
                        overlay += 1;
                        still[i] = true;
                    }
                }
            }
        }
        let share = overlay as f64 / edges.max(1) as f64;
        if !(MIN_OVERLAY..=MAX_OVERLAY).contains(&share) {
            return None;
        }
        let mut full = vec![false; w * h];
        let mut half = vec![false; (w / 2) * (h / 2)];
        for y in 0..h {
            for x in 0..w {
                if still[y * w + x] {
                    for yy in y.saturating_sub(1)..(y + 2).min(h) {
                        for xx in x.saturating_sub(1)..(x + 2).min(w) {
                            full[yy * w + xx] = true;
                            if yy / 2 < h / 2 && xx / 2 < w / 2 {
                                half[(yy / 2) * (w / 2) + xx / 2] = true;
                            }
                        }
                    }
                }
            }
        }
        Some(Overlay { full, half })
    }
}

/// Central differences of a `w × h` image (0 on the border, which the fit never samples):
/// `(d/dx, d/dy)`.
fn gradients(p: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut gx = vec![0f32; w * h];
    let mut gy = vec![0f32; w * h];
    for y in 1..h.saturating_sub(1) {
        let (up, row, dn) = (
            &p[(y - 1) * w..][..w],
            &p[y * w..][..w],
            &p[(y + 1) * w..][..w],
        );
        let (ox, oy) = (&mut gx[y * w..][..w], &mut gy[y * w..][..w]);
        for x in 1..w - 1 {
            ox[x] = 0.5 * (row[x + 1] - row[x - 1]);
        }
        for ((o, &a), &b) in oy.iter_mut().zip(dn).zip(up) {
            *o = 0.5 * (a - b);
        }
    }
    (gx, gy)
}

/// Where a bilinear sample of a `w`-wide image at `(x, y)` reads (both at least 0 and
/// below the last column / row): the top-left index and the weights of the right column
/// and the lower row.
fn taps(w: usize, x: f64, y: f64) -> (usize, f32, f32) {
    // Truncation is the floor here (x, y ≥ 0), without a libm call.
    let (x0, y0) = (x as usize, y as usize);
    (y0 * w + x0, (x - x0 as f64) as f32, (y - y0 as f64) as f32)
}

fn sample(p: &[f32], w: usize, (i, ax, ay): (usize, f32, f32)) -> f32 {
    let top = p[i] + (p[i + 1] - p[i]) * ax;
    let bot = p[i + w] + (p[i + w + 1] - p[i + w]) * ax;
    top + (bot - top) * ay
}

/// Gauss–Newton refinement of the content's motion from `prev` to `cur` (`w × h` grid
/// cells), `x' = c + a·(x − c) + t`, from the zoom and translation `(zoom, d)`, leaving out
/// the cells of `mask` and those read from them: `(a, t)`, or `None` for a fit that does not
/// converge to a plausible motion.
fn refine(
    (prev, cur): (&[f32], &[f32]),
    w: usize,
    h: usize,
    (zoom, d): (f64, (f64, f64)),
    passes: usize,
    mask: Option<&[bool]>,
) -> Option<(f64, (f64, f64))> {
    let (gx, gy) = gradients(prev, w, h);
    let (cx, cy) = (w as f64 / 2.0 - 0.5, h as f64 / 2.0 - 0.5);
    // The inverse map q = c + b·(x − c) + u into the previous frame.
    let (mut b, mut u) = (1.0 / zoom, (-d.0 / zoom, -d.1 / zoom));
    let m = 2.0;
    for _ in 0..passes {
        let mut ata = [[0f64; 3]; 3];
        let mut atb = [0f64; 3];
        // The columns whose q lies inside the margin: qx = cx + b·(x − cx) + u.0.
        let x_lo = ((m - u.0 - cx) / b + cx).ceil().max(1.0) as usize;
        let x_hi = ((w as f64 - 1.0 - m - u.0 - cx) / b + cx)
            .floor()
            .min(w as f64 - 2.0);
        if x_hi < x_lo as f64 {
            return None;
        }
        let x_hi = x_hi as usize;
        // Every other cell each way: a quarter of the work, the fit as precise. Sums per
        // row in f32 (a row is a few hundred terms), over rows in f64.
        for y in (1..h - 1).step_by(2) {
            let qy = cy + b * (y as f64 - cy) + u.1;
            if qy < m || qy > h as f64 - 1.0 - m {
                continue;
            }
            let dy = (y as f64 - cy) as f32;
            let mut acc = [0f32; 9];
            for x in (x_lo..=x_hi).step_by(2) {
                let qx = cx + b * (x as f64 - cx) + u.0;
                let t = taps(w, qx, qy);
                if mask.is_some_and(|m| m[y * w + x] || m[t.0]) {
                    continue;
                }
                let e = cur[y * w + x] - sample(prev, w, t);
                let (ix, iy) = (sample(&gx, w, t), sample(&gy, w, t));
                // cur − prev(q + δq) ≈ e − ∇·δq, δq = (x − c)·δb + δu.
                let j0 = ix * (x as f64 - cx) as f32 + iy * dy;
                acc[0] += j0 * j0;
                acc[1] += j0 * ix;
                acc[2] += j0 * iy;
                acc[3] += ix * ix;
                acc[4] += ix * iy;
                acc[5] += iy * iy;
                acc[6] += j0 * e;
                acc[7] += ix * e;
                acc[8] += iy * e;
            }
            let a = acc.map(f64::from);
            ata[0][0] += a[0];
            ata[0][1] += a[1];
            ata[0][2] += a[2];
            ata[1][1] += a[3];
            ata[1][2] += a[4];
            ata[2][2] += a[5];
            atb[0] += a[6];
            atb[1] += a[7];
            atb[2] += a[8];
        }
        (ata[1][0], ata[2][0], ata[2][1]) = (ata[0][1], ata[0][2], ata[1][2]);
        let delta = solve3(ata, atb)?;
        b += delta[0];
        u = (u.0 + delta[1], u.1 + delta[2]);
        if !(0.8..1.25).contains(&b) || u.0.abs() > w as f64 / 2.0 || u.1.abs() > h as f64 / 2.0 {
            return None;
        }
        if delta[0].abs() * w as f64 + delta[1].abs() + delta[2].abs() < 0.01 {
            break;
        }
    }
    let a = 1.0 / b;
    Some((a, (-u.0 * a, -u.1 * a)))
}

/// Mean squared errors of `cur(x)` against `prev(c + (x − c − t)/a)` (grid cells) and
/// against `prev(x)`, over the middle of the frame (a fifth off each side) and the same
/// pixels for both: those neither in nor read from the `mask`'s overlay.
fn prediction_errors(
    prev: &[f32],
    cur: &[f32],
    w: usize,
    h: usize,
    a: f64,
    t: (f64, f64),
    mask: Option<&[bool]>,
) -> (f64, f64) {
    let (cx, cy) = (w as f64 / 2.0 - 0.5, h as f64 / 2.0 - 0.5);
    let (mut moved, mut none, mut n) = (0f64, 0f64, 0usize);
    for y in (h / 5..h - h / 5).step_by(2) {
        let qy = (cy + (y as f64 - cy - t.1) / a).clamp(0.0, h as f64 - 1.001);
        for x in (w / 5..w - w / 5).step_by(2) {
            let qx = (cx + (x as f64 - cx - t.0) / a).clamp(0.0, w as f64 - 1.001);
            let q = taps(w, qx, qy);
            let i = y * w + x;
            if mask.is_some_and(|m| m[i] || m[q.0]) {
                continue;
            }
            let e = f64::from(cur[i] - sample(prev, w, q));
            let e0 = f64::from(cur[i] - prev[i]);
            moved += e * e;
            none += e0 * e0;
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    (moved / n, none / n)
}

/// Cramer's rule; `None` for a (near) singular system.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if !d.is_finite() || d.abs() < 1e-12 * (a[0][0] * a[1][1] * a[2][2]).abs().max(1e-300) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured scene (smooth noise) `w × h` seen through a camera at `(zoom, shift)`.
    fn view(w: usize, h: usize, zoom: f64, shift: (f64, f64)) -> Vec<u8> {
        let scene = |x: f64, y: f64| {
            let s = (x * 0.071).sin() * (y * 0.053).cos()
                + (x * 0.013 + y * 0.021).sin()
                + ((x * 0.23).sin() * (y * 0.19).sin()) * 0.5
                + ((x * 0.0071 - y * 0.011).cos()) * 0.8;
            (128.0 + 40.0 * s).clamp(0.0, 255.0)
        };
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        let mut out = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                // x = c + zoom·(X − c) + shift  ⇒  X = c + (x − c − shift)/zoom.
                let sx = cx + (x as f64 + 0.5 - cx - shift.0) / zoom;
                let sy = cy + (y as f64 + 0.5 - cy - shift.1) / zoom;
                out[y * w + x] = scene(sx, sy) as u8;
            }
        }
        out
    }

    #[test]
    fn follows_a_pan_and_a_zoom_to_a_fraction_of_a_pixel() {
        let (w, h) = (640, 360);
        for (side, mut ride) in [
            ("detector", Ride::for_detector(w, h)),
            ("embedder", Ride::for_embedder(w, h)),
        ] {
            // A pan of (3.3, −1.2) px and a 0.3 % push-in a frame, 30 fps.
            let mut truth = Motion::REST;
            let step = Motion {
                zoom: 1.003,
                shift: (3.3, -1.2),
            };
            let mut last = Motion::REST;
            for i in 0..20 {
                let t = i as f64 / 30.0;
                let got = ride.next(&view(w, h, truth.zoom, truth.shift), t);
                let got = got.expect("followed from the anchor at 0");
                // Ridden once the move has explained the frames for a few tenths of a
                // second; from then on every step is the camera's own.
                if i >= 12 {
                    let zoom = got.zoom / last.zoom;
                    let dx = got.shift.0 - zoom * last.shift.0;
                    let dy = got.shift.1 - zoom * last.shift.1;
                    let err = (dx - step.shift.0).abs().max((dy - step.shift.1).abs())
                        + (zoom - step.zoom).abs() * 320.0;
                    assert!(err < 0.1, "{side} frame {i}: {got:?} after {last:?}");
                }
                last = got;
                truth = truth.then(step);
            }
        }
    }

    /// A caption and a logo burnt in over a frame `w × h`: full-contrast stripes across the
    /// bottom and a light box top right, where they stay whatever the camera does.
    fn with_overlay(mut y: Vec<u8>, w: usize, h: usize) -> Vec<u8> {
        for r in 0..h {
            for c in 0..w {
                let caption =
                    (h * 82 / 100..h * 90 / 100).contains(&r) && (w / 10..w * 9 / 10).contains(&c);
                let logo =
                    (h / 20..h * 3 / 20).contains(&r) && (w * 8 / 10..w * 95 / 100).contains(&c);
                if caption {
                    y[r * w + c] = if (c / 7 + r / 11) % 2 == 0 { 250 } else { 10 };
                } else if logo {
                    y[r * w + c] = 235;
                }
            }
        }
        y
    }

    #[test]
    fn follows_a_pan_and_a_zoom_under_a_caption_and_a_logo() {
        let (w, h) = (640, 360);
        // At 30 fps the embedder sees every frame of a pan of (3.3, −1.2) px and a 0.3 %
        // push-in a frame, the detector one frame in eleven of a slower one.
        for (side, every, passes, step) in [
            ("embedder", 1, EMBED_PASSES, (1.003, (3.3, -1.2))),
            ("detector", 6, DETECT_PASSES, (1.001, (1.5, -0.6))),
        ] {
            let step = Motion {
                zoom: step.0,
                shift: step.1,
            };
            let mut tracker = Tracker::new(w, h, TRACK_ROWS, passes);
            let mut truth = Motion::REST;
            let mut ridden = 0;
            for i in 0..=(60 / every) {
                let y = with_overlay(view(w, h, truth.zoom, truth.shift), w, h);
                let got = tracker.next(&y, (i > 0).then_some(every as f64 / 30.0));
                // Once the overlay has stood still for a while, every step is the camera's.
                if i * every >= 30 {
                    let want = (0..every).fold(Motion::REST, |m, _| m.then(step));
                    let Step::Ride(m) = got else {
                        panic!("{side} frame {}: not ridden", i * every);
                    };
                    let err = (m.shift.0 - want.shift.0)
                        .abs()
                        .max((m.shift.1 - want.shift.1).abs())
                        + (m.zoom - want.zoom).abs() * 320.0;
                    assert!(
                        err < 0.15 * every as f64,
                        "{side} frame {}: {m:?} against {want:?}",
                        i * every
                    );
                    ridden += 1;
                }
                for _ in 0..every {
                    truth = truth.then(step);
                }
            }
            assert!(ridden >= 3, "{side}");
        }
    }

    #[test]
    fn rests_at_anchors_and_does_not_ride_a_jump() {
        let (w, h) = (320, 180);
        let mut ride = Ride::for_detector(w, h);
        let step = Motion {
            zoom: 1.0,
            shift: (2.0, 0.0),
        };
        let mut truth = Motion::REST;
        // Every third frame (a detector's reference frames), over an anchor at 2 s.
        let mut last = None;
        for i in (0..90).step_by(3) {
            let t = i as f64 / 30.0;
            last = ride.next(&view(w, h, truth.zoom, truth.shift), t);
            for _ in 0..3 {
                truth = truth.then(step);
            }
        }
        // Frame 87 (2.9 s): ridden since the anchor frame 60 (2.0 s), 27 frames × 2 px.
        let m = last.expect("known after the anchor");
        assert!((m.shift.0 - 54.0).abs() < 1.0, "{m:?}");
        // A jump of a third of the frame is not gentle: the mark stays put.
        let mut ride = Ride::for_detector(w, h);
        assert_eq!(
            ride.next(&view(w, h, 1.0, (0.0, 0.0)), 0.0),
            Some(Motion::REST)
        );
        let m = ride
            .next(&view(w, h, 1.0, (60.0, 0.0)), 1.0 / 30.0)
            .unwrap();
        assert!(m.is_rest(w, h), "{m:?}");
        // A part that begins between anchors does not know where the mark is.
        let mut ride = Ride::for_detector(w, h);
        assert_eq!(ride.next(&view(w, h, 1.0, (0.0, 0.0)), 0.7), None);
    }

    #[test]
    fn a_cut_puts_the_mark_at_rest_on_the_new_shot() {
        let (w, h) = (320, 180);
        // Another shot: noise, nothing in common with the scene.
        let mut state = 7u64;
        let shot: Vec<u8> = (0..w * h)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        for (step_s, at_rest) in [(1.0 / 30.0, true), (FOLLOW_S, false)] {
            let mut ride = Ride::for_embedder(w, h);
            let mut t = 0.0;
            let mut last = None;
            for i in 0..6 {
                last = ride.next(&view(w, h, 1.0, (2.0 * i as f64, 0.0)), t);
                t += step_s;
            }
            assert!(last.is_some_and(|m| !m.is_rest(w, h)), "{last:?}");
            // Every frame seen (the embedder): the first frame of the new shot is at rest; a
            // frame seen a third of a second after the last (the detector): not known.
            let after = ride.next(&shot, t);
            assert_eq!(after, at_rest.then_some(Motion::REST), "step {step_s}");
        }
    }

    #[test]
    fn lagged_anchors_rest_the_mark_at_the_start_and_a_lag_after_each_anchor() {
        // The same pan with the pictures 0.1 s behind their timestamps: at rest on the
        // first frame, the anchor at 2 s seen at 2.1 s (the step's share since it, 8 of
        // 10 px at 2.5 s), and the next at 4.1 s.
        let step = Motion {
            zoom: 1.0,
            shift: (10.0, 0.0),
        };
        let (mut since, mut last) = (None, None);
        let mut seen = Vec::new();
        for i in 0..10 {
            let t = 0.5 * i as f64;
            let followed = if i == 0 {
                Followed::Start
            } else {
                Followed::Step(step)
            };
            since = since_anchor(since, last, t, followed, Anchors::Lagged(0.1));
            last = Some(t);
            seen.push(since.map(|m| m.shift.0));
        }
        let want = [0.0, 10.0, 20.0, 30.0, 40.0, 8.0, 18.0, 28.0, 38.0, 8.0];
        for (got, want) in seen.iter().zip(want) {
            assert_eq!(got.map(|x| (x * 1e6).round() / 1e6), Some(want), "{seen:?}");
        }
        // A first frame elsewhere (a later part of a split scan) is on an anchor only at a
        // lagged one.
        for (t, rest) in [(2.0, false), (2.1, true), (5.0, false)] {
            assert_eq!(
                since_anchor(None, None, t, Followed::Start, Anchors::Lagged(0.1)),
                rest.then_some(Motion::REST),
                "{t}"
            );
        }
    }

    #[test]
    fn anchors_at_another_phase_rest_the_mark_at_their_instants() {
        // A steady pan, 10 px a frame every 0.5 s; anchors at 0.7 + 2k s (a clip trimmed by
        // 1.3 s): unknown until 0.7, then the share of the step since it, then the sum.
        let step = Motion {
            zoom: 1.0,
            shift: (10.0, 0.0),
        };
        let mut since = None;
        let mut last = None;
        let mut seen = Vec::new();
        for (i, followed) in [Followed::Start, Followed::Step(step), Followed::Step(step)]
            .into_iter()
            .chain(std::iter::repeat_n(Followed::Step(step), 4))
            .enumerate()
        {
            let t = 0.5 * i as f64;
            since = since_anchor(since, last, t, followed, Anchors::Phase(0.7));
            last = Some(t);
            seen.push(since.map(|m| m.shift.0));
        }
        let want = [
            None,
            None,
            Some(6.0),
            Some(16.0),
            Some(26.0),
            Some(36.0),
            Some(6.0),
        ];
        for (got, want) in seen.iter().zip(want) {
            assert_eq!(got.map(|x| (x * 1e6).round() / 1e6), want, "{seen:?}");
        }
        // At phase 0 the first frame is on an anchor: at rest.
        assert_eq!(
            since_anchor(None, None, 0.0, Followed::Start, Anchors::Phase(0.0)),
            Some(Motion::REST)
        );
        // A frame after a cut more than a frame later: not known.
        assert_eq!(
            since_anchor(
                Some(step),
                Some(1.0),
                1.5,
                Followed::Cut,
                Anchors::Phase(0.7)
            ),
            None
        );
    }
}
