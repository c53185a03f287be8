//! Third-party marks in what a scan decodes: the default `dwtDct` watermarks of open
//! generators (Stable Diffusion 1.x/2.x, SDXL, Stable Video Diffusion, FLUX.1), found by
//! [`hallmark_watermark::ThirdPartyDetector`]. The scan ([`crate::scan`]) offers every
//! frame it analyses to a [`Sampler`], which keeps [`SAMPLES_PER_S`] of them per second of
//! picture for the first [`FULL_RATE_S`] seconds, [`LATE_SAMPLES_PER_S`] after (a still: its
//! one frame) — proportionally fewer of frames larger than [`REFERENCE_PIXELS`] — and
//! reports [`ThirdPartyMark`]s in [`crate::scan::ScanCoverage::third_party`].
//!
//! A detected mark says the picture carries that generator's fixed, public message in the
//! package's layout, at `p_value` (family-wise over every generator convention tried). Its
//! absence proves nothing: the mark is optional in those tools, and crops, rescaling and
//! strong compression remove it.

use hallmark_media::VideoFrame;
use hallmark_watermark::{ThirdPartyDetector, ThirdPartyMark};

/// Frames per second of picture the third-party detector gets. The mark is in every frame
/// of a generated clip; a few frames a second carry as much of it as the clip's
/// compression leaves, at a small share of the decoding's cost (a 1080p frame takes a few
/// milliseconds).
pub const SAMPLES_PER_S: f64 = 4.0;

/// Seconds of picture sampled at [`SAMPLES_PER_S`]; later frames at [`LATE_SAMPLES_PER_S`].
/// A minute gives 240 frames, more than a generated clip's mark needs (an SVD clip is proven
/// from 8); a long film then costs a quarter as much a second.
pub const FULL_RATE_S: f64 = 60.0;

/// Frames per second of picture after [`FULL_RATE_S`].
pub const LATE_SAMPLES_PER_S: f64 = 1.0;

/// The frame size the rates above are for: 1024×1024, the largest picture a known
/// generator marks by default (SDXL, FLUX.1; Stable Video Diffusion's frames are 1024×576).
/// The evidence is counted in blocks (8×8 pixels each), so a larger frame is taken
/// proportionally less often: a 1080p frame carries twice the blocks and is taken 2 times
/// a second instead of 4 — the same blocks a second at half the cost (the votes of every
/// block of six chroma planes, ≈ 7 ms a 1080p frame, were a quarter of the full scan's
/// decoding). The generators' marks do not survive an upscale, so a frame larger than they
/// make holds a mark only where the generator made it that large (FLUX.1 up to 2 MP).
pub const REFERENCE_PIXELS: f64 = 1024.0 * 1024.0;

/// Frames without a usable timestamp: one in this many is taken.
const EVERY_NTH_UNTIMED: u64 = 8;

/// Picks the frames of a scan for the third-party detector and holds its sums.
#[derive(Debug, Clone, Default)]
pub struct Sampler {
    detector: ThirdPartyDetector,
    /// The time from which the next frame is taken.
    next_s: Option<f64>,
    untimed: u64,
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler::default()
    }

    /// Takes `frame` into the detector when it is due: the first frame, then the first
    /// frame at or after each `1 / SAMPLES_PER_S` step (`1 / LATE_SAMPLES_PER_S` from
    /// [`FULL_RATE_S`] on; frames out of order or repeated times are skipped until the clock
    /// passes the step).
    pub fn offer(&mut self, frame: &VideoFrame) {
        let t = frame.pts_s;
        if !t.is_finite() {
            if self.untimed.is_multiple_of(EVERY_NTH_UNTIMED) {
                self.detector.add_frame(frame);
            }
            self.untimed += 1;
            return;
        }
        if self.next_s.is_some_and(|next| t < next) {
            return;
        }
        self.detector.add_frame(frame);
        let rate = if t < FULL_RATE_S {
            SAMPLES_PER_S
        } else {
            LATE_SAMPLES_PER_S
        };
        let pixels = f64::from(frame.width) * f64::from(frame.height);
        let step = 1.0 / rate * (pixels / REFERENCE_PIXELS).max(1.0);
        // The next step after t on a grid from 0, so the pace does not drift.
        self.next_s = Some(((t / step).floor() + 1.0) * step);
    }

    /// Adds what another sampler took (the second part of a split scan).
    pub fn merge(&mut self, other: Sampler) {
        self.detector.merge(other.detector);
    }

    /// Frames taken so far.
    pub fn frames(&self) -> usize {
        self.detector.frames()
    }

    /// Every known generator's mark tested on the frames taken (empty when none was).
    pub fn finish(&self) -> Vec<ThirdPartyMark> {
        self.detector.result()
    }
}

/// The third-party marks of one decoded still.
pub fn still_marks(frame: &VideoFrame) -> Vec<ThirdPartyMark> {
    let mut detector = ThirdPartyDetector::new();
    detector.add_frame(frame);
    detector.result()
}

/// The marks found (`detected`), most significant first.
pub fn detected(marks: &[ThirdPartyMark]) -> Vec<&ThirdPartyMark> {
    marks.iter().filter(|m| m.detected).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_media::PixelLayout;

    #[test]
    fn samples_a_few_frames_a_second() {
        let mut s = Sampler::new();
        // 30 fps for 2 s, timestamps a little jittered.
        for i in 0..60 {
            let f = VideoFrame::black(64, 64, PixelLayout::Yuv420p, i as f64 / 30.0 + 1e-4);
            s.offer(&f);
        }
        assert_eq!(s.frames(), 8);
        // A still: its one frame.
        let mut still = Sampler::new();
        still.offer(&VideoFrame::black(64, 64, PixelLayout::Yuv420p, 0.0));
        assert_eq!(still.frames(), 1);
        // A flat frame matches nothing.
        assert!(detected(&still.finish()).is_empty());
        // Frames without a timestamp: one in EVERY_NTH_UNTIMED, and each one counted.
        let mut untimed = Sampler::new();
        for _ in 0..16 {
            untimed.offer(&VideoFrame::black(64, 64, PixelLayout::Yuv420p, f64::NAN));
        }
        assert_eq!(untimed.frames(), 2);
        // A long clip: 4 a second for its first minute, 1 a second after (30 fps, 70 s).
        let mut long = Sampler::new();
        for i in 0..2100 {
            long.offer(&VideoFrame::black(
                16,
                16,
                PixelLayout::Yuv420p,
                i as f64 / 30.0 + 1e-4,
            ));
        }
        assert_eq!(long.frames(), 240 + 10);
        // Frames larger than REFERENCE_PIXELS are taken proportionally less often: 1080p
        // (1.98× the reference) about 2 a second, 4K about 1 every 2 s; 1024² at the full rate.
        let taken = |w: u32, h: u32| {
            let mut s = Sampler::new();
            for i in 0..300 {
                let f = VideoFrame::black(w, h, PixelLayout::Yuv420p, i as f64 / 30.0 + 1e-4);
                s.offer(&f);
            }
            s.frames()
        };
        assert_eq!(taken(1024, 1024), 40);
        assert_eq!(taken(1920, 1080), 21);
        assert_eq!(taken(3840, 2160), 6);
    }

    fn scanned(rel: &str) -> crate::scan::ScanCoverage {
        hallmark_media::init();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(rel);
        let mut decoder = hallmark_media::Decoder::open(&path, PixelLayout::Yuv420p)
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let key = hallmark_watermark::WatermarkKey::generate(1).expect("a key");
        let mut video = hallmark_watermark::VideoDetector::new(&[key]);
        crate::scan::scan(&mut decoder, &mut video, None, |_| {})
    }

    #[test]
    fn the_scan_reports_third_party_marks() {
        // A generated clip: the scan's sample of its frames (4 a second of 7).
        let clip = scanned("testdata/third-party/svd-bbb.mp4");
        let found = detected(&clip.third_party);
        assert_eq!(found.len(), 1, "{:#?}", clip.third_party);
        assert_eq!(found[0].generator, "SDXL / Stable Video Diffusion");
        assert_eq!(found[0].message, "0xB3EC907BB19E");
        assert_eq!(found[0].frames, 8);
        // A still, decoded to 4:2:0 as the scan does it.
        let still = scanned("testdata/third-party/sd1-chelsea.png");
        let found = detected(&still.third_party);
        assert_eq!(found.len(), 1, "{:#?}", still.third_party);
        assert_eq!(found[0].generator, "Stable Diffusion 1.x");
        assert_eq!(found[0].frames, 1);
        // The unmarked original: every generator scored, none found.
        let original = scanned("../shared/media/images/chelsea.png");
        assert_eq!(original.third_party.len(), 4);
        assert!(detected(&original.third_party).is_empty());
    }
}
