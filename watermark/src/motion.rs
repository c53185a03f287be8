//! Where the content moves, a mark that stays put costs bytes: every predicted frame codes
//! `mark(x) − mark(x + motion)` there, because the encoder follows the content. The embedder
//! therefore attenuates the mark per analysis pixel where the unmarked luma changes from the
//! previous frame, smoothly in space and over time (an amplitude that flickers from frame to
//! frame costs bytes of its own, mostly in B-frames); where the content stands still it keeps
//! its full amplitude. The pattern itself never moves: the detector sums frames in frame
//! coordinates. The attenuation is relative to the frame's own: where the whole frame moves
//! (a pan) there is no still part to move the mark to, and a uniformly weaker mark buys no
//! more detection per byte than a lower strength would, so a pan keeps its full mark.

use crate::analysis::{box3, AnalysisGrid};

/// Mean |Δ luma| (8-bit levels, unmarked frame against the previous unmarked frame) over an
/// analysis pixel and its neighbours at and below which the mark keeps its full amplitude.
pub(crate) const MOTION_FULL_BELOW: f32 = 2.0;
/// ... at and above which it is attenuated to [`MOTION_FLOOR`] (linear in between).
pub(crate) const MOTION_FLOOR_ABOVE: f32 = 8.0;
/// The least attenuation: moving content keeps this share of the mark (where content
/// decorrelates from frame to frame the mark still adds up in the detector).
pub(crate) const MOTION_FLOOR: f32 = 0.3;
/// Exponential smoothing of the attenuation over frames (the share of the previous frame's).
pub(crate) const MOTION_SMOOTHING: f32 = 0.9;
/// The attenuation is divided by this quantile of itself over the frame (and capped at 1):
/// the mark is taken out of the parts that move more than most of the frame.
pub(crate) const MOTION_RELATIVE_QUANTILE: f32 = 0.9;

/// The attenuation of the mark per analysis pixel, frame after frame.
pub(crate) struct MotionAttenuation {
    /// The previous frame's unmarked luma (empty before the first frame).
    prev: Vec<u8>,
    /// |Δ luma| of the current frame (reused).
    diff: Vec<u8>,
    /// The attenuation per analysis pixel, in [`MOTION_FLOOR`, 1], smoothed over frames.
    att: Vec<f32>,
    /// What [`MotionAttenuation::next`] returns: `att` relative to the frame's quantile.
    out: Vec<f32>,
    /// Scratch for the quantile.
    sorted: Vec<f32>,
}

impl MotionAttenuation {
    pub(crate) fn new() -> Self {
        MotionAttenuation {
            prev: Vec::new(),
            diff: Vec::new(),
            att: Vec::new(),
            out: Vec::new(),
            sorted: Vec::new(),
        }
    }

    /// The attenuation for the frame whose unmarked luma is `y` (`w·h` bytes of grid `g`'s
    /// frame size): 1 everywhere on the first frame and after a change of size, exactly 1
    /// wherever the content has stood still.
    pub(crate) fn next(&mut self, g: &AnalysisGrid, y: &[u8]) -> &[f32] {
        let (wa, ha) = g.grid_size();
        if self.prev.len() != y.len() || self.att.len() != wa * ha {
            self.prev.clear();
            self.prev.extend_from_slice(y);
            self.att.clear();
            self.att.resize(wa * ha, 1.0);
            self.out.clear();
            self.out.resize(wa * ha, 1.0);
            return &self.out;
        }
        self.diff.clear();
        self.diff
            .extend(y.iter().zip(&self.prev).map(|(a, b)| a.abs_diff(*b)));
        self.prev.copy_from_slice(y);
        let mut d = g.downscale(&self.diff);
        g.fill_empty_columns(&mut d);
        let d = box3(&d, wa, ha);
        let span = MOTION_FLOOR_ABOVE - MOTION_FULL_BELOW;
        let mut a: Vec<f32> = d
            .iter()
            .map(|&m| (1.0 - (m - MOTION_FULL_BELOW) / span).clamp(MOTION_FLOOR, 1.0))
            .collect();
        for _ in 0..2 {
            a = box3(&a, wa, ha);
        }
        // `p + s·(v − p)` rather than `s·p + (1 − s)·v`: exactly 1 stays exactly 1.
        for (p, v) in self.att.iter_mut().zip(&a) {
            *p = v + MOTION_SMOOTHING * (*p - v);
        }
        self.sorted.clear();
        self.sorted.extend_from_slice(&self.att);
        let i = ((self.sorted.len() - 1) as f32 * MOTION_RELATIVE_QUANTILE) as usize;
        let q = *self.sorted.select_nth_unstable_by(i, f32::total_cmp).1;
        let q = q.max(MOTION_FLOOR);
        self.out.clear();
        self.out.extend(self.att.iter().map(|&v| (v / q).min(1.0)));
        &self.out
    }
}
