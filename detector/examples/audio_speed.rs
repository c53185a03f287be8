//! Cost of the sound detector's front end, plain-Rust FFT vs the candle model on the CPU,
//! in ms (wall and CPU) per second of sound: the band energies alone over pre-cut frames,
//! and the whole detector (framing, resampling, energies, statistics, result) over decoded
//! chunks. Median of 5 runs each.
//!
//! `cargo run --release --locked -p hallmark-detector --example audio_speed -- [FILE] [SECONDS]`
//! (default: 60 s of the shared `music-introzik.ogg`). `RAYON_NUM_THREADS=1` keeps candle's
//! matmul on one thread.

use std::time::Instant;

use candle_core::{DType, Device};
use hallmark_detector::audio_model::{BandEnergyModel, Config};
use hallmark_detector::scan::AudioScan;
use hallmark_media::{AudioChunk, Decoder, MediaFrame, PixelLayout};
use hallmark_watermark::{AudioBandMeter, AudioDetector, WatermarkKey};

mod common;
use common::cpu_s;

/// Median wall and CPU ms per second of sound over 5 runs of `f`.
fn timed(label: &str, seconds: f64, mut f: impl FnMut()) {
    let mut runs: Vec<(f64, f64)> = (0..5)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu_s());
            f();
            (t.elapsed().as_secs_f64(), cpu_s() - c)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (wall, cpu) = runs[2];
    println!(
        "{label:44} {:7.3} ms/s wall  {:7.3} ms/s cpu  ({:.2} % of real time)",
        wall * 1e3 / seconds,
        cpu * 1e3 / seconds,
        wall * 100.0 / seconds
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/media/audio/music-introzik.ogg")
        });
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let mut d = Decoder::open(&path, PixelLayout::Yuv420p).expect("open");
    let mut chunks: Vec<AudioChunk> = Vec::new();
    while let Some(f) = d.next_frame().expect("decode") {
        if let MediaFrame::Audio(a) = f {
            if a.pts_s >= seconds {
                break;
            }
            chunks.push(a);
        }
    }
    let seconds = chunks
        .iter()
        .map(|c| c.samples.len() as f64 / c.channels as f64 / c.sample_rate as f64)
        .sum::<f64>();
    println!("{} : {seconds:.1} s of sound", path.display());

    let mut framer = AudioDetector::new(&[]);
    let mut frames = Vec::new();
    for c in &chunks {
        framer.push_chunk(c);
        framer.take_frames(usize::MAX, &mut frames);
    }
    let len = hallmark_watermark::audio_framing().frame_len;
    println!("{} analysis frames", frames.len() / len);

    let mut meter = AudioBandMeter::new();
    let mut e = Vec::new();
    timed("energies: plain FFT (f64)", seconds, || {
        for b in frames.chunks(512 * len) {
            meter.measure(b, &mut e).unwrap();
            std::hint::black_box(&e);
        }
    });
    for (dtype, batch) in [
        (DType::F32, 256),
        (DType::F32, 512),
        (DType::F32, 1024),
        (DType::F64, 512),
    ] {
        let m = BandEnergyModel::new(
            Config {
                batch_size: batch,
                dtype,
                ..Config::default()
            },
            &Device::Cpu,
        )
        .unwrap();
        timed(
            &format!("energies: candle {dtype:?}, batch {batch}"),
            seconds,
            || {
                for b in frames.chunks(batch * len) {
                    std::hint::black_box(m.energies(b).unwrap());
                }
            },
        );
    }

    let key = WatermarkKey::from_secret([3; 32], 3);
    timed("whole detector: plain (add_chunk)", seconds, || {
        let mut d = AudioDetector::new(std::slice::from_ref(&key));
        for c in &chunks {
            d.add_chunk(c);
        }
        std::hint::black_box(d.result());
    });
    timed(
        "whole detector: candle (AudioScan, the model on the CPU)",
        seconds,
        || {
            let config = Config {
                plain_cpu: false,
                ..Config::default()
            };
            let mut s = AudioScan::with_model(std::slice::from_ref(&key), config, &Device::Cpu);
            for c in &chunks {
                s.add_chunk(c);
            }
            std::hint::black_box(s.finish());
        },
    );
}
