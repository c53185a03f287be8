//! The keyed invisible watermark: embed a clip identifier in the picture, and extract it
//! with an honest p-value.
//!
//! * [`VideoEmbedder`] adds a keyed, texture-masked ±1 tile (64×64 chips on a fixed
//!   128-row analysis grid, repeated over the frame and scaled up to the frame size) to the
//!   luma of every frame, scaled down where needed to keep each frame's SSIM against
//!   itself unmarked at [`MIN_FRAME_SSIM`]. A quarter of the chips form the *sync*
//!   pattern (presence test and registration); the rest carry the convolutionally coded
//!   payload. Since 2026-12-05 the tile rides the camera: carried along with a gentle
//!   camera move, back at rest every [`ANCHOR_S`] and at each cut ([`VideoEmbedder::riding`]).
//! * [`VideoDetector`] box-downscales each frame to the analysis grid, whitens it, and sums
//!   the residuals over the clip. At the end it folds the sum modulo the tile at every
//!   candidate scale, finds the best cyclic shift by FFT cross-correlation with the sync
//!   pattern, and turns the maximum normalised correlation into a family-wise p-value
//!   (Hoeffding bound × number of keys, scales, sub-chip phases and shifts tried). The
//!   payload is decoded only afterwards, at the registered position, and never decides
//!   presence. Where the camera moved, the frames warped back along it are tested too
//!   ([`VideoDetector::add_riding`]), each reading with half the error budget.
//!
//! See README.md for the algorithm and the measured numbers.

mod analysis;
mod audio;
mod code;
mod detect;
mod dwtdct;
mod fft;
mod inset;
mod key;
mod lattice;
mod motion;
mod tile_fft;

pub use analysis::{
    whitened_residual, AnalysisGrid, Tap, ANALYSIS_ROWS, SYNC_CHIPS, TILE, WHITEN_ACT_EPS,
    WHITEN_CLIP,
};
pub use audio::{
    audio_framing, AudioBandMeter, AudioDetection, AudioDetector, AudioEmbedder, AudioFraming,
    NotWholeFrames, AUDIO_BAND_HI_HZ, AUDIO_BAND_LO_HZ, AUDIO_PERIOD_TILES, AUDIO_RATE,
    AUDIO_SNR_DB, AUDIO_STEP, AUDIO_TILE_SAMPLES, DEFAULT_AUDIO_STRENGTH,
};
pub use code::PayloadReading;
pub use detect::{
    fine_rows, frame_luma, with_named_payload, Orientation, Region, VideoDetection, VideoDetector,
    Warp, WeakReading, DETECT_P, FINE_ANALYSIS_ROWS, FINE_SCALE_MAX, FINE_SCALE_MIN,
    INCONCLUSIVE_P, MAX_TIMELINE_BINS, MAX_TIMELINE_SECONDS, NAMED_MATCH_P, SCALE_MAX, SCALE_MIN,
    WIDE_SCALE_MAX, WIDE_SCALE_MIN,
};
pub use dwtdct::{ThirdPartyDetector, ThirdPartyMark, THIRD_PARTY_DETECT_P, THIRD_PARTY_TESTS};
pub use key::{Payload, WatermarkError, WatermarkKey};
pub use motion::{Motion, Ride, ANCHOR_S, FOLLOW_S, TRACK_ROWS};

use analysis::{frame_ssim, texture_mask, Geometry, KeyPattern, SsimOfScale};
use hallmark_media::{PixelLayout, VideoFrame};

/// Default embedding strength: the target RMS of the watermark per frame in 8-bit luma
/// levels on the analysis grid, before the frame's budgets ([`MIN_FRAME_SSIM`],
/// [`MIN_FRAME_PSNR_DB`]) take their share. The perceptual mask distributes it: a floor
/// on flat areas, most of it in texture; frames with little texture get less (see
/// [`MAX_GAIN`]).
pub const DEFAULT_STRENGTH: f32 = 3.2;
/// Cap on the gain applied to the texture mask (mask 1 ≈ ordinary texture). With the mask
/// floor of 0.2 this keeps flat areas below 0.9 of a level, so that rounding changes a flat
/// pixel by at most one level: flat-but-not-empty areas (a night sky, a wall) carry a
/// faint mark instead of none, which is where the detector's whitened residual sees it best
/// (the generator's night street went from p 0.024 to detected with it).
pub const MAX_GAIN: f32 = 4.5;

/// Least SSIM (luma, 8×8 windows every 4 pixels, as ffmpeg's `ssim`) of a marked frame
/// against itself unmarked, measured after rounding to 8 bits: frames whose texture cannot
/// hide [`DEFAULT_STRENGTH`] get less. SSIM is what the texture mask (measured on the
/// coarse analysis grid, smoothed over ~5 chips) cannot see: it spills the mark into the
/// flat windows beside edges, where SSIM's loss (≈ mark² / (2σ² + C2)) is highest. The
/// goal is the mark alone (sealed losslessly vs the decoded input) at SSIM ≥ 0.99; 0.991,
/// checked on the frame as written, leaves that margin. (Until 2026-12-04: 0.9945 before rounding, sized for the old CRF 10
/// seal's own share of ≈ 0.004.)
pub const MIN_FRAME_SSIM: f64 = 0.991;

/// Least PSNR (luma, dB) of a marked frame against itself unmarked, after rounding: the
/// goal's other half (PSNR(Y) ≥ 42 dB for the mark alone). It binds on small frames
/// (176×144: an analysis chip is about one pixel, so the mark has no texture to hide in).
pub const MIN_FRAME_PSNR_DB: f64 = 42.5;

/// How long the mark keeps its sign, in seconds of the frames' times: it turns over (its
/// negative) every `TURN_S`, so that a reading weighted by the same sign less its mean
/// cancels whatever the picture holds still — the static host that drowned the mark of a
/// fixed shot (README, "A mark that turns over in time": carphone at CRF 23 z 3.3 → 9.5,
/// gen-street 10.3 → 27.1). Two seconds: each turn is coded again by the encoder (≈ 37 kB
/// on the generator's fixed street at CRF 18), so fewer turns cost less size.
pub const TURN_S: f64 = 2.0;

/// The mark's sign at `pts_s` seconds of the sealed clip's time: +1 in `[0, TURN_S)`, −1 in
/// the next `TURN_S`, and so on (before 0, or not finite: +1).
pub fn turn_sign(pts_s: f64) -> f32 {
    if !pts_s.is_finite() || pts_s < 0.0 {
        return 1.0;
    }
    if ((pts_s / TURN_S).floor() as u64).is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

/// Marks frames with one key and payload.
pub struct VideoEmbedder {
    strength: f32,
    tile: Vec<f32>,
    geom: Option<Geometry>,
    /// The upscaled mark of the current frame (per pixel, reused).
    mark: Vec<f32>,
    /// The current frame's luma before marking (reused).
    unmarked: Vec<u8>,
    /// Whether the mark rides the camera ([`VideoEmbedder::riding`]), and the motion
    /// followed so far.
    riding: bool,
    ride: Option<Ride>,
    /// Whether the mark turns over every [`TURN_S`] ([`VideoEmbedder::turning`]).
    turning: bool,
}

impl VideoEmbedder {
    /// An embedder for `payload` under `key`. `strength` ≤ 0 or non-finite selects
    /// [`DEFAULT_STRENGTH`]. The payload's `key_id` is what gets embedded; pass
    /// `key.key_id()` unless you know better.
    pub fn new(key: &WatermarkKey, payload: Payload, strength: f32) -> Self {
        let pattern = KeyPattern::new(key);
        let coded = code::encode(&code::info_bits(&payload));
        let strength = if strength.is_finite() && strength > 0.0 {
            strength
        } else {
            DEFAULT_STRENGTH
        };
        VideoEmbedder {
            strength,
            tile: pattern.embed_tile(&coded),
            geom: None,
            mark: Vec::new(),
            unmarked: Vec::new(),
            riding: true,
            ride: None,
            turning: true,
        }
    }

    /// Whether the mark turns over every [`TURN_S`] of the frames' times (on by default;
    /// off: the same sign throughout, as sealed before 2026-12-07, for the lab's
    /// comparisons). See README, "A mark that turns over in time".
    pub fn turning(mut self, on: bool) -> Self {
        self.turning = on;
        self
    }

    /// Whether the mark rides the camera (on by default): carried along with a gentle
    /// camera move that explains the frame, back at rest every [`ANCHOR_S`] of the frames'
    /// times, instead of staying put while the picture moves under it (which x264 must then
    /// code again in every predicted frame). The frames must come in order, with their
    /// times. See README, "A mark that rides the camera".
    pub fn riding(mut self, on: bool) -> Self {
        self.riding = on;
        self
    }

    /// Marks one frame in place. Only `Yuv420p` frames are marked (the Y plane); frames of
    /// any other layout, or with inconsistent planes, are left untouched.
    pub fn embed(&mut self, frame: &mut VideoFrame) {
        // Frames shorter than the tracking grid are not ridden (a 176×144 clip gained nothing
        // in the lab, and the tracker would read an interpolated grid).
        if self.riding
            && frame.height as usize >= TRACK_ROWS
            && frame.layout == PixelLayout::Yuv420p
            && frame.validate().is_ok()
        {
            let (w, h) = (frame.width as usize, frame.height as usize);
            if self.ride.as_ref().is_none_or(|r| r.frame_size() != (w, h)) {
                self.ride = Some(Ride::for_embedder(w, h));
            }
            let ride = self.ride.as_mut().expect("just set");
            // Tracked on the unmarked frame; where the motion is unknown the mark rests.
            let m = ride.next(&frame.planes[0][..w * h], frame.pts_s);
            if let Some(m) = m.filter(|m| !m.is_rest(w, h)) {
                self.embed_warped(frame, m.zoom, m.shift);
                return;
            }
        }
        let Some(gm) = self.masked_gain(frame) else {
            return;
        };
        let g = self.geom.as_ref().expect("geometry set by masked_gain");
        let mut wm = vec![0f32; g.wa * g.ha];
        for v in 0..g.ha {
            let trow = &self.tile[(v % TILE) * TILE..(v % TILE + 1) * TILE];
            for u in 0..g.wa {
                let i = v * g.wa + u;
                wm[i] = gm[i] * trow[u % TILE];
            }
        }
        self.mark.resize(g.w * g.h, 0.0);
        g.upscale_into(&wm, &mut self.mark);
        self.write_within_budgets(frame);
    }

    /// Lab: marks `frame` with the mark carried along by the content's motion since the
    /// mark was at rest, `x' = c + zoom·(x − c) + shift` (pixels, `c` the frame's centre):
    /// the tile is sampled (bilinearly, periodically) at each pixel's position before it.
    #[doc(hidden)]
    pub fn embed_warped(&mut self, frame: &mut VideoFrame, zoom: f64, shift: (f64, f64)) {
        let Some(gm) = self.masked_gain(frame) else {
            return;
        };
        let g = self.geom.as_ref().expect("geometry set by masked_gain");
        let (w, h) = (g.w, g.h);
        self.mark.resize(w * h, 0.0);
        g.upscale_into(&gm, &mut self.mark);
        let f = g.ha as f64 / h as f64;
        let taps = |n: usize, s: f64| -> Vec<(usize, usize, f32)> {
            let centre = n as f64 / 2.0;
            (0..n)
                .map(|i| {
                    let before = centre + (i as f64 + 0.5 - centre - s) / zoom;
                    let c = before * f - 0.5;
                    let c0 = c.floor();
                    let i0 = (c0 as i64).rem_euclid(TILE as i64) as usize;
                    (i0, (i0 + 1) % TILE, (c - c0) as f32)
                })
                .collect()
        };
        let (cols, rows) = (taps(w, shift.0), taps(h, shift.1));
        for (yy, &(r0, r1, rw)) in rows.iter().enumerate() {
            let a = &self.tile[r0 * TILE..][..TILE];
            let b = &self.tile[r1 * TILE..][..TILE];
            let line = &mut self.mark[yy * w..][..w];
            for (px, &(c0, c1, cw)) in line.iter_mut().zip(&cols) {
                let top = a[c0] * (1.0 - cw) + a[c1] * cw;
                let bottom = b[c0] * (1.0 - cw) + b[c1] * cw;
                *px *= top * (1.0 - rw) + bottom * rw;
            }
        }
        self.write_within_budgets(frame);
    }

    /// The mark's amplitude per analysis pixel (`gain × mask`) for `frame`, with the
    /// frame's geometry set; `None` for frames that are not marked (not `Yuv420p`, or
    /// inconsistent planes).
    fn masked_gain(&mut self, frame: &VideoFrame) -> Option<Vec<f32>> {
        if frame.layout != PixelLayout::Yuv420p || frame.validate().is_err() {
            return None;
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        if self.geom.as_ref().is_none_or(|g| g.w != w || g.h != h) {
            self.geom = Some(Geometry::new(w, h));
        }
        let g = self.geom.as_ref().expect("geometry just set");
        let mut x = g.downscale(&frame.planes[0]);
        g.fill_empty_columns(&mut x);
        let mask = texture_mask(&x, g.wa, g.ha);
        let rms = (mask.iter().map(|m| m * m).sum::<f32>() / mask.len() as f32).sqrt();
        let gain = (self.strength / rms.max(1e-6)).min(MAX_GAIN);
        Some(mask.iter().map(|m| gain * m).collect())
    }

    /// Adds `self.mark` to the frame's luma, scaled to meet the frame's budgets.
    fn write_within_budgets(&mut self, frame: &mut VideoFrame) {
        let (w, h) = (frame.width as usize, frame.height as usize);
        // The sign first: the budgets are measured on the mark as written.
        if self.turning && turn_sign(frame.pts_s) < 0.0 {
            self.mark.iter_mut().for_each(|d| *d = -*d);
        }
        let y = &mut frame.planes[0][..w * h];
        self.unmarked.clear();
        self.unmarked.extend_from_slice(y);
        // The frame's budgets, first predicted on the unrounded mark (SSIM as a function
        // of the scale, PSNR from its energy), then checked on the rounded frame, which is
        // what a lossless seal writes: rounding removes sub-half-level marks on flat areas
        // and adds up to half a level elsewhere.
        let energy = self.mark.iter().map(|&d| f64::from(d * d)).sum::<f64>() / (w * h) as f64;
        let mse_max = 255f64.powi(2) / 10f64.powf(MIN_FRAME_PSNR_DB / 10.0);
        let k_psnr = (mse_max / energy.max(1e-12)).sqrt().min(1.0);
        let k_ssim = SsimOfScale::new(y, &self.mark, w, h).largest_scale(MIN_FRAME_SSIM);
        let mut k = k_ssim.min(k_psnr) as f32;
        let ssim_loss_max = 1.0 - MIN_FRAME_SSIM;
        for _ in 0..BUDGET_TRIES {
            for ((px, &d), &u) in y.iter_mut().zip(&self.mark).zip(&self.unmarked) {
                // +0.5 and truncation instead of round(): no libm call per pixel; values
                // below −0.5 truncate towards zero and are clamped to 0 all the same.
                *px = ((u as f32 + k * d + 0.5) as i32).clamp(0, 255) as u8;
            }
            let sq: u64 = y
                .iter()
                .zip(&self.unmarked)
                .map(|(&a, &b)| u64::from(a.abs_diff(b)).pow(2))
                .sum();
            let mse = sq as f64 / (w * h) as f64;
            let ssim_loss = 1.0 - frame_ssim(&self.unmarked, y, w, h);
            if mse <= mse_max && ssim_loss <= ssim_loss_max {
                return;
            }
            // Both losses grow about as k² (rounding bends that where the mark is near half
            // a level), so step to where the worse one would meet its budget, a little under.
            let ratio = (mse_max / mse).min(ssim_loss_max / ssim_loss).sqrt();
            k *= (0.99 * ratio).min(0.99) as f32;
        }
        // Still over budget after the tries (a pathological frame): leave it unmarked.
        y.copy_from_slice(&self.unmarked);
    }
}

/// Tries at the frame's scale: the predicted one, then rescaled from the rounded frame's
/// measured losses until both budgets hold.
const BUDGET_TRIES: usize = 6;
