//! A clip shown small inside other footage (picture-in-picture, a reaction video's inset):
//! the inset is found from the frames alone (a rectangle of persistent edges), tested as
//! sealed on its own grid, and the report says where it is.

mod common;
use common::*;
use hallmark_media::VideoFrame;
use hallmark_watermark::*;

/// `fg` pasted into `bg` at `(x, y)` (even offsets, every plane).
fn inset(bg: &VideoFrame, fg: &VideoFrame, (x, y): (usize, usize)) -> VideoFrame {
    let mut out = bg.clone();
    let (bw, fw, fh) = (bg.width as usize, fg.width as usize, fg.height as usize);
    for (p, s) in [(0, 1), (1, 2), (2, 2)] {
        let (pw, qw) = (bw.div_ceil(s), fw.div_ceil(s));
        for r in 0..fh.div_ceil(s) {
            out.planes[p][(y / s + r) * pw + x / s..][..qw]
                .copy_from_slice(&fg.planes[p][r * qw..][..qw]);
        }
    }
    out
}

#[test]
fn a_clip_at_40_percent_in_a_corner_of_other_footage_is_found_there() {
    // Big Buck Bunny sealed (1280×720), shown at 40 % in the top right corner over the
    // bikes footage scaled to the same frame, through x264 veryfast CRF 23 as a platform
    // reposts it; the same composite of the unsealed clip. Its borders on the inset
    // finder's 4-px grid, and 2 px off it (borders inside its coarse pixels: the inset was
    // not found, and the mark not detected, p 0.07).
    let k = key(11, 7);
    let clip = decode(&shared("video/bigbuckbunny.mp4"), 90);
    let background = decode(&shared("video/bikes.mp4"), 90);
    let marked = mark(&clip, &k);
    for at in [(728, 28), (730, 30)] {
        let (w, h, iw, ih) = (1280, 720, 512, 288);
        let composite = |frames: &[VideoFrame]| -> Vec<VideoFrame> {
            let out: Vec<VideoFrame> = frames
                .iter()
                .zip(&background)
                .map(|(f, b)| inset(&resize(b, w, h), &resize(f, iw, ih), at))
                .collect();
            let x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"];
            ffmpeg_round_trip(&out, 30.0, &x264, "mp4")
        };
        let detect = |frames: &[VideoFrame]| {
            let mut det = VideoDetector::new(std::slice::from_ref(&k));
            frames.iter().for_each(|f| det.add_frame(f));
            det.result()
        };
        let found = detect(&composite(&marked));
        assert!(found.detected, "{at:?}: {found:?}");
        assert_eq!(found.payload, Some(payload(&k)), "{at:?}: {found:?}");
        let r = found.region.expect("region");
        // To 3 px: the region is the inset found, not a registration's estimate.
        let want = (at.0 as f64 / 1280.0, at.1 as f64 / 720.0, 0.4, 0.4);
        for (got, want, size) in [
            (r.x, want.0, 1280.0),
            (r.y, want.1, 720.0),
            (r.w, want.2, 1280.0),
            (r.h, want.3, 720.0),
        ] {
            assert!((got - want).abs() * size <= 3.0, "{at:?}: {r:?}");
        }
        let unsealed = detect(&composite(&clip));
        assert!(!unsealed.detected, "{at:?}: {unsealed:?}");
    }
}
