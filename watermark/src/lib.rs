//! The keyed invisible watermark: embed a clip identifier in the picture, and extract it
//! with an honest p-value.
//!
//! * [`VideoEmbedder`] adds a keyed, texture-masked ±1 tile (64×64 chips on a fixed
//!   128-row analysis grid, repeated over the frame and scaled up to the frame size) to the
//!   luma of every frame, scaled down where needed to keep each frame's SSIM against
//!   itself unmarked at [`MIN_FRAME_SSIM`]. A quarter of the chips form the *sync*
//!   pattern (presence test and registration); the rest carry the convolutionally coded
//!   payload.
//! * [`VideoDetector`] box-downscales each frame to the analysis grid, whitens it, and sums
//!   the residuals over the clip. At the end it folds the sum modulo the tile at every
//!   candidate scale, finds the best cyclic shift by FFT cross-correlation with the sync
//!   pattern, and turns the maximum normalised correlation into a family-wise p-value
//!   (Hoeffding bound × number of keys, scales, sub-chip phases and shifts tried). The
//!   payload is decoded only afterwards, at the registered position, and never decides
//!   presence.
//!
//! See README.md for the algorithm and the measured numbers.

mod analysis;
mod audio;
mod code;
mod detect;
mod dwtdct;
mod fft;
mod key;
mod lattice;
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
pub use detect::{
    frame_luma, Orientation, Region, VideoDetection, VideoDetector, Warp, DETECT_P, INCONCLUSIVE_P,
    MAX_TIMELINE_BINS, MAX_TIMELINE_SECONDS, SCALE_MAX, SCALE_MIN, WIDE_SCALE_MAX, WIDE_SCALE_MIN,
};
pub use dwtdct::{ThirdPartyDetector, ThirdPartyMark, THIRD_PARTY_DETECT_P, THIRD_PARTY_TESTS};
pub use key::{Payload, WatermarkError, WatermarkKey};

use analysis::{texture_mask, Geometry, KeyPattern, SsimOfScale};
use hallmark_media::{PixelLayout, VideoFrame};

/// Default embedding strength: the target RMS of the watermark per frame in 8-bit luma
/// levels on the analysis grid, before the frame's SSIM budget ([`MIN_FRAME_SSIM`]) takes
/// its share (Big Buck Bunny then gets ≈ PSNR 44 dB). The perceptual mask distributes it:
/// ~0 on flat areas, most of it in texture; frames with little texture get less (see
/// [`MAX_GAIN`]).
pub const DEFAULT_STRENGTH: f32 = 3.2;
/// Cap on the gain applied to the texture mask (mask 1 ≈ ordinary texture). With the mask
/// floor of 0.08 this keeps flat areas below half a level, i.e. untouched after rounding.
pub const MAX_GAIN: f32 = 4.5;

/// Least SSIM (luma, 8×8 windows every 4 pixels, as ffmpeg's `ssim`) of a marked frame
/// against itself unmarked: frames whose texture cannot hide [`DEFAULT_STRENGTH`] get less.
/// SSIM is what the texture mask (measured on the coarse analysis grid, smoothed over ~5
/// chips) cannot see: it spills the mark into the flat windows beside edges, where SSIM's
/// loss (≈ mark² / (2σ² + C2)) is highest. Before the encode's own share (at the seal's CRF
/// 10, ≈ 0.004), so that the sealed clip stays ≥ 0.99 from the same encode unmarked.
pub const MIN_FRAME_SSIM: f64 = 0.9945;

/// Marks frames with one key and payload.
pub struct VideoEmbedder {
    strength: f32,
    tile: Vec<f32>,
    geom: Option<Geometry>,
    /// The upscaled mark of the current frame (per pixel, reused).
    mark: Vec<f32>,
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
        }
    }

    /// Marks one frame in place. Only `Yuv420p` frames are marked (the Y plane); frames of
    /// any other layout, or with inconsistent planes, are left untouched.
    pub fn embed(&mut self, frame: &mut VideoFrame) {
        if frame.layout != PixelLayout::Yuv420p || frame.validate().is_err() {
            return;
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        if self.geom.as_ref().is_none_or(|g| g.w != w || g.h != h) {
            self.geom = Some(Geometry::new(w, h));
        }
        let g = self.geom.as_ref().expect("geometry just set");
        let x = g.downscale(&frame.planes[0]);
        let mask = texture_mask(&x, g.wa, g.ha);
        let rms = (mask.iter().map(|m| m * m).sum::<f32>() / mask.len() as f32).sqrt();
        let gain = (self.strength / rms.max(1e-6)).min(MAX_GAIN);
        let mut wm = vec![0f32; g.wa * g.ha];
        for v in 0..g.ha {
            let trow = &self.tile[(v % TILE) * TILE..(v % TILE + 1) * TILE];
            for u in 0..g.wa {
                let i = v * g.wa + u;
                wm[i] = gain * mask[i] * trow[u % TILE];
            }
        }
        self.mark.resize(w * h, 0.0);
        g.upscale_into(&wm, &mut self.mark);
        let y = &mut frame.planes[0][..w * h];
        // The frame's budget: the mark alone may cost it at most this much SSIM (an encode
        // of the sealed clip adds about as much again, see README).
        let k = SsimOfScale::new(y, &self.mark, w, h).largest_scale(MIN_FRAME_SSIM) as f32;
        for (px, &d) in y.iter_mut().zip(&self.mark) {
            // +0.5 and truncation instead of round(): no libm call per pixel; values
            // below −0.5 truncate towards zero and are clamped to 0 all the same.
            *px = ((*px as f32 + k * d + 0.5) as i32).clamp(0, 255) as u8;
        }
    }
}
