//! `ResidualModel::forward_planes` (the scan's front end: planes read in place, one pass
//! for both grids where they nest) against the model's batch-tensor `forward` and the
//! plain path, bit for bit on the CPU, for both kernels, with and without the fine model
//! and with part of the batch selected for it.

use candle_core::{Device, Tensor};
use hallmark_detector::model::{picked_planes, to_host, Config, ResidualModel};
use hallmark_watermark::{fine_rows, AnalysisGrid, ANALYSIS_ROWS};

mod common;
use common::random_luma;

fn model(rows: usize, fused: bool) -> ResidualModel {
    let config = Config {
        analysis_rows: rows,
        fused_cpu_kernels: fused,
        ..Config::default()
    };
    ResidualModel::new(config, &Device::Cpu).unwrap()
}

/// `forward` on the batch tensor of `planes`, on the host.
fn via_tensor(m: &mut ResidualModel, planes: &[&[u8]], w: usize, h: usize) -> Vec<f32> {
    if planes.is_empty() {
        return Vec::new();
    }
    let data: Vec<u8> = planes
        .iter()
        .flat_map(|p| p[..w * h].iter().copied())
        .collect();
    let t = Tensor::from_vec(data, (planes.len(), 1, h, w), &Device::Cpu).unwrap();
    to_host(&m.forward(&t).unwrap()).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn planes_in_place_give_the_batch_tensors_numbers() {
    // Nesting box grids (landscape, portrait, odd, a capped strip), a frame shorter than
    // the fine grid (bilinear there: two passes), one shorter than both.
    for (i, &(w, h)) in [
        (1920, 1080),
        (720, 1280),
        (641, 273),
        (3000, 300),
        (320, 200),
        (176, 100),
    ]
    .iter()
    .enumerate()
    {
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|k| random_luma(w, h, (i * 7 + k) as u64))
            .collect();
        // Planes longer than the frame (a decoder's padding) are read up to w·h.
        let mut padded = frames[2].clone();
        padded.extend_from_slice(&[9; 17]);
        let planes: Vec<&[u8]> = vec![&frames[0], &frames[1], &padded];
        let rows = fine_rows(w, h);
        let grid = AnalysisGrid::for_reading(w, h, ANALYSIS_ROWS);
        let fine_grid = AnalysisGrid::for_reading(w, h, rows);
        let plain: Vec<f32> = frames.iter().flat_map(|f| grid.residual(f)).collect();
        for fused in [true, false] {
            for picked in [[true, true, true], [false, true, false], [false; 3]] {
                let (mut c, mut f) = (model(128, fused), model(rows, fused));
                let (got, got_fine) = c
                    .forward_planes(&planes, w, h, Some((&mut f, &picked)))
                    .unwrap();
                let chosen = picked_planes(&planes, &picked);
                let what = format!("{w}x{h} fused {fused} picked {picked:?}");
                assert_eq!(
                    bits(&got),
                    bits(&via_tensor(&mut c, &planes, w, h)),
                    "{what}"
                );
                assert_eq!(
                    bits(&got_fine),
                    bits(&via_tensor(&mut f, &chosen, w, h)),
                    "{what}"
                );
                let fine_plain: Vec<f32> = chosen
                    .iter()
                    .flat_map(|p| fine_grid.residual(&p[..w * h]))
                    .collect();
                // The fused kernels are the plain path; the generic ops match it bit for
                // bit on the CPU too (tests/model.rs).
                assert_eq!(bits(&got), bits(&plain), "{what}");
                assert_eq!(bits(&got_fine), bits(&fine_plain), "{what}");
            }
            let mut c = model(128, fused);
            let (alone, none) = c.forward_planes(&planes, w, h, None).unwrap();
            assert_eq!(bits(&alone), bits(&plain), "{w}x{h} alone");
            assert!(none.is_empty());
        }
    }
}

#[test]
fn forward_planes_refuses_what_it_cannot_read() {
    let mut c = model(128, true);
    let mut f = model(256, true);
    let short = vec![0u8; 100];
    assert!(c.forward_planes(&[&short], 20, 10, None).is_err());
    let ok = vec![0u8; 200];
    assert!(c
        .forward_planes(&[&ok, &ok], 20, 10, Some((&mut f, &[true])))
        .is_err());
    let (a, b) = c.forward_planes(&[], 20, 10, Some((&mut f, &[]))).unwrap();
    assert!(a.is_empty() && b.is_empty());
}
