//! The candle sound model against the plain-Rust path of `hallmark-watermark`, on
//! `Device::Cpu`: the same band energies within a stated tolerance (random signals and the
//! shared real sound), batch size does not matter, and detection through the model
//! (`scan::AudioScan`) finds marked sound with its exact payload and a p-value close to the
//! plain path's, and not unmarked sound or a wrong key.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use hallmark_detector::audio_model::{BandEnergyModel, Config};
use hallmark_detector::scan::AudioScan;
use hallmark_media::{AudioChunk, Decoder, MediaFrame, PixelLayout};
use hallmark_watermark::{
    audio_framing, AudioBandMeter, AudioDetection, AudioDetector, AudioEmbedder, Payload,
    WatermarkKey,
};

/// Largest relative difference, `|model − plain| / plain`, allowed between an f32 model's
/// band energy and the plain path's f64 FFT, for energies of at least [`RELATIVE_FROM`] of
/// their frame's total and at least [`ENERGY_FLOOR`]; smaller ones may differ by
/// `F32_TOLERANCE` × the larger of those two. f32 rounds each DFT coefficient to ≈ 10⁻⁷ of
/// the frame's norm, so an energy far below the frame's total carries that much absolutely.
const F32_TOLERANCE: f64 = 3e-5;
const RELATIVE_FROM: f64 = 1e-4;
/// Energies this small are noise to the detector (its floor is 2·10⁻⁵ per bin and frame,
/// ≥ 8·10⁻⁵ per band) — and f32 squares of coefficients under 10⁻¹⁹ underflow to 0 (seen on
/// the shared speech's near-silent frames, samples ≈ 10⁻²², plain energies ≈ 10⁻⁴²).
const ENERGY_FLOOR: f64 = 1e-10;
/// The same for an f64 model.
const F64_TOLERANCE: f64 = 1e-12;

fn shared(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel);
    assert!(p.exists(), "missing shared media {}", p.display());
    p
}

/// The sound of `path`, chunk by chunk as the decoder hands it out, from `from_s` for
/// `len_s` seconds (whole chunks).
fn decode(path: &Path, from_s: f64, len_s: f64) -> Vec<AudioChunk> {
    let mut d = Decoder::open(path, PixelLayout::Yuv420p).expect("open");
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().expect("decode") {
        if let MediaFrame::Audio(a) = f {
            if a.pts_s >= from_s + len_s {
                break;
            }
            if a.pts_s >= from_s {
                out.push(a);
            }
        }
    }
    assert!(!out.is_empty(), "no sound in {}", path.display());
    out
}

fn noise(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            amp * ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        })
        .collect()
}

fn cpu_model(dtype: DType, batch_size: usize) -> BandEnergyModel {
    BandEnergyModel::new(
        Config {
            batch_size,
            dtype,
            ..Config::default()
        },
        &Device::Cpu,
    )
    .unwrap()
}

/// The analysis frames of `chunks`, as the detector frames them.
fn frames_of(chunks: &[AudioChunk]) -> Vec<f32> {
    let mut d = AudioDetector::new(&[]);
    let mut frames = Vec::new();
    for c in chunks {
        assert!(d.push_chunk(c));
        d.take_frames(usize::MAX, &mut frames);
    }
    frames
}

fn plain_energies(frames: &[f32]) -> Vec<f64> {
    let mut e = Vec::new();
    AudioBandMeter::new().measure(frames, &mut e).unwrap();
    e
}

/// The worst ratio of `|model − plain|` to what the tolerance allows it (see
/// [`F32_TOLERANCE`]): ≤ 1 passes. Also the worst plain relative difference over the
/// energies that are not small (≥ `RELATIVE_FROM` of their frame's total and ≥
/// `ENERGY_FLOOR`).
fn worst(model: &[f64], plain: &[f64], tolerance: f64) -> (f64, f64) {
    assert_eq!(model.len(), plain.len());
    let per_frame = audio_framing().energies_per_frame();
    let (mut ratio, mut relative) = (0f64, 0f64);
    for (m, p) in model
        .chunks_exact(per_frame)
        .zip(plain.chunks_exact(per_frame))
    {
        let total = p[per_frame - 1];
        for (a, b) in m.iter().zip(p) {
            assert!(a.is_finite() && *a >= 0.0, "energy {a}");
            let d = (a - b).abs();
            let small = (RELATIVE_FROM * total).max(ENERGY_FLOOR);
            if *b >= small {
                relative = relative.max(d / b);
            }
            ratio = ratio.max(d / (tolerance * b.max(small)));
        }
    }
    (ratio, relative)
}

/// Runs the model over `frames` in batches of `batch` frames.
fn model_energies(model: &BandEnergyModel, frames: &[f32], batch: usize) -> Vec<f64> {
    let len = audio_framing().frame_len;
    frames
        .chunks(batch * len)
        .flat_map(|b| model.energies(b).unwrap())
        .collect()
}

fn check(label: &str, frames: &[f32]) {
    let plain = plain_energies(frames);
    for (dtype, tolerance) in [(DType::F32, F32_TOLERANCE), (DType::F64, F64_TOLERANCE)] {
        let got = model_energies(&cpu_model(dtype, 512), frames, 512);
        let (ratio, relative) = worst(&got, &plain, tolerance);
        println!("{label} {dtype:?}: worst / allowed {ratio:.3}, worst relative {relative:.2e}");
        assert!(ratio <= 1.0, "{label} {dtype:?}: {ratio} × the tolerance");
    }
}

#[test]
fn model_matches_plain_path_on_random_signals() {
    let framing = audio_framing();
    let n = framing.frame_len * 64;
    let mut lp = 0.0;
    let bass: Vec<f32> = noise(n, 3, 0.5)
        .into_iter()
        .map(|v| {
            lp = 0.99 * lp + 0.01 * v;
            8.0 * lp
        })
        .collect();
    // A loud low tone with a tone 80 dB below it in the bands: the widest dynamic range.
    let tones: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.9 * (2.0 * std::f32::consts::PI * 97.0 * t).sin()
                + 9e-5 * (2.0 * std::f32::consts::PI * 2_345.0 * t).sin()
        })
        .collect();
    for (label, x) in [
        ("white noise 0.3", noise(n, 1, 0.3)),
        ("white noise 1e-4", noise(n, 2, 1e-4)),
        ("low-passed noise", bass),
        ("97 Hz + 2345 Hz −80 dB", tones),
    ] {
        check(label, &x);
    }
    // Silence is exactly zero in every path.
    let zeros = vec![0f32; framing.frame_len * 5];
    let got = cpu_model(DType::F32, 8).energies(&zeros).unwrap();
    assert_eq!(got.len(), 5 * framing.energies_per_frame());
    assert!(got.iter().all(|v| *v == 0.0));
}

#[test]
fn model_matches_plain_path_on_real_sound() {
    let mut files: Vec<(String, Vec<AudioChunk>)> = [
        "Front_Center",
        "Front_Left",
        "Noise",
        "Rear_Center",
        "Side_Left",
        "startup3",
    ]
    .iter()
    .map(|n| {
        let p = shared(&format!("audio/{n}.wav"));
        (n.to_string(), decode(&p, 0.0, f64::INFINITY))
    })
    .collect();
    files.push((
        "music-introzik.ogg 0–40 s".into(),
        decode(&shared("audio/music-introzik.ogg"), 0.0, 40.0),
    ));
    for (label, chunks) in &files {
        let frames = frames_of(chunks);
        assert!(frames.len() >= audio_framing().frame_len * 300, "{label}");
        check(label, &frames);
    }
}

#[test]
fn batch_of_one_equals_large_batch() {
    let chunks = decode(&shared("audio/startup3.wav"), 0.0, 2.0);
    let frames = frames_of(&chunks);
    let m = cpu_model(DType::F32, 1024);
    let one = model_energies(&m, &frames, 1);
    let large = model_energies(&m, &frames, 1024);
    let seven = model_energies(&m, &frames, 7);
    assert_eq!(one.len(), large.len());
    let (ratio, relative) = worst(&one, &large, 1e-6);
    println!("batch 1 vs 1024: worst / allowed {ratio:.3}, worst relative {relative:.2e}");
    assert!(ratio <= 1.0, "batch 1 vs 1024: {ratio} × 1e-6");
    let (ratio, _) = worst(&seven, &large, 1e-6);
    assert!(ratio <= 1.0, "batch 7 vs 1024: {ratio} × 1e-6");
}

#[test]
fn bad_input_is_an_error() {
    let m = cpu_model(DType::F32, 4);
    assert!(m.energies(&[0.0; 100]).is_err());
    let t = Tensor::zeros((2, 256), DType::F32, &Device::Cpu).unwrap();
    assert!(m.forward(&t).is_err());
    let t = Tensor::zeros((2, 512), DType::F64, &Device::Cpu).unwrap();
    assert!(m.forward(&t).is_err());
    assert!(BandEnergyModel::new(
        Config {
            batch_size: 0,
            ..Config::default()
        },
        &Device::Cpu
    )
    .is_err());
    assert!(BandEnergyModel::new(
        Config {
            dtype: DType::U8,
            ..Config::default()
        },
        &Device::Cpu
    )
    .is_err());
    let mut d = AudioDetector::new(&[]);
    assert!(d.add_band_energies(&[1.0; 5]).is_err());
    assert!(d.add_frames(&[1.0; 5]).is_err());
}

/// The plain path's detector, every chunk added.
fn plain_detector(chunks: &[AudioChunk], keys: &[WatermarkKey]) -> AudioDetector {
    let mut d = AudioDetector::new(keys);
    for c in chunks {
        d.add_chunk(c);
    }
    d
}
fn plain(chunks: &[AudioChunk], keys: &[WatermarkKey]) -> AudioDetection {
    plain_detector(chunks, keys).result()
}
/// The scan with the model itself, on the CPU (where the scan measures with the plain path
/// by default), every chunk added.
fn model_scan(chunks: &[AudioChunk], keys: &[WatermarkKey], config: Config) -> AudioScan {
    let config = Config {
        plain_cpu: false,
        ..config
    };
    let mut s = AudioScan::with_model(keys, config, &Device::Cpu);
    assert!(s.uses_model());
    for c in chunks {
        s.add_chunk(c);
    }
    assert!(s.uses_model(), "the model failed");
    s
}
fn via_model(chunks: &[AudioChunk], keys: &[WatermarkKey], config: Config) -> AudioDetection {
    model_scan(chunks, keys, config).finish()
}
fn mark(chunks: &[AudioChunk], key: &WatermarkKey, payload: Payload) -> Vec<AudioChunk> {
    let mut e = AudioEmbedder::new(key, payload, 0.0);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(e.process(c.clone()));
    }
    out.extend(e.finish());
    out
}

#[test]
fn marked_sound_is_detected_through_the_model_and_unmarked_is_not() {
    let key = WatermarkKey::generate(9).unwrap();
    let wrong = WatermarkKey::generate(9).unwrap();
    let payload = Payload {
        clip_id: 0x5eed_0000_cafe_0042,
        key_id: 9,
    };
    // 12 s of music from 60 s in, and the shared speech recordings one after the other.
    let music = decode(&shared("audio/music-introzik.ogg"), 60.0, 12.0);
    let mut speech = Vec::new();
    for n in ["Front_Center", "Front_Left", "Rear_Center", "Side_Left"] {
        speech.extend(decode(&shared(&format!("audio/{n}.wav")), 0.0, 10.0));
    }
    for (label, original) in [("music", music), ("speech", speech)] {
        let marked = mark(&original, &key, payload);
        for batch_size in [1, 512, 1000] {
            let config = Config {
                batch_size,
                ..Config::default()
            };
            let want = plain(&marked, std::slice::from_ref(&key));
            let got = via_model(&marked, std::slice::from_ref(&key), config.clone());
            println!(
                "{label} batch {batch_size}: plain p {:.3e} z {:.6}, model p × {:.6}, z {:+.2e}",
                want.p_value,
                want.score,
                got.p_value / want.p_value,
                got.score - want.score
            );
            assert!(want.detected, "{label}: plain {want:?}");
            assert!(got.detected, "{label}: model {got:?}");
            assert_eq!(got.payload, Some(payload), "{label}");
            assert_eq!(got.key_id, Some(9));
            assert_eq!(got.offset_s, want.offset_s);
            assert_eq!(got.windows_analysed, want.windows_analysed);
            let factor = got.p_value / want.p_value;
            assert!((0.99..=1.01).contains(&factor), "{label}: p × {factor}");
            assert!((got.score - want.score).abs() < 1e-4, "{label}");
            assert_eq!(got.timeline.len(), want.timeline.len());

            let got = via_model(&marked, std::slice::from_ref(&wrong), config.clone());
            assert!(
                !got.detected && got.payload.is_none(),
                "{label}, wrong key: {got:?}"
            );
            let got = via_model(&original, std::slice::from_ref(&key), config.clone());
            let want = plain(&original, std::slice::from_ref(&key));
            assert!(
                !got.detected && got.payload.is_none(),
                "{label}, unmarked: {got:?}"
            );
            // The bound is compared, and every registration's z: the reported z is that of
            // whichever stage (as sealed, searched, wider) gave the smaller bound, a choice
            // that near-equal bounds may flip.
            let factor = got.p_value / want.p_value;
            assert!(
                (0.99..=1.01).contains(&factor),
                "{label}, unmarked: p × {factor}"
            );
            let model = model_scan(&original, std::slice::from_ref(&key), config).into_detector();
            let reference = plain_detector(&original, std::slice::from_ref(&key));
            // Every symbol phase and shift: the z the searches choose among. They agree to
            // 6e-6 (360 runs with random keys, 2026-12-05). Until then the plain path left
            // out the sound's last frame when the count was odd, and one time phase's z
            // differed by up to 0.4 (the 0.007 to 0.08 seen in the best z, blamed on f32).
            let mut worst = 0f64;
            for phase in 0..32 {
                for shift in 0..32 {
                    let m = model.score_at(0, phase, shift).unwrap();
                    let r = reference.score_at(0, phase, shift).unwrap();
                    worst = worst.max((m - r).abs());
                }
            }
            println!(
                "{label} unmarked: p {:.4e} vs {:.4e}, z {:.4} vs {:.4}, worst z difference over registrations {worst:.2e}",
                got.p_value, want.p_value, got.score, want.score
            );
            assert!(worst < 1e-3, "{label}, unmarked: z moved by {worst}");
        }
    }
}

#[test]
fn a_model_that_cannot_run_falls_back_to_the_plain_path() {
    let key = WatermarkKey::generate(4).unwrap();
    let payload = Payload {
        clip_id: 7,
        key_id: 4,
    };
    let marked = mark(
        &decode(&shared("audio/startup3.wav"), 0.0, 10.0),
        &key,
        payload,
    );
    // What `hallmark verify` builds: the model on a GPU, the plain path on the CPU.
    assert_eq!(
        AudioScan::new(std::slice::from_ref(&key)).uses_model(),
        !hallmark_detector::model::default_device().is_cpu()
    );
    let broken = Config {
        dtype: DType::U8,
        plain_cpu: false,
        ..Config::default()
    };
    let mut s = AudioScan::with_model(std::slice::from_ref(&key), broken, &Device::Cpu);
    assert!(!s.uses_model());
    for c in &marked {
        s.add_chunk(c);
    }
    let got = s.finish();
    assert_eq!(got, plain(&marked, std::slice::from_ref(&key)));
    assert_eq!(got.payload, Some(payload));
}
