//! Marked real footage survives attacks: detected at p ≤ 1e-6 with the exact payload.

mod common;
use common::*;
use hallmark_media::VideoFrame;
use hallmark_watermark::*;

fn detect(frames: &[VideoFrame], keys: &[WatermarkKey]) -> VideoDetection {
    let mut d = VideoDetector::new(keys);
    for f in frames {
        d.add_frame(f);
    }
    d.result()
}

fn assert_found(name: &str, r: &VideoDetection, k: &WatermarkKey) {
    println!(
        "{name:28} frames={:3} z={:5.1} p={:9.2e} payload_ok={} coded_ber={:.3} scale={:.3}",
        r.frames_analysed,
        r.score,
        r.p_value,
        r.payload == Some(payload(k)),
        r.bit_error_estimate.unwrap_or(f64::NAN),
        r.scale.unwrap_or(f64::NAN),
    );
    assert!(
        r.detected && r.p_value <= 1e-6,
        "{name}: not detected: {r:?}"
    );
    assert_eq!(r.payload, Some(payload(k)), "{name}: payload");
    assert_eq!(r.key_id, Some(k.key_id()), "{name}: key id");
}

#[test]
fn imperceptible_on_real_footage() {
    let k = key(1, 3);
    for (file, n) in [("video/bigbuckbunny.mp4", 30), ("video/bikes.mp4", 30)] {
        let frames = decode(&shared(file), n);
        let marked = mark(&frames, &k);
        let ps: Vec<f64> = frames
            .iter()
            .zip(&marked)
            .map(|(a, b)| psnr(&a.planes[0], &b.planes[0]))
            .collect();
        let min = ps.iter().cloned().fold(f64::INFINITY, f64::min);
        let mean = ps.iter().sum::<f64>() / ps.len() as f64;
        let ss: Vec<f64> = frames
            .iter()
            .zip(&marked)
            .map(|(a, b)| {
                ssim(
                    &a.planes[0],
                    &b.planes[0],
                    a.width as usize,
                    a.height as usize,
                )
            })
            .collect();
        let smin = ss.iter().cloned().fold(f64::INFINITY, f64::min);
        println!("{file}: PSNR(Y) min {min:.2} dB, mean {mean:.2} dB; SSIM(Y) min {smin:.4}");
        // The embedder's per-frame budgets hold on the frame as written (it checks them
        // after rounding to whole levels).
        assert!(min >= MIN_FRAME_PSNR_DB, "{file}: PSNR {min}");
        assert!(smin >= MIN_FRAME_SSIM, "{file}: SSIM {smin}");
        // Chroma untouched.
        assert!(frames
            .iter()
            .zip(&marked)
            .all(|(a, b)| a.planes[1] == b.planes[1] && a.planes[2] == b.planes[2]));
    }
    // Flat areas: a flat frame is changed by at most one level, and almost nowhere.
    let mut flat = VideoFrame::black(1280, 720, hallmark_media::PixelLayout::Yuv420p, 0.0);
    flat.planes[0].iter_mut().for_each(|p| *p = 120);
    let orig = flat.clone();
    VideoEmbedder::new(&k, payload(&k), DEFAULT_STRENGTH).embed(&mut flat);
    let changed = flat.planes[0]
        .iter()
        .zip(&orig.planes[0])
        .filter(|(a, b)| a != b)
        .count();
    let maxd = flat.planes[0]
        .iter()
        .zip(&orig.planes[0])
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    println!("flat frame: {changed} pixels changed, max |Δ| {maxd}");
    assert!(maxd <= 1);
    assert!(changed < flat.planes[0].len() / 2);
}

#[test]
fn survives_in_rust_attacks() {
    let k = key(1, 3);
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 30);
    let marked = mark(&frames, &k);
    type Attack = Box<dyn Fn(&VideoFrame) -> VideoFrame>;
    let attacks: Vec<(&str, Attack)> = vec![
        ("none", Box::new(|f| f.clone())),
        ("downscale 50% (box)", Box::new(|f| resize(f, 640, 360))),
        ("downscale to 256 rows", Box::new(|f| resize(f, 456, 256))),
        ("upscale 1.5x", Box::new(|f| resize(f, 1920, 1080))),
        (
            "crop 75% centre+rescale",
            Box::new(|f| crop_area(f, 0.75, 0.5, 0.5, true)),
        ),
        (
            "crop 75% off-centre",
            Box::new(|f| crop_area(f, 0.75, 0.35, 0.6, false)),
        ),
        (
            "crop 75% off-centre+rescale",
            Box::new(|f| crop_area(f, 0.75, 0.6, 0.4, true)),
        ),
        ("brightness x0.8", Box::new(|f| brightness(f, 0.8))),
        ("contrast +30%", Box::new(|f| tone(f, 1.3, 0.0, 1.0))),
        ("contrast -30%", Box::new(|f| tone(f, 0.7, 0.0, 1.0))),
        (
            "brightness +30 levels",
            Box::new(|f| tone(f, 1.0, 30.0, 1.0)),
        ),
        ("grayscale", Box::new(|f| tone(f, 1.0, 0.0, 0.0))),
        ("saturation +30%", Box::new(|f| tone(f, 1.0, 0.0, 1.3))),
        (
            "noise sigma 4",
            Box::new(|f| noise(f, 4.0, (f.pts_s * 1000.0) as u64)),
        ),
        ("jpeg-like q8", Box::new(|f| jpeg_like(f, 8.0))),
        (
            "crop+noise 3+brightness 0.8",
            Box::new(|f| {
                let c = crop_area(f, 0.75, 0.4, 0.45, true);
                brightness(&noise(&c, 3.0, (f.pts_s * 1000.0) as u64), 0.8)
            }),
        ),
    ];
    for (name, a) in &attacks {
        let attacked: Vec<VideoFrame> = marked.iter().map(a).collect();
        assert_found(name, &detect(&attacked, std::slice::from_ref(&k)), &k);
    }
    // Frame-rate change (every other frame) and trimming (a later excerpt).
    let half: Vec<VideoFrame> = marked.iter().step_by(2).cloned().collect();
    assert_found(
        "half frame rate",
        &detect(&half, std::slice::from_ref(&k)),
        &k,
    );
    assert_found(
        "excerpt frames 15..30",
        &detect(&marked[15..], std::slice::from_ref(&k)),
        &k,
    );
    // Second clip with another aspect ratio.
    let bikes = decode(&shared("video/bikes.mp4"), 30);
    let mb = mark(&bikes, &k);
    assert_found("bikes none", &detect(&mb, std::slice::from_ref(&k)), &k);
    let a: Vec<VideoFrame> = mb
        .iter()
        .map(|f| crop_area(f, 0.75, 0.5, 0.5, true))
        .collect();
    assert_found(
        "bikes crop 75% centre+rescale",
        &detect(&a, std::slice::from_ref(&k)),
        &k,
    );
}

#[test]
fn keys_are_separate() {
    let (ka, kb) = (key(1, 3), key(2, 9));
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 20);
    let marked = mark(&frames, &ka);
    let wrong = detect(&marked, std::slice::from_ref(&kb));
    println!("wrong key: z={:.2} p={:.3}", wrong.score, wrong.p_value);
    assert!(!wrong.detected && !wrong.inconclusive);
    assert!(wrong.payload.is_none() && wrong.key_id.is_none());
    // With several keys the right one is found and the p-value pays for both.
    let both = detect(&marked, &[kb.clone(), ka.clone()]);
    assert_found("two keys", &both, &ka);
}

#[test]
fn timeline_shows_a_splice() {
    let k = key(1, 3);
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 100);
    let mut emb = VideoEmbedder::new(&k, payload(&k), DEFAULT_STRENGTH);
    // Seconds 0–1 and 3 marked, second 2 (frames 50..75) unmarked.
    let mixed: Vec<VideoFrame> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut m = f.clone();
            if !(50..75).contains(&i) {
                emb.embed(&mut m);
            }
            m
        })
        .collect();
    let r = detect(&mixed, std::slice::from_ref(&k));
    println!("timeline: {:?}", r.timeline);
    assert!(r.detected);
    assert_eq!(r.timeline.len(), 4);
    let t: Vec<f64> = r.timeline.iter().map(|p| p.unwrap()).collect();
    assert!(t[0] < 1e-6 && t[1] < 1e-6 && t[3] < 1e-6);
    assert!(t[2] > 1e-3, "unmarked second looks marked: {}", t[2]);
}

#[test]
fn survives_real_h264() {
    let k = key(1, 3);
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 75);
    let marked = mark(&frames, &k);
    let x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30"];
    let dec = ffmpeg_round_trip(&marked, 25.0, &x264, "mp4");
    assert_found("H.264 CRF 30", &detect(&dec, std::slice::from_ref(&k)), &k);
    let crop = [
        "-vf",
        "crop=iw*0.866:ih*0.866:iw*0.1:ih*0.04,scale=1280:720,eq=brightness=-0.06",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "30",
    ];
    let dec = ffmpeg_round_trip(&marked, 25.0, &crop, "mp4");
    assert_found(
        "3 s: crop 75%+CRF 30+darker",
        &detect(&dec, std::slice::from_ref(&k)),
        &k,
    );
    // The unmarked encode is not detected.
    let dec = ffmpeg_round_trip(&frames, 25.0, &x264, "mp4");
    let r = detect(&dec, std::slice::from_ref(&k));
    println!("unmarked H.264: z={:.2} p={:.3}", r.score, r.p_value);
    assert!(!r.detected);
}

#[test]
fn the_whole_clip_alone_is_one_test_instead_of_the_family() {
    // 5 s (≥ 4 s: segments are tested too, unless the whole clip alone proves the mark —
    // then the p-value is the whole clip's times the family of tests).
    let k = key(2, 5);
    let frames = mark(&decode(&shared("video/bigbuckbunny.mp4"), 125), &k);
    let family = detect(&frames, std::slice::from_ref(&k));
    let mut d = VideoDetector::new(std::slice::from_ref(&k)).whole_clip_only();
    for f in &frames {
        d.add_frame(f);
    }
    let whole = d.result();
    assert_found("all segments", &family, &k);
    assert_found("whole clip only", &whole, &k);
    assert_eq!(whole.score, family.score);
    // 5 one-second bins: the whole clip, then halves and the middle half (0–2, 1–3, 2–5 s)
    // and quarters with the windows between them (0–1, 1–2, 2–3, 3–4, 3–5 s; 1–3 again
    // is not counted twice). p ≈ 1e-88 here, far from underflow.
    assert_eq!(whole.family_size, 1);
    assert_eq!(family.family_size, 9);
    // Both keep half their error budget for what follows a plain miss (the full search:
    // the wider geometry stages; the key-frame pass: every orientation at the plain
    // scales), so the ratio is the family's size alone.
    let tests = family.p_value / whole.p_value;
    assert!(
        (tests - 9.0).abs() < 1e-9,
        "the family counts the segments, the whole clip alone one test: {tests}"
    );
    assert_eq!(whole.timeline, family.timeline);
}

#[test]
fn a_mark_too_weak_for_its_sync_alone_is_proven_by_its_payload() {
    // Marks ever weaker (strength × 0.70 … 0.58), cropped to 40 % of the area, scaled back
    // and compressed (CRF 30): somewhere on the way down the sync chips alone no longer
    // prove the mark (p > 1e-6) while its payload still decodes — a decode out of no mark
    // has probability ≈ 7.7e-5 at any registration, so its 16 check bits prove it (before,
    // only the sync counted: strength × 0.62, presence p 3.1e-6, was not detected).
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 48);
    let mut proven_by_payload = 0;
    for (i, share) in [0.70, 0.67, 0.65, 0.64, 0.63, 0.62, 0.61, 0.60, 0.58]
        .into_iter()
        .enumerate()
    {
        let k = key(21, 3 + i as u8);
        let mut emb = VideoEmbedder::new(&k, payload(&k), DEFAULT_STRENGTH * share);
        let mut marked = frames.clone();
        marked.iter_mut().for_each(|f| emb.embed(f));
        let copy = ffmpeg_round_trip(
            &marked,
            24.0,
            &[
                "-vf",
                "crop=iw*0.63:ih*0.63:iw*0.1:ih*0.2,scale=1280:720",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "30",
            ],
            "mp4",
        );
        let r = detect(&copy, std::slice::from_ref(&k));
        println!(
            "strength × {share}: z {:.2} p {:.2e} presence alone {:.2e} payload {}",
            r.score,
            r.p_value,
            r.presence_p,
            r.payload.is_some()
        );
        assert!(r.p_value <= r.presence_p, "{r:?}");
        if r.detected {
            assert_eq!(r.payload, Some(payload(&k)), "{r:?}");
            if r.presence_p > DETECT_P {
                proven_by_payload += 1;
            }
        } else {
            assert!(r.presence_p > DETECT_P, "{r:?}");
        }
    }
    assert!(
        proven_by_payload >= 1,
        "no mark was proven by its payload alone"
    );
}
