//! Unmarked content is never detected, and the statistic behaves like its null.

mod common;
use common::*;
use hallmark_media::{PixelLayout, VideoFrame};
use hallmark_watermark::*;

fn gray(w: usize, h: usize, mut f: impl FnMut(usize, usize) -> f64) -> VideoFrame {
    let mut fr = VideoFrame::black(w as u32, h as u32, PixelLayout::Yuv420p, 0.0);
    for y in 0..h {
        for x in 0..w {
            fr.planes[0][y * w + x] = f(x, y).round().clamp(0.0, 255.0) as u8;
        }
    }
    fr
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Synthetic frames: noise, flat colours, gradients, periodic patterns, text-like glyphs.
fn synthetic() -> Vec<(String, VideoFrame)> {
    let mut out = Vec::new();
    let mut rng = Lcg(12345);
    let sizes = [
        (1280, 720),
        (640, 360),
        (320, 240),
        (1920, 1080),
        (500, 500),
        (176, 144),
    ];
    for i in 0..90 {
        let (w, h) = sizes[i % sizes.len()];
        let sigma = 2.0 + (i % 7) as f64 * 8.0;
        let mut r = Lcg(1000 + i as u64);
        out.push((
            format!("noise σ{sigma}"),
            gray(w, h, |_, _| 128.0 + (r.next() - 0.5) * sigma * 3.46),
        ));
    }
    for i in 0..40 {
        let (w, h) = sizes[i % sizes.len()];
        let v = 16.0 + (i as f64 * 5.7) % 220.0;
        out.push((format!("flat {v}"), gray(w, h, |_, _| v)));
    }
    for i in 0..40 {
        let (w, h) = sizes[i % sizes.len()];
        let (a, b) = (rng.next() - 0.5, rng.next() - 0.5);
        out.push((
            "gradient".into(),
            gray(w, h, |x, y| 128.0 + a * x as f64 * 0.4 + b * y as f64 * 0.4),
        ));
    }
    for i in 0..60 {
        let (w, h) = sizes[i % sizes.len()];
        let period = 2 + i % 23;
        let kind = i % 3;
        out.push((
            format!("periodic p{period} k{kind}"),
            gray(w, h, |x, y| match kind {
                0 => 128.0 + 60.0 * (((x / period) + (y / period)) % 2) as f64,
                1 => 128.0 + 50.0 * ((x as f64 / period as f64) * std::f64::consts::TAU).sin(),
                _ => {
                    128.0
                        + 50.0
                            * (((x + 2 * y) as f64 / period as f64) * std::f64::consts::TAU).sin()
                }
            }),
        ));
    }
    for i in 0..60 {
        let (w, h) = sizes[i % sizes.len()];
        // Text-like: rows of small dark glyph strokes on a light page.
        let mut glyph = Lcg(777 + i as u64);
        let cell = 6 + i % 10;
        let bits: Vec<u8> = (0..4096).map(|_| (glyph.next() < 0.35) as u8).collect();
        out.push((
            format!("text cell{cell}"),
            gray(w, h, |x, y| {
                let line = y / (cell * 2);
                let (cx, cy) = (x / (cell / 2).max(1), (y % (cell * 2)) / (cell / 2).max(1));
                if cy >= 3 || (line * 31 + x / (cell * 8)) % 9 == 0 {
                    235.0
                } else if bits[(cx * 5 + cy * 17 + line * 101) % 4096] == 1 {
                    30.0
                } else {
                    235.0
                }
            }),
        ));
    }
    out
}

#[test]
fn unmarked_content_is_never_detected() {
    let k = key(5, 1);
    let mut items: Vec<(String, Vec<VideoFrame>)> = Vec::new();
    // Stills at several scales and crops.
    let mut imgs: Vec<_> = std::fs::read_dir(shared("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    imgs.sort();
    for p in &imgs {
        let f = decode(p, 1).pop().unwrap();
        let (w, h) = (f.width as usize, f.height as usize);
        for s in [1.0, 0.6, 0.85, 1.4] {
            let base = resize(
                &f,
                ((w as f64 * s) as usize).max(2),
                ((h as f64 * s) as usize).max(2),
            );
            for (area, cx, cy) in [
                (1.0, 0.5, 0.5),
                (0.75, 0.5, 0.5),
                (0.75, 0.3, 0.3),
                (0.75, 0.7, 0.65),
                (0.5, 0.5, 0.5),
            ] {
                items.push((
                    format!("{} s{s} a{area}", p.file_name().unwrap().to_string_lossy()),
                    vec![crop_area(&base, area, cx, cy, false)],
                ));
            }
        }
    }
    // Every frame of the three real clips, one at a time, plus 1-second windows.
    for v in ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"] {
        let frames = decode(&shared(&format!("video/{v}")), usize::MAX);
        for (i, f) in frames.iter().enumerate() {
            items.push((format!("{v} #{i}"), vec![f.clone()]));
        }
        for (i, w) in frames.chunks(25).enumerate() {
            items.push((format!("{v} second {i}"), w.to_vec()));
        }
    }
    for (n, f) in synthetic() {
        items.push((n, vec![f]));
    }
    // The fine stage's shapes: seconds of the clips letterboxed into a portrait canvas (its
    // 512-row fine grid) and shown at half size over the other clip (picture-in-picture).
    let bbb = decode(&shared("video/bigbuckbunny.mp4"), 100);
    let bikes = decode(&shared("video/bikes.mp4"), 100);
    for (i, (a, b)) in bbb.chunks(25).zip(bikes.chunks(25)).enumerate() {
        let letterboxed = |f: &VideoFrame| {
            let small = resize(f, 720, 405);
            let mut canvas = VideoFrame::black(720, 1280, PixelLayout::Yuv420p, f.pts_s);
            canvas.planes[0][437 * 720..(437 + 405) * 720].copy_from_slice(&small.planes[0]);
            canvas
        };
        items.push((
            format!("bigbuckbunny.mp4 second {i} letterboxed 9:16"),
            a.iter().map(letterboxed).collect(),
        ));
        let pip = |(bg, fg): (&VideoFrame, &VideoFrame)| {
            let mut canvas = resize(bg, 1280, 720);
            let small = resize(fg, 640, 360);
            for y in 0..360 {
                canvas.planes[0][(300 + y) * 1280 + 600..(300 + y) * 1280 + 1240]
                    .copy_from_slice(&small.planes[0][y * 640..(y + 1) * 640]);
            }
            canvas
        };
        items.push((
            format!("bigbuckbunny.mp4 second {i} at 50 % over bikes.mp4"),
            b.iter().zip(a).map(pip).collect(),
        ));
    }

    let t = std::time::Instant::now();
    let mut ps = Vec::new();
    let mut z0 = Vec::new();
    let mut worst = (1.0f64, String::new());
    let mut named_ps = Vec::new();
    for (name, frames) in &items {
        let mut d = VideoDetector::new(std::slice::from_ref(&k));
        for f in frames {
            d.add_frame(f);
        }
        let r = d.result();
        assert!(!r.detected, "false positive on {name}: {r:?}");
        if r.p_value < worst.0 {
            worst = (r.p_value, name.clone());
        }
        // A clip id named for it (as a sound's mark would): its whole tile is not found
        // either, on every fourth item (the search costs what the detector's does).
        if ps.len().is_multiple_of(4) {
            let (named, _) = d.result_naming(&[payload(&k)]).expect("the key's tile");
            assert!(
                !named.detected && named.payload.is_none(),
                "false positive with a named clip id on {name}: {named:?}"
            );
            named_ps.push(named.p_value);
        }
        ps.push(r.p_value);
        if let Some(z) = d.score_at(0, 1.0, (0, 0)) {
            if z != 0.0 {
                z0.push(z);
            }
        }
    }
    println!(
        "a clip id named: {} items searched for its whole tile, detected {}, smallest p {:.3e}",
        named_ps.len(),
        named_ps.iter().filter(|&&p| p <= 1e-6).count(),
        named_ps.iter().cloned().fold(1.0, f64::min)
    );
    let n = ps.len();
    let frac = |v: &[f64], pred: &dyn Fn(f64) -> bool| {
        v.iter().filter(|&&x| pred(x)).count() as f64 / v.len() as f64
    };
    println!("{n} unmarked items in {:?}", t.elapsed());
    println!(
        "family-wise p: detected (≤1e-6) {}, inconclusive (<0.01) {}, <0.1: {:.4}, <0.5: {:.4}; smallest {:.3e} ({})",
        ps.iter().filter(|&&p| p <= 1e-6).count(),
        ps.iter().filter(|&&p| p < 0.01).count(),
        frac(&ps, &|p| p < 0.1),
        frac(&ps, &|p| p < 0.5),
        worst.0,
        worst.1
    );
    let m = z0.len() as f64;
    let mean = z0.iter().sum::<f64>() / m;
    let sd = (z0.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / m).sqrt();
    println!(
        "fixed-registration z ({} items): mean {mean:.3} sd {sd:.3}; P(z>1.645) {:.4} (N(0,1): 0.05), P(z>2.326) {:.4} (0.01), P(z>3.09) {:.4} (0.001); Hoeffding p<0.01: {:.4}",
        z0.len(),
        frac(&z0, &|z| z > 1.645),
        frac(&z0, &|z| z > 2.326),
        frac(&z0, &|z| z > 3.09),
        frac(&z0, &|z| (-z * z / 2.0).exp() < 0.01 && z > 0.0),
    );
    assert!(n >= 1000, "only {n} items");
    assert_eq!(ps.iter().filter(|&&p| p <= 1e-6).count(), 0);
    // The family-wise p-value is conservative: far fewer than 1% below 0.01.
    assert!(frac(&ps, &|p| p < 0.01) <= 0.01);
    // The fixed-registration statistic is calibrated (loosely: sampling error and
    // correlated items allowed for).
    assert!(
        mean.abs() < 0.2 && (0.75..1.3).contains(&sd),
        "z0 mean {mean} sd {sd}"
    );
    assert!(frac(&z0, &|z| z > 2.326) < 0.03);
}
