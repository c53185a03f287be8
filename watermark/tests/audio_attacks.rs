//! The audio mark after real attacks made with the ffmpeg CLI (AAC, MP3, Opus, 16 kHz mono,
//! volume ±6 dB, a trimmed start, a 3 s excerpt) on ≥ 12 s of the shared music and of looped
//! voice: detected, with the exact payload (the excerpt: detected). The same attacks on the
//! unmarked sound are never detected, and another key finds nothing.

mod audio_common;
use audio_common::*;
use hallmark_watermark::Payload;

fn attacked(name: &str, make: fn(&Scratch) -> std::path::PathBuf) {
    let dir = Scratch::new(name);
    let src = make(&dir);
    let k = key(1, 3);
    let m = mark(&dir, &src, &k, "marked.wav");
    println!(
        "{name}: {:.1} s, SNR {:.1} dB\n| attack | z | p | payload | coded BER | unmarked copy: z, p |\n|---|---|---|---|---|---|",
        m.seconds,
        m.snr_db()
    );
    let mut failures = Vec::new();
    for (i, (what, args, ext, want_payload)) in attacks().into_iter().enumerate() {
        let a = attack(&dir, &m.path, &args, &format!("marked-{i}"), ext);
        let r = detect(&a, std::slice::from_ref(&k));
        let u = attack(&dir, &src, &args, &format!("plain-{i}"), ext);
        let ru = detect(&u, std::slice::from_ref(&k));
        let exact = r.payload == Some(payload(&k));
        println!(
            "| {what} | {:.1} | {:.1e} | {} | {} | {:.1}, {:.2} |",
            r.score,
            r.p_value,
            if exact { "exact" } else { "-" },
            r.bit_error_estimate
                .map(|b| format!("{b:.3}"))
                .unwrap_or("-".into()),
            ru.score,
            ru.p_value
        );
        if !r.detected {
            failures.push(format!("{what}: not detected ({r:?})"));
        }
        payload_and_unmarked(what, &r, &ru, exact, want_payload, &mut failures);
    }
    assert!(failures.is_empty(), "{name}: {failures:#?}");
}

#[test]
fn music_mark_survives_codecs_resampling_volume_and_cuts() {
    attacked("music", music);
}

#[test]
fn voice_mark_survives_codecs_resampling_volume_and_cuts() {
    attacked("voice", voice);
}

#[test]
fn a_mark_made_with_one_key_is_not_found_with_another() {
    let dir = Scratch::new("keys");
    let src = music(&dir);
    let (a, b) = (key(1, 3), key(9, 7));
    let m = mark(&dir, &src, &a, "marked.wav");
    let aac = attack(&dir, &m.path, &["-c:a", "aac", "-b:a", "64k"], "aac", "m4a");
    for file in [&m.path, &aac] {
        let r = detect(file, std::slice::from_ref(&b));
        println!("wrong key: z {:.2}, p {:.2}", r.score, r.p_value);
        assert!(!r.detected && !r.inconclusive, "{r:?}");
        assert_eq!(r.payload, None);
        // Both keys in the detector: the right one is found, and named.
        let r = detect(file, &[b.clone(), a.clone()]);
        assert!(r.detected, "{r:?}");
        assert_eq!(r.key_id, Some(3));
        assert_eq!(r.payload, Some(payload(&a)));
    }
}

/// 9 s of other music, then the last 5 s of the marked music, as AAC: over the whole sound the
/// foreign part diluted the mark (p 9e-15 and no payload before the sound's halves and
/// quarters were searched too); now the payload comes back and the timeline shows where.
#[test]
fn a_marked_stretch_after_foreign_sound_keeps_its_payload() {
    let dir = Scratch::new("splice");
    let src = music(&dir);
    let k = key(1, 3);
    let m = mark(&dir, &src, &k, "marked.wav");
    let foreign = dir.join("foreign.wav");
    let music = shared("audio/music-introzik.ogg");
    ffmpeg(&[
        "-ss",
        "120",
        "-t",
        "9",
        "-i",
        s(&music),
        "-c:a",
        "pcm_f32le",
        s(&foreign),
    ]);
    let spliced = dir.join("spliced.m4a");
    ffmpeg(&[
        "-i",
        s(&foreign),
        "-ss",
        "7",
        "-i",
        s(&m.path),
        "-filter_complex",
        "[0:a][1:a]concat=n=2:v=0:a=1[a]",
        "-map",
        "[a]",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        s(&spliced),
    ]);
    let r = detect(&spliced, std::slice::from_ref(&k));
    println!(
        "splice: z {:.1}, p {:.1e}, timeline {:?}",
        r.score, r.p_value, r.timeline
    );
    assert!(r.detected, "{r:?}");
    assert_eq!(r.payload, Some(payload(&k)), "{r:?}");
    for (second, p) in r.timeline.iter().take(9).enumerate() {
        assert!(p.is_none_or(|p| p > 1e-3), "foreign second {second}: {r:?}");
    }
    let marked = r.timeline[9..]
        .iter()
        .flatten()
        .filter(|p| **p < 1e-3)
        .count();
    assert!(marked >= 2, "{r:?}");
}

/// Voice after Opus 32 kbit/s is the hardest payload of the brief's list (Opus codes speech
/// with its own, coarser band energies; coded BER 0.09–0.18 at 14 s): over 20 keys and clip
/// ids every copy must be detected, no payload may be wrong, and ≥ 85 % must decode
/// (measured over 62 keys: 50 with the free list decoder alone, 57 with the forced key id).
#[test]
fn voice_payload_survives_opus_32k_over_many_keys() {
    let dir = Scratch::new("opus-keys");
    let src = voice(&dir);
    let (mut exact, mut lines) = (0, Vec::new());
    let keys = 11..31u8;
    for seed in keys.clone() {
        let k = key(seed, seed);
        let p = Payload {
            clip_id: 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(seed as u64 + 1),
            key_id: k.key_id(),
        };
        let m = mark_with(&dir, &src, &k, p, &format!("marked-{seed}.wav"));
        let a = attack(
            &dir,
            &m.path,
            &["-c:a", "libopus", "-b:a", "32k"],
            &format!("opus-{seed}"),
            "opus",
        );
        let r = detect(&a, std::slice::from_ref(&k));
        assert!(r.detected, "key {seed}: {r:?}");
        assert!(
            r.payload.is_none() || r.payload == Some(p),
            "key {seed}: WRONG payload {r:?}"
        );
        exact += usize::from(r.payload == Some(p));
        lines.push(format!(
            "key {seed}: z {:.1}, p {:.1e}, coded BER {:.3}, payload {}",
            r.score,
            r.p_value,
            r.bit_error_estimate.unwrap_or(f64::NAN),
            if r.payload == Some(p) { "exact" } else { "-" }
        ));
    }
    let n = keys.len();
    println!("{}\nexact payloads: {exact}/{n}", lines.join("\n"));
    assert!(
        exact * 20 >= n * 17,
        "voice + Opus 32k: {exact}/{n} payloads\n{}",
        lines.join("\n")
    );
}
