//! The sound's mark after tempo, pitch and speed changes made with the ffmpeg CLI (`atempo`,
//! `asetrate` + `aresample` [+ `atempo`]) on the shared music and voice, at values other than
//! the benchmark's (pitch −4 %, tempo 1.15): each detected by the wider search with the exact
//! payload and the scales it was found at; the unmarked sound through the same attacks never
//! detected. (Not in the list: voice after `atempo=1.2`, z 6.5 at the true scale, under
//! the wider search's threshold of ≈ 7.8: the overlap-add of `atempo` jitters speech's
//! tiles more than music's, which is found after 1.2.)

mod audio_common;
use audio_common::*;
use hallmark_watermark::{Payload, WatermarkKey};

/// One attack: name, ffmpeg `-af` filter (`SR`: the sample rate), the time and frequency
/// scales it makes, and whether the payload must decode.
type ScaleAttack = (&'static str, &'static str, f64, f64, bool);

const TEMPO_108: ScaleAttack = ("tempo 1.08 (atempo)", "atempo=1.08", 1.0 / 1.08, 1.0, true);
const TEMPO_088: ScaleAttack = ("tempo 0.88 (atempo)", "atempo=0.88", 1.0 / 0.88, 1.0, true);
const TEMPO_120: ScaleAttack = ("tempo 1.2 (atempo)", "atempo=1.2", 1.0 / 1.2, 1.0, true);
const TEMPO_094: ScaleAttack = ("tempo 0.94 (atempo)", "atempo=0.94", 1.0 / 0.94, 1.0, true);
const PITCH_UP_3: ScaleAttack = (
    "pitch +3 % (asetrate, atempo)",
    "asetrate=SR*1.03,aresample=SR,atempo=0.9708738",
    1.0,
    1.03,
    true,
);
const PITCH_DOWN_55: ScaleAttack = (
    "pitch -5.5 % (asetrate, atempo)",
    "asetrate=SR*0.945,aresample=SR,atempo=1.0582011",
    1.0,
    0.945,
    true,
);
const SPEED_UP_5: ScaleAttack = (
    "speed +5 % (asetrate: faster and higher)",
    "asetrate=SR*1.05,aresample=SR",
    1.0 / 1.05,
    1.05,
    true,
);
const SPEED_DOWN_4: ScaleAttack = (
    "speed -4 % (asetrate: slower and lower)",
    "asetrate=SR*0.96,aresample=SR",
    1.0 / 0.96,
    0.96,
    true,
);

fn scaled(
    name: &str,
    make: fn(&Scratch) -> std::path::PathBuf,
    rate: u32,
    attacks: &[ScaleAttack],
) {
    let dir = Scratch::new(name);
    let src = make(&dir);
    let k = key(2, 5);
    let m = mark(&dir, &src, &k, "marked.wav");
    println!(
        "{name}\n| attack | z | p | time scale | frequency scale | payload | coded BER | s | unmarked: z, p, s |\n|---|---|---|---|---|---|---|---|---|"
    );
    let mut failures = Vec::new();
    for (i, &(what, filter, time_scale, freq_scale, want_payload)) in attacks.iter().enumerate() {
        let filter = filter.replace("SR", &rate.to_string());
        let args = ["-af", filter.as_str()];
        let a = attack(&dir, &m.path, &args, &format!("marked-{i}"), "wav");
        let started = std::time::Instant::now();
        let r = detect(&a, std::slice::from_ref(&k));
        let secs = started.elapsed().as_secs_f64();
        let u = attack(&dir, &src, &args, &format!("plain-{i}"), "wav");
        let started = std::time::Instant::now();
        let ru = detect(&u, std::slice::from_ref(&k));
        let usecs = started.elapsed().as_secs_f64();
        let exact = r.payload == Some(payload(&k));
        println!(
            "| {what} | {:.1} | {:.1e} | {} | {} | {} | {} | {secs:.2} | {:.1}, {:.2}, {usecs:.2} |",
            r.score,
            r.p_value,
            r.time_scale.map(|v| format!("{v:.4}")).unwrap_or("-".into()),
            r.frequency_scale
                .map(|v| format!("{v:.2}"))
                .unwrap_or("-".into()),
            if exact { "exact" } else { "-" },
            r.bit_error_estimate
                .map(|b| format!("{b:.3}"))
                .unwrap_or("-".into()),
            ru.score,
            ru.p_value
        );
        if !r.detected {
            failures.push(format!("{what}: not detected ({r:?})"));
        } else {
            let ts = r.time_scale.unwrap_or(1.0);
            let fs = r.frequency_scale.unwrap_or(1.0);
            if (ts / time_scale - 1.0).abs() > 0.01 || (fs / freq_scale - 1.0).abs() > 0.03 {
                failures.push(format!("{what}: found at time {ts}, frequency {fs}"));
            }
            // The timeline is read at the registration found: the seconds show the mark.
            let marked = r.timeline.iter().flatten().filter(|p| **p < 0.01).count();
            if marked < 3 {
                failures.push(format!(
                    "{what}: {marked} seconds at p < 0.01: {:?}",
                    r.timeline
                ));
            }
        }
        payload_and_unmarked(what, &r, &ru, exact, want_payload, &mut failures);
    }
    assert!(failures.is_empty(), "{name}: {failures:#?}");
}

#[test]
fn music_mark_survives_tempo_pitch_and_speed_changes() {
    scaled(
        "music",
        music,
        44_100,
        &[
            TEMPO_108,
            TEMPO_088,
            TEMPO_120,
            PITCH_UP_3,
            PITCH_DOWN_55,
            SPEED_UP_5,
            SPEED_DOWN_4,
        ],
    );
}

#[test]
fn voice_mark_survives_tempo_pitch_and_speed_changes() {
    scaled(
        "voice",
        voice,
        48_000,
        &[
            TEMPO_108,
            TEMPO_088,
            TEMPO_094,
            PITCH_UP_3,
            PITCH_DOWN_55,
            SPEED_UP_5,
            SPEED_DOWN_4,
        ],
    );
}

/// Pitch −4 % through AAC (the CLI's tempo-and-pitch test's second attack) on 20 s of the
/// music: for one key in ≈ 36 (7 of 253 seeds) the plain framing alone crossed DETECT_P
/// (here p 2e-9, the chips a band off), and the wider search, which ran only when it did
/// not, was skipped: detected, but no payload and no scale in the report. It now runs
/// unless the first stages prove the mark with its payload.
#[test]
fn pitch_shift_the_plain_framing_half_detects_is_still_read_by_the_wider_search() {
    let dir = Scratch::new("pitch-half");
    let src = music_excerpt(&dir, "music-20s.wav", (50, 20), "pcm_s16le");
    // The 1066th key of the search that found it.
    let seed: u32 = 1066;
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = (seed as u8).wrapping_mul(31).wrapping_add(i as u8 * 7) ^ (seed >> 8) as u8;
    }
    let k = WatermarkKey::from_secret(secret, 5);
    let p = Payload {
        clip_id: 0x0123_4567_89ab_cdef ^ u64::from(seed),
        key_id: 5,
    };
    let m = mark_with(&dir, &src, &k, p, "marked.wav");
    let args = [
        "-af",
        "asetrate=44100*0.96,aresample=44100,atempo=1.0416667",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
    ];
    let r = detect(
        &attack(&dir, &m.path, &args, "pitch", "m4a"),
        std::slice::from_ref(&k),
    );
    assert!(r.detected, "{r:?}");
    assert_eq!(r.payload, Some(p), "{r:?}");
    let f = r.frequency_scale.expect("found by the wider search");
    assert!((f / 0.96 - 1.0).abs() < 0.011, "frequency scale {f}");
    let u = attack(&dir, &src, &args, "pitch-plain", "m4a");
    assert!(!detect(&u, std::slice::from_ref(&k)).detected);
}
