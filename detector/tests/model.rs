//! The candle detection model against the plain-Rust path of `hallmark-watermark`, on
//! `Device::Cpu`: same residuals (random and real frames, both downscale kernels, box, area
//! and bilinear grids: the detector's, `AnalysisGrid::for_reading`), batch size does not matter, and detection through the model finds a
//! marked clip with its exact payload and not an unmarked one.

use std::path::{Path, PathBuf};

mod common;
use common::random_luma;

use candle_core::{Device, Tensor};
use hallmark_detector::model::{to_host, Config, ResidualModel};
use hallmark_media::{Decoder, MediaFrame, PixelLayout, VideoFrame};
use hallmark_watermark::{
    fine_rows, AnalysisGrid, Payload, VideoDetector, VideoEmbedder, WatermarkKey, ANALYSIS_ROWS,
    DEFAULT_STRENGTH, FINE_ANALYSIS_ROWS,
};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel)
}

fn decode(path: &Path, max: usize) -> Vec<VideoFrame> {
    let mut d = Decoder::open(path, PixelLayout::Yuv420p).expect("open");
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().expect("decode") {
        if let MediaFrame::Video(v) = f {
            out.push(v);
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

fn key(seed: u8, id: u8) -> WatermarkKey {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    WatermarkKey::from_secret(s, id)
}

fn models() -> Vec<(&'static str, ResidualModel)> {
    let fused = ResidualModel::new(Config::default(), &Device::Cpu).unwrap();
    let ops = ResidualModel::new(
        Config {
            fused_cpu_kernels: false,
            ..Config::default()
        },
        &Device::Cpu,
    )
    .unwrap();
    vec![("fused", fused), ("tensor ops", ops)]
}

/// Runs `frames` (same size) through `model` as one batch; per-frame residuals.
fn run(model: &mut ResidualModel, frames: &[&[u8]], w: usize, h: usize) -> Vec<Vec<f32>> {
    let data: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let t = Tensor::from_vec(data, (frames.len(), 1, h, w), &Device::Cpu).unwrap();
    let r = model.forward(&t).unwrap();
    let (wa, ha) = model.grid_size(w, h).unwrap();
    assert_eq!(r.dims(), &[frames.len(), 1, ha, wa]);
    to_host::<f32>(&r)
        .unwrap()
        .chunks_exact(wa * ha)
        .map(<[f32]>::to_vec)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// On the CPU every path of the model is bit-identical to the plain one (a GPU may differ
/// by rounding; the statistics do not care).
const TOL: f32 = 0.0;

#[test]
fn model_matches_plain_path_on_random_frames() {
    // Box grids (1080p, 720p, odd sizes, portrait) and bilinear ones (shorter than 128 rows).
    let sizes = [
        (1920, 1080),
        (1280, 720),
        (641, 273),
        (333, 217),
        (480, 854),
        (128, 128),
        (176, 100),
        (300, 40),
        (7, 3),
    ];
    for (name, mut model) in models() {
        for (i, &(w, h)) in sizes.iter().enumerate() {
            let frames: Vec<Vec<u8>> = (0..3)
                .map(|k| random_luma(w, h, (i * 7 + k) as u64))
                .collect();
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let got = run(&mut model, &refs, w, h);
            let grid = AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS);
            for (f, g) in frames.iter().zip(&got) {
                let want = grid.residual(f);
                let d = max_diff(&want, g);
                assert!(d <= TOL, "{name} {w}x{h}: max |diff| {d}");
            }
        }
    }
}

#[test]
fn fine_model_matches_plain_path_on_random_frames() {
    // The fine stage's residual (256 rows): both kernels, box and bilinear grids.
    for fused in [true, false] {
        let config = Config {
            fused_cpu_kernels: fused,
            ..Config::default()
        };
        for (i, &(w, h)) in [(1920, 1080), (641, 273), (720, 1280), (176, 144)]
            .iter()
            .enumerate()
        {
            let rows = fine_rows(w, h);
            let config = Config {
                analysis_rows: rows,
                ..config.clone()
            };
            let mut model = ResidualModel::new(config, &Device::Cpu).unwrap();
            let frames: Vec<Vec<u8>> = (0..2)
                .map(|k| random_luma(w, h, (50 + i * 3 + k) as u64))
                .collect();
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let got = run(&mut model, &refs, w, h);
            let grid = AnalysisGrid::for_reading(w, h, rows);
            assert_eq!(rows, FINE_ANALYSIS_ROWS * if h > w { 2 } else { 1 });
            for (f, g) in frames.iter().zip(&got) {
                let d = max_diff(&grid.residual(f), g);
                assert!(d <= TOL, "fused {fused} {w}x{h}: max |diff| {d}");
            }
        }
    }
}

#[test]
fn downscale_is_exact_in_both_kernels() {
    for (name, mut model) in models() {
        // Pixel-centre bins, area cells (240p: 1.875 pixels a cell), bilinear.
        for &(w, h) in &[(1920, 1080), (1000, 563), (426, 240), (176, 100)] {
            assert_eq!(
                AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS).is_area(),
                (w, h) == (426, 240)
            );
            let f = random_luma(w, h, 5);
            let t = Tensor::from_slice(&f, (1, 1, h, w), &Device::Cpu).unwrap();
            let got = to_host::<f32>(&model.downscale(&t).unwrap()).unwrap();
            assert_eq!(
                got,
                AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS).downscale(&f),
                "{name} {w}x{h}"
            );
        }
    }
}

#[test]
fn model_matches_plain_path_on_real_frames() {
    for clip in ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"] {
        let frames = decode(&shared(&format!("video/{clip}")), 6);
        assert!(!frames.is_empty(), "{clip}: no frames");
        let (w, h) = (frames[0].width as usize, frames[0].height as usize);
        let grid = AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS);
        for (name, mut model) in models() {
            let refs: Vec<&[u8]> = frames.iter().map(|f| &f.planes[0][..w * h]).collect();
            let got = run(&mut model, &refs, w, h);
            for (f, g) in refs.iter().zip(&got) {
                let d = max_diff(&grid.residual(f), g);
                assert!(d <= TOL, "{clip} {name}: max |diff| {d}");
            }
        }
    }
}

#[test]
fn batch_of_one_equals_batch_of_n() {
    let (w, h) = (1280, 720);
    let frames: Vec<Vec<u8>> = (0..7).map(|k| random_luma(w, h, 100 + k)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    for (name, mut model) in models() {
        let all = run(&mut model, &refs, w, h);
        for (i, f) in refs.iter().enumerate() {
            let one = run(&mut model, &[f], w, h);
            assert_eq!(one[0], all[i], "{name}: frame {i} alone vs in a batch of 7");
        }
        // The per-batch sum is the sum of the per-frame residuals.
        let data: Vec<u8> = frames.concat();
        let t = Tensor::from_vec(data, (7, 1, h, w), &Device::Cpu).unwrap();
        let (_, sum) = model.forward_with_sum(&t).unwrap();
        let sum = to_host::<f32>(&sum).unwrap();
        let mut want = vec![0f32; sum.len()];
        for r in &all {
            want.iter_mut().zip(r).for_each(|(s, v)| *s += v);
        }
        assert!(max_diff(&sum, &want) <= 1e-4, "{name}: batch sum");
    }
}

/// Feeds `frames` through the model in batches of `batch` into a detector.
fn detect_via_model(frames: &[VideoFrame], keys: &[WatermarkKey], batch: usize) -> VideoDetector {
    let mut det = VideoDetector::new(keys);
    let mut model = ResidualModel::new(Config::default(), &Device::Cpu).unwrap();
    // The fine residual beside it, as the scan computes it for the fine stage.
    let (w, h) = (frames[0].width as usize, frames[0].height as usize);
    let fine_config = Config {
        analysis_rows: fine_rows(w, h),
        ..Config::default()
    };
    let mut fine = ResidualModel::new(fine_config, &Device::Cpu).unwrap();
    let (wa, ha) = model.grid_size(w, h).unwrap();
    let (wf, hf) = fine.grid_size(w, h).unwrap();
    for chunk in frames.chunks(batch) {
        let refs: Vec<&[u8]> = chunk.iter().map(|f| &f.planes[0][..w * h]).collect();
        for (f, r) in chunk.iter().zip(run(&mut model, &refs, w, h)) {
            det.add_residual(&r, wa, ha, f.pts_s);
        }
        for (f, r) in chunk.iter().zip(run(&mut fine, &refs, w, h)) {
            det.add_fine_residual(&r, wf, hf, f.pts_s);
        }
    }
    det
}

#[test]
fn marked_clip_is_detected_through_the_model_and_unmarked_is_not() {
    let k = key(3, 9);
    let payload = Payload {
        clip_id: 0xfeed_beef_0bad_cafe,
        key_id: k.key_id(),
    };
    let clean = decode(&shared("video/bigbuckbunny.mp4"), 20);
    let mut marked = clean.clone();
    let mut emb = VideoEmbedder::new(&k, payload, DEFAULT_STRENGTH);
    marked.iter_mut().for_each(|f| emb.embed(f));

    let keys = std::slice::from_ref(&k);
    let via_model = detect_via_model(&marked, keys, 8).result();
    assert!(via_model.detected, "{via_model:?}");
    assert_eq!(via_model.payload, Some(payload));
    assert_eq!(via_model.frames_analysed, marked.len() as u64);

    // The plain path gives the same statistics, to the bit.
    let mut plain = VideoDetector::new(keys);
    marked.iter().for_each(|f| plain.add_frame(f));
    assert_eq!(plain.result(), via_model);
    // Batches of 1 and of 20 too.
    assert_eq!(detect_via_model(&marked, keys, 1).result(), via_model);
    assert_eq!(detect_via_model(&marked, keys, 20).result(), via_model);

    let unmarked = detect_via_model(&clean, keys, 8).result();
    assert!(!unmarked.detected && !unmarked.inconclusive, "{unmarked:?}");
    assert_eq!(unmarked.payload, None);
    // A different key does not see the mark either.
    let other = detect_via_model(&marked, &[key(4, 2)], 8).result();
    assert!(!other.detected && other.payload.is_none(), "{other:?}");
}

/// Plain path over a decoder configured like `scan` configures it.
fn plain_over_file(path: &Path, keys: &[WatermarkKey]) -> hallmark_watermark::VideoDetection {
    let mut d = Decoder::open(path, PixelLayout::Yuv420p).unwrap();
    let long = d
        .info()
        .duration_s
        .is_some_and(|s| s >= hallmark_detector::scan::ALL_FRAMES_BELOW_S);
    d.skip_non_reference_frames(long);
    let mut det = VideoDetector::new(keys);
    while let Some(f) = d.next_frame().unwrap() {
        if let MediaFrame::Video(v) = f {
            det.add_frame(&v);
        }
    }
    det.result()
}

fn same_up_to_rounding(
    a: &hallmark_watermark::VideoDetection,
    b: &hallmark_watermark::VideoDetection,
    what: &str,
) {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-300);
    assert_eq!(
        (a.detected, a.inconclusive, a.payload, a.frames_analysed),
        (b.detected, b.inconclusive, b.payload, b.frames_analysed),
        "{what}"
    );
    assert!(
        close(a.score, b.score) && close(a.p_value, b.p_value),
        "{what}: {a:?} vs {b:?}"
    );
    assert_eq!(a.timeline.len(), b.timeline.len(), "{what}");
    for (x, y) in a.timeline.iter().zip(&b.timeline) {
        assert!(
            x.zip(*y)
                .map_or(x.is_none() && y.is_none(), |(x, y)| close(x, y)),
            "{what}: timeline {:?} vs {:?}",
            a.timeline,
            b.timeline
        );
    }
}

#[test]
fn scan_pipeline_equals_plain_path_over_files() {
    let k = key(7, 1);
    let keys = std::slice::from_ref(&k);
    for clip in ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"] {
        let path = shared(&format!("video/{clip}"));
        let mut d = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
        let mut det = VideoDetector::new(keys);
        let mut audio = 0;
        hallmark_detector::scan::scan(&mut d, &mut det, None, |_| audio += 1);
        let via_model = det.result();
        // The same frames, summed in another order where the scan splits the clip between
        // two decoders (bikes: at its key frame at 5.48 s): equal up to rounding.
        same_up_to_rounding(&via_model, &plain_over_file(&path, keys), clip);
        assert!(via_model.frames_analysed > 0, "{clip}");
        assert!(!via_model.detected, "{clip}: {via_model:?}");
        if clip == "bikes.mp4" {
            // 10 s with B-frames: analysed from its reference frames only.
            assert!(
                via_model.frames_analysed < 250,
                "{}",
                via_model.frames_analysed
            );
            assert_eq!(via_model.timeline.len(), 10);
            assert!(via_model.timeline.iter().all(Option::is_some));
        }
    }
}

#[test]
fn key_frame_scan_equals_plain_path_over_the_key_frames() {
    use hallmark_detector::{scan::scan_frames, VideoScan};
    use hallmark_media::FrameSelection;
    let k = key(7, 1);
    let keys = std::slice::from_ref(&k);
    let path = shared("video/bikes.mp4");
    let mut d = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
    let mut det = VideoDetector::new(keys);
    scan_frames(&mut d, &mut det, VideoScan::KeyFrames, None, |_| {});
    let via_model = det.result();

    let mut d = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
    d.select_video_frames(FrameSelection::Key);
    let mut plain = VideoDetector::new(keys);
    while let Some(f) = d.next_frame().unwrap() {
        if let MediaFrame::Video(v) = f {
            plain.add_frame(&v);
        }
    }
    assert_eq!(via_model, plain.result());
    // bikes.mp4 has key frames at 0, 1.2, 3.04, 5.48, 7.48 and 9.68 s: the timeline holds
    // those seconds and nothing else (up to the last key frame).
    assert_eq!(via_model.frames_analysed, 6);
    let seen: Vec<usize> = (0..via_model.timeline.len())
        .filter(|s| via_model.timeline[*s].is_some())
        .collect();
    assert_eq!(seen, [0, 1, 3, 5, 7, 9]);
    assert!(!via_model.detected, "{via_model:?}");
}

/// bikes.mp4 (10 s, key frames at 0, 1.2, 3.04, 5.48, 7.48, 9.68 s) is scanned by two
/// decoders, split at 5.48 s (the key frame nearest its middle): the picture fingerprint
/// made on the way is the one a single pass over the same frames makes.
#[test]
fn a_split_scan_fingerprints_the_picture_like_one_pass() {
    use hallmark_store::Fingerprinter;
    let path = shared("video/bikes.mp4");
    let k = key(7, 1);
    let mut d = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
    let mut det = VideoDetector::new(std::slice::from_ref(&k));
    let mut split = Fingerprinter::new();
    let mut first_part_frames = 0;
    hallmark_detector::scan::scan(&mut d, &mut det, Some(&mut split), |f| {
        if let MediaFrame::Video(v) = f {
            assert!(
                v.pts_s < 5.48 - 1e-6,
                "first part past the split: {}",
                v.pts_s
            );
            first_part_frames += 1;
        }
    });
    assert!(first_part_frames > 0);
    assert!(det.result().frames_analysed > first_part_frames);

    let mut d = Decoder::open(&path, PixelLayout::Yuv420p).unwrap();
    d.skip_non_reference_frames(true);
    let mut one = Fingerprinter::new();
    while let Some(f) = d.next_frame().unwrap() {
        if let MediaFrame::Video(v) = f {
            one.add_frame(&v);
        }
    }
    assert_eq!(split.finish().video, one.finish().video);
}

/// `verify_with_progress` tells how far the watermark search has come, after every analysed
/// frame: bikes.mp4 (10 s, unmarked, no manifest), split at 5.48 s between two decoders.
#[test]
fn the_search_tells_how_far_it_has_come() {
    use hallmark_detector::{ScanMode, SearchProgress, Target, Verifier, VideoScan};
    let path = shared("video/bikes.mp4");
    let verifier = Verifier::new(&[])
        .unwrap()
        .with_watermark_keys(vec![key(7, 1)]);
    let run = |verifier: &Verifier| {
        let seen = std::sync::Mutex::new(Vec::<SearchProgress>::new());
        let report =
            verifier.verify_with_progress(&Target::file(&path), &|p| seen.lock().unwrap().push(p));
        let analysed = report.watermark.unwrap().video.unwrap().frames_analysed as usize;
        (seen.into_inner().unwrap(), analysed)
    };

    let (seen, analysed) = run(&verifier);
    assert_eq!(seen.len(), analysed, "one report per analysed frame");
    assert!(seen.iter().all(|p| p.scan == VideoScan::ReferenceFrames));
    assert!(seen.iter().all(|p| (p.total_s.unwrap() - 10.0).abs() < 0.1));
    assert!(seen.iter().all(|p| p.done_s <= p.total_s.unwrap()));
    // Steady: the two parts' frames come interleaved, each adds its own stretch (the second
    // part counted from its key frame at 5.48 s, not from 0), so no report jumps ahead.
    assert!(seen[..4].iter().all(|p| p.done_s < 1.0), "{:?}", &seen[..4]);
    assert!(
        seen.windows(2)
            .all(|w| (0.0..0.5).contains(&(w[1].done_s - w[0].done_s))),
        "{seen:?}"
    );
    let middle = seen[seen.len() / 2].done_s;
    assert!((3.5..6.5).contains(&middle), "{middle}");
    let last = seen.last().unwrap().done_s;
    assert!(last > 9.0 && last <= 10.0, "both parts counted: {last}");

    // The quick scan: its key frames first (they prove nothing here), then the full scan
    // from the start.
    let (seen, _) = run(&verifier.with_scan_mode(ScanMode::Quick));
    let keys = seen
        .iter()
        .take_while(|p| p.scan == VideoScan::KeyFrames)
        .count();
    assert_eq!(keys, 6, "bikes.mp4 has 6 key frames");
    assert!(seen.len() > keys + 100, "the full pass reports too");
    assert!(seen[keys].done_s < 1.0);
    assert!(seen[keys..]
        .iter()
        .all(|p| p.scan == VideoScan::ReferenceFrames));
    assert!(seen.last().unwrap().done_s > 9.0);
}
