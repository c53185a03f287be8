//! End-to-end checks of the prompt parser, the picture and the sound.

use crate::{Element, GenerateError, GenerateOptions, Generator, Scene, Setting, TimeOfDay};
use hallmark_media::{MediaFrame, PixelLayout, VideoFrame};

const FR: &str = "Moi, sur la plage au coucher du soleil, avec un verre de vin pétillant, tandis que les feux d'artifice fendent le ciel";
const EN: &str =
    "Me, on the beach at sunset, with a glass of sparkling wine, while fireworks split the sky";

fn small(seed: u64, duration_s: f64) -> GenerateOptions {
    GenerateOptions {
        width: 320,
        height: 180,
        fps: 30,
        duration_s,
        seed,
        sample_rate: 48_000,
        ..Default::default()
    }
}

fn generator(prompt: &str, opts: GenerateOptions) -> Generator {
    Generator::new(Scene::from_prompt(prompt, opts.seed), opts).expect("valid options")
}

/// All video frames and the concatenated interleaved stereo samples.
fn render_all(gen: &mut Generator) -> (Vec<VideoFrame>, Vec<f32>, Vec<f64>) {
    let (mut frames, mut audio, mut audio_pts) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(f) = gen.next_frame() {
        match f {
            MediaFrame::Video(v) => frames.push(v),
            MediaFrame::Audio(a) => {
                assert_eq!((a.sample_rate, a.channels), (48_000, 2));
                audio_pts.push(a.pts_s);
                audio.extend_from_slice(&a.samples);
            }
        }
    }
    (frames, audio, audio_pts)
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

fn clip_hash(prompt: &str, seed: u64) -> (u64, u64) {
    let mut gen = generator(prompt, small(seed, 1.5));
    let (frames, audio, _) = render_all(&mut gen);
    let (mut hv, mut ha) = (0xcbf2_9ce4_8422_2325u64, 0xcbf2_9ce4_8422_2325u64);
    for f in &frames {
        for p in &f.planes {
            fnv(&mut hv, p);
        }
    }
    for s in &audio {
        fnv(&mut ha, &s.to_bits().to_le_bytes());
    }
    (hv, ha)
}

#[test]
fn same_inputs_give_identical_output_and_seed_changes_it() {
    let a = clip_hash(EN, 3);
    let b = clip_hash(EN, 3);
    assert_eq!(a, b, "same prompt + seed + options must be bit-identical");
    let c = clip_hash(EN, 4);
    assert_ne!(a.0, c.0, "another seed must change the picture");
    assert_ne!(a.1, c.1, "another seed must change the sound");
}

#[test]
fn seed_prompt_in_french_and_english() {
    for prompt in [FR, EN] {
        let s = Scene::from_prompt(prompt, 0);
        assert_eq!(s.setting, Setting::Beach, "{prompt}");
        assert_eq!(s.time, TimeOfDay::Sunset, "{prompt}");
        for e in [
            Element::Fireworks,
            Element::Person,
            Element::Glass,
            Element::Waves,
        ] {
            assert!(s.has(e), "{prompt}: missing {e:?} in {:?}", s.elements);
        }
        let d = s.describe();
        assert_eq!(d["setting"], "beach");
        assert_eq!(d["time_of_day"], "sunset");
        assert!(d["elements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "fireworks"));
        for key in ["weather", "camera", "mood"] {
            assert!(d.get(key).is_some(), "describe() lacks {key}");
        }
    }
    let fr = Scene::from_prompt(FR, 0);
    let used = fr.used_terms();
    for want in [
        "plage (beach)",
        "coucher du soleil (sunset, sun)",
        "feux d'artifice (fireworks)",
        "vin pétillant (glass)",
        "Moi (person)",
    ] {
        assert!(used.iter().any(|u| u == want), "{want:?} not in {used:?}");
    }
    // Function words are not reported as missing.
    let unused = fr.unused_terms();
    for stop in ["sur", "la", "avec", "tandis", "que", "les", "de", "un"] {
        assert!(
            !unused.iter().any(|u| u == stop),
            "{stop} reported in {unused:?}"
        );
    }
}

#[test]
fn accents_case_and_phrases_are_normalised() {
    let s = Scene::from_prompt("FORÊT sous la PLUIE, à l'aube, caméra à l'épaule", 1);
    assert_eq!(s.setting, Setting::Forest);
    assert_eq!(s.time, TimeOfDay::Dawn);
    assert_eq!(s.weather, crate::Weather::Rain);
    assert_eq!(s.camera, crate::CameraMove::Handheld);
    let s = Scene::from_prompt("city street at night with cars and street lights", 1);
    assert_eq!(s.setting, Setting::City);
    assert!(s.has(Element::StreetLights) && s.has(Element::Cars));
    assert_eq!(Scene::from_prompt(EN, 9), Scene::from_prompt(EN, 9));
}

#[test]
fn nonsense_words_are_reported_unused() {
    let s = Scene::from_prompt("a purple giraffe playing chess", 0);
    let unused = s.unused_terms();
    assert!(unused.contains(&"giraffe".to_string()), "{unused:?}");
    assert!(unused.contains(&"chess".to_string()), "{unused:?}");
    assert!(!unused.contains(&"a".to_string()));
    assert!(s.used_terms().iter().any(|u| u.starts_with("purple")));
}

#[test]
fn frame_count_timestamps_and_audio_length() {
    let opts = GenerateOptions {
        fps: 24,
        duration_s: 2.5,
        ..small(1, 2.5)
    };
    let mut gen = generator("a forest at dawn", opts);
    assert_eq!(gen.total_frames(), 60);
    let info = gen.video_info();
    assert_eq!(
        (info.width, info.height, info.frame_rate),
        (320, 180, (24, 1))
    );
    assert_eq!(info.frame_count_estimate, Some(60));
    assert_eq!(
        (gen.audio_info().sample_rate, gen.audio_info().channels),
        (48_000, 2)
    );
    let mut last = f64::NEG_INFINITY;
    let (mut nv, mut samples) = (0u64, 0usize);
    let (mut last_v, mut last_a) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    while let Some(f) = gen.next_frame() {
        assert!(f.pts_s() >= last, "pts must not go back");
        last = f.pts_s();
        match f {
            MediaFrame::Video(v) => {
                assert!(v.pts_s > last_v);
                last_v = v.pts_s;
                assert_eq!(v.layout, PixelLayout::Yuv420p);
                v.validate().unwrap();
                nv += 1;
            }
            MediaFrame::Audio(a) => {
                assert!(a.pts_s > last_a);
                last_a = a.pts_s;
                samples += a.frames();
            }
        }
    }
    assert_eq!(nv, 60);
    let audio_s = samples as f64 / 48_000.0;
    assert!(
        (audio_s - 2.5).abs() <= 1.0 / 24.0,
        "audio lasts {audio_s} s"
    );
    assert!(gen.next_frame().is_none());
}

fn mean(p: &[u8]) -> f64 {
    p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len() as f64
}

/// Rows `0..rows` of a `w`-wide plane.
fn top(p: &[u8], w: usize, rows: usize) -> &[u8] {
    &p[..w * rows]
}

#[test]
fn sunset_sky_is_warm_and_night_sky_is_dark() {
    for prompt in ["a beach at sunset", EN, "désert au coucher du soleil"] {
        let mut gen = generator(prompt, small(2, 1.0));
        let (frames, _, _) = render_all(&mut gen);
        let f = &frames[15];
        let (cw, ch) = (160, 90);
        let u = mean(top(&f.planes[1], cw, ch / 3));
        let v = mean(top(&f.planes[2], cw, ch / 3));
        assert!(
            v > u + 5.0,
            "{prompt}: upper sky V {v:.1} should exceed U {u:.1}"
        );
    }
    let mut gen = generator("a beach at night", small(2, 1.0));
    let (frames, _, _) = render_all(&mut gen);
    let y = mean(top(&frames[10].planes[0], 320, 60));
    assert!(y < 45.0, "night sky luma {y:.1}");
    let mut gen = generator("a beach at noon", small(2, 1.0));
    let (frames, _, _) = render_all(&mut gen);
    let y_day = mean(top(&frames[10].planes[0], 320, 60));
    assert!(y_day > 100.0, "day sky luma {y_day:.1}");
}

#[test]
fn consecutive_frames_move_but_not_wildly() {
    for prompt in [EN, "mountains in the snow, pan", "city street in the rain"] {
        let mut gen = generator(prompt, small(5, 1.0));
        let (frames, _, _) = render_all(&mut gen);
        for i in [5usize, 20] {
            let (a, b) = (&frames[i].planes[0], &frames[i + 1].planes[0]);
            let diff = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| f64::from(x.abs_diff(y)))
                .sum::<f64>()
                / a.len() as f64;
            assert!(
                diff > 0.05,
                "{prompt}: frames {i},{} identical ({diff})",
                i + 1
            );
            assert!(diff < 20.0, "{prompt}: frames {i},{} jump ({diff})", i + 1);
        }
    }
}

#[test]
fn fireworks_flash_in_the_sky_and_thump_in_sync() {
    let opts = small(11, 6.0);
    let mut gen = generator(EN, opts);
    let bursts = gen.burst_times();
    assert!(bursts.len() >= 2, "bursts: {bursts:?}");
    assert!(bursts.windows(2).all(|w| w[1] - w[0] >= 0.9));
    assert!(bursts.iter().all(|t| (0.5..6.0).contains(t)));
    let (frames, audio, _) = render_all(&mut gen);
    let fps = 30.0;
    for &tb in &bursts {
        let now = &frames[((tb + 0.1) * fps).round() as usize].planes[0];
        let before = &frames[((tb - 0.3) * fps).round() as usize].planes[0];
        let sky = 320 * 90; // upper half
        let new_bright = now[..sky]
            .iter()
            .zip(&before[..sky])
            .filter(|(&n, &b)| n > 200 && b < 150)
            .count();
        assert!(
            new_bright >= 15,
            "burst at {tb:.2}s: {new_bright} new bright sky pixels"
        );
        let rms = |t: f64| {
            let s0 = (t * 48_000.0) as usize * 2;
            let w = &audio[s0..s0 + 2400 * 2];
            (w.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / w.len() as f64).sqrt()
        };
        let (at, pre) = (rms(tb), rms(tb - 0.3));
        assert!(
            at > 3.0 * pre,
            "burst at {tb:.2}s: rms {at:.4} vs {pre:.4} before"
        );
    }
    let peak = audio.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(peak < 0.9, "peak {peak}");
    assert!(peak > 0.05, "silent? peak {peak}");
}

/// RMS of a mono mix low-passed at about 200 Hz.
fn low_band_rms(audio: &[f32]) -> f64 {
    let k = 1.0 - (-std::f64::consts::TAU * 200.0 / 48_000.0).exp();
    let (mut y, mut acc) = (0.0f64, 0.0f64);
    for fr in audio.chunks_exact(2) {
        let x = f64::from(fr[0] + fr[1]) * 0.5;
        y += k * (x - y);
        acc += y * y;
    }
    (acc / (audio.len() / 2) as f64).sqrt()
}

#[test]
fn beach_has_surf_and_levels_are_sane() {
    let mut beach = generator("a calm beach at day", small(4, 3.0));
    let (_, a_beach, _) = render_all(&mut beach);
    let mut room = generator("a calm room at day", small(4, 3.0));
    let (_, a_room, _) = render_all(&mut room);
    let (lb, lr) = (low_band_rms(&a_beach), low_band_rms(&a_room));
    assert!(lb > 2.0 * lr, "beach low band {lb:.4} vs room {lr:.4}");
    for a in [&a_beach, &a_room] {
        let peak = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(peak < 0.9 && peak > 0.01, "peak {peak}");
        assert!(a.iter().all(|x| x.is_finite()));
    }
    // stereo, not dual mono
    assert!(a_beach.chunks_exact(2).any(|f| (f[0] - f[1]).abs() > 1e-3));
}

#[test]
fn every_setting_renders() {
    for prompt in [
        "sea with boats and birds",
        "forest in the fog",
        "mountains at dawn, zoom",
        "desert at noon, dolly",
        "snow field, it snows",
        "space, stars and a nebula",
        "a bedroom with candles at night",
        "a campfire on the beach at night",
        "city street at night, cars, street lights, handheld",
    ] {
        let mut gen = generator(prompt, small(8, 0.5));
        let (frames, audio, _) = render_all(&mut gen);
        assert_eq!(frames.len(), 15, "{prompt}");
        let y = &frames[7].planes[0];
        let (lo, hi) = (*y.iter().min().unwrap(), *y.iter().max().unwrap());
        assert!(hi - lo > 20, "{prompt}: flat picture {lo}..{hi}");
        assert!(audio.iter().all(|x| x.abs() < 0.9));
    }
}

#[test]
fn options_are_validated() {
    let s = || Scene::from_prompt("beach", 0);
    let bad = |o: GenerateOptions| Generator::new(s(), o).err();
    let d = GenerateOptions::default();
    assert_eq!(
        (
            d.width,
            d.height,
            d.fps,
            d.duration_s,
            d.seed,
            d.sample_rate
        ),
        (1280, 720, 30, 8.0, 0, 48_000)
    );
    assert!(matches!(
        bad(GenerateOptions {
            width: 321,
            ..d.clone()
        }),
        Some(GenerateError::InvalidSize { .. })
    ));
    assert!(matches!(
        bad(GenerateOptions {
            height: 62,
            ..d.clone()
        }),
        Some(GenerateError::InvalidSize { .. })
    ));
    assert!(matches!(
        bad(GenerateOptions {
            width: 3842,
            ..d.clone()
        }),
        Some(GenerateError::InvalidSize { .. })
    ));
    assert!(matches!(
        bad(GenerateOptions {
            fps: 0,
            ..d.clone()
        }),
        Some(GenerateError::InvalidFrameRate(0))
    ));
    assert!(matches!(
        bad(GenerateOptions {
            fps: 61,
            ..d.clone()
        }),
        Some(GenerateError::InvalidFrameRate(61))
    ));
    assert!(matches!(
        bad(GenerateOptions {
            duration_s: 0.4,
            ..d.clone()
        }),
        Some(GenerateError::InvalidDuration(_))
    ));
    assert!(matches!(
        bad(GenerateOptions {
            duration_s: 60.5,
            ..d.clone()
        }),
        Some(GenerateError::InvalidDuration(_))
    ));
    assert!(matches!(
        bad(GenerateOptions {
            duration_s: f64::NAN,
            ..d.clone()
        }),
        Some(GenerateError::InvalidDuration(_))
    ));
    assert!(bad(GenerateOptions {
        width: 64,
        height: 3840,
        fps: 60,
        duration_s: 0.5,
        seed: crate::MAX_SEED,
        ..d.clone()
    })
    .is_none());
    assert!(matches!(
        bad(GenerateOptions {
            seed: crate::MAX_SEED + 1,
            ..d.clone()
        }),
        Some(GenerateError::InvalidSeed(_))
    ));
    let e = bad(GenerateOptions { fps: 0, ..d }).unwrap();
    assert!(e.to_string().contains("frame rate"));
}

#[test]
fn odd_rates_and_small_sizes() {
    let opts = GenerateOptions {
        width: 66,
        height: 64,
        fps: 7,
        duration_s: 1.0,
        seed: 3,
        sample_rate: 44_100,
        ..Default::default()
    };
    let mut gen = generator("snow field at night, handheld", opts);
    assert_eq!(gen.total_frames(), 7);
    let (mut nv, mut samples) = (0, 0);
    while let Some(f) = gen.next_frame() {
        match f {
            MediaFrame::Video(v) => {
                v.validate().unwrap();
                nv += 1;
            }
            MediaFrame::Audio(a) => {
                assert_eq!(a.sample_rate, 44_100);
                samples += a.frames();
            }
        }
    }
    assert_eq!((nv, samples), (7, 44_100));
}

#[test]
fn options_seed_changes_the_film_too() {
    let scene = Scene::from_prompt(EN, 1);
    let mut a = Generator::new(scene.clone(), small(1, 6.0)).unwrap();
    let mut b = Generator::new(scene, small(2, 6.0)).unwrap();
    assert_ne!(a.burst_times(), b.burst_times());
    let (fa, fb) = (a.next_frame().unwrap(), b.next_frame().unwrap());
    assert_ne!(fa, fb);
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| clip_hash("city street at night, rain, fireworks, handheld", 6))
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn generator_describes_what_it_decided() {
    let gen = generator(FR, small(5, 6.0));
    let d = gen.describe();
    assert_eq!(d["setting"], "beach");
    assert_eq!(d["render"]["frames"], 180);
    let bursts = d["render"]["firework_bursts_s"].as_array().unwrap();
    assert_eq!(bursts.len(), gen.burst_times().len());
    let toast = gen.toast_time().expect("a glass is raised");
    assert!(toast > 0.5 && toast < 6.0, "{toast}");
    assert!(d["render"]["music"]["key"]
        .as_str()
        .unwrap()
        .contains("major"));
    assert!(generator("a quiet forest", small(5, 1.0))
        .toast_time()
        .is_none());
}
