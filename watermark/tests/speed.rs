//! Analysis speed at 1080p (printed; loosely asserted, the machine is shared).

mod common;
use common::*;
use hallmark_watermark::*;

#[test]
fn analysis_speed_1080p() {
    let k = key(1, 3);
    let src = decode(&shared("video/bigbuckbunny.mp4"), 12);
    let mut emb = VideoEmbedder::new(&k, payload(&k), DEFAULT_STRENGTH);
    let frames: Vec<_> = src.iter().map(|f| resize(f, 1920, 1080)).collect();
    let t = std::time::Instant::now();
    let mut marked = frames.clone();
    for f in marked.iter_mut() {
        emb.embed(f);
    }
    let embed_s = t.elapsed().as_secs_f64() / frames.len() as f64;
    let mut d = VideoDetector::new(std::slice::from_ref(&k));
    let t = std::time::Instant::now();
    for _ in 0..3 {
        for f in &marked {
            d.add_frame(f);
        }
    }
    let add_s = t.elapsed().as_secs_f64() / (3 * marked.len()) as f64;
    let t = std::time::Instant::now();
    let r = d.result();
    let result_s = t.elapsed().as_secs_f64();
    assert!(r.detected);
    let clip = 300.0; // 10 s at 30 fps
    let total = clip * add_s + result_s;
    println!(
        "1080p: embed {:.1} ms/frame ({:.0} fps); detector add_frame {:.2} ms/frame, result() {:.0} ms; 10 s clip (300 frames): {:.2} s = {:.0} fps = {:.1}x real time",
        embed_s * 1e3,
        1.0 / embed_s,
        add_s * 1e3,
        result_s * 1e3,
        total,
        clip / total,
        10.0 / total
    );
    assert!(clip / total > 30.0);
    // Unmarked frames: the plain search does not detect, so the wider one (every
    // orientation, scales 0.4–2.5) runs too; its cost is printed (the shared machine makes
    // timing asserts meaningless).
    let mut d = VideoDetector::new(std::slice::from_ref(&k));
    for f in &frames {
        d.add_frame(f);
    }
    let t = std::time::Instant::now();
    let r = d.result();
    println!(
        "1080p unmarked (plain + wider search): result() {:.0} ms, p {:.2}",
        t.elapsed().as_secs_f64() * 1e3,
        r.p_value
    );
    assert!(!r.detected);
}

/// `result()` on an unmarked 10 s 1080p accumulation (30 frames spread over 10 s, so the
/// timeline has 10 one-second bins and every segment window is searched), which pays every
/// stage: the whole clip, its 10 segments, the orientation/scale search and the lattice
/// stage. Printed, not asserted (the machine is shared): compare runs on one machine.
#[test]
fn unmarked_result_cost_1080p_10s() {
    let k = key(1, 3);
    let src = decode(&shared("video/bigbuckbunny.mp4"), 30);
    let mut d = VideoDetector::new(std::slice::from_ref(&k));
    for (i, f) in src.iter().enumerate() {
        let mut f = resize(f, 1920, 1080);
        f.pts_s = i as f64 / 3.0;
        d.add_frame(&f);
    }
    let mut times = Vec::new();
    let mut r = None;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        r = Some(d.result());
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let r = r.expect("ran");
    times.sort_by(f64::total_cmp);
    println!(
        "1080p unmarked, 10 s timeline ({} tests): result() median {:.0} ms (min {:.0}, max {:.0}) on {} threads, p {:.2}",
        r.family_size,
        times[1],
        times[0],
        times[2],
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        r.p_value
    );
    assert!(!r.detected && !r.inconclusive, "p {}", r.p_value);
    assert_eq!(r.family_size, 11);
}
