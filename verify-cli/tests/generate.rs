//! `hallmark generate`: a prompt becomes a sealed clip that verifies as AI-made.

mod common;

use common::*;

const SEED_FR: &str = "Moi, sur la plage au coucher du soleil, avec un verre de vin pétillant, tandis que les feux d'artifice fendent le ciel";

#[test]
fn the_seed_prompt_becomes_a_verified_ai_clip() {
    let home = Home::with_keys("Generator Test");
    let out = scratch().join("seed-fr.mp4");
    let r = home.run(&[
        "generate",
        SEED_FR,
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "2",
        "--size",
        "320x180",
        "--fps",
        "25",
        "--seed",
        "7",
        "--preset",
        "ultrafast",
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(
        stderr.contains("plage (beach)") && stderr.contains("feux d'artifice"),
        "{stderr}"
    );

    let (code, v) = verify_json(home.path(), &out, &[]);
    assert_eq!(
        (code, v["verdict"].as_str().unwrap()),
        (0, "verified"),
        "{v:#}"
    );
    assert_eq!(v["ai_generated"], true);
    assert_eq!(v["c2pa"]["actions"][0]["action"], "c2pa.created");
    assert_eq!(
        v["c2pa"]["digital_source_type"],
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    );
    assert!(v["c2pa"]["ingredients"].as_array().unwrap().is_empty());
    let generation = &v["c2pa"]["hallmark"]["generation"];
    assert_eq!(generation["prompt"], SEED_FR);
    assert_eq!(generation["seed"], 7);
    assert_eq!(generation["backend"], "procedural");
    assert!(generation["model"]
        .as_str()
        .unwrap()
        .starts_with("hallmark-procedural/"));
    assert_eq!(
        (generation["width"].as_u64(), generation["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(v["media"]["width"], 320);
    assert_eq!(v["media"]["sample_rate"], 48000);
    assert_eq!(v["media"]["channels"], 2);
    assert!((v["media"]["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.1);
    // Every clip carries the watermark, recorded as its soft binding.
    assert_eq!(
        v["c2pa"]["soft_bindings"][0]["alg"],
        "org.hallmark.watermark.video.1"
    );
}

#[test]
fn generate_refuses_bad_options_and_writes_nothing() {
    let home = Home::with_keys("Generator Options");
    let dir = tempfile::tempdir().unwrap();
    for (args, why) in [
        (vec!["--size", "321x180"], "odd width"),
        (vec!["--fps", "0"], "zero fps"),
        (vec!["--duration", "600"], "too long"),
        (vec!["--size", "huge"], "not a size"),
    ] {
        let out = dir.path().join("clip.mp4");
        let mut all = vec!["generate", "a forest at dawn", "-o", out.to_str().unwrap()];
        all.extend(args);
        let r = home.run(&all);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{why}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(
            listing(dir.path()).is_empty(),
            "{why}: left {:?}",
            listing(dir.path())
        );
    }
    let r = home.run(&[
        "generate",
        "a forest",
        "-o",
        dir.path().join("clip.mov").to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
}

/// The decoded sound, mono f32.
fn audio_samples(path: &std::path::Path) -> Vec<f32> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-ac", "1", "-f", "f32le", "-"])
        .output()
        .unwrap();
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// SNR (dB) of `b`'s sound against `a`'s, sample by sample.
fn audio_snr(a: &std::path::Path, b: &std::path::Path) -> f64 {
    let (a, b) = (audio_samples(a), audio_samples(b));
    assert!(
        !a.is_empty() && a.len() == b.len(),
        "{} vs {}",
        a.len(),
        b.len()
    );
    let signal: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
    let noise: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-12)).log10()
}

/// PSNR of the luma of two clips (ffmpeg's psnr filter, average over frames).
fn psnr_y(a: &std::path::Path, b: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args(["-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let y = log
        .split(" y:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no PSNR in {log}"));
    if y == "inf" {
        f64::INFINITY
    } else {
        y.parse().unwrap()
    }
}

#[test]
fn same_prompt_and_seed_give_the_same_clip() {
    let home = Home::with_keys("Determinism");
    let make = |name: &str, seed: &str| {
        let out = scratch().join(name);
        let r = home.run(&[
            "generate",
            "a snowy forest at night with the moon",
            "-o",
            out.to_str().unwrap(),
            "--duration",
            "2",
            "--size",
            "320x180",
            "--seed",
            seed,
            "--preset",
            "ultrafast",
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        out
    };
    let (a, b, c) = (
        make("det-a.mp4", "5"),
        make("det-b.mp4", "5"),
        make("det-c.mp4", "6"),
    );
    // Picture and sound differ only by their watermarks (each clip gets a new clip id).
    let (same_sound, other_sound) = (audio_snr(&a, &b), audio_snr(&a, &c));
    // Two different marks, each ~30 dB under the sound, after AAC: ~22 dB apart.
    assert!(same_sound > 15.0, "same seed: sound SNR {same_sound}");
    assert!(
        other_sound < same_sound - 10.0,
        "another seed: sound SNR {other_sound} vs {same_sound}"
    );
    let same = psnr_y(&a, &b);
    let other = psnr_y(&a, &c);
    assert!(same > 38.0, "same seed: PSNR {same}");
    assert!(
        other < same - 5.0,
        "another seed should look different: {other} vs {same}"
    );
}

#[test]
fn ctrl_c_during_generate_leaves_no_file() {
    let home = Home::with_keys("Interrupted Generator");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let args = [
        "generate",
        "fireworks over a city street",
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "30",
        "--preset",
        "veryslow",
    ];
    assert_ctrl_c_leaves_nothing(home.path(), &args, dir.path());
}

#[test]
fn diffusion_backend_needs_a_weights_directory_and_writes_nothing() {
    let home = Home::with_keys("Diffusion Options");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let missing = dir.path().join("sd-turbo");
    let run = |extra: &[&str]| {
        let mut all = vec!["generate", "a forest at dawn", "-o", out.to_str().unwrap()];
        all.extend(extra);
        home.run(&all)
    };
    for (extra, want) in [
        (vec!["--backend", "diffusion"], "needs --weights DIR"),
        (
            vec![
                "--backend",
                "diffusion",
                "--weights",
                missing.to_str().unwrap(),
            ],
            "no such directory",
        ),
        (
            vec!["--weights", missing.to_str().unwrap()],
            "--weights applies to --backend diffusion only",
        ),
        (vec!["--steps", "2"], "--backend diffusion only"),
        (
            vec!["--keyframe-size", "512x512"],
            "--backend diffusion only",
        ),
        (vec!["--backend", "dall-e"], "invalid value"),
        // The manifest records the seed as a CBOR integer (at most 2^63 − 1).
        (
            vec!["--seed", "9223372036854775808"],
            "0..=9223372036854775807",
        ),
    ] {
        let r = run(&extra);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
        assert!(
            listing(dir.path()).is_empty(),
            "{extra:?}: left {:?}",
            listing(dir.path())
        );
    }
    // An empty directory: the checkpoint's files are named.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = run(&[
        "--backend",
        "diffusion",
        "--weights",
        empty.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("text_encoder/config.json"), "{stderr}");
    assert!(!out.exists());
    let help = home.run(&["generate", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for want in ["--backend", "--weights", "SD-Turbo", "diffusers layout"] {
        assert!(help.contains(want), "--help lacks {want}: {help}");
    }
}

/// The largest seed the CLI accepts is signed and recorded as given.
#[test]
fn the_largest_seed_is_sealed_and_recorded() {
    let home = Home::with_keys("Generator Test");
    let out = scratch().join("max-seed.mp4");
    let max = u64::MAX >> 1;
    let r = home.run(&[
        "generate",
        "a forest at dawn",
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "0.5",
        "--size",
        "128x72",
        "--seed",
        &max.to_string(),
        "--preset",
        "ultrafast",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (code, v) = verify_json(home.path(), &out, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(
        v["c2pa"]["hallmark"]["generation"]["seed"].as_u64(),
        Some(max)
    );
}

/// `--crf` and `--preset` reach the encoder (they once did not); an unknown preset is named and
/// leaves no file.
#[test]
fn encoding_options_reach_the_encoder() {
    let home = Home::with_keys("Generator Test");
    let size_at = |crf: &str, preset: &str| {
        let out = scratch().join(format!("enc-{crf}-{preset}.mp4"));
        let r = home.run(&[
            "generate",
            "a city street at night with cars",
            "-o",
            out.to_str().unwrap(),
            "--duration",
            "1",
            "--size",
            "320x180",
            "--crf",
            crf,
            "--preset",
            preset,
        ]);
        (r, out)
    };
    let (fine, fine_out) = size_at("12", "veryfast");
    let (coarse, coarse_out) = size_at("45", "veryfast");
    assert!(fine.status.success() && coarse.status.success());
    let video_bit_rate = |file: &std::path::Path| -> u64 {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["stream=bit_rate", "-of", "csv=p=0"])
            .arg(file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let (fine_rate, coarse_rate) = (video_bit_rate(&fine_out), video_bit_rate(&coarse_out));
    assert!(
        coarse_rate * 4 < fine_rate,
        "video at CRF 45: {coarse_rate} bit/s, at CRF 12: {fine_rate} bit/s"
    );
    let (bad, bad_out) = size_at("20", "warp-speed");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "a usage error: {stderr}");
    assert!(
        stderr.contains("warp-speed") && stderr.contains("veryfast"),
        "{stderr}"
    );
    assert!(!bad_out.exists());
}
