//! The lab's riding mark (`VideoEmbedder::embed_warped`, scripts/lab-riding-mark): a mark
//! carried along by the content's motion is the mark at rest, moved with the picture.

mod common;
use common::*;
use hallmark_media::VideoFrame;
use hallmark_watermark::*;

/// `f` with its content moved by `(dx, dy)` pixels (edges repeated).
fn moved(f: &VideoFrame, dx: usize, dy: usize) -> VideoFrame {
    let (w, h) = (f.width as usize, f.height as usize);
    let mut m = f.clone();
    for y in 0..h {
        for x in 0..w {
            m.planes[0][y * w + x] = f.planes[0][y.saturating_sub(dy) * w + x.saturating_sub(dx)];
        }
    }
    m
}

/// The mark `marked − unmarked`, per pixel.
fn mark_of(marked: &VideoFrame, unmarked: &VideoFrame) -> Vec<f64> {
    marked.planes[0]
        .iter()
        .zip(&unmarked.planes[0])
        .map(|(&a, &b)| f64::from(a) - f64::from(b))
        .collect()
}

/// Normalised correlation of `a(x)` with `b(x − d)` over the frame less a margin.
fn correlation(a: &[f64], b: &[f64], w: usize, h: usize, d: (usize, usize)) -> f64 {
    let margin = 100;
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for y in margin..h - margin {
        for x in margin..w - margin {
            let (p, q) = (a[y * w + x], b[(y - d.1) * w + x - d.0]);
            ab += p * q;
            aa += p * p;
            bb += q * q;
        }
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn a_riding_mark_moves_with_the_content() {
    let k = key(3, 5);
    let frame = &decode(&shared("video/bigbuckbunny.mp4"), 31)[30];
    let (w, h) = (frame.width as usize, frame.height as usize);
    assert_eq!((w, h), (1280, 720));
    // 45 pixels are 8 analysis chips at 720p (5.625 px each): the moved frame's grid is the
    // first one's moved by whole cells, so its mask is the same, moved.
    let later = moved(frame, 45, 90);
    let mut emb = VideoEmbedder::new(&k, payload(&k), DEFAULT_STRENGTH);
    let (mut a, mut b) = (frame.clone(), later.clone());
    emb.embed_warped(&mut a, 1.0, (0.0, 0.0));
    emb.embed_warped(&mut b, 1.0, (45.0, 90.0));
    let (ma, mb) = (mark_of(&a, frame), mark_of(&b, &later));
    let riding = correlation(&mb, &ma, w, h, (45, 90));
    let in_place = correlation(&mb, &ma, w, h, (0, 0));
    println!(
        "mark of the moved frame vs the first mark moved: {riding:.3}, unmoved: {in_place:.3}"
    );
    assert!(
        riding > 0.9,
        "the mark did not move with the content: {riding}"
    );
    assert!(in_place.abs() < 0.2, "the mark stayed in place: {in_place}");
    // At rest it is a mark the plain detector reads, payload and all.
    let mut det = VideoDetector::new(std::slice::from_ref(&k));
    det.add_frame(&a);
    let found = det.result();
    assert!(found.detected, "p {}", found.p_value);
    assert_eq!(found.payload, Some(payload(&k)));
}
