//! Detection: accumulate whitened residuals, register by scale search + FFT shift search,
//! compute a family-wise p-value from the sync pattern alone, then decode the payload.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::analysis::{
    content_box, AnalysisGrid, KeyPattern, ANALYSIS_ROWS, MAX_GRID_ASPECT, TILE,
};
use crate::code::{self, PayloadReading};
use crate::fft::{Fft, C};
use crate::inset::InsetFinder;
use crate::key::{Payload, WatermarkKey};
use crate::lattice::{
    candidate_maps, fold_map, Candidate, LagSegment, LeftOutLags, TileMap, LATTICE_MAPS,
    ROTATION_CANDIDATES,
};
use crate::motion::{since_anchor, Anchors, Followed, Motion, Ride, ANCHOR_S, FOLLOW_S, LAGS};
use crate::tile_fft::{split_pair, TileFft};
use crate::{turn_sign, TURN_S};
use hallmark_media::{PixelLayout, VideoFrame};

/// p-value at or below which a watermark is reported as present.
pub const DETECT_P: f64 = 1e-6;
/// p-values in `(DETECT_P, INCONCLUSIVE_P)` are reported as inconclusive.
pub const INCONCLUSIVE_P: f64 = 0.01;
/// A clip id named for a mark elsewhere (the other stream's mark, the manifest store) is
/// its payload when the mark's coded bits single it out at this p-value or below (that of
/// a clip id the mark does not carry agreeing as well, times the candidates tried).
pub const NAMED_MATCH_P: f64 = 1e-6;
/// Smallest and largest scale (original chip size / observed chip size, on the analysis
/// grid) searched. 0.866 is a crop to 75 % of the area, 0.707 a crop to half the area.
pub const SCALE_MIN: f64 = 0.65;
pub const SCALE_MAX: f64 = 1.25;
/// Scales of the wider search ([`VideoDetection::wide_search`]), run only when the plain one
/// (upright, [`SCALE_MIN`]–[`SCALE_MAX`]) does not prove the mark with its payload: 0.4 is
/// a crop to 16 % of the area scaled back, 2.5 the clip at 40 % inside other footage
/// (picture-in-picture) or a landscape clip letterboxed into a taller canvas.
pub const WIDE_SCALE_MIN: f64 = 0.4;
pub const WIDE_SCALE_MAX: f64 = 2.5;
/// Rows of the finer residual ([`VideoDetector::add_fine_residual`]) that the fine stage
/// searches, for frames at least as wide as tall: twice [`ANALYSIS_ROWS`], so a picture
/// shown at half its sealed size still has one analysis pixel per chip (on the 128-row
/// grid each pixel would average four). Taller frames get twice as many ([`fine_rows`]).
pub const FINE_ANALYSIS_ROWS: usize = 2 * ANALYSIS_ROWS;

/// Rows of the fine residual of a `w×h` frame: [`FINE_ANALYSIS_ROWS`], or twice that for a
/// frame taller than wide — where a landscape picture sealed on its own 128 rows ends up
/// letterboxed into a portrait canvas (16:9 into 9:16: 3.2× smaller on the canvas's grid),
/// and the fine grid keeps about as many pixels as a landscape frame's (288 × 512 at 9:16).
pub fn fine_rows(w: usize, h: usize) -> usize {
    if h > w {
        2 * FINE_ANALYSIS_ROWS
    } else {
        FINE_ANALYSIS_ROWS
    }
}
/// Scales (on the 128-row grid's terms, as [`VideoDetection::scale`]) of the fine stage:
/// the picture shown smaller than it was sealed — padded into a 1.2× canvas, turned a
/// quarter (16:9: 1.78), at 40 % inside other footage (2.5), a 16:9 clip letterboxed into
/// 9:16 (3.2). When a fine residual was added, the wider search on the 128-row grid stops
/// at [`FINE_SCALE_MIN`] and the fine stage takes the scales above it.
pub const FINE_SCALE_MIN: f64 = 1.2;
pub const FINE_SCALE_MAX: f64 = 3.5;
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
/// Longest side of the fine residual searched (its grid is capped like the 128-row one).
const MAX_FINE_SEARCH_LEN: usize = MAX_GRID_ASPECT * 2 * FINE_ANALYSIS_ROWS;
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
    /// Family-wise p-value of the mark, corrected for every key, scale and shift tried: the
    /// presence test (sync pattern), with the payload's check bits where it decoded there
    /// (see [`VideoDetection::presence_p`]). An upper bound under the null (see README).
    pub p_value: f64,
    /// The p-value the presence test alone gives (the sync pattern, family-wise): above
    /// `p_value` where the payload decoded at the registration and its 16 check bits add
    /// their evidence (a decode out of no mark has probability ≈ 7.7e-5).
    pub presence_p: f64,
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
    /// How the picture is flipped or turned relative to the sealed one (set with `key_id`).
    pub orientation: Option<Orientation>,
    /// Whether the answer came from the wider search (every [`Orientation`], scales
    /// [`WIDE_SCALE_MIN`]–[`WIDE_SCALE_MAX`]), which runs only when the plain one does not
    /// prove the mark with its payload; `p_value` is then that search's bound (see README,
    /// "Wider geometry").
    pub wide_search: bool,
    /// Where in the frame the mark was found (set with `key_id`): the rectangle of the
    /// analysis grid whose evidence is strongest, as fractions of the frame. The whole frame
    /// for a marked clip; a part of it for a marked clip inside other footage.
    pub region: Option<Region>,
    /// The rotation or stretch the mark was registered under, when the
    /// lattice stage answered (see README, "Rotation and anamorphic stretch"); `None` for
    /// the plain and the orientation/scale searches.
    pub warp: Option<Warp>,
    /// Whether the answer came from the frames warped back along the camera's motion (a
    /// mark that rides the camera, see [`VideoEmbedder::riding`](crate::VideoEmbedder::riding)),
    /// tested beside the frames as they come when the picture moved.
    pub riding: bool,
    /// Where the mark is at least inconclusive but its payload did not decode: the coded
    /// bits as read, to test a candidate clip id against
    /// ([`PayloadReading::p_values`]).
    pub payload_reading: Option<PayloadReading>,
    /// Where the mark is not even inconclusive: the coded bits read anyway at the best
    /// registration, with the key that made it ([`WeakReading`]).
    pub weak_reading: Option<WeakReading>,
}

/// A mark too weak to be even inconclusive, read at its best registration all the same: a
/// clip id named without looking at the picture (`hallmark-detector` takes the sound's
/// mark's) can still prove it ([`with_named_payload`]). The clip id's agreement is tested
/// exactly whatever the registration (clip ids are random: [`PayloadReading::p_values`]), so
/// a chance registration only fails that test, and a true one too weak for the search's
/// family passes it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeakReading {
    pub reading: PayloadReading,
    /// The registering key's id (what a candidate clip id is tested with) and index among
    /// the detector's keys.
    pub key_id: u8,
    pub key_index: usize,
}

impl VideoDetection {
    /// This answer given the share `1/weight` of the error budget (a weighted Bonferroni
    /// bound): its p-value × `weight`, at most 1, and the verdicts that follow from it.
    fn weighted(self, weight: f64) -> VideoDetection {
        let p = (self.p_value * weight).min(1.0);
        VideoDetection {
            p_value: p,
            presence_p: (self.presence_p * weight).min(1.0),
            detected: p <= DETECT_P,
            inconclusive: p > DETECT_P && p < INCONCLUSIVE_P,
            ..self
        }
    }
}

/// How the sealed tile's lattice appears in the analysed picture, as the lattice stage
/// registered it (up to the [`Orientation`] reported beside it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    /// Angle of the tile's first period from the horizontal, degrees (image rows grow
    /// downwards, so positive is clockwise on screen).
    pub rotation_deg: f64,
    /// Length of the tile's two periods relative to the sealed picture's (1: unchanged;
    /// 1.25 / 1 an anamorphic stretch of 25 % horizontally).
    pub scale_x: f64,
    pub scale_y: f64,
    /// How far the angle between the two periods is from a right angle, degrees (a shear:
    /// what a screen filmed or recorded slightly from the side does, with the stretch, to
    /// the middle of the picture).
    pub shear_deg: f64,
}

impl Warp {
    fn of(map: &TileMap) -> Self {
        let (b1, b2) = map.lattice();
        let t = TILE as f64;
        let (a1, a2) = (b1[1].atan2(b1[0]), b2[1].atan2(b2[0]));
        let off_right = (a2 - a1).to_degrees() - 90.0;
        Warp {
            rotation_deg: a1.to_degrees(),
            scale_x: b1[0].hypot(b1[1]) / t,
            scale_y: b2[0].hypot(b2[1]) / t,
            shear_deg: (off_right + 180.0).rem_euclid(360.0) - 180.0,
        }
    }
}

/// A rectangle as fractions of the frame: `x`, `y` of its top-left corner, `w`, `h` its
/// size (all in [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// The eight ways a picture can be mirrored or turned by quarter turns (the symmetries of
/// the square tile), as done to the sealed picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    Upright,
    MirroredHorizontally,
    MirroredVertically,
    Turned180,
    /// Turned a quarter clockwise (ffmpeg `transpose=clock`).
    TurnedClockwise,
    /// Turned a quarter counter-clockwise (ffmpeg `transpose=cclock`).
    TurnedCounterClockwise,
    /// Rows and columns swapped (ffmpeg `transpose=cclock_flip`, its default).
    Transposed,
    /// Mirrored about the other diagonal (ffmpeg `transpose=clock_flip`).
    AntiTransposed,
}

impl Orientation {
    /// All eight; the first is the plain search's.
    pub const ALL: [Orientation; 8] = [
        Orientation::Upright,
        Orientation::MirroredHorizontally,
        Orientation::MirroredVertically,
        Orientation::Turned180,
        Orientation::TurnedClockwise,
        Orientation::TurnedCounterClockwise,
        Orientation::Transposed,
        Orientation::AntiTransposed,
    ];

    /// A short name for reports: `upright`, `mirrored-horizontally`, `mirrored-vertically`,
    /// `turned-180`, `turned-clockwise`, `turned-counter-clockwise`, `transposed`,
    /// `anti-transposed`.
    pub fn name(self) -> &'static str {
        match self {
            Orientation::Upright => "upright",
            Orientation::MirroredHorizontally => "mirrored-horizontally",
            Orientation::MirroredVertically => "mirrored-vertically",
            Orientation::Turned180 => "turned-180",
            Orientation::TurnedClockwise => "turned-clockwise",
            Orientation::TurnedCounterClockwise => "turned-counter-clockwise",
            Orientation::Transposed => "transposed",
            Orientation::AntiTransposed => "anti-transposed",
        }
    }

    /// The matrix `g` (rows) that maps an observed tile position, centred, to the sealed
    /// picture's: the observed chip at `j` is the sealed tile's chip `g·j` (up to a shift).
    fn matrix(self) -> [[i64; 2]; 2] {
        match self {
            Orientation::Upright => [[1, 0], [0, 1]],
            Orientation::MirroredHorizontally => [[-1, 0], [0, 1]],
            Orientation::MirroredVertically => [[1, 0], [0, -1]],
            Orientation::Turned180 => [[-1, 0], [0, -1]],
            Orientation::TurnedClockwise => [[0, 1], [-1, 0]],
            Orientation::TurnedCounterClockwise => [[0, -1], [1, 0]],
            Orientation::Transposed => [[0, 1], [1, 0]],
            Orientation::AntiTransposed => [[0, -1], [-1, 0]],
        }
    }

    /// Tile index (row-major) of the sealed chip that observed tile index `j` shows.
    fn sealed_index(self, j: usize) -> usize {
        let g = self.matrix();
        let (x, y) = ((j % TILE) as i64, (j / TILE) as i64);
        let t = TILE as i64;
        let sx = (g[0][0] * x + g[0][1] * y).rem_euclid(t) as usize;
        let sy = (g[1][0] * x + g[1][1] * y).rem_euclid(t) as usize;
        sy * TILE + sx
    }

    /// Observed tile index (before the shift) of sealed chip `k`: the inverse of
    /// [`Orientation::sealed_index`] (`g` is orthogonal, so its inverse is its transpose).
    fn observed_index(self, k: usize) -> usize {
        let g = self.matrix();
        let (x, y) = ((k % TILE) as i64, (k / TILE) as i64);
        let t = TILE as i64;
        let ox = (g[0][0] * x + g[1][0] * y).rem_euclid(t) as usize;
        let oy = (g[0][1] * x + g[1][1] * y).rem_euclid(t) as usize;
        oy * TILE + ox
    }
}

/// A key's sync pattern as seen in one orientation: `sync[j]` the sign the observed tile
/// index `j` carries (0 off the sync chips) and the spectra [`best_shift`] correlates with.
struct Variant {
    orientation: Orientation,
    sync: Vec<f32>,
    /// The sync chips alone: (observed tile index, sign).
    sync_chips: Vec<(usize, f32)>,
    sync_hat: Vec<C>,
    mask_hat: Vec<C>,
}

impl Variant {
    fn new(key: &KeyPattern, orientation: Orientation, fft: &Fft) -> Self {
        let n = TILE * TILE;
        let sync: Vec<f32> = (0..n)
            .map(|j| {
                let k = orientation.sealed_index(j);
                if key.role[k].is_none() {
                    key.sign[k]
                } else {
                    0.0
                }
            })
            .collect();
        let mut sync_hat: Vec<C> = sync
            .iter()
            .map(|&v| C {
                re: v as f64,
                im: 0.0,
            })
            .collect();
        let mut mask_hat: Vec<C> = sync
            .iter()
            .map(|&v| C {
                re: if v != 0.0 { 1.0 } else { 0.0 },
                im: 0.0,
            })
            .collect();
        fft.run2d(&mut sync_hat, false);
        fft.run2d(&mut mask_hat, false);
        let sync_chips = sync
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(j, &v)| (j, v))
            .collect();
        Variant {
            orientation,
            sync,
            sync_chips,
            sync_hat,
            mask_hat,
        }
    }
}

/// Running sums of one analysis-grid size.
struct Accum {
    wa: usize,
    ha: usize,
    /// The frame's width in analysis pixels (`wa` when not told: residuals handed in
    /// without their frame's size), for the mirrored as-sealed registration.
    width: f64,
    frames: u64,
    /// Per timeline bin: the summed residuals and their frame count. Every frame is in one,
    /// so the whole clip's sum is theirs (exact: the same as a running sum).
    bins: TimeBins<(ExactSum, u64)>,
    /// That sum, made when first read after the last addition.
    whole: OnceLock<ExactSum>,
}

/// A running sum of images, exact: each value in fixed point (units of 2⁻³², far below an
/// `f32` residual's own precision) in an `i64`, so that the sum does not depend on the
/// order of the additions. A split scan's two parts reach the model's thread interleaved
/// as they happen to be decoded; with `f32` running sums the same file gave p-values that
/// differed in the sixth digit from one verify to the next.
#[derive(Default)]
pub(crate) struct ExactSum {
    cells: Vec<i64>,
    /// The sum as `f32`, made when first read after the last addition.
    read: OnceLock<Vec<f32>>,
}

/// Fixed-point units per unit of [`ExactSum`]: 2³² leaves sums up to ±2³¹ — 700 million frames
/// of residuals at their clip, ±[`WHITEN_CLIP`](crate::WHITEN_CLIP), all the same sign (a
/// scan's time budget stops far sooner); past that a cell saturates instead of wrapping.
const EXACT_UNIT: f64 = (1u64 << 32) as f64;

impl ExactSum {
    fn zeros(n: usize) -> ExactSum {
        ExactSum {
            cells: vec![0; n],
            read: OnceLock::new(),
        }
    }

    /// Adds `image` (empty: takes its length). A NaN counts as 0, an infinity as the
    /// largest value.
    pub(crate) fn add(&mut self, image: &[f32]) {
        if self.cells.is_empty() {
            self.cells.resize(image.len(), 0);
        }
        // Truncated (no libm call per cell on baseline x86-64), saturating, NaN as 0: an
        // error under one unit, the same whatever the order.
        for (c, &v) in self.cells.iter_mut().zip(image) {
            *c = c.saturating_add((f64::from(v) * EXACT_UNIT) as i64);
        }
        self.read = OnceLock::new();
    }

    /// Adds another sum (empty: takes its length).
    pub(crate) fn add_sum(&mut self, other: &ExactSum) {
        if self.cells.is_empty() {
            self.cells.resize(other.cells.len(), 0);
        }
        for (c, &v) in self.cells.iter_mut().zip(&other.cells) {
            *c = c.saturating_add(v);
        }
        self.read = OnceLock::new();
    }

    /// Adds another sum times `factor` (empty: takes its length), each cell rounded
    /// towards zero: the same whatever the order of the sums it came from.
    fn add_scaled(&mut self, other: &ExactSum, factor: f64) {
        if self.cells.is_empty() {
            self.cells.resize(other.cells.len(), 0);
        }
        for (c, &v) in self.cells.iter_mut().zip(&other.cells) {
            *c = c.saturating_add((v as f64 * factor) as i64);
        }
        self.read = OnceLock::new();
    }

    /// The sum, rounded to `f32`.
    pub(crate) fn image(&self) -> &[f32] {
        self.read.get_or_init(|| {
            self.cells
                .iter()
                .map(|&c| (c as f64 / EXACT_UNIT) as f32)
                .collect()
        })
    }
}

impl Accum {
    fn new(wa: usize, ha: usize, width: Option<f64>) -> Self {
        Accum::with_bins(wa, ha, width.unwrap_or(wa as f64), MAX_TIMELINE_BINS)
    }

    /// With at most `bins` timeline bins.
    fn with_bins(wa: usize, ha: usize, width: f64, bins: usize) -> Self {
        Accum {
            wa,
            ha,
            width,
            frames: 0,
            bins: TimeBins::with_width(bins, TURN_BIN_S),
            whole: OnceLock::new(),
        }
    }

    /// Per timeline bin holding frames, the weight that reads a turning mark ([`TURN_S`])
    /// sealed `phase` × [`TURN_BIN_S`] seconds later in its own time than here
    /// ([`turn_weights_over`]; a stretch shorter than a turn keeps its one sign). `None`
    /// where a bin spans a turn at that phase (bins widened on a long clip).
    fn turn_weights(&self, phase: usize) -> Option<Vec<(usize, f64)>> {
        let width = self.bins.width_s();
        let offset = phase as f64 * TURN_BIN_S;
        let bins: Vec<_> = self.bins.iter().map(|(i, (_, n))| (i, *n)).collect();
        let weights = turn_weights_over(
            bins.iter()
                .map(|&(i, n)| (i as f64 * width + offset, width, n)),
        )?;
        Some(bins.iter().map(|&(i, _)| i).zip(weights).collect())
    }

    /// The whole clip's sum read at `phase` ([`Accum::turn_weights`]).
    fn turned_sum(&self, phase: usize) -> Option<ExactSum> {
        let weights = self.turn_weights(phase)?;
        let mut sum = ExactSum::zeros(self.wa * self.ha);
        for (i, w) in weights {
            if let Some((img, _)) = self.bins.get(i) {
                sum.add_scaled(img, w);
            }
        }
        Some(sum)
    }

    /// These sums read at `phase` ([`Accum::turn_weights`]): every bin weighted, so that
    /// every stage, segment and the timeline read the turning mark.
    fn turned(&self, phase: usize) -> Option<Accum> {
        let weights: BTreeMap<usize, f64> = self.turn_weights(phase)?.into_iter().collect();
        Some(Accum {
            wa: self.wa,
            ha: self.ha,
            width: self.width,
            frames: self.frames,
            bins: self.bins.map(|i, (img, n)| {
                let mut sum = ExactSum::zeros(self.wa * self.ha);
                sum.add_scaled(img, *weights.get(&i)?);
                Some((sum, *n))
            }),
            whole: OnceLock::new(),
        })
    }

    /// Adds one frame's residual at time `pts_s`.
    fn add(&mut self, r: &[f32], pts_s: f64) {
        self.whole = OnceLock::new();
        self.frames += 1;
        let bin = self.bins.bin_of(pts_s, |a, b| {
            a.0.add_sum(&b.0);
            a.1 += b.1;
        });
        bin.0.add(r);
        bin.1 += 1;
    }

    /// The summed residuals of every frame added.
    fn sum(&self) -> &[f32] {
        self.whole
            .get_or_init(|| self.range_sum(0, usize::MAX))
            .image()
    }

    /// The exact sum of the timeline bins in `[from, to)`.
    fn range_sum(&self, from: usize, to: usize) -> ExactSum {
        let mut sum = ExactSum::zeros(self.wa * self.ha);
        for (img, _) in self.bins.range(from, to) {
            sum.add_sum(img);
        }
        sum
    }
}

/// The index of the sums of grid size `wa × ha` in `all` (and `fits`), made with `make`
/// when there are none: at most [`MAX_GRID_SIZES`], the sums with the fewest frames (the
/// oldest of equals) making room.
fn slot<T>(
    all: &mut Vec<T>,
    acc: impl Fn(&T) -> &Accum,
    wa: usize,
    ha: usize,
    fits: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> usize {
    if let Some(i) = all
        .iter()
        .position(|t| acc(t).wa == wa && acc(t).ha == ha && fits(t))
    {
        return i;
    }
    if all.len() >= MAX_GRID_SIZES {
        if let Some(i) = (0..all.len()).min_by_key(|&i| acc(&all[i]).frames) {
            all.remove(i);
        }
    }
    all.push(make());
    all.len() - 1
}

/// The weights that read a turning mark ([`TURN_S`]) from sums of frames, each given as
/// (start, length in seconds of the mark's own time, frames): the mark's sign over the sum
/// less the sign's mean over the frames, so that whatever the frames hold still cancels;
/// where every frame has one sign, that sign (nothing to cancel against). `None` where a sum
/// spans a turn.
fn turn_weights_over(sums: impl Iterator<Item = (f64, f64, u64)>) -> Option<Vec<f64>> {
    let mut signs = Vec::new();
    let (mut plus, mut minus) = (0u64, 0u64);
    for (start, width, n) in sums {
        let sign = turn_sign(start + 1e-6);
        if turn_sign(start + width - 1e-6) != sign {
            return None;
        }
        if sign > 0.0 {
            plus += n;
        } else {
            minus += n;
        }
        signs.push(f64::from(sign));
    }
    let mean = turn_mean(plus, minus);
    Some(signs.into_iter().map(|s| s - mean).collect())
}

/// The mean a turning mark's weights remove ([`turn_weights_over`]) over `plus` frames of
/// one sign and `minus` of the other: their mean sign, or 0 where all have one sign (the
/// weights are then that sign).
fn turn_mean(plus: u64, minus: u64) -> f64 {
    if plus == 0 || minus == 0 {
        return 0.0;
    }
    (plus as f64 - minus as f64) / (plus + minus) as f64
}

/// The running sum of the fine residuals of one grid size: the whole clip only (no timeline
/// bins, so its memory is one fine image whatever the clip's length).
struct FineAccum {
    wa: usize,
    ha: usize,
    /// Per [`TURN_BIN_S`] of the turning mark's period (`⌊t / TURN_BIN_S⌋ mod
    /// TURN_PHASES`): the frames' sum and count. Any phase's reading is a weighted sum of
    /// these, whatever the clip's length.
    classes: Vec<(ExactSum, u64)>,
    frames: u64,
}

impl FineAccum {
    /// The sum of every frame (`None`: the mark as sealed before 2026-12-07, the same sign
    /// throughout), or read at a phase as [`Accum::turn_weights`] does.
    fn image(&self, turn: Option<usize>) -> ExactSum {
        let mut sum = ExactSum::zeros(self.wa * self.ha);
        let Some(phase) = turn else {
            for (img, _) in &self.classes {
                sum.add_sum(img);
            }
            return sum;
        };
        // A class never spans a turn: TURN_S is a whole number of TURN_BIN_S.
        let weights = turn_weights_over(
            self.classes
                .iter()
                .enumerate()
                .map(|(c, (_, n))| ((c + phase) as f64 * TURN_BIN_S, TURN_BIN_S, *n)),
        )
        .expect("a class of TURN_BIN_S lies within a turn");
        for ((img, n), w) in self.classes.iter().zip(weights) {
            if *n > 0 {
                sum.add_scaled(img, w);
            }
        }
        sum
    }
}

/// The fine grid ([`fine_rows`]) of a `w × h` frame, kept in `slot` while frames keep that
/// size.
fn fine_grid_of(slot: &mut Option<AnalysisGrid>, (w, h): (usize, usize)) -> &AnalysisGrid {
    if slot.as_ref().is_none_or(|g| g.frame_size() != (w, h)) {
        *slot = Some(AnalysisGrid::for_reading(w, h, fine_rows(w, h)));
    }
    slot.as_ref().expect("just set")
}

/// Adds a fine residual to the sums of its grid size in `sums` (a further size replaces the
/// one with the fewest frames past [`MAX_GRID_SIZES`]).
fn add_fine(sums: &mut Vec<FineAccum>, r: &[f32], wa: usize, ha: usize, pts_s: f64) {
    let idx = match sums.iter().position(|a| a.wa == wa && a.ha == ha) {
        Some(i) => i,
        None => {
            if sums.len() >= MAX_GRID_SIZES {
                if let Some(i) = (0..sums.len()).min_by_key(|&i| sums[i].frames) {
                    sums.remove(i);
                }
            }
            sums.push(FineAccum {
                wa,
                ha,
                classes: (0..TURN_PHASES)
                    .map(|_| (ExactSum::zeros(wa * ha), 0))
                    .collect(),
                frames: 0,
            });
            sums.len() - 1
        }
    };
    let acc = &mut sums[idx];
    let t = if pts_s.is_finite() {
        pts_s.max(0.0)
    } else {
        0.0
    };
    let class = &mut acc.classes[(t / TURN_BIN_S).floor() as usize % TURN_PHASES];
    class.0.add(r);
    class.1 += 1;
    acc.frames += 1;
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
        TimeBins::with_width(max, 1.0)
    }

    /// With bins `width_s` wide at first (seconds).
    pub(crate) fn with_width(max: usize, width_s: f64) -> Self {
        TimeBins {
            max: max.max(1),
            width_s,
            bins: BTreeMap::new(),
        }
    }

    /// The same bins, each value mapped by `f` (its index and value; `None`: left out).
    fn map<U>(&self, mut f: impl FnMut(usize, &V) -> Option<U>) -> TimeBins<U> {
        TimeBins {
            max: self.max,
            width_s: self.width_s,
            bins: self
                .bins
                .iter()
                .filter_map(|(&i, v)| f(i, v).map(|u| (i, u)))
                .collect(),
        }
    }

    /// Bins per entry of the reported timeline: a second's worth where they are narrower.
    fn timeline_group(&self) -> usize {
        (1.0 / self.width_s).round().max(1.0) as usize
    }

    /// The bins holding anything, with their indices.
    fn iter(&self) -> impl Iterator<Item = (usize, &V)> {
        self.bins.iter().map(|(&i, v)| (i, v))
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

/// Accumulates frames of one clip and tests them against a set of keys.
pub struct VideoDetector {
    keys: Vec<(u8, KeyPattern)>,
    /// Per key, its sync pattern in every [`Orientation`] (the first upright).
    variants: Vec<Vec<Variant>>,
    fft: TileFft,
    accs: Vec<Accum>,
    /// Sums of the fine residuals, per fine grid size (at most [`MAX_GRID_SIZES`]).
    fine: Vec<FineAccum>,
    /// Analysis grid of the last frame size seen by [`VideoDetector::add_frame`].
    grid: Option<AnalysisGrid>,
    /// Its fine ([`FINE_ANALYSIS_ROWS`]) grid, made only when the fine stage may run.
    fine_grid: Option<AnalysisGrid>,
    frames: u64,
    frame_step: u64,
    seen: u64,
    /// Test the whole clip only, not also its halves and quarters.
    whole_clip_only: bool,
    /// The residuals of the pictures found inside bars ([`content_box`]), per box size.
    boxes: Vec<BoxAccum>,
    /// The analysis grid of the last content box's size.
    box_grid: Option<AnalysisGrid>,
    /// The camera's motion followed per decoding part ([`VideoDetector::add_riding`]).
    rides: Vec<Option<Ride>>,
    /// The frames warped back to their anchors (a riding mark at rest), per grid size.
    ride_accs: Vec<Accum>,
    /// The same frames warped back along their motion since lagged anchors, per lag
    /// ([`LAGS`]), per grid size.
    lag_accs: [Vec<Accum>; LAGS.len()],
    ride_grid: Option<AnalysisGrid>,
    /// The same frames of a portrait frame warped back on the fine grid ([`fine_rows`]): a
    /// landscape riding clip turned a quarter is searched there by the fine stage. (On a
    /// landscape frame the whole frame's motion is a riding picture's only where it fills
    /// the frame, at its own scale or larger: a picture made smaller inside other footage
    /// or bars rides inside its box, followed there.)
    ride_fine: Vec<FineAccum>,
    ride_fine_grid: Option<AnalysisGrid>,
    /// The camera's motion inside the bars, per decoding part: a riding mark letterboxed
    /// or padded rides the picture, not the canvas.
    box_rides: Vec<Vec<BoxRide>>,
    /// The pictures inside bars warped back to their anchors, per box.
    box_ride_accs: Vec<BoxAccum>,
    /// Per part, the last frame whose box was followed.
    box_followed: Vec<Option<f64>>,
    /// The inset of a picture-in-picture, looked for where the frames have no bars.
    inset: Option<InsetFinder>,
    /// The frames followed for the riding test, per part in order, with their residuals
    /// (at most [`PHASE_FRAMES`] in all): the search over the anchors' phase replays them.
    phase_log: Vec<Vec<KeptFrame>>,
    phase_kept: usize,
    /// While [`VideoDetector::result_naming`] searches: the payload each key's tile
    /// carries (the keys are then those tiles, every chip sync).
    known: Option<Known>,
    /// Readings of a turning mark another stream's registration names
    /// ([`VideoDetector::hint_sealed_starts`]), searched besides the chosen one.
    hinted_phases: Vec<usize>,
}

/// The payloads [`VideoDetector::result_naming`] searches for, one per tile, with the
/// pattern of the key that would carry each (its coded chips read where a tile is found).
struct Known {
    payloads: Vec<Payload>,
    patterns: Vec<KeyPattern>,
}

/// A frame followed for the riding test, kept for the search over the anchors' phase.
struct KeptFrame {
    pts_s: f64,
    followed: Followed,
    frame: (usize, usize),
    grid: (usize, usize),
    residual: Vec<f32>,
}

/// Width of the timeline's first bins, seconds: a quarter of [`TURN_S`], so that each bin
/// lies within one sign of a turning mark at every phase it is read at ([`TURN_PHASES`]).
const TURN_BIN_S: f64 = TURN_S / 4.0;
/// Phases at which a turning mark is read: every [`TURN_BIN_S`] of its period (2·[`TURN_S`]).
/// A clip trimmed at any time is within a quarter bin of one of them.
const TURN_PHASES: usize = 8;

/// The error budget's weights ([`VideoDetector::result_turned`]): the mark as sealed before
/// it turned over (and clips too short to hold a turn), the turning mark at the clip's own
/// time (phase 0: a copy that kept its timestamps), and each other phase (a trimmed
/// excerpt). A weighted Bonferroni bound: 1/4 + 1/2 + 7/28 = 1.
const PLAIN_TURN_WEIGHT: f64 = 4.0;
const OWN_TURN_WEIGHT: f64 = 2.0;
const OTHER_TURN_WEIGHT: f64 = 4.0 * (TURN_PHASES - 1) as f64;

/// The cheap stages' p (as sealed, scale 1; each with its own weight) below which another
/// reading than the clip's likeliest ([`VideoDetector::result_turned`]) takes the search.
const TURN_CHOICE_P: f64 = 1e-3;
/// How far a reading's lattice peak must stand out ([`crate::lattice::periodicity`]) for
/// [`VideoDetector::result_turned`] to search it beside the clip's own phase. It decides
/// only what is searched (each searched reading has its own share of the budget), so only
/// the cost: the bench's unmarked copies of natural footage stood out by a median 4.1 and
/// at most 5.4, but for two camera moves' riding sums (6.4, 8.0: two more searches each);
/// the right reading of a 3 s excerpt rotated 3° by 16–33 on the frames as they come and
/// by 6.1–9.7 on the riding sums of the photographs' camera moves.
const PERIODIC_STANDOUT: f64 = 5.5;

/// Frames kept for the phase search, in all: 34 s of a part at one every [`FOLLOW_S`]
/// (memory: one analysis image each, ≈ 117 kB at 16:9, so ≤ 11 MB; ≤ 25 MB at the widest
/// grid, [`MAX_GRID_ASPECT`]).
const PHASE_FRAMES: usize = 96;

/// Phases of the anchors searched on a clip whose own do not prove the riding mark: every
/// 1/30 s of [`ANCHOR_S`] (a trimmed clip starts on a frame; between two of these the mark
/// is off by half a frame's motion at most).
const PHASES_SEARCHED: usize = 60;

/// The share of the error budget spent on marks whose payload decodes where they are found
/// ([`with_payload`]).
const PAYLOAD_SHARE: f64 = 1.0 / 16.0;
/// The share spent on marks whose payload, named elsewhere, agrees with their coded bits
/// where the sync pattern registered them ([`with_named_payload`]).
const NAMED_SHARE: f64 = 1.0 / 32.0;
/// The share spent on the search for a named payload's whole tile
/// ([`VideoDetector::result_naming`]).
const KNOWN_SHARE: f64 = 1.0 / 32.0;
/// The rest: the mark's presence alone.
const PRESENCE_SHARE: f64 = 1.0 - PAYLOAD_SHARE - NAMED_SHARE - KNOWN_SHARE;

/// The largest search p-value at which a decoded payload proves the mark
/// ([`with_payload`]): ≈ 8e-4.
const DECODE_WINDOW: f64 = DETECT_P * PAYLOAD_SHARE / code::CHANCE_DECODE_P;

/// A registration's answer as the picture's and the sound's stages compare them: its p
/// with the payload's evidence ([`with_payload`]), whether the payload decoded there, and
/// the p of the presence alone (for the report).
#[derive(Clone, Copy)]
pub(crate) struct Proof {
    pub(crate) p: f64,
    pub(crate) decoded: bool,
    pub(crate) alone: f64,
}

impl Proof {
    /// The answer of a registration whose search gives `p`; `decodes` (whether the payload
    /// decodes there) is asked only where it could prove the mark ([`DECODE_WINDOW`]).
    pub(crate) fn of(p: f64, decodes: impl FnOnce() -> bool) -> Proof {
        let decoded = p <= DECODE_WINDOW && decodes();
        Proof {
            p: with_payload(p, decoded),
            decoded,
            alone: with_payload(p, false),
        }
    }

    /// The answer of a registration of a named payload's whole tile whose search gives `p`
    /// ([`VideoDetector::result_naming`]): on its share of the budget, its payload known.
    pub(crate) fn named(p: f64) -> Proof {
        let p = (p / KNOWN_SHARE).min(1.0);
        Proof {
            p,
            decoded: true,
            alone: p,
        }
    }

    /// A search's answer at `p`: [`Proof::named`] while searching for named payloads'
    /// tiles (`named`), else [`Proof::of`] (`decodes` asked only there).
    pub(crate) fn answer(p: f64, named: bool, decodes: impl FnOnce() -> bool) -> Proof {
        if named {
            Proof::named(p)
        } else {
            Proof::of(p, decodes)
        }
    }

    /// Final: it proves the mark and the payload reads there (no further stage is run).
    pub(crate) fn is_final(&self) -> bool {
        self.decoded && self.p <= DETECT_P
    }

    /// Its place among a test's answers, higher first: final, then the smaller p.
    pub(crate) fn rank(&self) -> (bool, f64) {
        (self.is_final(), -self.p)
    }
}

/// The answer [`VideoDetector::result_on`] keeps while its wider stages run: a registration,
/// the summed image it is on (the 128-row sum, a segment's, or the fine one: `fine`), its
/// proof, and whether a wider stage gave it.
struct Answer<'a> {
    reg: Registration,
    summed: &'a [f32],
    proof: Proof,
    wide_search: bool,
    fine: Option<&'a FineAccum>,
}

impl<'a> Answer<'a> {
    /// A wider stage's registration `reg` on `summed` (the fine sum `fine`), kept where it
    /// ranks higher: final (proven, payload read), else the smaller p.
    fn offer(
        &mut self,
        reg: Registration,
        summed: &'a [f32],
        proof: Proof,
        fine: Option<&'a FineAccum>,
    ) {
        if proof.rank() > self.proof.rank() {
            *self = Answer {
                reg,
                summed,
                proof,
                wide_search: true,
                fine,
            };
        }
    }
}

/// The p-value of a registration whose search (every hypothesis counted) gives `p`, with
/// whether the payload decoded there: `p / PRESENCE_SHARE`, or, when it decoded, the
/// smaller `p · CHANCE_DECODE_P / PAYLOAD_SHARE`. Valid because under the null the payload
/// decodes with probability `CHANCE_DECODE_P` at *any* registration, whatever its z: the
/// sync chips decide the registration, the payload chips' keyed signs (independent fair
/// coins) the decode ([`code::CHANCE_DECODE_P`]). So for every hypothesis h,
/// P(z_h high and decoded at h) ≤ CHANCE_DECODE_P · P(z_h high), and over the whole search
/// P(p ≤ t and decoded) ≤ CHANCE_DECODE_P · t: the test "p ≤ α(1 − share), or decoded and
/// p ≤ α·share / CHANCE_DECODE_P" errs with probability ≤ α(1 − NAMED_SHARE), the rest
/// of the budget being [`with_named_payload`]'s. A payload's 16 check bits
/// are evidence of the mark beside its 1024 sync chips: a copy whose sync alone reaches
/// p 1e-4 is proven where its payload reads.
fn with_payload(p: f64, decoded: bool) -> f64 {
    let alone = p / PRESENCE_SHARE;
    let p = if decoded {
        alone.min(p * code::CHANCE_DECODE_P / PAYLOAD_SHARE)
    } else {
        alone
    };
    p.min(1.0)
}

/// A search for named payloads' whole patterns answered `payload` (one of the `searched`),
/// its coded bits read at its registration as `reading`: the payload where the reading
/// singles it out (its p-value × `searched` ≤ [`NAMED_MATCH_P`]), and that p-value.
pub(crate) fn named_match(
    payload: Option<Payload>,
    reading: Option<PayloadReading>,
    searched: usize,
) -> (Option<Payload>, Option<f64>) {
    let match_p = payload
        .zip(reading)
        .map(|(payload, reading)| (reading.p_values(&[payload])[0] * searched as f64).min(1.0));
    let payload = payload.filter(|_| match_p.is_some_and(|p| p <= NAMED_MATCH_P));
    (payload, match_p)
}

/// The p-value of a mark reported at `p_value` without its payload (the presence alone, as
/// [`VideoDetection::p_value`] or `AudioDetection::p_value` gives it, with any further
/// correction) once a clip id named without looking at the mark — by the other stream's
/// mark, by the manifest store —
/// agrees with its coded bits at `match_p` (that agreement's p-value,
/// `PayloadReading::p_values`, times the candidates tried). Under the null the two are
/// independent (the sync chips decide the presence, the payload chips' keyed signs the
/// agreement, and the candidates do not depend on either), each at least uniform, so their
/// product `c` is at most that of two uniforms: P(product ≤ c) ≤ c·(1 + ln 1/c); on
/// [`NAMED_SHARE`] of the error budget. Never above `p_value`.
pub fn with_named_payload(p_value: f64, match_p: f64) -> f64 {
    let c = (p_value * PRESENCE_SHARE * match_p).clamp(f64::MIN_POSITIVE, 1.0);
    (c * (1.0 - c.ln()) / NAMED_SHARE).min(p_value).min(1.0)
}

/// The share `1 / PHASE_WEIGHT` of the riding half of the error budget spent on the other
/// phases of the anchors (a trimmed clip's)…
const PHASE_WEIGHT: f64 = 8.0;
/// …the share `1 / LAG_WEIGHT` on anchors lagged by [`LAGS`] (a clip whose
/// pictures lag their timestamps)…
const LAG_WEIGHT: f64 = 8.0;
/// …and the rest on the clip's own anchors (the reciprocal of that share).
const OWN_WEIGHT: f64 = 1.0 / (1.0 - 1.0 / PHASE_WEIGHT - 1.0 / LAG_WEIGHT);

/// Which tests [`VideoDetector::result_on`] runs on a set of sums.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stages {
    /// Every stage.
    All,
    /// The as-sealed registration alone, with the whole budget (the picture inside bars).
    AsSealed,
    /// Every stage on the whole clip only, the fine one on the riding fine sums: the frames
    /// warped back along their motion (a riding mark).
    Riding,
    /// The as-sealed registration on the whole clip only: the picture inside bars warped
    /// back along its motion.
    RidingAsSealed,
    /// Every stage but the fine one on the whole clip only: the frames warped back along
    /// their motion since lagged anchors (no fine sums are kept for them).
    RidingLagged,
}

/// Decoding parts followed at most ([`VideoDetector::add_riding`]).
const MAX_PARTS: usize = 4;

/// The running sums of the picture inside a frame's bars (letterboxed, padded into a
/// larger canvas), on the box's own analysis grid: there the mark lies as sealed.
struct BoxAccum {
    acc: Accum,
    /// The frame's size and the box in it, `(x, y, w, h)` in frame pixels (the first
    /// frame's of this box size).
    frame: (usize, usize),
    at: (usize, usize, usize, usize),
    /// A riding box's: the same frames warped back along their motion since lagged anchors,
    /// one sum per lag ([`LAGS`]); none for the frames as they come.
    lagged: Vec<Accum>,
}

/// The motion followed inside one part's bars, in one candidate box. A frame's box is not
/// always the picture's: its dark edges pass for bars (a night sky: photo-pan's box lost
/// up to 162 of its 1080 columns), and a blurred background passes for picture in a dark
/// frame (photo-pan's 9:16 repost: boxes of 1563–1897 rows round a 608-row picture). Each
/// frame's box is a vote for the candidate that is the same box, or starts one
/// ([`MAX_BOX_RIDES`] per part, the one with the fewest votes making room); a frame feeds
/// every candidate that holds its box (dark edges only take from a picture). The picture's
/// own box, shown whole often enough, keeps its place and is fed nearly every frame.
struct BoxRide {
    frame: (usize, usize),
    at: (usize, usize, usize, usize),
    grid: AnalysisGrid,
    ride: Ride,
    /// The time of the last frame that fed it.
    fed_s: f64,
    /// Frames whose own box was this one.
    votes: u64,
}

/// Candidate boxes followed per decoding part ([`BoxRide`]).
const MAX_BOX_RIDES: usize = 3;

/// A frame's box within this share of the frame (two lines at least) of a candidate's
/// edges, or inside them, is held by it: the encoder's ringing moves a bar's edge by a line.
const BOX_SLACK: f64 = 0.01;

/// Timeline bins of the riding sums inside bars: few (there may be a dozen sums; their
/// test is on the whole clip), yet a turning mark reads there at every phase for 16 s
/// ([`TURN_BIN_S`] bins), at whole seconds to 32 s and at the clip's own phase to 64 s.
const RIDE_BOX_BINS: usize = 32;

/// [`BOX_SLACK`] of a frame `len` lines across, in lines (two at least).
fn box_slack(len: usize) -> usize {
    ((len as f64 * BOX_SLACK) as usize).max(2)
}

/// Whether two boxes of a `w × h` frame are the same picture: every edge within
/// [`BOX_SLACK`].
fn same_box(
    (w, h): (usize, usize),
    a: (usize, usize, usize, usize),
    b: (usize, usize, usize, usize),
) -> bool {
    let (sx, sy) = (box_slack(w), box_slack(h));
    a.0.abs_diff(b.0) <= sx
        && (a.0 + a.2).abs_diff(b.0 + b.2) <= sx
        && a.1.abs_diff(b.1) <= sy
        && (a.1 + a.3).abs_diff(b.1 + b.3) <= sy
}

/// The `at = (x, y, w, h)` part of a `width`-wide luma plane.
fn crop_luma(y: &[u8], width: usize, (x0, y0, bw, bh): (usize, usize, usize, usize)) -> Vec<u8> {
    let mut picture = Vec::with_capacity(bw * bh);
    for row in y[y0 * width..(y0 + bh) * width].chunks_exact(width) {
        picture.extend_from_slice(&row[x0..x0 + bw]);
    }
    picture
}

/// Adds the residual `r` (grid `wa × ha` of a `w × h` frame `width` analysis pixels wide)
/// warped back along `m` into `sum`: each cell takes the residual where its centre moved to
/// ([`AnalysisGrid::residual_warped`]'s map), bilinear between cells, the edge repeated.
fn add_warped_on_grid(
    sum: &mut [f32],
    r: &[f32],
    (wa, ha): (usize, usize),
    (w, h): (usize, usize),
    width: f64,
    m: Motion,
) {
    // Per column (row): the two cells it reads and the second's weight.
    let taps = |n: usize, len: usize, px: f64, shift: f64| -> Vec<(usize, usize, f32)> {
        let c = len as f64 / 2.0;
        (0..n)
            .map(|i| {
                let x = (i as f64 + 0.5) * px;
                let g = ((c + m.zoom * (x - c) + shift) / px - 0.5).clamp(0.0, (n - 1) as f64);
                let i0 = g.floor() as usize;
                (i0, (i0 + 1).min(n - 1), (g - i0 as f64) as f32)
            })
            .collect()
    };
    let cols = taps(wa, w, w as f64 / width, m.shift.0);
    let rows = taps(ha, h, h as f64 / ha as f64, m.shift.1);
    for (out, &(r0, r1, b)) in sum.chunks_exact_mut(wa).zip(&rows) {
        let (top, bottom) = (&r[r0 * wa..][..wa], &r[r1 * wa..][..wa]);
        for (o, &(c0, c1, a)) in out.iter_mut().zip(&cols) {
            let t = top[c0] + a * (top[c1] - top[c0]);
            let u = bottom[c0] + a * (bottom[c1] - bottom[c0]);
            *o += t + b * (u - t);
        }
    }
}

/// What [`VideoDetector::search_among`] found: the best registration, the image it is on,
/// and each image's best z (pass 1, and pass 2 where its scales were refined).
struct Among {
    best: Registration,
    image: usize,
    image_z: Vec<f64>,
}

/// One stage's search of [`VideoDetector::result_on`] over sums (the whole clip's alone, or
/// its segments', with whether they are the whole clip's): the best registration and the sum
/// it is on.
type StageSearch<'a> = dyn Fn(&[&[f32]], bool) -> (Registration, usize) + 'a;

/// The best of `find`'s registrations on each of `imgs` (non-empty), with its index (ties:
/// the first).
fn best_of_each(imgs: &[&[f32]], find: impl Fn(&[f32]) -> Registration) -> (Registration, usize) {
    let mut found = imgs.iter().map(|img| find(img)).enumerate();
    let (mut i, mut best) = found.next().expect("an image to search");
    for (j, reg) in found {
        if reg.z > best.z {
            (i, best) = (j, reg);
        }
    }
    (best, i)
}

/// How two answers compare: a proven mark whose payload reads before one that is only
/// proven, then the smaller p-value.
fn rank(d: &VideoDetection) -> (bool, f64) {
    (d.detected && d.payload.is_some(), -d.p_value)
}

/// Of `first` and `others`, the answer of the highest [`rank`] (ties: the earlier).
fn best_ranked(
    first: VideoDetection,
    others: impl IntoIterator<Item = VideoDetection>,
) -> VideoDetection {
    others.into_iter().fold(first, |best, other| {
        if rank(&other) > rank(&best) {
            other
        } else {
            best
        }
    })
}

/// A followed frame's residual warped back along each lag's motion ([`LAGS`], `lagged`):
/// the own one (`own`: its motion and residual) where the two agree — before the first
/// lagged anchor — else `warp`ed anew; `None` where the lag's motion is not known or the
/// warp fails.
fn lagged_residuals<'a>(
    own: Option<&'a (Motion, Cow<'a, [f32]>)>,
    lagged: [Option<Motion>; LAGS.len()],
    warp: impl Fn(Motion) -> Option<Cow<'a, [f32]>>,
) -> [Option<Cow<'a, [f32]>>; LAGS.len()] {
    lagged.map(|lag_m| {
        let lag_m = lag_m?;
        match own {
            Some((m, r)) if *m == lag_m => Some(Cow::Borrowed(&r[..])),
            _ => warp(lag_m),
        }
    })
}

/// Whether the camera moved in the followed frames: a motion ridden in half the steps
/// followed or more (two at least).
fn camera_moved<'a>(rides: impl Iterator<Item = &'a Ride>) -> bool {
    let (steps, ridden) = rides.fold((0, 0), |(s, r), ride| {
        (s + ride.steps().0, r + ride.steps().1)
    });
    ridden >= 2 && 2 * ridden >= steps
}

/// Adds the residual `r` of the picture at `at` in a `frame`-sized frame, on its own
/// `grid`, to the sums `boxes` of its grid size.
fn add_box(
    boxes: &mut Vec<BoxAccum>,
    grid: &AnalysisGrid,
    frame: (usize, usize),
    at: (usize, usize, usize, usize),
    r: &[f32],
    pts_s: f64,
) {
    let (wa, ha) = grid.grid_size();
    let width = grid.width_in_analysis_pixels();
    let idx = slot(
        boxes,
        |b| &b.acc,
        wa,
        ha,
        // Boxes of one grid size share the sums wherever they lie (the box's grid starts
        // at its corner) and whatever line the bars' ringing moved them by.
        |b| (b.acc.width - width).abs() < 0.5,
        || BoxAccum {
            acc: Accum::new(wa, ha, Some(width)),
            frame,
            at,
            lagged: Vec::new(),
        },
    );
    boxes[idx].acc.add(r, pts_s);
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

/// The maps the lattice stage's nudges try ([`NUDGE_PX`]): around each of the first
/// [`NUDGED_MAPS`] of `led` (candidate indices, best first), every nudge of its lattice
/// vectors but none (the candidate was tested), with the candidate's orientations.
fn nudged_maps(maps: &[Candidate], led: &[usize]) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(NUDGED_MAPS * (NUDGES - 1));
    for &mi in led.iter().take(NUDGED_MAPS) {
        let (b1, b2) = maps[mi].map.lattice();
        for k in 0..NUDGES {
            // Base-3 digits of k: −1, 0, +1 for each coordinate.
            let d = |i: u32| ((k / 3usize.pow(i)) % 3) as f64 - 1.0;
            if (0..4).all(|i| d(i) == 0.0) {
                continue;
            }
            let n1 = [b1[0] + d(0) * NUDGE_PX, b1[1] + d(1) * NUDGE_PX];
            let n2 = [b2[0] + d(2) * NUDGE_PX, b2[1] + d(3) * NUDGE_PX];
            if let Some(map) = TileMap::from_lattice(n1, n2) {
                out.push(Candidate {
                    map,
                    orientations: maps[mi].orientations,
                });
            }
        }
    }
    out
}

/// Sub-chip phases (x, y) of the fold grid, in chips. Phase 0 is searched at every scale;
/// the others refine the best scales (a crop can put chip borders mid-pixel).
const PHASES: [(f64, f64); 4] = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)];
/// The wider search's first pass takes every this-many-th scale of its grid (pass 2 the
/// neighbours of the best).
const WIDE_STRIDE: usize = 3;
/// Scales (best by phase-0 score) whose neighbourhoods get the phase refinement.
const REFINE_SCALES: usize = 6;
/// Candidate maps of the lattice stage (best at phase 0) searched at every phase.
const LATTICE_REFINE: usize = 8;
/// The lattice stage's nudges, led by the key: a keystone's lattice (a screen filmed at an
/// angle) is not one lattice across the frame, and on fewer frames (a reference-frame scan)
/// the autocorrelation can favour lattices half a pixel or more off the one where the key's
/// chips fold best (measured: a 4 s pan at a slight angle, 61 reference frames, z 6.96 at
/// the best candidate, 10.2 at the map all 120 frames led to). Around the
/// [`NUDGED_MAPS`] best candidates by the key's z, each of the four coordinates of the
/// lattice vectors moved by −, 0 or + [`NUDGE_PX`] (3⁴ maps each, the candidate itself among
/// them). The bound counts every candidate × every nudge, whichever were led to.
const NUDGE_PX: f64 = 0.5;
const NUDGES: usize = 81;
const NUDGED_MAPS: usize = 2;
/// Nudged only where the lattice stage's best z reaches this, so that the stage costs
/// nothing on most unmarked clips: unmarked, the bench's eight sources gave 4.7–5.3 on the
/// whole frame and 4.2–5.2 riding, the slanted pan's source 3.1–5.0.
const NUDGE_MIN_Z: f64 = 6.0;
/// The nudges' share of the lattice stage's budget (a quarter; the stage keeps ¾).
const NUDGE_SHARE: f64 = 4.0;
/// The segments' first pass searches every this-many-th scale (the whole clip every one;
/// pass 2 refines the best scales' neighbours either way).
const SEGMENT_STRIDE: usize = 2;
/// The lag choice's plain search ([`VideoDetector::lag_search`]) takes every this-many-th
/// scale in its first pass.
const LAG_CHOICE_STRIDE: usize = 2;
/// Shares of the error budget, as Bonferroni weights (1/8 + 1/8 + 1/4 + 1/4 + 1/4): the
/// as-sealed registration, scale 1 at any shift, the plain stage, the orientation and scale
/// search, the lattice stage. The as-sealed registration (scale 1, the seal's own shift, upright or mirrored:
/// two hypotheses per key, [`VideoDetector::as_sealed`]) is what an unedited, re-encoded,
/// resized or flipped copy shows; tested alone it needs z ≈ 5.7 instead of the plain
/// search's ≈ 7.7, for 0.04 more z in the plain stage (its share 1/2 → 3/8).
const SEALED_WEIGHT: f64 = 8.0;
/// The as-sealed registration's hypotheses per key: upright and mirrored horizontally.
const SEALED_ORIENTATIONS: usize = 2;
/// Scale 1 at every shift and phase, upright or mirrored ([`VideoDetector::at_scale_one`]):
/// an eighth of the budget, taken from the plain stage (3/8 → 1/4: 0.05 more z there).
const SHIFTED_WEIGHT: f64 = 8.0;
const SHIFTED_ORIENTATIONS: usize = 2;
const PLAIN_WEIGHT: f64 = 4.0;
const WIDE_WEIGHT: f64 = 4.0;
const LATTICE_WEIGHT: f64 = 4.0;
/// With a fine residual the as-sealed, shifted and plain stages keep their half and the three
/// wider stages (the orientation and scale search below [`FINE_SCALE_MIN`], the lattice
/// stage, the fine stage) share the other: 1/8 + 1/8 + 1/4 + 1/6 + 1/6 + 1/6.
const WIDER_WEIGHT_WITH_FINE: f64 = 6.0;
/// The key-frame pass's stages: the as-sealed registration ([`SEALED_WEIGHT`]), scale 1 at
/// any shift ([`SHIFTED_WEIGHT`]), upright ([`PLAIN_WEIGHT`]), and every orientation at the
/// plain scales (half the budget).
const KEY_FRAME_WEIGHT: f64 = 2.0;
/// The share `1 / BOX_WEIGHT` of the error budget spent, when the frames have bars, on the
/// picture inside them as sealed (two hypotheses per key: [`SEALED_ORIENTATIONS`]); the
/// rest on everything else. A picture letterboxed or padded into a larger canvas is
/// smaller on the canvas's grid and off its origin, and only the wider searches find it
/// there, with ≈ 10⁷ hypotheses per key; on its own grid it is as sealed.
const BOX_WEIGHT: f64 = 16.0;

/// The two folds of an image that the as-sealed registration reads
/// ([`VideoDetector::as_sealed`]), each linear in the image: the folds of a weighted sum of
/// images are the weighted sum of their folds, so that the turning mark's readings and
/// segments ([`VideoDetector::result_turned`]) fold each timeline bin once.
struct SealedFolds {
    upright: Vec<f64>,
    mirrored: Vec<f64>,
}

impl SealedFolds {
    fn of(img: &[f32], wa: usize, ha: usize, width: f64) -> SealedFolds {
        // Mirrored, analysis column i spans the sealed columns' [width − i − 1, width − i)
        // (`width` need not be whole: then it straddles two of them), i.e. tile coordinates
        // [i − width, i + 1 − width) with the tile mirrored (observed chip −c) and shifted by
        // one. The fold shares each column among the chips it overlaps (`fold_area`, the
        // matched filter of the straddle; measured on seven frame sizes, a flipped copy
        // keeps 0.76–1.0 of the upright z, 0.48–1.0 with the binned fold).
        let phase_x = wa as f64 / 2.0 - width;
        SealedFolds {
            upright: fold(img, wa, ha, 1.0, PHASES[0]),
            mirrored: fold_area(img, wa, ha, 1.0, (phase_x, 0.0)),
        }
    }

    fn zeros() -> SealedFolds {
        SealedFolds {
            upright: vec![0.0; TILE * TILE],
            mirrored: vec![0.0; TILE * TILE],
        }
    }

    /// Adds `other` × `w`.
    fn add_scaled(&mut self, other: &SealedFolds, w: f64) {
        for (a, b) in [
            (&mut self.upright, &other.upright),
            (&mut self.mirrored, &other.mirrored),
        ] {
            a.iter_mut().zip(b).for_each(|(x, &y)| *x += w * y);
        }
    }
}

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

/// The chips (tile bins) that analysis pixel `i` of a side of `n` overlaps at scale `s`,
/// each with its share of the pixel: the pixel spans `[c − s/2, c + s/2)` in tile units,
/// `c = (i + ½ − n/2)·s + phase` (so at `s` = 1 and phase 0 it is exactly chip ⌊c⌋).
fn area_taps(n: usize, i: usize, s: f64, phase: f64) -> impl Iterator<Item = (usize, f32)> {
    let c = (i as f64 + 0.5 - n as f64 / 2.0) * s + phase;
    let (lo, hi) = (c - s / 2.0, c + s / 2.0);
    let t = TILE as i64;
    (lo.floor() as i64..hi.ceil() as i64).filter_map(move |k| {
        let overlap = (hi.min(k as f64 + 1.0) - lo.max(k as f64)).max(0.0);
        (overlap > 1e-9).then(|| (k.rem_euclid(t) as usize, (overlap / s) as f32))
    })
}

/// [`fold`] with every analysis pixel shared among the chips it overlaps, in proportion
/// (the matched filter of the box downscale): where a pixel straddles two chips (chip
/// borders mid-pixel, as in a mirrored frame whose width is not a whole number of analysis
/// pixels) or holds several (scales above 1: a picture shown smaller), the plain fold
/// credits one chip with a mixture. Used by the wider search.
fn fold_area(img: &[f32], wa: usize, ha: usize, s: f64, phase: (f64, f64)) -> Vec<f64> {
    let cols: Vec<Vec<(usize, f32)>> = (0..wa)
        .map(|u| area_taps(wa, u, s, phase.0).collect())
        .collect();
    let mut f = vec![0f64; TILE * TILE];
    let mut acc = [0f32; TILE];
    for v in 0..ha {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (&x, taps) in img[v * wa..(v + 1) * wa].iter().zip(&cols) {
            for &(b, w) in taps {
                acc[b] += w * x;
            }
        }
        for (by, wy) in area_taps(ha, v, s, phase.1) {
            for (r, a) in f[by * TILE..(by + 1) * TILE].iter_mut().zip(acc) {
                *r += (wy * a) as f64;
            }
        }
    }
    f
}

/// The fold of a registration: plain, or shared by area ([`fold_area`]).
fn fold_as(area: bool, img: &[f32], wa: usize, ha: usize, s: f64, phase: (f64, f64)) -> Vec<f64> {
    if area {
        fold_area(img, wa, ha, s, phase)
    } else {
        fold(img, wa, ha, s, phase)
    }
}

/// The fine stage also folds parts of the image alone: a picture shown small inside other
/// footage (picture-in-picture) fills only part of the frame, and the rest adds energy
/// without correlation (the clip at 40 % of the frame in a corner: z 4.8 over the whole
/// frame). The windows, fixed in advance (never chosen from the content or the key), in
/// cells of a quarter of the image's side: the whole image; the nine windows of half its
/// width and height a quarter apart (each quadrant, the centre, …: a 40 % picture in a
/// corner lies wholly in one); the four of three quarters (any 50 % picture in one). Every
/// window is counted in the p-value.
const WINDOW_CELLS: usize = 4;
const WINDOWS: [(usize, usize, usize, usize); 14] = [
    (0, 0, 4, 4),
    (0, 0, 2, 2),
    (1, 0, 3, 2),
    (2, 0, 4, 2),
    (0, 1, 2, 3),
    (1, 1, 3, 3),
    (2, 1, 4, 3),
    (0, 2, 2, 4),
    (1, 2, 3, 4),
    (2, 2, 4, 4),
    (0, 0, 3, 3),
    (1, 0, 4, 3),
    (0, 1, 3, 4),
    (1, 1, 4, 4),
];

/// Orientations searched in the windows other than the whole image: upright and mirrored
/// horizontally ([`Orientation::ALL`]'s first two), one inverse transform per window
/// instead of four. A picture inside other footage (a reaction video, a split screen) is
/// pasted upright, sometimes mirrored; turned or flipped pictures fill the frame (the
/// whole-image window keeps all eight). Three quarters of the fine stage's first pass were
/// those transforms, on every unmarked upload; and with fewer hypotheses counted the
/// threshold is lower (z 8.53 → 8.39 for one key at 16:9; 8.36 with [`window_searched`]).
const SUB_WINDOW_ORIENTATIONS: usize = 2;

/// Orientations searched in window `wi` of [`WINDOWS`] when the search takes the first
/// `orientations` of [`Orientation::ALL`].
fn window_orientations(wi: usize, orientations: usize) -> usize {
    if wi == 0 {
        orientations
    } else {
        orientations.min(SUB_WINDOW_ORIENTATIONS)
    }
}

/// Whether window `wi` of [`WINDOWS`] is searched at `scale` in the 128-row grid's terms
/// (the picture's height is 1/scale of the frame's): a picture wholly inside a window of
/// half the frame's height has scale ≥ 2, inside three quarters ≥ 4/3, so below that the
/// window holds only part of it, and the window a size up holds all of it (2 % of slack for
/// the grid's points). The whole image is searched at every scale. Below those scales a
/// window's transforms were spent on every unmarked upload for nothing.
fn window_searched(wi: usize, scale: f64) -> bool {
    let (x0, y0, x1, y1) = WINDOWS[wi];
    let side = (x1 - x0).max(y1 - y0);
    side == WINDOW_CELLS || scale * side as f64 >= WINDOW_CELLS as f64 / 1.02
}

/// The cell ([`WINDOW_CELLS`] per side) of position `i` of a side of `n`.
fn window_cell(i: usize, n: usize) -> usize {
    (i * WINDOW_CELLS / n.max(1)).min(WINDOW_CELLS - 1)
}

/// Per analysis pixel, whether it lies in window `wi` of [`WINDOWS`].
fn window_mask(wa: usize, ha: usize, wi: usize) -> Vec<bool> {
    let (x0, y0, x1, y1) = WINDOWS[wi];
    (0..wa * ha)
        .map(|i| {
            let (cx, cy) = (window_cell(i % wa, wa), window_cell(i / wa, ha));
            (x0..x1).contains(&cx) && (y0..y1).contains(&cy)
        })
        .collect()
}

/// [`fold_area`] of each window cell alone (row-major cells): every window's fold is the
/// sum of its cells', so all windows cost one pass over the image. With `only`, just the
/// cells of that window ([`WINDOWS`]) are folded (the others stay 0): the same numbers for
/// them, from the part of the image they cover.
fn fold_cells(
    img: &[f32],
    wa: usize,
    ha: usize,
    s: f64,
    phase: (f64, f64),
    only: Option<usize>,
) -> Vec<Vec<f64>> {
    let (x0, y0, x1, y1) = only.map_or((0, 0, WINDOW_CELLS, WINDOW_CELLS), |wi| WINDOWS[wi]);
    // The window's columns and rows (cells are runs of whole columns / rows).
    let cols_in: Vec<usize> = (0..wa)
        .filter(|&u| (x0..x1).contains(&window_cell(u, wa)))
        .collect();
    let (u0, u1) = (
        cols_in.first().copied().unwrap_or(0),
        cols_in.last().map_or(0, |&u| u + 1),
    );
    let cols: Vec<Vec<(usize, f32)>> = (u0..u1)
        .map(|u| area_taps(wa, u, s, phase.0).collect())
        .collect();
    let col_cell: Vec<usize> = (u0..u1).map(|u| window_cell(u, wa)).collect();
    let mut f = vec![vec![0f64; TILE * TILE]; WINDOW_CELLS * WINDOW_CELLS];
    let mut acc = [[0f32; TILE]; WINDOW_CELLS];
    for v in (0..ha).filter(|&v| (y0..y1).contains(&window_cell(v, ha))) {
        acc.iter_mut()
            .for_each(|a| a.iter_mut().for_each(|x| *x = 0.0));
        for ((&x, taps), &c) in img[v * wa + u0..v * wa + u1]
            .iter()
            .zip(&cols)
            .zip(&col_cell)
        {
            for &(b, w) in taps {
                acc[c][b] += w * x;
            }
        }
        let cy = window_cell(v, ha);
        for (by, wy) in area_taps(ha, v, s, phase.1) {
            for (cx, a) in acc.iter().enumerate().take(x1).skip(x0) {
                let cell = &mut f[cy * WINDOW_CELLS + cx];
                for (r, a) in cell[by * TILE..(by + 1) * TILE].iter_mut().zip(a) {
                    *r += (wy * a) as f64;
                }
            }
        }
    }
    f
}

/// z-scores of the sync correlation for every cyclic shift: (best z, best shift index).
///
/// `z_hat` is the FFT of `F + i·F²` (the fold and its square packed into one complex
/// transform); both correlations come back from one inverse transform as `c + i·e`.
fn best_shift(fft: &TileFft, z_hat: &[C], key: &Variant, work: &mut Vec<C>) -> (f64, usize) {
    work.clear();
    for k in 0..TILE * TILE {
        // F̂ and F²̂ from the packed transform.
        let (f, g) = split_pair(z_hat, TILE, k);
        let c = key.sync_hat[k].conj_mul(f);
        let e = key.mask_hat[k].conj_mul(g);
        // c + i·e
        work.push(C {
            re: c.re - e.im,
            im: c.im + e.re,
        });
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

/// Threads the searches run on: the available cores, at most 8.
fn search_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

/// `f` on every job, spread over [`search_threads`] (each with its own FFT work buffer);
/// the results in the jobs' order.
pub(crate) fn par_map<J: Sync, R: Send>(
    jobs: &[J],
    f: impl Fn(&J, &mut Vec<C>) -> R + Sync,
) -> Vec<R> {
    let threads = search_threads().min(jobs.len()).max(1);
    let mut out: Vec<Option<R>> = (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                sc.spawn(move || {
                    let mut work = Vec::with_capacity(TILE * TILE);
                    (t..jobs.len())
                        .step_by(threads)
                        .map(|i| (i, f(&jobs[i], &mut work)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("search thread panicked") {
                out[i] = Some(r);
            }
        }
    });
    out.into_iter().map(|r| r.expect("every job ran")).collect()
}

/// Shifts whose correlation the wider search normalises exactly, per orientation.
const WIDE_CANDIDATE_SHIFTS: usize = 3;

/// The wider search's shift search, two orientations per inverse transform: `f_hat` is the
/// fold's transform, so `conj(S_a)·F̂ + i·conj(S_b)·F̂` transforms back to `c_a + i·c_b` (both
/// correlations are real). The energy under the sync chips is then summed directly at the
/// [`WIDE_CANDIDATE_SHIFTS`] largest correlations of each, which gives their exact z (the
/// shifts not normalised are still counted in the p-value: searching fewer keeps the
/// bound). Returns the best (z, shift) of `a` and of `b`.
fn best_shifts_two(
    fft: &TileFft,
    f: &[f64],
    f_hat: &[C],
    a: &Variant,
    b: Option<&Variant>,
    work: &mut Vec<C>,
) -> [(f64, usize); 2] {
    // Written in place, one branch per call rather than per element (the same numbers).
    work.clear();
    work.resize(f_hat.len(), C::default());
    match b {
        Some(b) => {
            for ((w, &fk), (sa, sb)) in work
                .iter_mut()
                .zip(f_hat)
                .zip(a.sync_hat.iter().zip(&b.sync_hat))
            {
                let (ca, cb) = (sa.conj_mul(fk), sb.conj_mul(fk));
                *w = C {
                    re: ca.re - cb.im,
                    im: ca.im + cb.re,
                };
            }
        }
        None => {
            for ((w, &fk), sa) in work.iter_mut().zip(f_hat).zip(&a.sync_hat) {
                let ca = sa.conj_mul(fk);
                // `+ 0.0` as the paired form adds a zero `cb` (a −0 becomes +0 alike).
                *w = C {
                    re: ca.re,
                    im: ca.im + 0.0,
                };
            }
        }
    }
    fft.run2d(work, true);
    let first = best_candidate(f, a, work.iter().map(|v| v.re));
    let second = b.map_or((f64::NEG_INFINITY, 0), |b| {
        best_candidate(f, b, work.iter().map(|v| v.im))
    });
    [first, second]
}

/// The exact z ([`z_at`]) at the [`WIDE_CANDIDATE_SHIFTS`] largest correlations of one
/// orientation (`corr`, one value per shift): the best (z, shift).
fn best_candidate(f: &[f64], variant: &Variant, corr: impl Iterator<Item = f64>) -> (f64, usize) {
    let mut top = [(f64::NEG_INFINITY, 0usize); WIDE_CANDIDATE_SHIFTS];
    for (d, c) in corr.enumerate() {
        if c > top[WIDE_CANDIDATE_SHIFTS - 1].0 {
            top[WIDE_CANDIDATE_SHIFTS - 1] = (c, d);
            top.sort_by(|x, y| y.0.total_cmp(&x.0));
        }
    }
    top.iter()
        .filter(|t| t.0.is_finite())
        .map(|&(_, d)| (z_at(f, variant, d), d))
        .fold((f64::NEG_INFINITY, 0), |m, x| if x.0 > m.0 { x } else { m })
}

/// z of the sync correlation at one given shift (direct sum).
fn z_at(f: &[f64], key: &Variant, shift: usize) -> f64 {
    let (dy, dx) = (shift / TILE, shift % TILE);
    let (mut c, mut e) = (0.0, 0.0);
    for &(j, sign) in &key.sync_chips {
        let (jy, jx) = (j / TILE, j % TILE);
        let v = f[((jy + dy) % TILE) * TILE + (jx + dx) % TILE];
        c += sign as f64 * v;
        e += v * v;
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

/// The scales of the wider search for an analysis image whose longer side is `len`, from
/// [`WIDE_SCALE_MIN`] to [`WIDE_SCALE_MAX`]: as fine as [`scale_grid`]'s below 1, and finer
/// in proportion above (a fold at scale `s` spans `s·len` chips, so the same relative step
/// drifts `s` times as far at the border). Every other one is searched first, the rest
/// only beside the best (but all are counted).
pub(crate) fn wide_scale_grid(len: usize) -> Vec<f64> {
    geometric_grid(
        len.clamp(16, MAX_SEARCH_LEN),
        WIDE_SCALE_MIN,
        WIDE_SCALE_MAX,
    )
}

/// The scales from `min` to `max` for an image whose longer side is `len`, outwards from 1
/// (exactly on the grid: mirrored and turned copies are mostly unscaled): steps of
/// `1 + 1/len` below 1 and `1 + 1/(len·s)` above.
fn geometric_grid(len: usize, min: f64, max: f64) -> Vec<f64> {
    let len = len.max(16) as f64;
    let step = |s: f64| 1.0 + 1.0 / (len * s.max(1.0));
    let mut below = Vec::new();
    let mut s = 1.0;
    while s >= min {
        if s <= max {
            below.push(s);
        }
        s /= step(s);
    }
    below.reverse();
    let mut s = 1.0 * step(1.0);
    while s <= max {
        if s >= min {
            below.push(s);
        }
        s *= step(s);
    }
    below
}

/// The fine stage's scales for a fine residual whose longer side is `len` and which has
/// `ratio` times the 128-row grid's rows, in the fine grid's own terms ([`FINE_SCALE_MIN`]
/// / `ratio` – [`FINE_SCALE_MAX`] / `ratio`).
pub(crate) fn fine_scale_grid(len: usize, ratio: f64) -> Vec<f64> {
    geometric_grid(
        len.clamp(16, MAX_FINE_SEARCH_LEN),
        FINE_SCALE_MIN / ratio,
        FINE_SCALE_MAX / ratio,
    )
}

/// The wider search's scales on the 128-row grid when the fine stage takes those above
/// [`FINE_SCALE_MIN`].
fn wide_scale_grid_below_fine(len: usize) -> Vec<f64> {
    geometric_grid(
        len.clamp(16, MAX_SEARCH_LEN),
        WIDE_SCALE_MIN,
        FINE_SCALE_MIN,
    )
}

/// Each key's pattern in every [`Orientation`] (the first upright). The plain transform
/// will do: once per key and orientation.
fn variants_of(keys: &[(u8, KeyPattern)]) -> Vec<Vec<Variant>> {
    let plain = Fft::new(TILE);
    keys.iter()
        .map(|(_, k)| {
            Orientation::ALL
                .iter()
                .map(|&o| Variant::new(k, o, &plain))
                .collect()
        })
        .collect()
}

impl VideoDetector {
    /// A detector for any of `keys`.
    pub fn new(keys: &[WatermarkKey]) -> Self {
        let keys: Vec<(u8, KeyPattern)> = keys
            .iter()
            .map(|k| (k.key_id(), KeyPattern::new(k)))
            .collect();
        Self::with_patterns(keys)
    }

    fn with_patterns(keys: Vec<(u8, KeyPattern)>) -> Self {
        VideoDetector {
            variants: variants_of(&keys),
            keys,
            fft: TileFft::new(TILE),
            accs: Vec::new(),
            fine: Vec::new(),
            grid: None,
            fine_grid: None,
            frames: 0,
            frame_step: 1,
            seen: 0,
            whole_clip_only: false,
            boxes: Vec::new(),
            box_grid: None,
            rides: Vec::new(),
            ride_accs: Vec::new(),
            lag_accs: Default::default(),
            ride_grid: None,
            ride_fine: Vec::new(),
            ride_fine_grid: None,
            box_rides: Vec::new(),
            box_ride_accs: Vec::new(),
            box_followed: Vec::new(),
            inset: None,
            phase_log: Vec::new(),
            phase_kept: 0,
            known: None,
            hinted_phases: Vec::new(),
        }
    }

    /// The mark searched for as the whole tile of each of `payloads` — clip ids named for
    /// it elsewhere (the sound's mark) — on everything added so far, by every stage of
    /// [`VideoDetector::result`]: every chip, sync and coded, is then known, and at the
    /// mark's registration its z is about twice the sync pattern's (bikes after four
    /// re-encodes: 3.5 → 8.1). `None` when none of the payloads is of one of this
    /// detector's keys (by key id); else the best answer and, where it is at least
    /// inconclusive, how well the coded bits read at its registration single its payload
    /// out (`PayloadReading::p_values` × the tiles searched). The answer's payload is the
    /// named one only where that is at most [`NAMED_MATCH_P`].
    ///
    /// Two claims, two tests. The mark's presence: under the null each tile's signs are
    /// fair coins given the content, as the sync pattern's are (the coded chips' keyed
    /// signs times a codeword chosen without looking at the picture), so every hypothesis
    /// keeps the same tail; each tile is counted as a key is, and the p-value is on its own
    /// share of the error budget (`KNOWN_SHARE`, beside the shares of
    /// [`VideoDetector::result`]'s answers and of [`with_named_payload`]), so the smaller of
    /// the two answers' p-values is a valid one. The payload: a mark that carries another
    /// clip id shares the sync chips with the named tile (about half its z) and agrees with
    /// its coded chips only by chance — which the coded bits' test measures, as it does for
    /// a candidate read where the sync pattern registered the mark.
    pub fn result_naming(&mut self, payloads: &[Payload]) -> Option<(VideoDetection, Option<f64>)> {
        let mut tiles = Vec::new();
        let mut named = Vec::new();
        let mut patterns = Vec::new();
        for payload in payloads {
            let coded = code::encode(&code::info_bits(payload));
            for (ki, (key_id, pattern)) in self.keys.iter().enumerate() {
                if *key_id == payload.key_id {
                    tiles.push((*key_id, pattern.carrying(&coded)));
                    patterns.push(pattern.clone());
                    named.push((ki, *payload));
                }
            }
        }
        if tiles.is_empty() {
            return None;
        }
        let variants = variants_of(&tiles);
        let keys = std::mem::replace(&mut self.keys, tiles);
        let variants = std::mem::replace(&mut self.variants, variants);
        self.known = Some(Known {
            payloads: named.iter().map(|n| n.1).collect(),
            patterns,
        });
        let mut found = self.result();
        self.keys = keys;
        self.variants = variants;
        self.known = None;
        found.key_index = found.key_index.map(|i| named[i].0);
        let match_p;
        (found.payload, match_p) =
            named_match(found.payload, found.payload_reading.take(), named.len());
        Some((found, match_p))
    }

    /// Where in the sealed clip's own time this copy's time 0 may lie, as another stream's
    /// mark registers it (the sound's: `AudioDetector::sealed_starts`): the readings of a
    /// turning mark at those times are searched too where the cheap tests chose none and
    /// the likeliest found nothing, as the one whose sum repeats over the lattice is —
    /// each on its own share of the other phases' budget, whatever chose it. A trimmed
    /// excerpt whose lattice does not stand out (bikes' 3 s excerpt rotated 3°: 4.6) is then
    /// read at its phase. Replaces the times given before; empty clears them.
    pub fn hint_sealed_starts(&mut self, times_s: &[f64]) {
        self.hinted_phases.clear();
        for &t in times_s.iter().filter(|t| t.is_finite()) {
            let k = (t / TURN_BIN_S).round().rem_euclid(TURN_PHASES as f64) as usize;
            if !self.hinted_phases.contains(&k) {
                self.hinted_phases.push(k);
            }
        }
    }

    /// Tests the whole clip only, not also its halves and quarters (see
    /// [`VideoDetector::result`]): for a sparse sample of a clip's frames (its key frames)
    /// whose result only decides whether a full scan must follow — the full scan searches
    /// the segments itself. Saves up to six registration searches (clips of 4 s or more)
    /// where the mark is not found. Upright first, then every orientation at the plain
    /// scales (a mirrored repost); not the wider scales or the lattice stage.
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
            self.grid = Some(AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS));
        }
        let grid = self.grid.as_ref().expect("grid just set");
        let (wa, ha) = grid.grid_size();
        let r = grid.residual(&y);
        let width = grid.width_in_analysis_pixels();
        self.accumulate(&r, wa, ha, frame.pts_s, Some(width));
        self.add_content_box(&y, (w, h), frame.pts_s, 0);
        self.add_riding(&y, (w, h), frame.pts_s, 0, &r);
        if self.wants_fine_residual() {
            let grid = fine_grid_of(&mut self.fine_grid, (w, h));
            let (wf, hf) = grid.grid_size();
            let r = grid.residual(&y);
            self.accumulate_fine(&r, wf, hf, frame.pts_s);
        }
    }

    /// Whether [`VideoDetector::result`] may run the fine stage, i.e. whether residuals
    /// handed in with [`VideoDetector::add_residual`] should come with their fine ones
    /// ([`VideoDetector::add_fine_residual`]): not for the key-frame pass
    /// ([`VideoDetector::whole_clip_only`]), which never runs the wider stages.
    pub fn wants_fine_residual(&self) -> bool {
        !self.whole_clip_only
    }

    /// Adds the fine analysis image of one frame, computed elsewhere (the candle model in
    /// `hallmark-detector`): [`AnalysisGrid::residual`](crate::AnalysisGrid::residual) of
    /// the frame's luma on `AnalysisGrid::with_rows(w, h, FINE_ANALYSIS_ROWS)`, row-major
    /// `grid_w × grid_h`, `grid_h` = [`fine_rows`]`(w, h)`, and `pts_s` the frame's time in
    /// seconds. Summed over the whole clip only (no timeline; per phase of the turning
    /// mark). Call it beside [`VideoDetector::add_residual`] for the frames it
    /// takes (every frame, or a sample of them: the fine stage only needs the clip's sum);
    /// it does not count as a frame. A residual whose rows are neither of [`fine_rows`]'s,
    /// whose length is not `grid_w·grid_h`, or that holds a non-finite value, is ignored.
    pub fn add_fine_residual(
        &mut self,
        residual: &[f32],
        grid_w: usize,
        grid_h: usize,
        pts_s: f64,
    ) {
        if !self.wants_fine_residual()
            || grid_w == 0
            || (grid_h != FINE_ANALYSIS_ROWS && grid_h != 2 * FINE_ANALYSIS_ROWS)
            || grid_w > MAX_GRID_ASPECT * grid_h
            || residual.len() != grid_w * grid_h
            || !residual.iter().all(|v| v.is_finite())
        {
            return;
        }
        self.accumulate_fine(residual, grid_w, grid_h, pts_s);
    }

    fn accumulate_fine(&mut self, r: &[f32], wa: usize, ha: usize, pts_s: f64) {
        add_fine(&mut self.fine, r, wa, ha, pts_s);
    }

    /// Adds the detector's pre-filtered analysis image of one frame, computed elsewhere
    /// (the candle model in `hallmark-detector`): `residual` is
    /// [`AnalysisGrid::residual`](crate::AnalysisGrid::residual) of the frame's luma,
    /// row-major `grid_w × grid_h`, and `pts_s` the frame's time in seconds. A residual
    /// whose length is not `grid_w·grid_h`, or that holds a non-finite value, is ignored.
    pub fn add_residual(&mut self, residual: &[f32], grid_w: usize, grid_h: usize, pts_s: f64) {
        self.add_checked_residual(residual, grid_w, grid_h, pts_s, None);
    }

    /// [`VideoDetector::add_residual`] of a `frame_w × frame_h` frame: with the frame's
    /// size the mirrored as-sealed registration knows where a flipped copy's analysis
    /// pixels lie against the sealed ones (the grid's width is the frame's rounded up).
    pub fn add_residual_of_frame(
        &mut self,
        residual: &[f32],
        (grid_w, grid_h): (usize, usize),
        (frame_w, frame_h): (usize, usize),
        pts_s: f64,
    ) {
        let width = crate::analysis::width_in_analysis_pixels(frame_w, frame_h, grid_h);
        // A size that does not give this grid is not this frame's: not used.
        let width = (width.ceil() as usize == grid_w).then_some(width);
        self.add_checked_residual(residual, grid_w, grid_h, pts_s, width);
    }

    /// A residual handed in from elsewhere, past the frame step and the checks
    /// [`VideoDetector::add_residual`] promises.
    fn add_checked_residual(
        &mut self,
        residual: &[f32],
        grid_w: usize,
        grid_h: usize,
        pts_s: f64,
        width: Option<f64>,
    ) {
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
        self.accumulate(residual, grid_w, grid_h, pts_s, width);
    }

    /// Adds one frame's residual to the running sums of its grid size.
    fn accumulate(&mut self, r: &[f32], wa: usize, ha: usize, pts_s: f64, width: Option<f64>) {
        let idx = slot(
            &mut self.accs,
            |a| a,
            wa,
            ha,
            |_| true,
            || Accum::new(wa, ha, width),
        );
        self.accs[idx].add(r, pts_s);
        self.frames += 1;
    }

    /// The picture inside the bars of one frame's luma (`w·h` bytes), when it has bars
    /// ([`content_box`]): its residual, on the box's own analysis grid, goes to the
    /// as-sealed test inside the box (see [`VideoDetector::result`]), and, followed along
    /// the camera's motion inside the box (`part` as for [`VideoDetector::add_riding`]),
    /// warped back to sums of its own for a riding mark. Call it for the frames whose
    /// residual was added ([`VideoDetector::add_frame`] does, as part 0); a frame without
    /// bars adds nothing.
    pub fn add_content_box(&mut self, y: &[u8], (w, h): (usize, usize), pts_s: f64, part: usize) {
        if w == 0 || h == 0 || y.len() < w * h {
            return;
        }
        // Bars, else an inset in other footage (picture-in-picture) once the frames so far
        // show one: the picture inside either is tested the same way.
        let at = content_box(y, w, h).or_else(|| {
            if self.inset.as_ref().is_none_or(|f| f.frame() != (w, h)) {
                self.inset = Some(InsetFinder::new(w, h));
            }
            self.inset.as_mut()?.add(y, pts_s, part)
        });
        let Some(at) = at else {
            return;
        };
        let (bw, bh) = (at.2, at.3);
        let picture = crop_luma(y, w, at);
        if self
            .box_grid
            .as_ref()
            .is_none_or(|g| g.frame_size() != (bw, bh))
        {
            self.box_grid = Some(AnalysisGrid::for_reading(bw, bh, ANALYSIS_ROWS));
        }
        let grid = self.box_grid.as_ref().expect("box grid just set");
        let r = grid.residual(&picture);
        add_box(&mut self.boxes, grid, (w, h), at, &r, pts_s);
        self.ride_box(y, (w, h), at, pts_s, part);
    }

    /// [`VideoDetector::add_content_box`]'s riding half: the box `at` of a `w × h` frame
    /// in decoding part `part`, followed by every candidate box that holds it (see
    /// [`BoxRide`]), or by a new one.
    fn ride_box(
        &mut self,
        y: &[u8],
        (w, h): (usize, usize),
        at: (usize, usize, usize, usize),
        pts_s: f64,
        part: usize,
    ) {
        if part >= MAX_PARTS {
            return;
        }
        if self.box_rides.len() <= part {
            self.box_rides.resize_with(part + 1, Vec::new);
            self.box_followed.resize(part + 1, None);
        }
        // One frame every FOLLOW_S per part votes and is followed, whatever the candidates:
        // a box that changes every frame (a dark edge moving) starts at most one ride there.
        let last = self.box_followed[part];
        if last.is_some_and(|l| pts_s - l < FOLLOW_S && pts_s >= l) {
            return;
        }
        self.box_followed[part] = Some(pts_s);
        let (sx, sy) = (box_slack(w), box_slack(h));
        // Per axis, `[a0, a0 + al)` inside `[b0, b0 + bl)` (within `sl`).
        let inside = |a0: usize, al: usize, b0: usize, bl: usize, sl: usize| {
            a0 + sl >= b0 && a0 + al <= b0 + bl + sl
        };
        let holds = |b: &BoxRide| {
            let (x0, y0, bw, bh) = b.at;
            b.frame == (w, h) && inside(at.0, at.2, x0, bw, sx) && inside(at.1, at.3, y0, bh, sy)
        };
        let same = |b: &BoxRide| b.frame == (w, h) && same_box((w, h), b.at, at);
        if let Some(b) = self.box_rides[part].iter_mut().find(|b| same(b)) {
            b.votes += 1;
        } else {
            let candidates = &mut self.box_rides[part];
            if candidates.len() >= MAX_BOX_RIDES {
                // The one seen least often (of equals, fed longest ago) makes room, and the
                // sums of a box no part follows any more go with it (so there are at most
                // as many sums as candidates).
                if let Some(i) = (0..candidates.len()).min_by(|&i, &j| {
                    let (a, b) = (&candidates[i], &candidates[j]);
                    a.votes.cmp(&b.votes).then(a.fed_s.total_cmp(&b.fed_s))
                }) {
                    candidates.remove(i);
                }
                let followed = &self.box_rides;
                self.box_ride_accs.retain(|s| {
                    followed
                        .iter()
                        .flatten()
                        .any(|c| c.frame == s.frame && same_box(c.frame, c.at, s.at))
                });
            }
            self.box_rides[part].push(BoxRide {
                frame: (w, h),
                at,
                grid: AnalysisGrid::for_reading(at.2, at.3, ANALYSIS_ROWS),
                ride: Ride::for_detector(at.2, at.3),
                fed_s: pts_s,
                votes: 1,
            });
        }
        for b in self.box_rides[part].iter_mut().filter(|b| holds(b)) {
            b.fed_s = pts_s;
            if !b.ride.follows(pts_s) {
                continue;
            }
            let (bw, bh) = (b.at.2, b.at.3);
            let picture = crop_luma(y, w, b.at);
            let m = b.ride.next(&picture, pts_s);
            let lagged = b.ride.since_lagged_anchors();
            // The picture warped back along motion `m`: its own residual at rest.
            let warp = |m: Motion| {
                if m.is_rest(bw, bh) {
                    Some(Cow::Owned(b.grid.residual(&picture)))
                } else {
                    b.grid.residual_warped(&picture, m).map(Cow::Owned)
                }
            };
            let own = m.and_then(|m| Some((m, warp(m)?)));
            if own.is_none() && lagged.iter().all(Option::is_none) {
                continue;
            }
            let (wa, ha) = b.grid.grid_size();
            let sums = &mut self.box_ride_accs;
            let i = match sums
                .iter()
                .position(|s| s.frame == (w, h) && same_box((w, h), s.at, b.at))
            {
                Some(i) => i,
                None => {
                    let width = b.grid.width_in_analysis_pixels();
                    let sums_of = || Accum::with_bins(wa, ha, width, RIDE_BOX_BINS);
                    sums.push(BoxAccum {
                        acc: sums_of(),
                        frame: (w, h),
                        at: b.at,
                        lagged: LAGS.iter().map(|_| sums_of()).collect(),
                    });
                    sums.len() - 1
                }
            };
            let sums = &mut sums[i];
            if (sums.acc.wa, sums.acc.ha) != (wa, ha) {
                continue;
            }
            for (acc, r) in sums
                .lagged
                .iter_mut()
                .zip(lagged_residuals(own.as_ref(), lagged, warp))
            {
                if let Some(r) = r {
                    acc.add(&r, pts_s);
                }
            }
            if let Some((_, r)) = &own {
                sums.acc.add(r, pts_s);
            }
        }
    }

    /// Follows the camera's motion for a mark that rides it (see README, "A mark that rides
    /// the camera"): `y` is a frame's luma (`w·h`), `part` the decoding part it came from
    /// (frames of one part in their order; a split scan's parts each from 0) and `residual`
    /// its residual as added ([`VideoDetector::add_residual_of_frame`], the 128-row grid).
    /// The frame, warped back along the motion since its anchor, goes to sums of its own
    /// that [`VideoDetector::result`] also tests when the picture moved. Call it for the
    /// frames whose residual was added ([`VideoDetector::add_frame`] does, as part 0).
    pub fn add_riding(
        &mut self,
        y: &[u8],
        (w, h): (usize, usize),
        pts_s: f64,
        part: usize,
        residual: &[f32],
    ) {
        if part >= MAX_PARTS || y.len() < w * h || w == 0 || h == 0 {
            return;
        }
        if self.rides.len() <= part {
            self.rides.resize_with(part + 1, || None);
        }
        let ride = &mut self.rides[part];
        if ride.as_ref().is_none_or(|r| r.frame_size() != (w, h)) {
            *ride = Some(Ride::for_detector(w, h));
        }
        let ride = ride.as_mut().expect("just set");
        if !ride.follows(pts_s) {
            return;
        }
        let m = ride.next(&y[..w * h], pts_s);
        let followed = ride.followed();
        if self
            .ride_grid
            .as_ref()
            .is_none_or(|g| g.frame_size() != (w, h))
        {
            self.ride_grid = Some(AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS));
        }
        let grid = self.ride_grid.as_ref().expect("ride grid just set");
        let (wa, ha) = grid.grid_size();
        if residual.len() != wa * ha {
            return;
        }
        if let Some(followed) = followed.filter(|_| self.phase_kept < PHASE_FRAMES) {
            if self.phase_log.len() <= part {
                self.phase_log.resize_with(part + 1, Vec::new);
            }
            self.phase_log[part].push(KeptFrame {
                pts_s,
                followed,
                frame: (w, h),
                grid: (wa, ha),
                residual: residual.to_vec(),
            });
            self.phase_kept += 1;
        }
        let lagged = ride.since_lagged_anchors();
        let width = grid.width_in_analysis_pixels();
        // The frame warped back along motion `m`: its own residual at rest.
        let warp = |m: Motion| {
            if m.is_rest(w, h) {
                Some(Cow::Borrowed(residual))
            } else {
                grid.residual_warped(y, m).map(Cow::Owned)
            }
        };
        let own = m.and_then(|m| Some((m, warp(m)?)));
        for (sums, r) in self
            .lag_accs
            .iter_mut()
            .zip(lagged_residuals(own.as_ref(), lagged, warp))
        {
            let Some(r) = r else {
                continue;
            };
            let idx = slot(
                sums,
                |a| a,
                wa,
                ha,
                |_| true,
                || Accum::with_bins(wa, ha, width, RIDE_BOX_BINS),
            );
            sums[idx].add(&r, pts_s);
        }
        let Some((m, r)) = &own else {
            return;
        };
        let idx = slot(
            &mut self.ride_accs,
            |a| a,
            wa,
            ha,
            |_| true,
            || Accum::new(wa, ha, Some(width)),
        );
        self.ride_accs[idx].add(r, pts_s);
        if self.wants_fine_residual() && h > w {
            let grid = fine_grid_of(&mut self.ride_fine_grid, (w, h));
            let (wf, hf) = grid.grid_size();
            if let Some(r) = grid.residual_warped(y, *m) {
                add_fine(&mut self.ride_fine, &r, wf, hf, pts_s);
            }
        }
    }

    /// The normalised sync correlation (z) of key `key_index` at one fixed registration,
    /// without any search. Under the null it is a normalised Rademacher sum, so
    /// `P(z ≥ t) ≤ exp(−t²/2)` and it is ≈ N(0,1): the calibration check of the statistic.
    pub fn score_at(&self, key_index: usize, scale: f64, shift: (usize, usize)) -> Option<f64> {
        let acc = self.accs.iter().max_by_key(|a| a.frames)?;
        let key = &self.variants.get(key_index)?[0];
        let f = fold(acc.sum(), acc.wa, acc.ha, scale, (0.0, 0.0));
        Some(z_at(&f, key, (shift.1 % TILE) * TILE + shift.0 % TILE))
    }

    /// The as-sealed registration of a summed residual image: scale 1, upright or mirrored
    /// horizontally (a repost is often flipped to dodge matching; [`SEALED_ORIENTATIONS`]
    /// hypotheses per key), where the embedder's tile lies on this grid (upright: phase 0,
    /// shifted back by ⌊n/2⌋ on a side of `n` — the embedder lays the tile from the grid's
    /// top-left corner, [`fold`] folds about its centre, so pixel ⌊n/2⌋ of either parity
    /// lands in bin 0; mirrored: see below), for the key and orientation that correlate
    /// best there. `width` is the frame's width in analysis pixels
    /// ([`crate::analysis::width_in_analysis_pixels`]). A copy that was not cropped, padded
    /// or turned — re-encoded, resized, recoloured, flipped — shows the mark here.
    fn as_sealed(&self, img: &[f32], wa: usize, ha: usize, width: f64) -> Registration {
        self.as_sealed_folded(&SealedFolds::of(img, wa, ha, width), wa, ha, width)
    }

    /// [`VideoDetector::as_sealed`] on the image's two folds ([`SealedFolds`]).
    fn as_sealed_folded(
        &self,
        folds: &SealedFolds,
        wa: usize,
        ha: usize,
        width: f64,
    ) -> Registration {
        let (f, mirrored_fold) = (&folds.upright, &folds.mirrored);
        let back = |n: usize| (TILE - n / 2 % TILE) % TILE;
        let upright = back(ha) * TILE + back(wa);
        let phase_x = wa as f64 / 2.0 - width;
        let mirrored = back(ha) * TILE + TILE - 1;
        let (z, key, orientation, shift, phase) = self
            .variants
            .iter()
            .enumerate()
            .flat_map(|(ki, v)| {
                [
                    (z_at(f, &v[0], upright), ki, 0, upright, PHASES[0]),
                    (
                        z_at(mirrored_fold, &v[1], mirrored),
                        ki,
                        1,
                        mirrored,
                        (phase_x, 0.0),
                    ),
                ]
            })
            .fold((f64::NEG_INFINITY, 0, 0, 0, PHASES[0]), |a, b| {
                if b.0 > a.0 {
                    b
                } else {
                    a
                }
            });
        Registration::unscaled(z, key, orientation, shift, phase, orientation == 1)
    }

    /// Scale 1 at every shift and phase, upright or mirrored ([`SHIFTED_ORIENTATIONS`]): the
    /// best registration. Each column shared among the chips it overlaps (`fold_area`): a
    /// crop at a whole frame pixel moves the tile by a fraction of an analysis pixel.
    fn at_scale_one(&self, img: &[f32], wa: usize, ha: usize) -> Registration {
        let mut work = Vec::with_capacity(TILE * TILE);
        PHASES
            .iter()
            .map(|&phase| {
                let f = fold_area(img, wa, ha, 1.0, phase);
                let (z, key, orientation, shift) =
                    self.best_over_keys(&f, SHIFTED_ORIENTATIONS, &mut work);
                Registration::unscaled(z, key, orientation, shift, phase, true)
            })
            .reduce(|a, b| if b.z > a.z { b } else { a })
            .expect("four phases")
    }

    /// The payload read at a registration of a summed residual image, and the coded-bit
    /// error estimate.
    fn payload_at(
        &self,
        reg: &Registration,
        img: &[f32],
        w: usize,
        h: usize,
    ) -> (Option<Payload>, f64) {
        self.reading_at(reg, img, w, h).decode(self.keys[reg.key].0)
    }

    /// The payload's coded bits as read at a registration of a summed residual image.
    fn reading_at(&self, reg: &Registration, img: &[f32], w: usize, h: usize) -> PayloadReading {
        let (_, key) = &self.keys[reg.key];
        let orientation = self.variants[reg.key][reg.orientation].orientation;
        PayloadReading::new(soft_payload(
            &reg.fold(img, w, h),
            key,
            orientation,
            reg.shift,
        ))
    }

    /// The registration search over summed residual images (one, or a clip's segments):
    /// the best (z, key index, orientation, scale, shift, phase) over every key, the first
    /// `orientations` of [`Orientation::ALL`], scale on `scales`, phase and shift, and the
    /// image it is on. Pass 1 searches phase 0 at every `stride`-th scale of every image,
    /// pass 2 every phase at the best scales of them all (not of each: where a stretch holds
    /// the mark, its scales lead; the others' neighbourhoods were most of the segments' cost,
    /// the plain stage of an unmarked 10 s 1080p clip 109 ms on its 10 segments against 24
    /// on the whole clip) and their neighbours on `scales`; the p-value counts the whole
    /// grid of every image, so searching part of it keeps the bound valid.
    #[allow(clippy::too_many_arguments)]
    fn search_among(
        &self,
        imgs: &[&[f32]],
        wa: usize,
        ha: usize,
        scales: &[f64],
        stride: usize,
        orientations: usize,
        area: bool,
        windowed: Option<f64>,
    ) -> Among {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        // Evaluates one (image, scale, phase): best (z, key index, orientation index,
        // shift, window) — over every window searched at that scale when `windowed`
        // (Some(the 128-row grid's rows over this image's)), else the whole image
        // (window 0).
        let evaluate =
            |ii: usize, si: usize, phase: (f64, f64), only: Option<usize>, work: &mut Vec<C>| {
                let img = imgs[ii];
                if let Some(ratio) = windowed {
                    let windows: Vec<usize> = (0..WINDOWS.len())
                        .filter(|&wi| {
                            only.is_none_or(|o| o == wi) && window_searched(wi, scales[si] * ratio)
                        })
                        .collect();
                    if windows.is_empty() {
                        return (f64::NEG_INFINITY, 0, 0, 0, 0);
                    }
                    let cells = fold_cells(img, wa, ha, scales[si], phase, only);
                    let folds: Vec<Vec<f64>> = windows
                        .iter()
                        .map(|&wi| {
                            let (x0, y0, x1, y1) = WINDOWS[wi];
                            let mut f = vec![0f64; TILE * TILE];
                            for cy in y0..y1 {
                                for cx in x0..x1 {
                                    for (a, b) in f.iter_mut().zip(&cells[cy * WINDOW_CELLS + cx]) {
                                        *a += b;
                                    }
                                }
                            }
                            f
                        })
                        .collect();
                    let mut best = (f64::NEG_INFINITY, 0, 0, 0, 0);
                    if orientations == 1 {
                        for (&wi, f) in windows.iter().zip(&folds) {
                            let (z, ki, oi, d) = self.best_over_keys(f, 1, work);
                            if z > best.0 {
                                best = (z, ki, oi, d, wi);
                            }
                        }
                        return best;
                    }
                    // The folds are real: two windows share each forward transform.
                    for (pair, two) in folds.chunks(2).enumerate() {
                        let hats = self
                            .fft
                            .run2d_real_pair(&two[0], two.get(1).map(Vec::as_slice));
                        for ((f, f_hat), &wi) in two.iter().zip(&hats).zip(&windows[2 * pair..]) {
                            let (z, ki, oi, d) = self.best_over_keys_hat(
                                f,
                                f_hat,
                                window_orientations(wi, orientations),
                                work,
                            );
                            if z > best.0 {
                                best = (z, ki, oi, d, wi);
                            }
                        }
                    }
                    best
                } else {
                    let f = fold_as(area, img, wa, ha, scales[si], phase);
                    let (z, ki, oi, d) = self.best_over_keys(&f, orientations, work);
                    (z, ki, oi, d, 0)
                }
            };
        // Scale 1 (unscaled) is always among the first pass's. A window is smaller than the
        // image, so a fold's drift between scales of the grid (¼ chip at the image's border
        // per step) is smaller at its border: the windowed first pass takes every other
        // scale of the whole image's (the picture-in-picture a window is for fills at most
        // three quarters of the side, most of the time half).
        let stride = stride.max(1) * if windowed.is_some() { 2 } else { 1 };
        let start = scales
            .iter()
            .position(|&x| x == 1.0)
            .map_or(0, |i| i % stride);
        let first: Vec<(usize, usize)> = (0..imgs.len())
            .flat_map(|ii| {
                (start..scales.len())
                    .step_by(stride)
                    .map(move |si| (ii, si))
            })
            .collect();
        let mut per_scale =
            vec![
                vec![(f64::NEG_INFINITY, 0usize, 0usize, 0usize, 0usize); scales.len()];
                imgs.len()
            ];
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (evaluate, first) = (&evaluate, &first);
                    sc.spawn(move || {
                        let mut work = Vec::with_capacity(TILE * TILE);
                        (t..first.len())
                            .step_by(threads)
                            .map(|i| {
                                let (ii, si) = first[i];
                                (first[i], evaluate(ii, si, PHASES[0], None, &mut work))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for ((ii, si), b) in h.join().expect("search thread panicked") {
                    per_scale[ii][si] = b;
                }
            }
        });
        let mut order = first.clone();
        order.sort_by(|a, b| per_scale[b.0][b.1].0.total_cmp(&per_scale[a.0][a.1].0));
        // Pass 2: the neighbours of the best scales (up to half a stride away) at every
        // phase; windowed, in the window that scale's first pass found best only.
        let reach = (stride / 2).max(1);
        let mut refine: Vec<(usize, usize, Option<usize>)> = order
            .iter()
            .take(REFINE_SCALES)
            .flat_map(|&(ii, si)| {
                let window = windowed.map(|_| per_scale[ii][si].4);
                (si.saturating_sub(reach)..=(si + reach).min(scales.len() - 1))
                    .map(move |n| (ii, n, window))
            })
            .collect();
        refine.sort_unstable();
        refine.dedup();
        let (best_ii, best0) = order[0];
        let b0 = per_scale[best_ii][best0];
        let mut best = Registration {
            z: b0.0,
            key: b0.1,
            orientation: b0.2,
            scale: scales[best0],
            shift: b0.3,
            phase: PHASES[0],
            area,
            map: None,
            window: windowed.map(|_| b0.4),
        };
        let mut best_image = best_ii;
        let mut image_z: Vec<f64> = per_scale
            .iter()
            .map(|p| p.iter().map(|b| b.0).fold(f64::NEG_INFINITY, f64::max))
            .collect();
        // A scale of the first pass has its phase 0 measured already (in its best window),
        // below the best found so far: not again.
        let measured = |si: usize| si >= start && (si - start).is_multiple_of(stride);
        let jobs: Vec<_> = refine
            .iter()
            .flat_map(|&(ii, si, w)| {
                PHASES
                    .iter()
                    .filter(move |&&ph| !(ph == PHASES[0] && measured(si)))
                    .map(move |&ph| (ii, si, ph, w))
            })
            .collect();
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (jobs, evaluate) = (&jobs, &evaluate);
                    sc.spawn(move || {
                        let mut work = Vec::with_capacity(TILE * TILE);
                        (t..jobs.len())
                            .step_by(threads)
                            .map(|j| {
                                let (ii, si, ph, w) = jobs[j];
                                (jobs[j], evaluate(ii, si, ph, w, &mut work))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for ((ii, si, ph, _), (z, ki, oi, d, wi)) in
                    h.join().expect("search thread panicked")
                {
                    image_z[ii] = image_z[ii].max(z);
                    if z > best.z {
                        best = Registration {
                            z,
                            key: ki,
                            orientation: oi,
                            scale: scales[si],
                            shift: d,
                            phase: ph,
                            area,
                            map: None,
                            window: windowed.map(|_| wi),
                        };
                        best_image = ii;
                    }
                }
            }
        });
        Among {
            best,
            image: best_image,
            image_z,
        }
    }

    /// Every orientation of the tile over `scales` (area-weighted fold; the first pass takes
    /// every `stride`-th scale), and its p-value with `weight`'s share of the error budget:
    /// every key × orientation × scale of the grid × phase × shift counted, searched or not.
    #[allow(clippy::too_many_arguments)]
    fn oriented_search(
        &self,
        sum: &[f32],
        wa: usize,
        ha: usize,
        scales: &[f64],
        stride: usize,
        weight: f64,
        windowed: Option<f64>,
    ) -> (Registration, f64) {
        // Every (window, orientation, scale) that may be searched.
        let window_scales: usize = match windowed {
            Some(ratio) => (0..WINDOWS.len())
                .map(|wi| {
                    let scales = scales
                        .iter()
                        .filter(|&&s| window_searched(wi, s * ratio))
                        .count();
                    window_orientations(wi, Orientation::ALL.len()) * scales
                })
                .sum(),
            None => Orientation::ALL.len() * scales.len(),
        };
        let hypotheses = (self.keys.len() * window_scales * PHASES.len() * TILE * TILE) as f64;
        let found = self
            .search_among(
                &[sum],
                wa,
                ha,
                scales,
                stride,
                Orientation::ALL.len(),
                true,
                windowed,
            )
            .best;
        let p = search_p(weight * hypotheses, found.z);
        (found, p)
    }

    /// The best (z, key index, orientation index, shift) of one fold over every key and the
    /// first `orientations` of [`Orientation::ALL`]. One forward transform serves them all.
    fn best_over_keys(
        &self,
        f: &[f64],
        orientations: usize,
        work: &mut Vec<C>,
    ) -> (f64, usize, usize, usize) {
        let mut best = (f64::NEG_INFINITY, 0usize, 0usize, 0usize);
        if orientations == 1 {
            let mut z_hat: Vec<C> = f.iter().map(|&v| C { re: v, im: v * v }).collect();
            self.fft.run2d(&mut z_hat, false);
            for (ki, variants) in self.variants.iter().enumerate() {
                let (z, d) = best_shift(&self.fft, &z_hat, &variants[0], work);
                if z > best.0 {
                    best = (z, ki, 0, d);
                }
            }
        } else {
            let mut f_hat: Vec<C> = f.iter().map(|&v| C { re: v, im: 0.0 }).collect();
            self.fft.run2d(&mut f_hat, false);
            best = self.best_over_keys_hat(f, &f_hat, orientations, work);
        }
        best
    }

    /// [`Self::best_over_keys`] for two or more orientations, with the fold's transform
    /// `f_hat` already made.
    fn best_over_keys_hat(
        &self,
        f: &[f64],
        f_hat: &[C],
        orientations: usize,
        work: &mut Vec<C>,
    ) -> (f64, usize, usize, usize) {
        let mut best = (f64::NEG_INFINITY, 0usize, 0usize, 0usize);
        for (ki, variants) in self.variants.iter().enumerate() {
            let variants = &variants[..orientations.min(variants.len())];
            for (pair, two) in variants.chunks(2).enumerate() {
                let found = best_shifts_two(&self.fft, f, f_hat, &two[0], two.get(1), work);
                for (i, (z, d)) in found.into_iter().enumerate() {
                    if z > best.0 {
                        best = (z, ki, 2 * pair + i, d);
                    }
                }
            }
        }
        best
    }

    /// The lattice stage's keyed search: every candidate map ([`candidate_maps`], chosen
    /// without the key) × its orientations × every shift, at phase 0; then the other
    /// half-chip phases for the [`LATTICE_REFINE`] best maps (all four phases are counted
    /// for every map). `None` when the image yields no candidate; else the best registration
    /// and the maps (indices) in order of their best z.
    fn search_maps(
        &self,
        img: &[f32],
        wa: usize,
        ha: usize,
        maps: &[Candidate],
    ) -> Option<(Registration, Vec<usize>)> {
        let evaluate = |&(mi, phase): &(usize, (f64, f64)), work: &mut Vec<C>| {
            let f = fold_map(img, wa, ha, &maps[mi].map, phase);
            self.best_over_keys(&f, maps[mi].orientations, work)
        };
        let mut jobs: Vec<(usize, (f64, f64))> =
            (0..maps.len()).map(|mi| (mi, PHASES[0])).collect();
        let mut found = par_map(&jobs, evaluate);
        let mut order: Vec<usize> = (0..maps.len()).collect();
        order.sort_by(|&a, &b| found[b].0.total_cmp(&found[a].0));
        let refine: Vec<(usize, (f64, f64))> = order
            .iter()
            .take(LATTICE_REFINE)
            .flat_map(|&mi| PHASES[1..].iter().map(move |&ph| (mi, ph)))
            .collect();
        found.extend(par_map(&refine, evaluate));
        jobs.extend(refine);
        // The maps again, by their z at their best phase.
        let mut best_z = vec![f64::NEG_INFINITY; maps.len()];
        for (&(mi, _), f) in jobs.iter().zip(&found) {
            best_z[mi] = best_z[mi].max(f.0);
        }
        order.sort_by(|&a, &b| best_z[b].total_cmp(&best_z[a]));
        jobs.iter()
            .zip(found)
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
            .map(|(&(mi, phase), (z, ki, oi, d))| {
                let (b1, b2) = maps[mi].map.lattice();
                let scale = TILE as f64 * 2.0 / (b1[0].hypot(b1[1]) + b2[0].hypot(b2[1]));
                Registration {
                    z,
                    key: ki,
                    orientation: oi,
                    scale,
                    shift: d,
                    phase,
                    area: false,
                    map: Some(maps[mi].map),
                    window: None,
                }
            })
            .map(|r| (r, order))
    }

    /// Runs the registration search and the tests on everything added so far: on the
    /// frames' sums and, when the frames had bars, on the picture inside them
    /// ([`VideoDetector::add_content_box`]); when the camera moved, also on the frames
    /// warped back along its motion ([`VideoDetector::add_riding`]). The smaller bound
    /// answers (a proven mark whose payload reads first).
    pub fn result(&self) -> VideoDetection {
        // The two halves at once: after the last frame the decoders' cores are free, and
        // each half's searches leave some of them idle.
        let (fixed, rode) = std::thread::scope(|sc| {
            let rode = sc.spawn(|| self.result_riding());
            let fixed = self.result_fixed();
            (fixed, rode.join().expect("the riding test panicked"))
        });
        let Some(rode) = rode else {
            return fixed;
        };
        // The frames warped back along the camera's motion (a riding mark): half the error
        // budget each, the mark at rest and the mark riding (a weighted Bonferroni bound,
        // the weights fixed by whether the picture moved, which the key does not decide).
        best_ranked(fixed.weighted(2.0), [rode.weighted(2.0)])
    }

    /// The riding half of [`VideoDetector::result`], on its own budget: the frames warped
    /// back along the camera's motion (the clip's own anchors, else their other phases)
    /// and the picture inside bars warped back along its own, where the camera moved.
    fn result_riding(&self) -> Option<VideoDetection> {
        let whole = self.riding_sums().map(|a| {
            // The clip's own anchors with most of the budget; where they do not prove the
            // mark with its payload, the other phases (a clip trimmed off its anchors) and
            // lagged anchors (a clip whose pictures lag their timestamps).
            let own = self.result_turned(a, Stages::Riding).weighted(OWN_WEIGHT);
            // (Proven after the riding half's own weighting, in `result`.)
            if own.clone().weighted(2.0).detected && own.payload.is_some() {
                return own;
            }
            // The two searches side by side: after the last frame a core is often idle.
            let (phase, lag) = std::thread::scope(|sc| {
                let lag = sc.spawn(|| self.lag_search(a));
                let phase = self.phase_search(a);
                (phase, lag.join().expect("the lag search panicked"))
            });
            best_ranked(own, [phase, lag].into_iter().flatten())
        });
        let boxed = self
            .box_riding_sums()
            .map(|b| (self.box_riding_answer(b), b));
        if whole.is_none() && boxed.is_none() {
            return None;
        }
        Some(VideoDetection {
            riding: true,
            ..self.with_box(whole, boxed)
        })
    }

    /// The two answers [`VideoDetector::result`] weighs, each with its own budget: the
    /// frames as they come (and the picture inside bars), and the riding sums, with whether
    /// `result` tests them (the camera moved). For checks and the lab.
    #[doc(hidden)]
    pub fn result_parts(&self) -> (VideoDetection, Option<(VideoDetection, bool)>) {
        let tested = self.riding_sums().is_some();
        let rode = self
            .ride_accs
            .iter()
            .max_by_key(|a| a.frames)
            .map(|a| (self.result_turned(a, Stages::Riding), tested));
        (self.result_fixed(), rode)
    }

    /// The riding test at lagged anchors alone ([`LAGS`]), with its share of the budget,
    /// where the camera moved. For checks and the lab.
    #[doc(hidden)]
    pub fn result_lagged(&self) -> Option<VideoDetection> {
        self.riding_sums().and_then(|a| self.lag_search(a))
    }

    /// The riding sums ([`VideoDetector::add_riding`]) when the mark may ride: the camera
    /// moved (a motion ridden) in half the steps followed or more (the camera moves of
    /// photo-pan, -zoom and -pushin: all of them). Otherwise the sums hold little more than
    /// the frames' own, and the test is not worth its cost.
    fn riding_sums(&self) -> Option<&Accum> {
        let acc = self.ride_accs.iter().max_by_key(|a| a.frames)?;
        camera_moved(self.rides.iter().flatten()).then_some(acc)
    }

    /// The riding test at the anchors' other phases ([`PHASES_SEARCHED`]): the kept frames
    /// ([`PHASE_FRAMES`]) of the riding sums' grid `acc`, each warped back on the grid (not
    /// at full resolution: the frames are gone) along its motion since the phase's last
    /// anchor, summed plainly and weighted as the turns at that phase read them (either
    /// sign); the as-sealed registration on each sum, the best phase's and reading's answer
    /// with its share of the budget (× the phases other than the clip's own × 3 readings).
    /// photo-zoom trimmed 1.3 s in and its 3 s excerpt from 1.5 s (bench seal, CRF 23):
    /// p 7.4e-48 and 7.3e-47; read at the clip's own turns they were 2.4e-6 and 4.1e-6.
    fn phase_search(&self, acc: &Accum) -> Option<VideoDetection> {
        let (wa, ha) = (acc.wa, acc.ha);
        let replay = |phase: f64, visit: &mut dyn FnMut(&KeptFrame, Motion)| {
            self.replay(Anchors::Phase(phase), (wa, ha), visit)
        };
        let phase_of = |j: usize| j as f64 * ANCHOR_S / PHASES_SEARCHED as f64;
        // A copy trimmed `T` seconds into the sealed clip has its anchors at `−T` (mod
        // ANCHOR_S) of its own time, and its turns there too (both fall on multiples of 2 s
        // of the sealed time): the anchors' phase names the turns' up to their sign. Per
        // anchor phase three readings — plain, and turning as sealed `T` or `T + TURN_S`
        // earlier (the two signs) — each a third of the phase's share.
        const _: () = assert!(TURN_S == ANCHOR_S);
        let kept: Vec<&KeptFrame> = self
            .phase_log
            .iter()
            .flatten()
            .filter(|f| f.grid == (wa, ha))
            .collect();
        // The weight of a frame at `t` read as turning, sealed `offset` s later: its sign
        // less the mean over the kept frames (0 where they all have one sign).
        let weights_at = |offset: f64| {
            let (plus, minus) = kept.iter().fold((0, 0), |(p, m), f| {
                if turn_sign(f.pts_s + offset) > 0.0 {
                    (p + 1, m)
                } else {
                    (p, m + 1)
                }
            });
            let mean = turn_mean(plus, minus);
            move |t: f64| f64::from(turn_sign(t + offset)) - mean
        };
        let offset_of = |j: usize| (ANCHOR_S - phase_of(j)).rem_euclid(ANCHOR_S);
        // Reading `i` of anchor phase `j`: 0 plain, 1 and 2 turning (offset, offset + TURN_S).
        let weight_of = |j: usize, i: usize| -> Box<dyn Fn(f64) -> f64 + Sync + '_> {
            match i {
                0 => Box::new(|_| 1.0),
                _ => Box::new(weights_at(offset_of(j) + (i - 1) as f64 * TURN_S)),
            }
        };
        // The phases' as-sealed z, spread over the search threads.
        let phases: Vec<usize> = (1..PHASES_SEARCHED).collect();
        let scored = par_map(&phases, |&j, _| {
            let readings: Vec<_> = (0..3).map(|i| weight_of(j, i)).collect();
            let mut sums = vec![vec![0f32; wa * ha]; readings.len()];
            let mut r = vec![0f32; wa * ha];
            let mut frames = 0;
            replay(phase_of(j), &mut |f, m| {
                r.iter_mut().for_each(|v| *v = 0.0);
                add_warped_on_grid(&mut r, &f.residual, f.grid, f.frame, acc.width, m);
                for (sum, w) in sums.iter_mut().zip(&readings) {
                    let w = w(f.pts_s) as f32;
                    sum.iter_mut().zip(&r).for_each(|(s, &v)| *s += w * v);
                }
                frames += 1;
            });
            (frames > 0).then(|| {
                sums.iter()
                    .enumerate()
                    .map(|(i, sum)| (self.as_sealed(sum, wa, ha, acc.width).z, j, i))
                    .reduce(|a, b| if b.0 > a.0 { b } else { a })
                    .expect("three readings")
            })
        });
        let best = scored
            .into_iter()
            .flatten()
            .reduce(|a, b| if b.0 > a.0 { b } else { a });
        let (_, j, i) = best?;
        let weight = weight_of(j, i);
        let mut sums = Accum::with_bins(wa, ha, acc.width, RIDE_BOX_BINS);
        replay(phase_of(j), &mut |f, m| {
            let mut r = vec![0f32; wa * ha];
            add_warped_on_grid(&mut r, &f.residual, f.grid, f.frame, acc.width, m);
            let w = weight(f.pts_s) as f32;
            r.iter_mut().for_each(|v| *v *= w);
            sums.add(&r, f.pts_s);
        });
        let found = self.result_on(&sums, Stages::RidingAsSealed, None);
        Some(found.weighted(3.0 * (PHASES_SEARCHED - 1) as f64 * PHASE_WEIGHT))
    }

    /// The riding test at lagged anchors ([`LAGS`]): the followed frames warped back along
    /// their motion since the lagged anchors, summed per lag (on the riding sums' grid
    /// `acc`); every stage but the fine one on the lag whose plain stages (as sealed, scale
    /// 1 at any shift, the plain search — every other scale, then the best scales of every
    /// lag's sums together, [`VideoDetector::search_among`]: the choice on the unmarked 10 s
    /// 1080p pan 180 → 90 ms; on the plain sum and on the sum read as a mark turning at
    /// the clip's own time) correlate best, its answer with its share
    /// of the budget × every lag (each lag's every hypothesis is counted, tested or not: the
    /// choice needs no other correction). On photo-pan's screen recording (a keystone: the
    /// lattice stage proves it) on two seals the right lag's plain z was 5.7 against 3.5
    /// and 3.9, and 7.0 against 5.8 and 4.5 — the as-sealed and scale-1 stages alone chose
    /// a wrong lag on the second (3.4 against 3.8 and 3.8), the key-free lattice score on both.
    fn lag_search(&self, acc: &Accum) -> Option<VideoDetection> {
        let (wa, ha) = (acc.wa, acc.ha);
        let scales = scale_grid(wa.max(ha));
        let sums: Vec<&Accum> = self
            .lag_accs
            .iter()
            .filter_map(|sums| {
                sums.iter()
                    .find(|s| (s.wa, s.ha) == (wa, ha) && s.frames > 0)
            })
            .collect();
        // Each lag's plain sum and its sum read as turning at the clip's own time.
        let turned: Vec<Option<ExactSum>> = sums.iter().map(|s| s.turned_sum(0)).collect();
        let images: Vec<(usize, &[f32])> = sums
            .iter()
            .zip(&turned)
            .enumerate()
            .flat_map(|(lag, (s, t))| {
                std::iter::once((lag, s.sum())).chain(t.as_ref().map(|t| (lag, t.image())))
            })
            .collect();
        if images.is_empty() {
            return None;
        }
        // The plain search over every lag's images at once: pass 2 refines the best scales
        // of them all (the lag whose sums correlate best leads, and only its z decides).
        let searched = self.search_among(
            &images.iter().map(|&(_, img)| img).collect::<Vec<_>>(),
            wa,
            ha,
            &scales,
            LAG_CHOICE_STRIDE,
            1,
            false,
            None,
        );
        let mut lag_z = vec![f64::NEG_INFINITY; sums.len()];
        for (&(lag, img), &searched_z) in images.iter().zip(&searched.image_z) {
            let z = self.as_sealed(img, wa, ha, acc.width).z;
            let z = z.max(self.at_scale_one(img, wa, ha).z).max(searched_z);
            lag_z[lag] = lag_z[lag].max(z);
        }
        let best = sums
            .iter()
            .zip(&lag_z)
            .map(|(s, &z)| (z, *s))
            .reduce(|a, b| if b.0 > a.0 { b } else { a })?
            .1;
        let found = self.result_turned(best, Stages::RidingLagged);
        Some(found.weighted(LAGS.len() as f64 * LAG_WEIGHT))
    }

    /// Replays the riding rule for anchors `anchors` over the kept frames of grid `grid`:
    /// each one's residual and its motion since its anchor, where known.
    fn replay(
        &self,
        anchors: Anchors,
        grid: (usize, usize),
        visit: &mut dyn FnMut(&KeptFrame, Motion),
    ) {
        for part in &self.phase_log {
            let (mut since, mut last) = (None, None);
            for f in part {
                since = since_anchor(since, last, f.pts_s, f.followed, anchors);
                last = Some(f.pts_s);
                if let Some(m) = since.filter(|_| f.grid == grid) {
                    visit(f, m);
                }
            }
        }
    }

    /// The picture inside bars warped back along the camera's motion inside them (the box
    /// with the most frames), when it moved (as [`VideoDetector::riding_sums`] decides
    /// for the whole frame, on the rides of that box).
    fn box_riding_sums(&self) -> Option<&BoxAccum> {
        self.box_riding().filter(|b| b.1).map(|b| b.0)
    }

    /// The riding sums of a box where the camera moved (of those, the one with the most
    /// frames; else the box with the most frames), and whether it moved there. A box that
    /// holds the picture and more (bars misread early, an inset found late) may have more
    /// frames and no motion of its own.
    fn box_riding(&self) -> Option<(&BoxAccum, bool)> {
        let moved = |b: &BoxAccum| {
            let rides = self
                .box_rides
                .iter()
                .flatten()
                .filter(|c| c.frame == b.frame && same_box(c.frame, c.at, b.at))
                .map(|c| &c.ride);
            camera_moved(rides)
        };
        self.box_ride_accs
            .iter()
            .map(|b| (b, moved(b)))
            .max_by_key(|(b, m)| (*m, b.acc.frames))
    }

    /// The riding answer inside bars, on its own budget, with whether
    /// [`VideoDetector::result`] tests it (the camera moved there). For checks and the lab.
    #[doc(hidden)]
    pub fn riding_in_bars(&self) -> Option<(VideoDetection, bool)> {
        self.box_riding()
            .map(|(b, moved)| (self.box_riding_answer(b), moved))
    }

    /// The riding test inside bars on the box's sums `b`: as sealed at the clip's own
    /// anchors with most of the budget (1 − 1/[`LAG_WEIGHT`]); where that does not prove
    /// the mark with its payload, as sealed at each lagged anchor ([`LAGS`], the rest of
    /// the budget shared among them), the best answer.
    fn box_riding_answer(&self, b: &BoxAccum) -> VideoDetection {
        let own = self
            .result_turned(&b.acc, Stages::RidingAsSealed)
            .weighted(LAG_WEIGHT / (LAG_WEIGHT - 1.0));
        // (Proven after the riding half's own weighting, in `result`.)
        if own.clone().weighted(2.0 * BOX_WEIGHT).detected && own.payload.is_some() {
            return own;
        }
        let lagged = b.lagged.iter().filter(|a| a.frames > 0).map(|a| {
            self.result_turned(a, Stages::RidingAsSealed)
                .weighted(LAGS.len() as f64 * LAG_WEIGHT)
        });
        best_ranked(own, lagged)
    }

    /// [`VideoDetector::result`] on the frames as they come (the mark at rest) and the
    /// picture inside bars.
    fn result_fixed(&self) -> VideoDetection {
        let Some(acc) = self.accs.iter().max_by_key(|a| a.frames) else {
            return self.nothing();
        };
        let whole = self.result_turned(acc, Stages::All);
        let boxed = self
            .boxes
            .iter()
            .max_by_key(|b| b.acc.frames)
            .map(|b| (self.result_turned(&b.acc, Stages::AsSealed), b));
        self.with_box(Some(whole), boxed)
    }

    /// One answer from the test on the frames' own grid (`whole`) and the as-sealed test
    /// of the picture inside their bars (`boxed`, with its sums), where there are both: a
    /// share 1/BOX_WEIGHT of the error budget to the box, the rest to the frames (a
    /// weighted Bonferroni bound, the weights fixed by whether the frames have bars, which
    /// the key does not decide); the one there is has it all.
    fn with_box(
        &self,
        whole: Option<VideoDetection>,
        boxed: Option<(VideoDetection, &BoxAccum)>,
    ) -> VideoDetection {
        let Some((boxed, b)) = boxed else {
            return whole.unwrap_or_else(|| self.nothing());
        };
        let (whole, boxed) = match whole {
            Some(whole) => (
                Some(whole.weighted(BOX_WEIGHT / (BOX_WEIGHT - 1.0))),
                boxed.weighted(BOX_WEIGHT),
            ),
            None => (None, boxed),
        };
        // The smaller p answers, unless the box proves the mark with its payload: then the
        // box is where the picture is (to the pixel), where the frames' own answer only
        // estimates its region. (Either answer's p is valid on its own share.)
        let box_proves = boxed.detected && boxed.payload.is_some();
        if let Some(whole) = whole.filter(|w| boxed.p_value >= w.p_value && !box_proves) {
            return whole;
        }
        let ((fw, fh), (x0, y0, bw, bh)) = (b.frame, b.at);
        let (fw, fh) = (fw as f64, fh as f64);
        VideoDetection {
            frames_analysed: self.frames,
            family_size: boxed.family_size,
            // The frame's grid against the box's: the picture is that much smaller.
            scale: boxed.scale.map(|s| s * fh / bh as f64),
            region: boxed.region.map(|r| Region {
                x: (x0 as f64 + r.x * bw as f64) / fw,
                y: (y0 as f64 + r.y * bh as f64) / fh,
                w: r.w * bw as f64 / fw,
                h: r.h * bh as f64 / fh,
            }),
            ..boxed
        }
    }

    /// What [`VideoDetector::result`] says without a frame or a key.
    fn nothing(&self) -> VideoDetection {
        VideoDetection {
            detected: false,
            inconclusive: false,
            p_value: 1.0,
            presence_p: 1.0,
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
            orientation: None,
            wide_search: false,
            region: None,
            warp: None,
            riding: false,
            payload_reading: None,
            weak_reading: None,
        }
    }

    /// [`VideoDetector::result_on`] on the sums `acc` read the way the mark was most likely
    /// sealed: turning over every [`TURN_S`] at the clip's own time (phase 0: a copy that
    /// kept its timestamps), at another phase (a trimmed excerpt), or with one sign
    /// throughout (sealed before the mark turned; a clip too short to hold a turn). Each
    /// reading has its own share of the error budget ([`PLAIN_TURN_WEIGHT`],
    /// [`OWN_TURN_WEIGHT`], [`OTHER_TURN_WEIGHT`]), so choosing one by the data needs no
    /// other correction: the answer's p is the chosen reading's times its weight. The
    /// likeliest reading (phase 0 where the bins allow it, else the plain sum) takes the
    /// search unless another's cheap stages (as sealed and scale 1 on the whole clip, as
    /// sealed on its segments: a few ms each) give a p below [`TURN_CHOICE_P`] and smaller
    /// — the wider stages run once, on the chosen reading.
    fn result_turned(&self, acc: &Accum, stages: Stages) -> VideoDetection {
        let weight_of = |turn: Option<usize>| match turn {
            None => PLAIN_TURN_WEIGHT,
            Some(0) => OWN_TURN_WEIGHT,
            Some(_) => OTHER_TURN_WEIGHT,
        };
        let likeliest = acc.turn_weights(0).map(|_| 0);
        // The readings there are besides the likeliest (the plain sum always is).
        let others: Vec<Option<usize>> = std::iter::once(None)
            .chain((0..TURN_PHASES).map(Some))
            .filter(|&t| t != likeliest && t.is_none_or(|k| acc.turn_weights(k).is_some()))
            .collect();
        let mut chosen_cheaply = false;
        let choice = if self.keys.is_empty() || others.is_empty() {
            likeliest
        } else {
            let sealed_only = matches!(stages, Stages::AsSealed | Stages::RidingAsSealed);
            let (wa, ha) = (acc.wa, acc.ha);
            let keys = self.keys.len() as f64;
            // The segments too, as sealed: a stretch spliced into a long file has its own
            // phase, which the whole file's sum drowns.
            let segments = self.segments(acc, stages);
            let family = (1 + segments.len()) as f64;
            // Each timeline bin folded once: a reading's folds, whole or of a segment, are
            // the weighted sums of its bins' (the unmarked 10 s 1080p clip's choice: 100 →
            // 40 ms, where each reading's every segment was summed and folded anew).
            let bins: Vec<(usize, SealedFolds)> = acc
                .bins
                .iter()
                .map(|(i, (sum, _))| (i, SealedFolds::of(sum.image(), wa, ha, acc.width)))
                .collect();
            let cheap_p = |turn: Option<usize>| -> Option<f64> {
                let weights: Vec<f64> = match turn {
                    None => vec![1.0; bins.len()],
                    Some(k) => acc.turn_weights(k)?.into_iter().map(|(_, w)| w).collect(),
                };
                let folds_over = |from: usize, to: usize| {
                    let mut folds = SealedFolds::zeros();
                    for ((i, bin), &w) in bins.iter().zip(&weights) {
                        if (from..to).contains(i) {
                            folds.add_scaled(bin, w);
                        }
                    }
                    folds
                };
                let weight = weight_of(turn) * family;
                let sealed_p = |folds: &SealedFolds| {
                    let z = self.as_sealed_folded(folds, wa, ha, acc.width).z;
                    search_p(weight * keys * SEALED_ORIENTATIONS as f64, z)
                };
                let mut p = sealed_p(&folds_over(0, usize::MAX));
                if !sealed_only {
                    let turned;
                    let img = match turn {
                        None => acc.sum(),
                        Some(k) => {
                            turned = acc.turned_sum(k)?;
                            turned.image()
                        }
                    };
                    let shifts = (SHIFTED_ORIENTATIONS * PHASES.len() * TILE * TILE) as f64;
                    let z = self.at_scale_one(img, wa, ha).z;
                    p = p.min(search_p(weight * keys * shifts, z));
                }
                for &(from, to) in &segments {
                    p = p.min(sealed_p(&folds_over(from, to)));
                }
                Some(p)
            };
            let mut best = (likeliest, cheap_p(likeliest).unwrap_or(1.0));
            // A reading that proves the mark at a glance settles it.
            if best.1 > DETECT_P * 1e-6 {
                for turn in others {
                    if let Some(p) = cheap_p(turn) {
                        if p < TURN_CHOICE_P && p < best.1 {
                            best = (turn, p);
                        }
                    }
                }
            }
            chosen_cheaply = best.1 < TURN_CHOICE_P;
            best.0
        };
        let found = match choice.and_then(|k| Some((k, acc.turned(k)?))) {
            Some((k, turned)) => self.result_on(&turned, stages, Some(k)),
            None => self.result_on(acc, stages, None),
        }
        .weighted(weight_of(choice));
        // The cheap tests see nothing through a rotation, a mirror with a crop or a zoom: an
        // excerpt so edited was read at the clip's own phase only (lost where its turns are
        // off by a quarter period: the bench's 3 s excerpt rotated 3°, p 1 on gen-street and
        // gen-beach). Where they chose no reading and the own one found nothing, the one
        // whose sum repeats most over the tile's lattice (key-free: a turned reading cancels
        // what holds still, the right one keeps the mark's lattice) is searched too, with
        // both signs, each on its own share of the other phases' budget, which no reading
        // used (gen-street 3.8e-78, gen-beach 2.3e-66; on the riding sums photo-zoom
        // 4.0e-48). Under a moving camera a reading's alternating signs sum the content into
        // copies of one sign 4 s of motion apart, a periodic pattern of its own (the unmarked
        // 10 s 1080p pan stood out by 16–21, its riding sums, whose warps restart every 2 s,
        // as much): the lags along the camera's path are left out of the lattice's.
        let searched = matches!(stages, Stages::All | Stages::Riding);
        if chosen_cheaply
            || !searched
            || self.keys.is_empty()
            || (found.detected && found.payload.is_some())
        {
            return found;
        }
        // The lattice's reading (both signs), then those another stream's registration
        // names, each phase once.
        let periodic = self
            .camera_lags((acc.wa, acc.ha))
            .and_then(|lags| self.periodic_reading(acc, &lags));
        let mut phases: Vec<usize> = Vec::new();
        for k in periodic
            .into_iter()
            .flat_map(|k| [k, k + TURN_PHASES / 2])
            .chain(self.hinted_phases.iter().copied())
        {
            if Some(k) != choice && k != 0 && !phases.contains(&k) {
                phases.push(k);
            }
        }
        let extra = phases
            .into_iter()
            .filter_map(|k| Some((k, acc.turned(k)?)))
            .map(|(k, turned)| {
                self.result_on(&turned, stages, Some(k))
                    .weighted(OTHER_TURN_WEIGHT)
            })
            .collect::<Vec<_>>();
        best_ranked(found, extra)
    }

    /// The camera's path (analysis pixels of the grid `(wa, ha)`): from each kept frame,
    /// the segments between the later kept frames' displacements from it, within one shot.
    /// A turned reading of content under a moving camera repeats itself along it
    /// ([`crate::lattice::periodicity`] leaves it out; the unmarked 10 s 1080p pan's peak
    /// lay at its 4 s displacement, (54, 75), and the ridge along it stood out too).
    /// `None` where the camera moved and the kept frames do not tell all of it (the log
    /// filled up, or they are of another grid).
    fn camera_lags(&self, (wa, ha): (usize, usize)) -> Option<Vec<LagSegment>> {
        let mut lags = Vec::new();
        let mut all_kept = self.phase_kept < PHASE_FRAMES;
        for part in &self.phase_log {
            // Each kept frame's motion since its shot began, and the shot.
            let mut shot = 0usize;
            let mut since: Option<Motion> = None;
            let mut track = Vec::with_capacity(part.len());
            for f in part {
                since = match f.followed {
                    Followed::Start | Followed::Cut => {
                        shot += 1;
                        Some(Motion::REST)
                    }
                    Followed::Step(step) => since.map(|m| m.then(step)),
                };
                if f.grid != (wa, ha) {
                    all_kept = false;
                    continue;
                }
                if let Some(m) = since {
                    track.push((shot, m, ha as f64 / f.frame.1 as f64));
                }
            }
            // Every chord of the camera's path within a shot, as segments between
            // consecutive kept frames.
            for (i, &(shot, m, to_grid)) in track.iter().enumerate() {
                let rel = |n: &Motion| {
                    (
                        (n.shift.0 - m.shift.0) * to_grid,
                        (n.shift.1 - m.shift.1) * to_grid,
                    )
                };
                for pair in track[i..].windows(2) {
                    if pair[1].0 != shot {
                        break;
                    }
                    lags.push((rel(&pair[0].1), rel(&pair[1].1)));
                }
            }
        }
        (all_kept || !camera_moved(self.rides.iter().flatten())).then_some(lags)
    }

    /// The turning mark's reading (of the first half of the period: each is the next
    /// half's with the sign turned) whose sum repeats most over the tile's lattice
    /// ([`crate::lattice::periodicity`]), where it stands out by [`PERIODIC_STANDOUT`] or more.
    fn periodic_reading(&self, acc: &Accum, camera_lags: &[LagSegment]) -> Option<usize> {
        // On every core: after the last frame, ≈ 9 ms each at 16:9.
        let readings: Vec<usize> = (0..TURN_PHASES / 2).collect();
        let left_out = LeftOutLags::new(camera_lags);
        let (k, standout) = par_map(&readings, |&k, _| {
            let sum = acc.turned_sum(k)?;
            Some((
                k,
                crate::lattice::periodicity(sum.image(), acc.wa, acc.ha, &left_out)?,
            ))
        })
        .into_iter()
        .flatten()
        .reduce(|a, b| if b.1 > a.1 { b } else { a })?;
        (standout >= PERIODIC_STANDOUT).then_some(k)
    }

    /// The segments of `acc` that [`VideoDetector::result_on`] tests beside the whole clip
    /// (timeline bins `[from, to)`). The riding sums are tested whole (a riding mark is a
    /// generated clip's camera move, not a stretch spliced into other footage).
    fn segments(&self, acc: &Accum, stages: Stages) -> Vec<(usize, usize)> {
        let whole_only = matches!(
            stages,
            Stages::Riding | Stages::RidingAsSealed | Stages::RidingLagged
        );
        if self.whole_clip_only || whole_only {
            return Vec::new();
        }
        // On whole seconds at least, as the timeline is reported: bins narrower than that
        // (a turning mark's phases) would test more and shorter windows.
        let group = acc.bins.timeline_group();
        let width = acc.bins.width_s() * group as f64;
        segment_windows(acc.bins.len().div_ceil(group), width)
            .into_iter()
            .map(|(from, to)| (from * group, to * group))
            .filter(|&(from, to)| {
                let frames: u64 = acc.bins.range(from, to).map(|b| b.1).sum();
                frames > 0 && frames < acc.frames
            })
            .collect()
    }

    /// The tests on the sums `acc`: the stages `stages` names; the fine sums read as `turn`
    /// ([`FineAccum::image`]: `acc` is read so too).
    fn result_on(&self, acc: &Accum, stages: Stages, turn: Option<usize>) -> VideoDetection {
        let sealed_only = matches!(stages, Stages::AsSealed | Stages::RidingAsSealed);
        let empty = self.nothing();
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
        // union of those tests, and once the whole clip alone proves the mark within it and
        // its payload reads there the segments are not searched (reporting family × p_whole,
        // an upper bound).
        let segments = self.segments(acc, stages);
        let family = (1 + segments.len()) as f64;
        // The wider searches run only when the plain one does not prove the mark with its
        // payload (one that detects without it, a weak registration near the true one, left
        // a slanted pan undetected once the riding half's weight applied): every orientation
        // at scales 0.4–2.5, then the lattice stage (rotation, anamorphic stretch). The
        // test spends an eighth of its error budget on the as-sealed registration, an eighth
        // on scale 1 at any shift, a quarter on the plain stage and a quarter on each wider
        // one (a weighted Bonferroni
        // bound over the five families: p = min(8·p_sealed, 8·p_shifted, 4·p_plain, 4·p_wide,
        // 4·p_lattice) is valid for the procedure whichever stage answers, and a stage that
        // does not run only leaves the reported p larger). The key-frame pass
        // (`whole_clip_only`, few frames, must stay quick) keeps the first three and gives the
        // other half to every orientation at the plain scales — a mirrored repost is proven
        // from its key frames instead of falling to the full scan.
        // Before any search, the as-sealed registration (two hypotheses per key and test):
        // when it proves the mark, the searches are not run (their answer could only be
        // reported with a larger bound, the registration being the same or a chance one).
        let wide = !self.whole_clip_only && !sealed_only;
        let hypotheses = (self.keys.len() * scales.len() * PHASES.len() * TILE * TILE) as f64;
        let p_of = |z: f64| search_p(PLAIN_WEIGHT * family * hypotheses, z);
        let shifted_hypotheses =
            (self.keys.len() * SHIFTED_ORIENTATIONS * PHASES.len() * TILE * TILE) as f64;
        let p_shifted = |z: f64| search_p(SHIFTED_WEIGHT * family * shifted_hypotheses, z);
        let sealed_weight = if sealed_only { 1.0 } else { SEALED_WEIGHT };
        let p_sealed = |z: f64| {
            search_p(
                sealed_weight * family * (self.keys.len() * SEALED_ORIENTATIONS) as f64,
                z,
            )
        };
        // The segments' sums, kept: every stage below may test them.
        let segment_sums: Vec<ExactSum> = segments
            .iter()
            .map(|&(from, to)| acc.range_sum(from, to))
            .collect();
        // An answer is final when it proves the mark and its payload reads there: the
        // whole clip may prove a stretch that the other footage drowns for the payload
        // (the as-sealed test needs z ≈ 6, the payload more), and the stretch's own test,
        // already counted in the family, reads it.
        // Every p below is the search's p with the payload's evidence ([`with_payload`]):
        // the payload is decoded where it could prove the mark. Beside it, the p the
        // mark's presence alone gives (for the report).
        let proven = |reg: &Registration, sum: &[f32], (w, h): (usize, usize), p: f64| {
            Proof::answer(p, self.known.is_some(), || {
                self.payload_at(reg, sum, w, h).0.is_some()
            })
        };
        // A stage's answer: its registration of the whole clip, then — unless that one is
        // final — the best over every segment too (`find`'s flag: the whole clip); with its
        // p and whether it is final.
        let segment_images: Vec<&[f32]> = segment_sums.iter().map(ExactSum::image).collect();
        let stage = |find: &StageSearch, p: &dyn Fn(f64) -> f64| {
            let mut best = (find(&[acc.sum()], true).0, acc.sum());
            let mut proof = proven(&best.0, best.1, (wa, ha), p(best.0.z));
            if !proof.is_final() && !segment_images.is_empty() {
                let (found, i) = find(&segment_images, false);
                if found.z > best.0.z {
                    best = (found, segment_images[i]);
                }
                proof = proven(&best.0, best.1, (wa, ha), p(best.0.z));
            }
            (best, proof)
        };
        // The as-sealed registration (one fold per test); then, unless final, scale 1 at
        // every shift, upright or mirrored — a copy cropped to another aspect at its full
        // height (9:16 or 1:1 from 16:9, perhaps rescaled), or cut at the sides, keeps the
        // seal's grid but not its origin; then, unless final, the plain search (segments
        // every other scale, refined at the best scales of them all). Of the answers the
        // final one, else the one with the smaller p (ties: the earlier).
        let mut answers = vec![stage(
            &|imgs, _| best_of_each(imgs, |img| self.as_sealed(img, wa, ha, acc.width)),
            &p_sealed,
        )];
        if !answers[0].1.is_final() && !sealed_only {
            answers.push(stage(
                &|imgs, _| best_of_each(imgs, |img| self.at_scale_one(img, wa, ha)),
                &p_shifted,
            ));
        }
        if !answers.iter().any(|a| a.1.is_final()) && !sealed_only {
            answers.push(stage(
                &|imgs, whole| {
                    let stride = if whole { 1 } else { SEGMENT_STRIDE };
                    let found = self.search_among(imgs, wa, ha, &scales, stride, 1, false, None);
                    (found.best, found.image)
                },
                &p_of,
            ));
        }
        let ((reg, summed), proof) = answers
            .into_iter()
            .reduce(|a, b| if b.1.rank() > a.1.rank() { b } else { a })
            .expect("the as-sealed answer is always there");
        let mut best = Answer {
            reg,
            summed,
            proof,
            wide_search: false,
            fine: None,
        };
        if self.whole_clip_only && stages == Stages::All && !best.proof.is_final() {
            let (found, p) =
                self.oriented_search(acc.sum(), wa, ha, &scales, 1, KEY_FRAME_WEIGHT, None);
            let proof = proven(&found, acc.sum(), (wa, ha), p);
            best.offer(found, acc.sum(), proof, None);
        }
        // With a fine residual (same frame shape: twice the rows) the fine stage takes the
        // scales above FINE_SCALE_MIN, and the three wider stages share half the budget.
        // The fine sum of the same frame shape: `r` times the rows, and the columns of `r`
        // times as many (each grid's width is its own rounding up).
        // The riding sums' fine sums are the same frames warped back on the fine grid.
        let fines: &[FineAccum] = match stages {
            Stages::Riding => &self.ride_fine,
            Stages::RidingLagged => &[],
            _ => &self.fine,
        };
        // The fine sum read as `acc` is.
        let fine_sum = fines
            .iter()
            .filter(|f| {
                f.ha.is_multiple_of(ha) && f.ha > ha && f.wa.abs_diff(f.ha / ha * wa) < f.ha / ha
            })
            .max_by_key(|f| f.frames)
            .map(|f| (f, f.image(turn)));
        let fine = fine_sum.as_ref().map(|(f, _)| *f);
        let (wide_weight, lattice_weight) = if fine.is_some() {
            (WIDER_WEIGHT_WITH_FINE, WIDER_WEIGHT_WITH_FINE)
        } else {
            (WIDE_WEIGHT, LATTICE_WEIGHT)
        };
        if wide && !best.proof.is_final() {
            let scales = if fine.is_some() {
                wide_scale_grid_below_fine(wa.max(ha))
            } else {
                wide_scale_grid(wa.max(ha))
            };
            let (found, p) =
                self.oriented_search(acc.sum(), wa, ha, &scales, WIDE_STRIDE, wide_weight, None);
            let proof = proven(&found, acc.sum(), (wa, ha), p);
            best.offer(found, acc.sum(), proof, None);
        }
        if wide && !best.proof.is_final() {
            // The maps are chosen from the residual alone, never the key: under the null
            // each is a fixed registration given the content, so the bound counts every
            // one that may be tested (all of them, even when fewer are found) × its
            // orientations, phases and shifts.
            let maps = candidate_maps(acc.sum(), wa, ha);
            let per_key = ROTATION_CANDIDATES * 2 + LATTICE_MAPS * Orientation::ALL.len();
            let hypotheses = (self.keys.len() * per_key * PHASES.len() * TILE * TILE) as f64;
            // The candidates take ¾ of the stage's share, their nudges ¼ ([`NUDGE_SHARE`]).
            let own_share = NUDGE_SHARE / (NUDGE_SHARE - 1.0);
            if let Some((found, led)) = self.search_maps(acc.sum(), wa, ha, &maps) {
                let z = found.z;
                let p = search_p(own_share * lattice_weight * hypotheses, z);
                let proof = proven(&found, acc.sum(), (wa, ha), p);
                best.offer(found, acc.sum(), proof, None);
                if z >= NUDGE_MIN_Z && !best.proof.is_final() {
                    let nudged = nudged_maps(&maps, &led);
                    if let Some((found, _)) = self.search_maps(acc.sum(), wa, ha, &nudged) {
                        let weight = NUDGE_SHARE * lattice_weight * NUDGES as f64;
                        let p = search_p(weight * hypotheses, found.z);
                        let proof = proven(&found, acc.sum(), (wa, ha), p);
                        best.offer(found, acc.sum(), proof, None);
                    }
                }
            }
        }
        // The fine stage: every orientation at the scales where the picture is shown
        // smaller than sealed, on the whole clip's fine sum (every hypothesis of its grid
        // counted, searched or not).
        if let Some((f, img)) = fine_sum.as_ref().filter(|_| wide && !best.proof.is_final()) {
            let img = img.image();
            let scales = fine_scale_grid(f.wa.max(f.ha), (f.ha / ha) as f64);
            let (found, p) = self.oriented_search(
                img,
                f.wa,
                f.ha,
                &scales,
                WIDE_STRIDE,
                WIDER_WEIGHT_WITH_FINE,
                Some((f.ha / ha) as f64),
            );
            let proof = proven(&found, img, (f.wa, f.ha), p);
            best.offer(found, img, proof, Some(f));
        }
        let Answer {
            reg,
            summed,
            proof,
            wide_search,
            fine: fine_answer,
        } = best;
        // The image the registration is on: the 128-row sum, or the fine one.
        let (iw, ih) = fine_answer.map_or((wa, ha), |f| (f.wa, f.ha));
        let grid_ratio = fine_answer.map_or(1.0, |f| (f.ha / ha) as f64);
        let (z, ki, oi, s, d) = (
            reg.z,
            reg.key,
            reg.orientation,
            reg.scale * grid_ratio,
            reg.shift,
        );
        let (p_value, presence_p) = (proof.p.min(1.0), proof.alone.min(1.0));
        let (key_id, key) = (&self.keys[ki].0, &self.keys[ki].1);
        let variant = &self.variants[ki][oi];

        let mut out = VideoDetection {
            detected: p_value <= DETECT_P,
            inconclusive: p_value > DETECT_P && p_value < INCONCLUSIVE_P,
            p_value,
            presence_p,
            score: z,
            frames_analysed: self.frames,
            family_size: 1 + segments.len(),
            wide_search,
            ..empty
        };
        if p_value < INCONCLUSIVE_P {
            out.key_id = Some(*key_id);
            out.key_index = Some(ki);
            out.scale = Some(s);
            out.shift = Some((d % TILE, d / TILE));
            out.orientation = Some(variant.orientation);
            out.warp = reg.map.as_ref().map(Warp::of);
            let payload = match &self.known {
                // The tile searched for is the payload's whole tile (every chip sync); its
                // coded chips read with the key's own pattern, for the payload's test.
                Some(known) => {
                    let fold = reg.fold(summed, iw, ih);
                    let soft = soft_payload(&fold, &known.patterns[ki], variant.orientation, d);
                    out.payload_reading = Some(PayloadReading::new(soft));
                    Some(known.payloads[ki])
                }
                None => {
                    // Read once: decoded, or kept to test candidates against where it
                    // does not.
                    let reading = self.reading_at(&reg, summed, iw, ih);
                    let (payload, ber) = reading.decode(*key_id);
                    out.payload_reading = payload.is_none().then_some(reading);
                    out.bit_error_estimate = Some(ber);
                    payload
                }
            };
            out.payload = payload;
            let tile = payload.map(|p| key.embed_tile(&code::encode(&code::info_bits(&p))));
            out.region = Some(locate(
                summed,
                iw,
                ih,
                &reg.chips(iw, ih),
                variant,
                d,
                tile.as_deref(),
                // On the fine grid a sixteenth of its height: a picture-in-picture's box
                // is placed within ≈ 6 % of the frame.
                fine_answer.map_or(REGION_BLOCK, |f| f.ha / 16),
            ));
        } else if z.is_finite() && self.known.is_none() {
            out.weak_reading = Some(WeakReading {
                reading: self.reading_at(&reg, summed, iw, ih),
                key_id: *key_id,
                key_index: ki,
            });
        }
        // The timeline is kept on the 128-row grid only: a fine registration is carried
        // over to it (the fine grid's pixels divide the 128-row grid's exactly by `r`, both
        // from the frame's left and top edges, so only the centring differs by the widths).
        let timeline_reg = match fine_answer {
            Some(f) => Registration {
                scale: reg.scale * grid_ratio,
                phase: (
                    reg.phase.0 + (grid_ratio * wa as f64 - f.wa as f64) / 2.0 * reg.scale,
                    reg.phase.1 + (grid_ratio * ha as f64 - f.ha as f64) / 2.0 * reg.scale,
                ),
                area: true,
                window: None,
                ..reg
            },
            None => reg,
        };
        // Reported per second at least: the bins are narrower (a turning mark's phases) on
        // clips up to half the timeline's length.
        let group = acc.bins.timeline_group();
        out.timeline_bin_s = acc.bins.width_s() * group as f64;
        out.timeline = (0..acc.bins.len().div_ceil(group))
            .map(|g| {
                let mut bins = acc.bins.range(g * group, (g + 1) * group).peekable();
                bins.peek()?;
                let mut sum = ExactSum::zeros(wa * ha);
                bins.for_each(|(img, _)| sum.add_sum(img));
                Some(single_p(z_at(
                    &timeline_reg.fold(sum.image(), wa, ha),
                    variant,
                    d,
                )))
            })
            .collect();
        out
    }
}

/// Side (analysis pixels) of the blocks [`locate`] builds its rectangles from: an eighth
/// of the grid's height.
const REGION_BLOCK: usize = ANALYSIS_ROWS / 8;
/// The region is the best rectangle whose outside (the rest of the frame) has a z below
/// this: no mark left outside it.
const REGION_OUTSIDE_Z: f64 = 3.0;
/// A row or column of blocks at the region's edge whose energy is below this share of the
/// region's mean is padding, trimmed off (see [`locate`]).
const REGION_EMPTY: f64 = 0.03;

/// Where the mark is, at a registration: per analysis pixel the correlation of the summed
/// residual with the chip the registration puts there (the whole embedded tile when the
/// payload decoded, else the sync chips), summed over blocks; the block-aligned rectangle
/// with the largest normalised correlation `Σ c / √Σ e` is where the mark is. Taking in
/// unmarked blocks adds energy without correlation, leaving out marked ones loses
/// correlation, so it fits the marked area (picture-in-picture, a split screen).
#[allow(clippy::too_many_arguments)]
fn locate(
    img: &[f32],
    wa: usize,
    ha: usize,
    chips: &[Option<(i64, i64)>],
    variant: &Variant,
    shift: usize,
    tile: Option<&[f32]>,
    block: usize,
) -> Region {
    let block = block.max(1);
    let t = TILE as i64;
    let (dx, dy) = ((shift % TILE) as i64, (shift / TILE) as i64);
    let (nbx, nby) = (wa.div_ceil(block), ha.div_ceil(block));
    let mut corr = vec![0f64; nbx * nby];
    let mut energy = vec![0f64; nbx * nby];
    for (i, (&x, chip)) in img.iter().zip(chips).enumerate() {
        // The grid's last column and row reach past the frame (its size is rounded up):
        // where they hold no pixel, they and their neighbours (the residual's 3×3 mean)
        // show an edge against nothing, not content.
        if i % wa + 2 >= wa || i / wa + 2 >= ha {
            continue;
        }
        let Some((cx, cy)) = *chip else { continue };
        let j = (cy - dy).rem_euclid(t) as usize * TILE + (cx - dx).rem_euclid(t) as usize;
        let expected = match tile {
            Some(tile) => tile[variant.orientation.sealed_index(j)],
            None => variant.sync[j],
        };
        if expected != 0.0 {
            let cell = (i / wa / block) * nbx + (i % wa) / block;
            corr[cell] += (x * expected) as f64;
            energy[cell] += (x * x) as f64;
        }
    }
    // Prefix sums over blocks, then every block-aligned rectangle.
    let prefix = |a: &[f64]| {
        let mut p = vec![0f64; (nbx + 1) * (nby + 1)];
        for y in 0..nby {
            for x in 0..nbx {
                p[(y + 1) * (nbx + 1) + x + 1] =
                    a[y * nbx + x] + p[y * (nbx + 1) + x + 1] + p[(y + 1) * (nbx + 1) + x]
                        - p[y * (nbx + 1) + x];
            }
        }
        p
    };
    let (pc, pe) = (prefix(&corr), prefix(&energy));
    let rect = |p: &[f64], x0: usize, y0: usize, x1: usize, y1: usize| {
        p[y1 * (nbx + 1) + x1] - p[y0 * (nbx + 1) + x1] - p[y1 * (nbx + 1) + x0]
            + p[y0 * (nbx + 1) + x0]
    };
    // The rectangle with the largest z among those that leave no mark outside them (the
    // rest of the frame's z below REGION_OUTSIDE_Z; the whole frame always qualifies).
    // Texture spreads the evidence unevenly over a marked picture (the mask puts the mark
    // where it is busy), so the best part of it alone is not where the mark is; asking for
    // nothing outside makes the rectangle take in all of the marked picture — and the
    // whole frame when the whole frame is marked. (Until 2026-12-04: the best rectangle,
    // else the whole frame when the rest showed a mark — a picture-in-picture whose mark
    // was strong everywhere in the inset came out as the whole frame.)
    let (c_all, e_all) = (rect(&pc, 0, 0, nbx, nby), rect(&pe, 0, 0, nbx, nby));
    let mut best = (f64::NEG_INFINITY, (0, 0, nbx, nby));
    for y0 in 0..nby {
        for y1 in y0 + 1..=nby {
            for x0 in 0..nbx {
                for x1 in x0 + 1..=nbx {
                    let e = rect(&pe, x0, y0, x1, y1);
                    if e <= 1e-9 {
                        continue;
                    }
                    let c = rect(&pc, x0, y0, x1, y1);
                    let z = c / e.sqrt();
                    if z <= best.0 {
                        continue;
                    }
                    let e_out = e_all - e;
                    let outside_z = if e_out > 1e-9 {
                        (c_all - c) / e_out.sqrt()
                    } else {
                        0.0
                    };
                    if outside_z < REGION_OUTSIDE_Z {
                        best = (z, (x0, y0, x1, y1));
                    }
                }
            }
        }
    }
    let (mut x0, mut y0, mut x1, mut y1) = best.1;
    // A last block with fewer than half a block of tested cells (the grid's edge cut it,
    // and its last two columns or rows are not tested) cannot tell whether the mark reaches
    // the edge: a rectangle that ends where it begins reaches the edge (which way a few
    // noisy cells went decided it: a 512×288 inset's region 503 or 512 pixels wide).
    let tested = |n: usize, nb: usize| n.saturating_sub(2).saturating_sub((nb - 1) * block);
    if x1 + 1 == nbx && tested(wa, nbx) < block / 2 {
        x1 = nbx;
    }
    if y1 + 1 == nby && tested(ha, nby) < block / 2 {
        y1 = nby;
    }
    // Blocks with next to no energy (a letterbox's or a canvas's flat padding) add nothing
    // to the correlation either way, so the rectangle may take them in or not: trim them
    // from its edges, so that it is where the picture is.
    let mean = rect(&pe, x0, y0, x1, y1) / ((x1 - x0) * (y1 - y0)) as f64;
    let empty = |e: f64, blocks: usize| e < REGION_EMPTY * mean * blocks as f64;
    while y1 - y0 > 1 && empty(rect(&pe, x0, y0, x1, y0 + 1), x1 - x0) {
        y0 += 1;
    }
    while y1 - y0 > 1 && empty(rect(&pe, x0, y1 - 1, x1, y1), x1 - x0) {
        y1 -= 1;
    }
    while x1 - x0 > 1 && empty(rect(&pe, x0, y0, x0 + 1, y1), y1 - y0) {
        x0 += 1;
    }
    while x1 - x0 > 1 && empty(rect(&pe, x1 - 1, y0, x1, y1), y1 - y0) {
        x1 -= 1;
    }
    let (px0, py0) = (x0 * block, y0 * block);
    let (px1, py1) = ((x1 * block).min(wa), (y1 * block).min(ha));
    Region {
        x: px0 as f64 / wa as f64,
        y: py0 as f64 / ha as f64,
        w: (px1 - px0) as f64 / wa as f64,
        h: (py1 - py0) as f64 / ha as f64,
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
    /// Index into [`Orientation::ALL`].
    orientation: usize,
    scale: f64,
    shift: usize,
    phase: (f64, f64),
    /// Folded by area ([`fold_area`]) rather than plainly.
    area: bool,
    /// Folded under this map (the lattice stage) instead of at `scale`.
    map: Option<TileMap>,
    /// Folded over this window ([`WINDOWS`]) of the image only (the fine stage).
    window: Option<usize>,
}

impl Registration {
    /// A registration at scale 1 on the analysis grid (no map, the whole image).
    fn unscaled(
        z: f64,
        key: usize,
        orientation: usize,
        shift: usize,
        phase: (f64, f64),
        area: bool,
    ) -> Registration {
        Registration {
            z,
            key,
            orientation,
            scale: 1.0,
            shift,
            phase,
            area,
            map: None,
            window: None,
        }
    }

    /// Per analysis pixel, the chip (tile coordinates before the shift, not reduced modulo
    /// the tile) this registration puts it on; `None` off the map.
    fn chips(&self, wa: usize, ha: usize) -> Vec<Option<(i64, i64)>> {
        match &self.map {
            Some(m) => {
                let mut out = vec![None; wa * ha];
                for v in 0..ha {
                    let y = v as f64 + 0.5 - ha as f64 / 2.0;
                    for u in 0..wa {
                        let x = u as f64 + 0.5 - wa as f64 / 2.0;
                        let (tx, ty) = m.apply(x, y);
                        out[v * wa + u] = Some((
                            (tx + self.phase.0).floor() as i64,
                            (ty + self.phase.1).floor() as i64,
                        ));
                    }
                }
                out
            }
            None => {
                let bin = |n: usize, i: usize, ph: f64| -> i64 {
                    ((i as f64 + 0.5 - n as f64 / 2.0) * self.scale + ph).floor() as i64
                };
                let bx: Vec<i64> = (0..wa).map(|u| bin(wa, u, self.phase.0)).collect();
                (0..ha)
                    .flat_map(|v| {
                        let by = bin(ha, v, self.phase.1);
                        bx.iter().map(move |&x| Some((x, by)))
                    })
                    .collect()
            }
        }
    }

    /// The fold of `img` at this registration.
    fn fold(&self, img: &[f32], wa: usize, ha: usize) -> Vec<f64> {
        if let Some(wi) = self.window {
            let inside = window_mask(wa, ha, wi);
            let img: Vec<f32> = img
                .iter()
                .zip(&inside)
                .map(|(&x, &i)| if i { x } else { 0.0 })
                .collect();
            return fold_as(self.area, &img, wa, ha, self.scale, self.phase);
        }
        match &self.map {
            Some(m) => fold_map(img, wa, ha, m, self.phase),
            None => fold_as(self.area, img, wa, ha, self.scale, self.phase),
        }
    }
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

/// Soft payload reading at a registration: per coded bit the correlation of its chips with
/// their signs (then Viterbi and CRC: [`PayloadReading::decode`]). The plain correlation is
/// the maximum-likelihood metric when the chips' noise is alike (normalising each bit by its
/// own energy, as before, shrank the most reliable bits: a 3 s crop + CRF 30 + darker copy
/// decoded at coded BER 0.138 this way and not at 0.149 that way).
fn soft_payload(f: &[f64], key: &KeyPattern, orientation: Orientation, shift: usize) -> Vec<f64> {
    let (dy, dx) = (shift / TILE, shift % TILE);
    let mut soft = vec![0f64; code::CODED_BITS];
    for j in 0..TILE * TILE {
        if let Some(k) = key.role[j] {
            let o = orientation.observed_index(j);
            let (jy, jx) = (o / TILE, o % TILE);
            let v = f[((jy + dy) % TILE) * TILE + (jx + dx) % TILE];
            soft[k as usize] += key.sign[j] as f64 * v;
        }
    }
    soft
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sums_do_not_depend_on_the_order_of_the_additions() {
        // Residual-like images (±3, with fractions at every scale).
        let images: Vec<Vec<f32>> = (0..60u64)
            .map(|k| {
                (0..97u64)
                    .map(|i| {
                        ((i * 7919 + k * 104_729) % 6001) as f32 / 1000.0 - 3.0 + k as f32 * 1e-6
                    })
                    .collect()
            })
            .collect();
        let exact = |order: &mut dyn Iterator<Item = &Vec<f32>>| {
            let mut sum = ExactSum::default();
            order.for_each(|im| sum.add(im));
            sum.image().to_vec()
        };
        let forward = exact(&mut images.iter());
        let backward = exact(&mut images.iter().rev());
        let interleaved = exact(
            &mut images
                .iter()
                .step_by(2)
                .chain(images.iter().skip(1).step_by(2)),
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&forward), bits(&backward));
        assert_eq!(bits(&forward), bits(&interleaved));
        // Two halves summed apart and added (a timeline's bins merged): the same again.
        let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
        images[..25].iter().for_each(|im| a.add(im));
        images[25..].iter().for_each(|im| b.add(im));
        a.add_sum(&b);
        assert_eq!(bits(&forward), bits(a.image()));
        // Within an f32 rounding of the sum in f64; while f32 running sums do depend on
        // the order (what the exact sum is for).
        let running = |order: &mut dyn Iterator<Item = &Vec<f32>>| {
            let mut sum = vec![0f32; 97];
            order.for_each(|im| sum.iter_mut().zip(im).for_each(|(s, v)| *s += v));
            sum
        };
        for (i, &x) in forward.iter().enumerate() {
            let wide: f64 = images.iter().map(|im| f64::from(im[i])).sum();
            assert!(
                (f64::from(x) - wide).abs() <= wide.abs() * 1e-7 + 1e-7,
                "{i}"
            );
        }
        assert_ne!(
            bits(&running(&mut images.iter())),
            bits(&running(&mut images.iter().rev()))
        );
    }

    /// The turn choice reads each reading's and segment's as-sealed z off its bins' folds
    /// weighted and summed: the same z as the as-sealed registration on the weighted sum
    /// of the bins' images (the folds are linear in the image).
    #[test]
    fn the_folds_of_a_weighted_sum_are_the_weighted_sum_of_the_folds() {
        let key = WatermarkKey::generate(1).unwrap();
        let det = VideoDetector::new(std::slice::from_ref(&key));
        let (wa, ha, width) = (228, 128, 227.6);
        let image = |k: u64| -> Vec<f32> {
            (0..(wa * ha) as u64)
                .map(|i| ((i * 7919 + k * 104_729) % 6001) as f32 / 1000.0 - 3.0)
                .collect()
        };
        let bins = [(image(1), 0.75), (image(2), -1.25), (image(3), 0.5)];
        let mut folds = SealedFolds::zeros();
        let mut summed = vec![0f32; wa * ha];
        for (img, w) in &bins {
            folds.add_scaled(&SealedFolds::of(img, wa, ha, width), *w);
            summed
                .iter_mut()
                .zip(img)
                .for_each(|(s, &v)| *s += *w as f32 * v);
        }
        let direct = det.as_sealed(&summed, wa, ha, width);
        let folded = det.as_sealed_folded(&folds, wa, ha, width);
        assert!(direct.z.abs() > 0.1, "a z worth comparing: {}", direct.z);
        assert!(
            (direct.z - folded.z).abs() < 1e-4,
            "{} {}",
            direct.z,
            folded.z
        );
        assert_eq!(
            (direct.orientation, direct.shift),
            (folded.orientation, folded.shift)
        );
    }

    #[test]
    fn windows_are_searched_only_where_a_picture_fits_in_them() {
        // (window, scale in the 128-row grid's terms, searched?)
        let table = [
            (0, 0.5, true), // the whole image: every scale
            (0, 3.5, true),
            (1, 1.9, false), // half the height: a picture at 1/1.9 of it is taller
            (1, 1.97, true), // (2 % of slack around 2)
            (5, 2.5, true),  // the centre half: the clip at 40 %
            (10, 1.3, false),
            (10, 1.31, true), // three quarters: from 4/3 (a 75 % picture) less 2 %
            (13, 2.0, true),
        ];
        for (wi, scale, want) in table {
            assert_eq!(
                window_searched(wi, scale),
                want,
                "window {wi} at scale {scale}"
            );
        }
        // Every half window is one size (2 × 2 cells), every three-quarter one 3 × 3.
        for (wi, &(x0, y0, x1, y1)) in WINDOWS.iter().enumerate().skip(1) {
            let side = if wi <= 9 { 2 } else { 3 };
            assert_eq!((x1 - x0, y1 - y0), (side, side), "window {wi}");
        }
    }

    #[test]
    fn orientations_map_tile_indices_one_to_one_and_invert() {
        for o in Orientation::ALL {
            let mut seen = vec![false; TILE * TILE];
            for j in 0..TILE * TILE {
                let k = o.sealed_index(j);
                assert!(!seen[k], "{o:?} maps two indices to {k}");
                seen[k] = true;
                assert_eq!(o.observed_index(k), j, "{o:?}");
            }
        }
        // A mirrored picture shows the sealed chip −x at x (up to the shift search).
        let j = 3 * TILE + 5;
        assert_eq!(
            Orientation::MirroredHorizontally.sealed_index(j),
            3 * TILE + TILE - 5
        );
        assert_eq!(Orientation::Transposed.sealed_index(j), 5 * TILE + 3);
    }

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

    /// The segments' search refines the best scales of them all, not of each: a stretch
    /// that holds the mark (cropped to 90 %, the grid's scale 0.9) is found among
    /// unmarked ones at the registration its own search finds.
    #[test]
    fn a_search_among_sums_finds_the_marked_one_where_its_own_search_does() {
        let key = WatermarkKey::from_secret([5; 32], 5);
        let payload = Payload {
            clip_id: 0x0bad_cafe_f00d_1234,
            key_id: key.key_id(),
        };
        let (w, h, cw, ch) = (1280usize, 720usize, 1152usize, 648usize);
        let sum_of = |marked: bool, seed: u32| {
            let mut emb = crate::VideoEmbedder::new(&key, payload, crate::DEFAULT_STRENGTH);
            let mut det = VideoDetector::new(std::slice::from_ref(&key));
            for i in 0..6 {
                let mut f = textured(w as u32, h as u32, seed + i);
                f.pts_s = f64::from(i) / 25.0;
                if marked {
                    emb.embed(&mut f);
                }
                let mut c = VideoFrame::black(cw as u32, ch as u32, PixelLayout::Yuv420p, f.pts_s);
                let (x0, y0) = ((w - cw) / 2, (h - ch) / 2);
                for (r, line) in c.planes[0].chunks_exact_mut(cw).enumerate() {
                    let from = (y0 + r) * w + x0;
                    line.copy_from_slice(&f.planes[0][from..from + cw]);
                }
                det.add_frame(&c);
            }
            let acc = &det.accs[0];
            (acc.sum().to_vec(), acc.wa, acc.ha)
        };
        let (marked, wa, ha) = sum_of(true, 10);
        let (plain_a, plain_b) = (sum_of(false, 20).0, sum_of(false, 30).0);
        let det = VideoDetector::new(std::slice::from_ref(&key));
        let scales = scale_grid(wa.max(ha));
        let search = |sums: &[&[f32]]| {
            det.search_among(sums, wa, ha, &scales, SEGMENT_STRIDE, 1, false, None)
        };
        let alone = search(&[&marked]).best;
        assert!(alone.z > 8.0, "z {}", alone.z);
        assert!((alone.scale - 0.9).abs() < 0.01, "scale {}", alone.scale);
        let among = search(&[&plain_a, &marked, &plain_b]);
        assert_eq!(among.image, 1);
        let best = &among.best;
        assert_eq!(
            (best.z, best.scale, best.shift, best.phase),
            (alone.z, alone.scale, alone.shift, alone.phase)
        );
        assert_eq!(among.image_z[1], alone.z);
        assert!(
            among.image_z[0] < 6.0 && among.image_z[2] < 6.0,
            "{:?}",
            among.image_z
        );
        // Unmarked alone, the best of them is no mark.
        let none = search(&[&plain_a, &plain_b]);
        assert!(none.best.z < 6.0, "unmarked z {}", none.best.z);
    }

    /// `frames` (640×360) sealed as if 1.5 s into a clip (their turns a quarter period off
    /// the excerpt's own time; the mark at rest, or riding the camera), mirrored, cropped off
    /// centre (448×252 at (160, 24)) and given to a detector from time 0.
    fn mirrored_excerpt(
        frames: impl Iterator<Item = VideoFrame>,
        riding: bool,
        strength: f32,
    ) -> (VideoDetector, Payload) {
        let key = WatermarkKey::from_secret([7; 32], 7);
        let payload = Payload {
            clip_id: 0x0123_4567_0bad_f00d,
            key_id: key.key_id(),
        };
        let mut emb = crate::VideoEmbedder::new(&key, payload, strength).riding(riding);
        let mut det = VideoDetector::new(std::slice::from_ref(&key));
        let (w, cw, ch, x0, y0) = (640usize, 448usize, 252usize, 160usize, 24usize);
        for (i, mut f) in frames.enumerate() {
            f.pts_s = 1.5 + i as f64 / 25.0;
            emb.embed(&mut f);
            let mut c = VideoFrame::black(cw as u32, ch as u32, PixelLayout::Yuv420p, 0.0);
            c.pts_s = i as f64 / 25.0;
            for (r, line) in c.planes[0].chunks_exact_mut(cw).enumerate() {
                let from = (y0 + r) * w + x0;
                line.copy_from_slice(&f.planes[0][from..from + cw]);
                line.reverse();
            }
            det.add_frame(&c);
        }
        (det, payload)
    }

    /// The mark of [`mirrored_excerpt`]'s copy: nothing at the clip's own phase, found with
    /// its payload.
    fn found_off_its_own_phase(det: &VideoDetector, payload: Payload) {
        let acc = det.accs.iter().max_by_key(|a| a.frames).unwrap();
        let own = det.result_on(&acc.turned(0).unwrap(), Stages::All, Some(0));
        assert!(!own.detected, "at the clip's own phase: p {}", own.p_value);
        let r = det.result();
        assert!(r.detected, "p {}", r.p_value);
        assert_eq!(r.payload, Some(payload));
    }

    /// An excerpt from 1.5 s into the sealed clip, mirrored and cropped off centre: the
    /// cheap tests that choose the reading see nothing through that, and the clip's own
    /// phase reads nothing; the reading whose sum repeats over the tile's lattice is
    /// searched too and finds it.
    #[test]
    fn a_mirrored_and_cropped_excerpt_is_read_at_the_phase_its_lattice_shows() {
        let frames = (0..100).map(|i| textured(640, 360, i + 1));
        let (det, payload) = mirrored_excerpt(frames, true, crate::DEFAULT_STRENGTH);
        let acc = det.accs.iter().max_by_key(|a| a.frames).unwrap();
        assert_eq!(
            det.periodic_reading(acc, &[]),
            Some(3),
            "the excerpt's reading"
        );
        found_off_its_own_phase(&det, payload);
    }

    /// The same excerpt under a camera that tilts: the reading whose sum repeats over the
    /// tile's lattice is searched there too (the camera's path is left out of the lattice's
    /// lags; until session 38 a moving camera skipped the search, and such a copy was lost:
    /// the bench's bbb, p 1 → 2.9e-79).
    #[test]
    fn a_mirrored_and_cropped_excerpt_under_a_moving_camera_is_found() {
        // 3 px a frame down a tall picture at 25 fps.
        let (w, h, step) = (640usize, 360usize, 3usize);
        let tall = textured(w as u32, (h + step * 100) as u32, 5);
        let frames = (0..100).map(|i| {
            let mut f = VideoFrame::black(w as u32, h as u32, PixelLayout::Yuv420p, 0.0);
            let from = step * i * w;
            f.planes[0].copy_from_slice(&tall.planes[0][from..from + w * h]);
            f
        });
        let (det, payload) = mirrored_excerpt(frames, false, crate::DEFAULT_STRENGTH);
        assert!(
            camera_moved(det.rides.iter().flatten()),
            "the tilt was followed"
        );
        found_off_its_own_phase(&det, payload);
    }

    /// A fainter mark's excerpt (strength 0.7 instead of 3.2): its lattice no longer stands
    /// out, so no reading is chosen and the excerpt is lost; where another stream's
    /// registration says the copy starts 1.5 s into the sealed clip, that reading is searched
    /// and finds it with its payload. A start that names another reading finds nothing.
    #[test]
    fn an_excerpt_is_read_at_the_phase_another_stream_names() {
        let frames = (0..100).map(|i| textured(640, 360, i + 1));
        let (mut det, payload) = mirrored_excerpt(frames, false, 0.7);
        let acc = det.accs.iter().max_by_key(|a| a.frames).unwrap();
        assert_eq!(det.periodic_reading(acc, &[]), None);
        let plain = det.result();
        assert!(!plain.detected, "p {}", plain.p_value);
        det.hint_sealed_starts(&[0.5]);
        let elsewhere = det.result();
        assert!(!elsewhere.detected, "p {}", elsewhere.p_value);
        // 1.5 s and a sound period (4.096 s) later: the same reading, searched once.
        det.hint_sealed_starts(&[1.5, 5.596]);
        assert_eq!(det.hinted_phases, [3]);
        let named = det.result();
        assert!(named.detected, "p {}", named.p_value);
        assert_eq!(named.payload, Some(payload));
    }

    /// An unmarked camera pan: a turning mark's reading sums the moving content into copies
    /// of one sign 4 s of motion apart, which repeat like a lattice (the bench's pan stood
    /// out by 16–21); with the camera's path left out nothing stands out, and the still
    /// camera's gate it replaces is not needed.
    #[test]
    fn a_pan_s_own_repetition_is_not_taken_for_the_mark_s_lattice() {
        let key = WatermarkKey::from_secret([7; 32], 7);
        let mut det = VideoDetector::new(std::slice::from_ref(&key));
        // 4 px a frame at 15 fps: 85 analysis pixels in 4 s, inside the lattice's lengths.
        let (w, h, step) = (640usize, 360usize, 4usize);
        let frames = 150;
        let wide = textured((w + step * frames) as u32, h as u32, 9);
        let ww = w + step * frames;
        for i in 0..frames {
            let mut c = VideoFrame::black(w as u32, h as u32, PixelLayout::Yuv420p, 0.0);
            c.pts_s = i as f64 / 15.0;
            for (r, line) in c.planes[0].chunks_exact_mut(w).enumerate() {
                let from = r * ww + step * i;
                line.copy_from_slice(&wide.planes[0][from..from + w]);
            }
            det.add_frame(&c);
        }
        assert!(
            camera_moved(det.rides.iter().flatten()),
            "the pan was followed"
        );
        let acc = det.accs.iter().max_by_key(|a| a.frames).unwrap();
        let lags = det
            .camera_lags((acc.wa, acc.ha))
            .expect("the kept frames tell the camera's path");
        assert!(
            det.periodic_reading(acc, &[]).is_some(),
            "the copies repeat like a lattice"
        );
        assert_eq!(det.periodic_reading(acc, &lags), None);
    }

    /// The as-sealed registration is where the embedder put the tile, on grids of either
    /// parity and whatever ⌊n/2⌋ mod 64 (a sign error only showed where it is not 0 or 32),
    /// and a copy that was cropped is not read there.
    #[test]
    fn the_as_sealed_registration_is_where_the_embedder_put_the_tile() {
        // A fixed key: with a fresh one each run the 320×240 clip's z (≈ 8 over 6 frames)
        // fell below the 8.0 asked of it now and then.
        let key = WatermarkKey::from_secret([3; 32], 3);
        let payload = Payload {
            clip_id: 0x0fed_cba9_8765_4321,
            key_id: key.key_id(),
        };
        // (frame, analysis grid): 302 × 128 (the last column half empty), 228, 192, odd 157
        // and 171, portrait 72, square 128.
        for (w, h, wa) in [
            (640, 272, 302),
            (1280, 720, 228),
            (1440, 960, 192),
            (352, 288, 157),
            (320, 240, 171),
            (720, 1280, 72),
            (500, 500, 128),
        ] {
            let mut emb = crate::VideoEmbedder::new(&key, payload, crate::DEFAULT_STRENGTH);
            let mut det = VideoDetector::new(std::slice::from_ref(&key));
            let mut frames = Vec::new();
            for i in 0..6 {
                let mut f = textured(w, h, i + 1);
                f.pts_s = i as f64 / 25.0;
                emb.embed(&mut f);
                det.add_frame(&f);
                frames.push(f);
            }
            let acc = &det.accs[0];
            assert_eq!((acc.wa, acc.ha), (wa, 128), "{w}x{h}");
            let sealed = det.as_sealed(acc.sum(), acc.wa, acc.ha, acc.width);
            let searched = det
                .search_among(
                    &[acc.sum()],
                    acc.wa,
                    acc.ha,
                    &scale_grid(acc.wa.max(acc.ha)),
                    1,
                    1,
                    false,
                    None,
                )
                .best;
            assert!(searched.z > 8.0, "{w}x{h}: searched z {}", searched.z);
            assert!(
                sealed.z > 0.97 * searched.z,
                "{w}x{h}: as sealed z {} against the search's {} (scale {}, shift {})",
                sealed.z,
                searched.z,
                searched.scale,
                searched.shift
            );
            let r = det.result();
            assert!(r.detected && r.payload == Some(payload), "{w}x{h}: {r:?}");
            assert_eq!(r.scale, Some(1.0), "{w}x{h}");
            // Flipped left to right (every plane): the mirrored as-sealed registration reads
            // it as strongly, so it is proven there, before any search — until it was
            // tested, only the wider search (every orientation, ≈ 10⁸ hypotheses) found it.
            let mut flipped_det = VideoDetector::new(std::slice::from_ref(&key));
            for f in &frames {
                let mut flipped = f.clone();
                for (i, plane) in flipped.planes.iter_mut().enumerate() {
                    let pw = if i == 0 { w } else { w.div_ceil(2) } as usize;
                    plane.chunks_mut(pw).for_each(|row| row.reverse());
                }
                flipped_det.add_frame(&flipped);
            }
            let acc = &flipped_det.accs[0];
            let mirrored = flipped_det.as_sealed(acc.sum(), acc.wa, acc.ha, acc.width);
            assert_eq!(mirrored.orientation, 1, "{w}x{h}");
            // (Measured: 0.76–1.0 of the upright z; the least where the frame's width in
            // analysis pixels is furthest from whole, 156.44 for 352 × 288.)
            assert!(
                mirrored.z > 0.74 * sealed.z,
                "{w}x{h} flipped: as sealed z {} against upright {}",
                mirrored.z,
                sealed.z
            );
            let r = flipped_det.result();
            assert!(
                r.detected && r.payload == Some(payload),
                "{w}x{h} flipped: {r:?}"
            );
            assert_eq!(
                (r.orientation, r.scale, r.wide_search),
                (Some(Orientation::MirroredHorizontally), Some(1.0), false),
                "{w}x{h} flipped"
            );
            // Cropped by 20 columns (10 analysis pixels): the tile is found shifted, not as
            // sealed.
            let mut det = VideoDetector::new(std::slice::from_ref(&key));
            for f in &frames {
                let mut cropped = VideoFrame::black(w - 20, h, PixelLayout::Yuv420p, f.pts_s);
                for (y, row) in cropped.planes[0].chunks_mut((w - 20) as usize).enumerate() {
                    let from = y * w as usize + 20;
                    row.copy_from_slice(&f.planes[0][from..from + row.len()]);
                }
                det.add_frame(&cropped);
            }
            let acc = &det.accs[0];
            let sealed = det.as_sealed(acc.sum(), acc.wa, acc.ha, acc.width);
            assert!(sealed.z < 4.0, "{w}x{h} cropped: as sealed z {}", sealed.z);
            // Still at scale 1: proven by the stage that tries every shift there, with its
            // own bound (32 768 hypotheses a key, not the plain search's ≈ 2.5 M) — until it
            // was there, the plain search's p.
            let shifted = det.at_scale_one(acc.sum(), acc.wa, acc.ha);
            assert!(
                shifted.z > 8.0,
                "{w}x{h} cropped: z at scale 1 {}",
                shifted.z
            );
            let r = det.result();
            // (Six frames of the smaller sizes prove the mark, not always its payload.)
            assert!(r.detected, "{w}x{h} cropped: {r:?}");
            assert!(
                r.payload.is_none_or(|p| p == payload),
                "{w}x{h} cropped: {r:?}"
            );
            // (The frames come before the first turn: read at the clip's own phase, its share
            // of the budget, [`OWN_TURN_WEIGHT`].)
            let bound = OWN_TURN_WEIGHT
                * SHIFTED_WEIGHT
                * r.family_size as f64
                * (SHIFTED_ORIENTATIONS * PHASES.len() * TILE * TILE) as f64;
            // (With the payload's evidence where it decoded.) Where the payload does not
            // read at that registration but does at the plain search's (320 × 240: z 7.3
            // against 9.0, at another phase), that one answers, with the plain bound: an
            // answer whose payload reads is preferred.
            let (p_expected, stage) = if (r.score - shifted.z).abs() < 1e-9 {
                let p = search_p(bound, r.score);
                (with_payload(p, r.payload.is_some()), "shifted")
            } else {
                assert_eq!(r.payload, Some(payload), "{w}x{h} cropped: {r:?}");
                let (wa, ha) = (acc.wa, acc.ha);
                let plain = OWN_TURN_WEIGHT
                    * PLAIN_WEIGHT
                    * r.family_size as f64
                    * (scale_grid(wa.max(ha)).len() * PHASES.len() * TILE * TILE) as f64;
                (with_payload(search_p(plain, r.score), true), "plain")
            };
            assert!(
                (r.p_value - p_expected).abs() <= 1e-9 * p_expected,
                "{w}x{h} cropped: p {} against the {stage} stage's {p_expected}",
                r.p_value
            );
        }
    }

    /// `f`'s luma placed at `(x, y)` in a `w × h` canvas of luma `fill`.
    fn in_canvas(f: &VideoFrame, w: u32, h: u32, (x, y): (usize, usize), fill: u8) -> VideoFrame {
        let mut out = VideoFrame::black(w, h, PixelLayout::Yuv420p, f.pts_s);
        out.planes[0].fill(fill);
        let fw = f.width as usize;
        for (r, row) in f.planes[0].chunks_exact(fw).enumerate() {
            let at = (y + r) * w as usize + x;
            out.planes[0][at..at + fw].copy_from_slice(row);
        }
        out
    }

    #[test]
    fn a_picture_inside_bars_is_tested_as_sealed_on_its_own_grid() {
        let key = WatermarkKey::from_secret([5; 32], 5);
        let payload = Payload {
            clip_id: 0x5a5a_0000_1234_abcd,
            key_id: key.key_id(),
        };
        let mut emb = crate::VideoEmbedder::new(&key, payload, crate::DEFAULT_STRENGTH);
        let (mut sealed, mut plain) = (Vec::new(), Vec::new());
        for i in 0..6 {
            let mut f = textured(640, 272, i + 1);
            f.pts_s = i as f64 / 25.0;
            plain.push(f.clone());
            emb.embed(&mut f);
            sealed.push(f);
        }
        // Padded into a 1.3× canvas at an offset (bars on four sides), and letterboxed
        // into 4:3 (top and bottom): on the canvas's grid the picture is 1.3× / 1.76×
        // smaller and off the origin, for the wider searches only.
        for (w, h, at) in [(832, 354, (44, 56)), (640, 480, (0, 104))] {
            let mut det = VideoDetector::new(std::slice::from_ref(&key));
            for f in &sealed {
                det.add_frame(&in_canvas(f, w, h, at, 16));
            }
            assert_eq!(det.boxes.len(), 1, "{w}x{h}");
            assert_eq!(det.boxes[0].at, (at.0, at.1, 640, 272), "{w}x{h}");
            let r = det.result();
            assert!(r.detected && r.payload == Some(payload), "{w}x{h}: {r:?}");
            assert_eq!(r.scale, Some(h as f64 / 272.0), "{w}x{h}");
            assert!(!r.wide_search, "{w}x{h}");
            // Its bound: the as-sealed test's on the box's grid, × BOX_WEIGHT, with the
            // payload's evidence; the frames (0.24 s) come before the first turn: read at the
            // clip's own phase with their sign, its share of the budget.
            let bound =
                OWN_TURN_WEIGHT * BOX_WEIGHT * r.family_size as f64 * SEALED_ORIENTATIONS as f64;
            let p = with_payload(search_p(bound, r.score), true);
            assert!(
                (r.p_value - p).abs() <= 1e-9 * p,
                "{w}x{h}: {} vs {p}",
                r.p_value
            );
            // The region is the picture, within a block of the box's grid.
            let g = r.region.expect("region");
            let (fw, fh) = (w as f64, h as f64);
            let tol = 1.0 / 8.0 * 272.0 / fh + 1e-9;
            for (got, want) in [
                (g.x, at.0 as f64 / fw),
                (g.y, at.1 as f64 / fh),
                (g.x + g.w, (at.0 + 640) as f64 / fw),
                (g.y + g.h, (at.1 + 272) as f64 / fh),
            ] {
                assert!((got - want).abs() <= tol, "{w}x{h}: region {g:?}");
            }
            // Far stronger than anything the canvas's own grid gives.
            let whole = det.result_turned(
                det.accs.iter().max_by_key(|a| a.frames).unwrap(),
                Stages::All,
            );
            assert!(
                r.p_value < 1e-6 * whole.p_value,
                "{w}x{h}: {r:?} against {whole:?}"
            );
            // Unmarked in the same bars: nothing.
            let mut det = VideoDetector::new(std::slice::from_ref(&key));
            for f in &plain {
                det.add_frame(&in_canvas(f, w, h, at, 16));
            }
            assert_eq!(det.boxes.len(), 1);
            let r = det.result();
            assert!(
                !r.detected && r.payload.is_none(),
                "{w}x{h} unmarked: {r:?}"
            );
        }
        // Without bars nothing is added and the answer is the plain one, unscaled.
        let mut det = VideoDetector::new(std::slice::from_ref(&key));
        for f in &sealed {
            det.add_frame(f);
        }
        assert!(det.boxes.is_empty());
        let whole = det.result_turned(&det.accs[0], Stages::All);
        assert_eq!(det.result(), whole);
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

    #[test]
    fn a_turning_mark_is_read_at_each_phase_where_the_bins_allow_it() {
        // (clip length s, frames per second, phases that read: the rest span a turn or hold
        // one sign)
        let all: Vec<usize> = (0..TURN_PHASES).collect();
        let table: [(f64, f64, Vec<usize>); 5] = [
            (8.0, 10.0, all.clone()),
            (2.6, 10.0, all.clone()),
            // No turn within 1.5 s at phases 0, 1, 4 and 5: read there with that sign.
            (1.5, 10.0, all.clone()),
            // Bins widened to 1 s (a clip over 256 s): whole seconds of phase only.
            (300.0, 1.0, vec![0, 2, 4, 6]),
            // To 2 s (over 512 s): the clip's own phase and its opposite.
            (600.0, 1.0, vec![0, 4]),
        ];
        for (len, fps, want) in table {
            let mut acc = Accum::new(2, 2, None);
            let frames = (len * fps) as usize;
            for i in 0..frames {
                acc.add(&[1.0; 4], i as f64 / fps);
            }
            let read: Vec<usize> = all
                .iter()
                .copied()
                .filter(|&k| acc.turn_weights(k).is_some())
                .collect();
            assert_eq!(read, want, "{len} s");
            for k in read {
                let weights = acc.turn_weights(k).unwrap();
                let width = acc.bins.width_s();
                let sign_of = |i: usize| {
                    f64::from(turn_sign(i as f64 * width + k as f64 * TURN_BIN_S + 1e-6))
                };
                if weights.iter().all(|&(i, _)| sign_of(i) == sign_of(0)) {
                    // No turn in the clip at this phase: read with the sign it had.
                    assert!(weights.iter().all(|&(_, w)| w == sign_of(0)));
                    assert!(matches!(k, 0 | 1 | 4 | 5) && len < 2.0, "{len} s phase {k}");
                    continue;
                }
                // What stays still cancels: the weights sum to 0 over the frames.
                let total: f64 = weights
                    .iter()
                    .map(|&(i, w)| w * acc.bins.get(i).unwrap().1 as f64)
                    .sum();
                assert!(
                    total.abs() < 1e-9 * frames as f64,
                    "{len} s phase {k}: {total}"
                );
                // A constant picture's turned sum is 0 (to the sums' rounding).
                let sum = acc.turned_sum(k).unwrap();
                assert!(
                    sum.image().iter().all(|v| v.abs() < 1e-3),
                    "{len} s phase {k}"
                );
                // Each bin's weight has the sign the mark had there (sealed k bins later).
                for (i, w) in weights {
                    let t = i as f64 * width + k as f64 * TURN_BIN_S + 1e-6;
                    assert_eq!(w > 0.0, turn_sign(t) > 0.0, "{len} s phase {k} bin {i}");
                }
            }
        }
    }

    #[test]
    fn a_turning_mark_on_a_still_picture_is_read_free_of_the_picture() {
        // A fixed shot: the same picture for 8 s at 5 fps. A mark that keeps its sign adds
        // up with the picture's own residual, which drowns it however long the shot; the
        // turning one is read with the picture cancelled, and an excerpt trimmed 1.5 s in
        // (its times from 0) at the phase it lost.
        let key = WatermarkKey::from_secret([9; 32], 9);
        let payload = Payload {
            clip_id: 0x7777_0000_1234_abcd,
            key_id: key.key_id(),
        };
        let still = textured(320, 240, 3);
        let seal = |turning: bool| -> Vec<VideoFrame> {
            let mut emb = crate::VideoEmbedder::new(&key, payload, crate::DEFAULT_STRENGTH)
                .riding(false)
                .turning(turning);
            (0..40)
                .map(|i| {
                    let mut f = still.clone();
                    f.pts_s = i as f64 / 5.0;
                    emb.embed(&mut f);
                    f
                })
                .collect()
        };
        let detect = |frames: &[VideoFrame], from_s: f64| {
            let mut det = VideoDetector::new(std::slice::from_ref(&key));
            for f in frames.iter().filter(|f| f.pts_s >= from_s - 1e-9) {
                let mut f = f.clone();
                f.pts_s -= from_s;
                det.add_frame(&f);
            }
            det.result()
        };
        let (turned, fixed) = (seal(true), seal(false));
        // The mark turned over: frames 2 s apart differ by twice the mark.
        let diff = |a: &VideoFrame, b: &VideoFrame| -> Vec<i32> {
            a.planes[0]
                .iter()
                .zip(&b.planes[0])
                .map(|(&x, &y)| i32::from(x) - i32::from(y))
                .collect()
        };
        let (up, down) = (diff(&turned[0], &still), diff(&turned[10], &still));
        let opposite = up
            .iter()
            .zip(&down)
            .filter(|(u, d)| **u != 0 && **u == -**d);
        assert!(opposite.count() * 2 > up.iter().filter(|u| **u != 0).count());
        assert_eq!(diff(&fixed[10], &fixed[0]), vec![0; up.len()]);

        let (t, f) = (detect(&turned, 0.0), detect(&fixed, 0.0));
        assert!(t.detected && t.payload == Some(payload), "{t:?}");
        assert!(t.p_value < 1e-6 * f.p_value, "turned {t:?}, fixed {f:?}");
        // The excerpt: read at another phase, its share of the budget counted.
        let e = detect(&turned, 1.5);
        assert!(e.detected && e.payload == Some(payload), "{e:?}");
        // A mark sealed before it turned, on pictures that change, is read by the plain
        // sum (its share of the budget): the turned readings would cancel it.
        let mut emb = crate::VideoEmbedder::new(&key, payload, crate::DEFAULT_STRENGTH)
            .riding(false)
            .turning(false);
        let moving: Vec<VideoFrame> = (0..40)
            .map(|i| {
                let mut f = textured(320, 240, 100 + i);
                f.pts_s = f64::from(i) / 5.0;
                emb.embed(&mut f);
                f
            })
            .collect();
        let m = detect(&moving, 0.0);
        assert!(m.detected && m.payload == Some(payload), "{m:?}");
        // The picture alone, unmarked, still for 8 s: nothing at any reading.
        let plain: Vec<VideoFrame> = (0..40)
            .map(|i| {
                let mut f = still.clone();
                f.pts_s = i as f64 / 5.0;
                f
            })
            .collect();
        for from_s in [0.0, 1.5] {
            let r = detect(&plain, from_s);
            assert!(
                !r.detected && r.payload.is_none(),
                "unmarked from {from_s}: {r:?}"
            );
        }
    }
}
