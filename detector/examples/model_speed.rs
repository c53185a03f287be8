//! Per-frame cost of the detection model's stages at 1080p on the CPU.
use std::time::Instant;

use candle_core::{Device, Tensor};
use hallmark_detector::model::{to_host, Config, ResidualModel};
use hallmark_watermark::AnalysisGrid;

fn main() {
    let (w, h, b) = (1920usize, 1080usize, 8usize);
    let data: Vec<u8> = (0..b * w * h).map(|i| (i * 7 % 251) as u8).collect();
    let grid = AnalysisGrid::new(w, h);
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        for f in data.chunks_exact(w * h) {
            std::hint::black_box(grid.downscale(f));
        }
    }
    println!(
        "plain downscale {:.3} ms/frame",
        t.elapsed().as_secs_f64() * 1e3 / (reps * b) as f64
    );
    let t = Instant::now();
    for _ in 0..reps {
        for f in data.chunks_exact(w * h) {
            std::hint::black_box(grid.residual(f));
        }
    }
    println!(
        "plain residual {:.3} ms/frame",
        t.elapsed().as_secs_f64() * 1e3 / (reps * b) as f64
    );
    for fused in [true, false] {
        let mut m = ResidualModel::new(
            Config {
                fused_cpu_kernels: fused,
                ..Config::default()
            },
            &Device::Cpu,
        )
        .unwrap();
        let x = Tensor::from_vec(data.clone(), (b, 1, h, w), &Device::Cpu).unwrap();
        let _ = m.forward(&x).unwrap();
        let t = Instant::now();
        let mut g = None;
        for _ in 0..reps {
            g = Some(m.downscale(&x).unwrap());
        }
        println!(
            "fused {fused}: downscale {:.3} ms/frame",
            t.elapsed().as_secs_f64() * 1e3 / (reps * b) as f64
        );
        let g = g.unwrap();
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(m.whiten(&g).unwrap());
        }
        println!(
            "fused {fused}: whiten {:.3} ms/frame",
            t.elapsed().as_secs_f64() * 1e3 / (reps * b) as f64
        );
        let t = Instant::now();
        for _ in 0..reps {
            let d = x.flatten_all().unwrap().to_vec1::<u8>().unwrap();
            let x = Tensor::from_vec(d, (b, 1, h, w), &Device::Cpu).unwrap();
            std::hint::black_box(to_host::<f32>(&m.forward(&x).unwrap()).unwrap());
        }
        println!(
            "fused {fused}: copy in + forward + to host {:.3} ms/frame",
            t.elapsed().as_secs_f64() * 1e3 / (reps * b) as f64
        );
    }
}
