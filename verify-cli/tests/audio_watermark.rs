//! The sound carries the mark too: a sealed clip's audio track, extracted alone and
//! re-encoded, still says who sealed it; so does a sealed sound file stripped of its manifest.

mod common;

use common::*;
use std::path::PathBuf;

/// 16 s of Big Buck Bunny with music. (At 12 s the sound alone after AAC 64 kbit/s reads its
/// payload with most keys, not all: coded-bit errors 0.07–0.15 over 50 fresh keys, 2 of them
/// past the decoder's ≈ 0.15; at 16 s 0.03–0.10 over 18.)
fn clip_with_music() -> PathBuf {
    footage_with_music("video/bigbuckbunny.mp4", 16, "bbb-music-16s.mp4")
}

fn soft_binding(report: &serde_json::Value, alg: &str) -> Option<String> {
    report["c2pa"]["soft_bindings"]
        .as_array()?
        .iter()
        .find(|b| b["alg"] == alg)
        .and_then(|b| b["values"][0].as_str())
        .map(str::to_owned)
}

#[test]
fn audio_track_extracted_alone_still_names_the_clip() {
    let home = Home::with_keys("Sound Desk");
    let input = clip_with_music();
    let sealed = home.seal(&input, "sealed-music.mp4", &["--preset", "ultrafast"]);
    let (_, report) = verify_json(home.path(), &sealed, &[]);
    let video_id = soft_binding(&report, "org.hallmark.watermark.video.1");
    let audio_id = soft_binding(&report, "org.hallmark.watermark.audio.1");
    assert!(video_id.is_some(), "{report:#}");
    assert_eq!(video_id, audio_id, "one clip id for picture and sound");
    let clip_id = audio_id.unwrap();

    // The sound alone, as a platform or a screen recorder would keep it.
    let m4a = scratch().join("sealed-music-audio.m4a");
    ffmpeg(&[
        "-i",
        sealed.to_str().unwrap(),
        "-vn",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        m4a.to_str().unwrap(),
    ]);
    let (code, r) = verify_json(home.path(), &m4a, &[]);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    assert_eq!(code, 3);
    assert!(
        r["summary"].as_str().unwrap().contains("in the sound"),
        "{r:#}"
    );
    let audio = &r["watermark"]["audio"];
    assert_eq!(audio["detected"], true, "{r:#}");
    assert!(audio["p_value"].as_f64().unwrap() <= 1e-6);
    println!(
        "the sound alone (AAC 64k): p {} payload {} bit errors {}",
        audio["p_value"], audio["payload"], audio["bit_error_estimate"]
    );
    assert_eq!(audio["payload"], clip_id.as_str(), "{r:#}");
    assert_eq!(r["watermark"]["video"], serde_json::Value::Null);
    assert_eq!(r["watermark"]["clip_id"], clip_id.as_str());

    // Someone without the watermark key learns nothing from it.
    let stranger = Home::empty();
    let (_, r) = verify_json(stranger.path(), &m4a, &[]);
    assert_eq!(r["verdict"], "no-provenance", "{r:#}");
    assert_eq!(r["watermark"], serde_json::Value::Null);

    // The unsealed clip's sound is not reported as marked.
    let plain = scratch().join("plain-music-audio.m4a");
    ffmpeg(&[
        "-i",
        input.to_str().unwrap(),
        "-vn",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        plain.to_str().unwrap(),
    ]);
    let (_, r) = verify_json(home.path(), &plain, &[]);
    assert_eq!(r["verdict"], "no-provenance", "{r:#}");
    assert_eq!(r["watermark"]["audio"]["detected"], false);
    assert!(r["watermark"]["audio"]["p_value"].as_f64().unwrap() > 1e-6);
    assert_eq!(r["watermark"]["clip_id"], serde_json::Value::Null);
}

#[test]
fn sealed_sound_file_without_its_manifest_is_watermarked() {
    let home = Home::with_keys("Voice Desk");
    let voice = voice();
    let sealed = home.seal(&voice, "voice-sealed.m4a", &[]);
    let (code, report) = verify_json(home.path(), &sealed, &[]);
    assert_eq!((code, report["verdict"].as_str()), (0, Some("verified")));
    assert_eq!(
        soft_binding(&report, "org.hallmark.watermark.video.1"),
        None,
        "no picture, no picture mark"
    );
    let clip_id = soft_binding(&report, "org.hallmark.watermark.audio.1").expect("audio binding");

    // Platforms drop metadata: the manifest goes, the mark stays.
    let stripped = strip_manifest(&sealed, "voice-stripped.m4a");
    let (code, r) = verify_json(home.path(), &stripped, &[]);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    assert_eq!(code, 3);
    assert_eq!(r["watermark"]["audio"]["detected"], true);
    assert_eq!(r["watermark"]["clip_id"], clip_id.as_str());

    // The human-readable report says where the mark is.
    let out = home.run(&["verify", stripped.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("present in the sound"), "{text}");
}

/// A sealed sound sped up, slowed down or pitch-shifted before reposting (`atempo`,
/// `asetrate`): the plain search loses the tiles' registration, the wider one (time and
/// frequency scale) finds the mark, and its clip id when the payload decodes; the unsealed
/// sound through the same changes is not reported as marked. 20 s of music: on 12 s,
/// `atempo=1.12` left z ≈ 7.1–7.6 at the true scale for one fresh key in ≈ 200 (2 of 400
/// missed, p 3e-6 and 2e-5, against the wider search's threshold of ≈ 7.8), and this test,
/// on a fresh key each run, failed in CI; on 20 s the weakest of 138 keys was p 3e-18.
#[test]
fn sound_after_tempo_and_pitch_changes_still_names_the_clip() {
    let home = Home::with_keys("Remix Desk");
    let music = scratch().join("music-20s-for-tempo.wav");
    ffmpeg(&[
        "-ss",
        "50",
        "-t",
        "20",
        "-i",
        media("audio/music-introzik.ogg").to_str().unwrap(),
        music.to_str().unwrap(),
    ]);
    let sealed = home.seal(&music, "music-sealed-for-tempo.wav", &[]);
    let (_, report) = verify_json(home.path(), &sealed, &[]);
    let clip_id = soft_binding(&report, "org.hallmark.watermark.audio.1").expect("audio binding");
    // (name, filter, the scales the report must give: duration over the sealed one's, pitch)
    for (name, filter, time, frequency) in [
        ("tempo-1.12", "atempo=1.12", 1.0 / 1.12, 1.0),
        (
            "pitch-down-4",
            "asetrate=44100*0.96,aresample=44100,atempo=1.0416667",
            1.0,
            0.96,
        ),
    ] {
        for (input, marked) in [(&sealed, true), (&music, false)] {
            let out = scratch().join(format!(
                "{name}-{}.m4a",
                if marked { "sealed" } else { "plain" }
            ));
            ffmpeg(&[
                "-i",
                input.to_str().unwrap(),
                "-af",
                filter,
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                out.to_str().unwrap(),
            ]);
            let (_, r) = verify_json(home.path(), &out, &["--no-store"]);
            let audio = &r["watermark"]["audio"];
            if marked {
                assert_eq!(r["verdict"], "watermarked", "{name}: {r:#}");
                assert_eq!(audio["detected"], true, "{name}: {r:#}");
                // The payload decodes for most keys but not all (pitch -4 % through AAC: 3 of
                // 5 fresh keys, coded BER near the decoder's limit); never a wrong one.
                assert!(
                    audio["payload"] == clip_id.as_str() || audio["payload"].is_null(),
                    "{name}: {r:#}"
                );
                // The report says how the sound was changed: JSON and words.
                let scale = &audio["sound_scale"];
                let got = (scale["time"].as_f64(), scale["frequency"].as_f64());
                assert!(
                    got.0.is_some_and(|t| (t / time - 1.0).abs() < 0.01)
                        && got.1.is_some_and(|f| (f / frequency - 1.0).abs() < 0.02),
                    "{name}: {scale} ({r:#})"
                );
                // With the store, the clip's sealed sound is compared at the tempo the mark
                // was found at (before, its fingerprint scored 0.36 after `atempo=1.12`, called
                // the copy another clip's content and the verdict `tampered`).
                if audio["payload"] == clip_id.as_str() {
                    let (_, r) = verify_json(home.path(), &out, &[]);
                    let recovered = &r["recovered_manifest"];
                    assert_eq!(r["verdict"], "watermarked", "{name}: {r:#}");
                    assert_eq!(recovered["status"], "recovered", "{name}: {r:#}");
                    assert!(
                        recovered["similarity"]["audio"].as_f64().unwrap() >= 0.7,
                        "{name}: {r:#}"
                    );
                }
                let human = home.run(&["verify", "--no-store", out.to_str().unwrap()]);
                let human = String::from_utf8_lossy(&human.stdout);
                let words = if time < 1.0 {
                    "12 % faster than sealed"
                } else {
                    "pitched 4 % lower"
                };
                assert!(human.contains(words), "{name}: {human}");
            } else {
                assert_eq!(r["verdict"], "no-provenance", "{name}: {r:#}");
                assert_eq!(audio["detected"], false, "{name}: {r:#}");
                assert_eq!(r["watermark"]["clip_id"], serde_json::Value::Null);
            }
        }
    }
}

/// A sound mark too weak for its payload beside a picture mark that reads: other speech mixed
/// over a sealed clip's music at rising levels until the sound's payload no longer decodes.
/// The sound's coded bits are then read against the clip id the picture carries, and where
/// they agree the sound's mark is proven with it (before, the sound stayed unproven or
/// unnamed beside a proven picture). A sealed picture with its input's own, unsealed sound
/// names nothing in the sound.
#[test]
fn a_weak_sound_mark_is_proven_by_the_clip_id_the_picture_carries() {
    let home = Home::with_keys("Mix Desk");
    let input = footage_with_music("video/bigbuckbunny.mp4", 6, "bbb-music-6s.mp4");
    let sealed = home.seal(&input, "sealed-music-6s.mp4", &["--preset", "ultrafast"]);
    let (_, report) = verify_json(home.path(), &sealed, &["--no-store"]);
    let clip_id = soft_binding(&report, "org.hallmark.watermark.video.1").expect("binding");
    let speech = media("audio/Front_Center.wav");
    let mut named = Vec::new();
    // Until a level where the clip id made the difference (a few levels wide, where depends
    // on the key; past it the sound's coded bits no longer single out the clip id).
    for gain in [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 20] {
        if named.iter().any(|&(_, alone, _)| alone > 1e-6) {
            break;
        }
        let out = scratch().join(format!("speech-over-music-{gain}.mp4"));
        ffmpeg(&[
            "-i",
            sealed.to_str().unwrap(),
            "-stream_loop",
            "-1",
            "-i",
            speech.to_str().unwrap(),
            "-filter_complex",
            &format!("[1:a]volume={gain}[v];[0:a][v]amix=inputs=2:duration=first:normalize=0[a]"),
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            out.to_str().unwrap(),
        ]);
        let (_, r) = verify_json(home.path(), &out, &["--no-store"]);
        let (video, audio) = (&r["watermark"]["video"], &r["watermark"]["audio"]);
        assert_eq!(video["payload"], clip_id.as_str(), "{gain}: {r:#}");
        // Never a wrong clip id; named only where proven.
        assert!(
            audio["payload"].is_null() || audio["payload"] == clip_id.as_str(),
            "{gain}: {r:#}"
        );
        if audio["payload_named_by"] == "picture" {
            assert_eq!(audio["detected"], true, "{gain}: {r:#}");
            assert!(audio["p_value"].as_f64().unwrap() <= 1e-6, "{gain}: {r:#}");
            let alone = audio["presence_p_value"].as_f64().unwrap();
            named.push((gain, alone, audio["p_value"].as_f64().unwrap()));
            println!(
                "speech ×{gain}: sound p {alone:.1e} alone, {} with the clip id",
                audio["p_value"]
            );
        }
    }
    // Named at some level: before, a sound whose payload did not decode stayed unnamed.
    // (Where the presence alone fell short of proof, as in most runs, printed above.)
    assert!(!named.is_empty(), "the sound's payload was never named");
    // The sealed picture with the input's own sound: nothing named in the sound.
    let swapped = remux(&sealed, &input, "sealed-picture-plain-sound.mp4");
    let (_, r) = verify_json(home.path(), &swapped, &["--no-store"]);
    let audio = &r["watermark"]["audio"];
    assert_eq!(audio["detected"], false, "{r:#}");
    assert!(audio["payload"].is_null(), "{r:#}");
}

/// Speech: the four shared voice recordings, twice, concatenated (≈ 11 s), as
/// `scripts/bench-sound-keys` has them. Made once per test binary.
fn voice() -> PathBuf {
    // Once: the tests of this binary run at once, and a second one must not read the file
    // while the first is still writing it.
    static VOICE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VOICE
        .get_or_init(|| {
            let out = scratch().join("voice-8-recordings.wav");
            let names = ["Front_Center", "Front_Left", "Rear_Center", "Side_Left"].repeat(2);
            let inputs: Vec<String> = names
                .iter()
                .flat_map(|n| {
                    [
                        "-i".to_owned(),
                        media(&format!("audio/{n}.wav")).display().to_string(),
                    ]
                })
                .collect();
            let mut args: Vec<&str> = inputs.iter().map(String::as_str).collect();
            args.extend([
                "-filter_complex",
                "concat=n=8:v=0:a=1",
                out.to_str().unwrap(),
            ]);
            ffmpeg(&args);
            out
        })
        .clone()
}

/// A sealed voice recording sped up by `atempo=1.15`, uploaded alone: under this key (the
/// detector's unit test's seed 1) its sync symbols leave the mark unproven — p 5.5e-5 to 0.24
/// over the first five seals, as the clip id drawn falls — so the mark by itself names
/// nothing. With the store that holds the sealed sound, `hallmark verify` looks the sound up
/// (at the tempo the wider search liked best, and as it is where p < 0.1) and proves the mark
/// with the clip id the store holds it as (before session 32 nothing was looked up for a mark
/// this weak, and the copy was reported without provenance). The same voice unsealed,
/// through the same tempo, verified with the same store: nothing named.
#[test]
fn a_slowed_sound_alone_is_named_by_the_store_that_holds_it() {
    let home = Home::with_keys("Voice Desk");
    // A known watermark key: `keygen` makes a random one, and how weak the tempo leaves the
    // mark depends on the key.
    let secret: [u8; 32] = std::array::from_fn(|i| 31u8.wrapping_add((i as u8).wrapping_mul(7)));
    let key = hallmark_watermark::WatermarkKey::from_secret(secret, 5);
    let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(home.path().join("keys/watermark.key"), format!("{hex}\n")).unwrap();
    let voice = voice();
    let sealed = home.seal(&voice, "voice-sealed-for-store.wav", &[]);
    let (_, report) = verify_json(home.path(), &sealed, &["--no-store"]);
    let clip_id = soft_binding(&report, "org.hallmark.watermark.audio.1").expect("audio binding");
    for (input, marked) in [(&sealed, true), (&voice, false)] {
        let out = scratch().join(format!(
            "voice-tempo-1.15-{}.wav",
            if marked { "sealed" } else { "plain" }
        ));
        ffmpeg(&[
            "-i",
            input.to_str().unwrap(),
            "-af",
            "atempo=1.15",
            out.to_str().unwrap(),
        ]);
        let (_, alone) = verify_json(home.path(), &out, &["--no-store"]);
        let (_, r) = verify_json(home.path(), &out, &[]);
        let audio = &r["watermark"]["audio"];
        if marked {
            // The mark alone names nothing (printed). The binary before session 32, with the
            // store, named the clip for 1 of 3 seals (the other two: p 0.022 and 0.072,
            // no provenance); this one for 3 of 3.
            println!(
                "the slowed voice alone: p {}, payload {}",
                alone["watermark"]["audio"]["p_value"], alone["watermark"]["audio"]["payload"]
            );
            assert_eq!(r["verdict"], "watermarked", "{r:#}");
            assert_eq!(audio["detected"], true, "{r:#}");
            assert_eq!(audio["payload"], clip_id.as_str(), "{r:#}");
            if alone["watermark"]["audio"]["payload"].is_null() {
                assert_eq!(audio["payload_named_by"], "store", "{r:#}");
            }
            assert!(audio["p_value"].as_f64().unwrap() <= 1e-6, "{r:#}");
        } else {
            assert_eq!(r["verdict"], "no-provenance", "{r:#}");
            assert_eq!(audio["detected"], false, "{r:#}");
            assert!(audio["payload"].is_null(), "{r:#}");
        }
    }
}

/// The quick scan leaves the sound's wider search (tempo, pitch) for last where the picture
/// names a clip id: that id's whole pattern is searched for in the sound first, and the
/// sound's own full answer only follows where it is not found (≈ 0.3 s of a 0.6 s quick
/// scan of 10 s 1080p, `scripts/bench`). The sound's answer is the full scan's (the same
/// clip id, or none) for a sealed clip stripped of its manifest, and for its picture under
/// another sealed clip's sound, which never takes the picture's clip id.
#[test]
fn the_quick_scan_answers_for_the_sound_as_the_full_scan_does() {
    let home = Home::with_keys("Dub Desk");
    let bbb = media("video/bigbuckbunny.mp4");
    let excerpt = |seconds: &str, name: &str| {
        let out = scratch().join(name);
        ffmpeg(&[
            "-stream_loop",
            "2",
            "-i",
            bbb.to_str().unwrap(),
            "-t",
            seconds,
            "-vf",
            "scale=640:360",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            out.to_str().unwrap(),
        ]);
        home.seal(&out, &format!("sealed-{name}"), &["--preset", "ultrafast"])
    };
    let (picture, sound) = (
        excerpt("8", "dub-picture.mp4"),
        excerpt("10", "dub-sound.mp4"),
    );
    let (picture_id, sound_id) = (
        clip_id_of(&picture, home.path()),
        clip_id_of(&sound, home.path()),
    );
    assert_ne!(picture_id, sound_id);
    // Neither copy keeps the manifest (`ffmpeg -c copy` does not carry it over).
    let stripped = strip_manifest(&sound, "dub-sound-stripped.mp4");
    let dubbed = remux(&picture, &sound, "dubbed.mp4");
    for (file, picture_carries, sound_carries) in [
        (&stripped, &sound_id, &sound_id),
        (&dubbed, &picture_id, &sound_id),
    ] {
        let (_, quick) = verify_json(home.path(), file, &["--quick", "--no-store"]);
        let (_, full) = verify_json(home.path(), file, &["--no-store"]);
        let (q, f) = (&quick["watermark"]["audio"], &full["watermark"]["audio"]);
        assert_eq!(quick["c2pa"]["present"], false, "{quick:#}");
        assert_eq!(
            quick["watermark"]["video"]["payload"],
            picture_carries.as_str(),
            "{quick:#}"
        );
        // (Not always proven: 8 s of Big Buck Bunny's own sound is weak for some keys.)
        assert!(
            q["payload"] == sound_carries.as_str() || q["payload"].is_null(),
            "{quick:#}"
        );
        for field in ["detected", "payload"] {
            assert_eq!(q[field], f[field], "{field}: {quick:#} against {full:#}");
        }
        // The one difference allowed: the full scan's wider search read the clip id itself
        // (at a time scale a hair off 1, e.g. 0.9994: p 9.7e-9) where the quick scan found
        // the picture's in the sound first (p 1.6e-25).
        if q["payload_named_by"] != f["payload_named_by"] {
            assert!(
                q["payload_named_by"] == "picture" && f["payload_named_by"].is_null(),
                "{quick:#} against {full:#}"
            );
        } else {
            assert_eq!(q["p_value"], f["p_value"], "{quick:#} against {full:#}");
        }
    }
}
