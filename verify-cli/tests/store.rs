//! Durable credentials: sealing records the manifest and a fingerprint in the home's store;
//! `verify` recovers a stripped manifest by the watermark's clip id, and refuses it for other
//! content carrying the same mark.

mod common;

use common::*;

#[test]
fn a_stripped_and_reencoded_copy_gets_its_manifest_back() {
    let (home, sealed) = sealed_clip();
    let (_, original) = verify_json(home.path(), sealed, &[]);
    let manifest_id = original["c2pa"]["active_manifest"].as_str().unwrap();
    let clip_id = clip_id_of(sealed, home.path());
    assert!(home.path().join("manifests.sqlite").is_file());

    // What a platform does: metadata gone, picture scaled and re-encoded, sound re-encoded.
    let copy = scratch().join("store-platform-copy.mp4");
    ffmpeg(&[
        "-i",
        sealed.to_str().unwrap(),
        "-map_metadata",
        "-1",
        "-vf",
        "scale=-2:360",
        "-c:v",
        "libx264",
        "-crf",
        "28",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        copy.to_str().unwrap(),
    ]);
    // The quick scan too (key frames first): the picture is compared in full all the same.
    let files = [strip_manifest(sealed, "store-stripped.mp4"), copy];
    for (file, extra) in files
        .iter()
        .flat_map(|f| [(f, &[][..]), (f, &["--quick"][..])])
    {
        let (code, report) = verify_json(home.path(), file, extra);
        assert_eq!(report["verdict"], "watermarked", "{file:?}: {report:#}");
        assert_eq!(code, 3, "watermarked is not 'verified'");
        let recovered = &report["recovered_manifest"];
        assert_eq!(recovered["status"], "recovered", "{file:?}: {recovered:#}");
        assert_eq!(recovered["clip_id"], clip_id.as_str());
        assert_eq!(recovered["manifest_id"], manifest_id);
        assert!(recovered["similarity"]["video"].as_f64().unwrap() >= 0.75);
        // The store's manifest is validated on its own: signature and trust (the home
        // trusts its own root), not the hash of bytes this copy no longer has.
        assert_eq!(recovered["c2pa"]["validation_state"], "Trusted");
        assert_eq!(
            recovered["c2pa"]["common_name"],
            original["c2pa"]["common_name"]
        );
        assert_eq!(recovered["ai_generated"], true);
        let summary = report["summary"].as_str().unwrap();
        assert!(summary.contains("manifest recovered"), "{summary}");
    }
}

#[test]
fn a_mark_on_other_content_does_not_borrow_the_manifest() {
    let (home, sealed) = sealed_clip();
    let clip_id = clip_id_of(sealed, home.path());
    let forged = mark_copied_onto_other_footage(home.path(), &clip_id, "store-forged.mp4");
    for extra in [&[][..], &["--quick"][..]] {
        let (code, report) = verify_json(home.path(), &forged, extra);
        assert_mismatch(code, &report, &clip_id);
    }
}

fn assert_mismatch(code: i32, report: &serde_json::Value, clip_id: &str) {
    assert_eq!(report["watermark"]["clip_id"], clip_id, "{report:#}");
    assert_eq!(report["recovered_manifest"]["status"], "mismatch");
    assert!(report["recovered_manifest"]["c2pa"].is_null());
    assert!(
        report["recovered_manifest"]["similarity"]["video"]
            .as_f64()
            .unwrap()
            < 0.75
    );
    assert_eq!(report["verdict"], "tampered", "{report:#}");
    assert_eq!(code, 1);
    assert!(report["summary"].as_str().unwrap().contains("Mismatch"));
}

#[test]
fn store_flags_choose_where_clips_are_recorded_and_looked_up() {
    let home = Home::with_keys("Store Flags");
    let input = short_clip();
    let custom = scratch().join("store-flags-custom.sqlite");
    let _ = std::fs::remove_file(&custom);
    let sealed = scratch().join("store-flags.mp4");
    let r = home.run(&[
        "seal",
        input.to_str().unwrap(),
        "-o",
        sealed.to_str().unwrap(),
        "--preset",
        "ultrafast",
        "--store",
        custom.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(custom.is_file());
    assert!(!home.path().join("manifests.sqlite").exists());
    let stripped = strip_manifest(&sealed, "store-flags-stripped.mp4");

    let (_, report) = verify_json(
        home.path(),
        &stripped,
        &["--store", custom.to_str().unwrap()],
    );
    assert_eq!(report["recovered_manifest"]["status"], "recovered");
    // The home's own store never saw this clip.
    let (_, report) = verify_json(home.path(), &stripped, &[]);
    assert_eq!(report["recovered_manifest"]["status"], "not-found");
    assert_eq!(report["verdict"], "watermarked");
    let (_, report) = verify_json(home.path(), &stripped, &["--no-store"]);
    assert!(report["recovered_manifest"].is_null());

    // Not a store: a clear error naming the file, and no output written.
    let junk = scratch().join("store-flags-junk.sqlite");
    std::fs::write(&junk, b"not a database at all, just some text to be sure").unwrap();
    let (code, _) = verify_json(home.path(), &stripped, &["--store", junk.to_str().unwrap()]);
    assert_eq!(code, 3, "a broken store does not stop verification");
    let out = scratch().join("store-flags-never.mp4");
    let r = home.run(&[
        "seal",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--preset",
        "ultrafast",
        "--store",
        junk.to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("store-flags-junk.sqlite"));
    assert!(!out.exists());
}

#[test]
fn a_tampered_file_stays_tampered_when_its_clip_is_in_the_store() {
    let (home, sealed) = sealed_clip();
    let tampered = copy_with_flipped_media_byte(sealed, "store-tampered.mp4");
    let (code, report) = verify_json(home.path(), &tampered, &[]);
    assert_eq!(report["verdict"], "tampered", "{report:#}");
    assert_eq!(code, 1);
    let summary = report["summary"].as_str().unwrap();
    assert!(summary.starts_with("Tampered"), "{summary}");
    assert!(summary.contains("not what was signed"), "{summary}");
    // Nothing from the stored or the failed manifest is claimed for these bytes: only the
    // mark's own AI declaration.
    let sources: Vec<&str> = report["ai_evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["source"].as_str())
        .collect();
    assert_eq!(sources, vec!["picture-mark"], "{report:#}");
    assert_eq!(report["recovered_manifest"]["status"], "recovered");
}

#[test]
fn a_picture_mark_too_weak_for_its_payload_is_read_against_the_clips_named_for_it() {
    // The same content sealed twice: the store holds it as two clips. A copy of the first,
    // small and heavily compressed, proves the mark but cannot decode its payload alone.
    let home = Home::with_keys("Test Newsroom");
    let first = home.seal(&short_clip(), "named-first.mp4", &["--preset", "ultrafast"]);
    let second = home.seal(
        &short_clip(),
        "named-second.mp4",
        &["--preset", "ultrafast"],
    );
    let (clip_id, other) = (
        clip_id_of(&first, home.path()),
        clip_id_of(&second, home.path()),
    );
    assert_ne!(clip_id, other);
    // Where the mark is found (proven or inconclusive) and the blind decode fails depends
    // on the seal (its clip id's bits): the first rung of a ladder of compressions that does
    // it and that the store's clip id then proves. (Since a decoded payload counts in the
    // p, a mark proven by its sync alone nearly always decodes: the window is mostly
    // inconclusive marks.)
    let weak_copy = |name: &str, filter: &str, crfs: &[&str]| -> std::path::PathBuf {
        let mut seen = Vec::new();
        for crf in crfs {
            let out = edited_with(
                &first,
                filter,
                &format!("{name}-crf{crf}.mp4"),
                &["-crf", crf],
            );
            let (_, blind) = verify_json(home.path(), &out, &["--no-store"]);
            let mark = &blind["watermark"]["video"];
            assert!(mark.get("payload_named_by").is_none(), "{mark:#}");
            seen.push(format!(
                "CRF {crf}: p {} payload {}",
                mark["p_value"], mark["payload"]
            ));
            let found = mark["detected"] == true || mark["inconclusive"] == true;
            if !found || !mark["payload"].is_null() {
                continue;
            }
            let (_, named) = verify_json(home.path(), &out, &[]);
            let m = &named["watermark"]["video"];
            if m["detected"] == true {
                return out;
            }
            // Not proven with the store's clip ids: nothing named from it either.
            assert!(m["payload"].is_null(), "{m:#}");
        }
        panic!("{name}: no compression left the mark without its payload, proven with the store: {seen:#?}");
    };
    let silent = weak_copy(
        "named-weak",
        "scale=-2:240",
        &[
            "26", "26.5", "27", "27.5", "28", "28.5", "29", "29.5", "30", "30.5", "31", "31.5",
            "32", "32.5", "33", "33.5", "34", "35", "36",
        ],
    );

    // The store names both clips (same content); the mark's coded bits prove the first.
    let (_, named) = verify_json(home.path(), &silent, &[]);
    let mark = &named["watermark"]["video"];
    assert_eq!(mark["payload"], clip_id.as_str(), "{mark:#}");
    assert_eq!(mark["payload_named_by"], "store");
    assert!(mark["payload_match_p"].as_f64().unwrap() <= 1e-6);
    assert_eq!(named["recovered_manifest"]["status"], "recovered");
    assert_eq!(named["recovered_manifest"]["clip_id"], clip_id.as_str());

    // A sound whose mark names another clip (another seal's sound dubbed under it) is
    // tried and refused: the picture's coded bits do not carry that clip id.
    let music = home.seal(
        &footage_with_music("video/bikes.mp4", 8, "named-music-8s.mp4"),
        "named-music-sealed.mp4",
        &["--preset", "ultrafast"],
    );
    let dubbed = remux(&silent, &music, "named-weak-dubbed.mp4");
    let (_, report) = verify_json(home.path(), &dubbed, &["--no-store"]);
    let sound = &report["watermark"]["audio"];
    let music_clip = clip_id_of(&music, home.path());
    assert_eq!(sound["detected"], true, "{sound:#}");
    assert_eq!(sound["payload"], music_clip.as_str());
    let mark = &report["watermark"]["video"];
    // (Remuxed, the picture's own payload may just decode: it is never the sound's.)
    assert_ne!(mark["payload"], music_clip.as_str(), "{mark:#}");
    assert!(mark.get("payload_named_by").is_none(), "{mark:#}");

    // The second seal's weak copy is not taken for the first's clip, nor the other way.
    let (_, report) = verify_json(
        home.path(),
        &strip_manifest(&second, "named-second-stripped.mp4"),
        &[],
    );
    assert_eq!(report["watermark"]["video"]["payload"], other.as_str());
}

#[test]
fn an_inconclusive_picture_mark_is_proven_by_the_clip_the_store_names_for_it() {
    // A copy so small and compressed that the mark's sync pattern alone is inconclusive
    // (1e-6 < p < 0.01) and its payload does not decode. The store holds its content as one
    // clip, whose clip id agrees with the mark's coded bits: the two p-values together prove
    // the mark, and name it (before: inconclusive, no clip id, no manifest). Where that
    // happens depends on the seal: the first rung of a ladder of compressions.
    let home = Home::with_keys("Test Newsroom");
    let sealed = home.seal(
        &short_clip(),
        "inconclusive-sealed.mp4",
        &["--preset", "ultrafast"],
    );
    let clip_id = clip_id_of(&sealed, home.path());
    let mut seen = Vec::new();
    // Half steps: the window where the mark is inconclusive and the store proves it can
    // fall between two whole ones (1 run in 4 found none with whole steps, 2026-12-06).
    for crf in [
        "30", "30.5", "31", "31.5", "32", "32.5", "33", "33.5", "34", "34.5", "35", "35.5", "36",
        "36.5", "37", "37.5", "38", "39", "40",
    ] {
        let copy = edited_with(
            &sealed,
            "scale=-2:240",
            &format!("inconclusive-crf{crf}.mp4"),
            &["-crf", crf],
        );
        let (_, blind) = verify_json(home.path(), &copy, &["--no-store"]);
        let mark = &blind["watermark"]["video"];
        seen.push(format!(
            "CRF {crf}: p {} payload {}",
            mark["p_value"], mark["payload"]
        ));
        if mark["inconclusive"] != true || !mark["payload"].is_null() {
            continue;
        }
        let (_, named) = verify_json(home.path(), &copy, &[]);
        let m = &named["watermark"]["video"];
        seen.push(format!(
            "  with the store: p {} payload {} presence {}",
            m["p_value"], m["payload"], m["presence_p_value"]
        ));
        if m["detected"] != true {
            // Not proven: then nothing is named from it either.
            assert!(m["payload"].is_null(), "{m:#}");
            assert_eq!(m["inconclusive"], true, "{m:#}");
            continue;
        }
        if m["payload"].is_null() {
            // Proven by the stored clip id's whole pattern, whose coded bits did not single
            // it out: present, without a clip id (and nothing recovered from the store).
            assert_eq!(m["named_search"], true, "{m:#}");
            assert!(m.get("payload_named_by").is_none(), "{m:#}");
            assert!(named["recovered_manifest"].is_null(), "{named:#}");
            continue;
        }
        assert_eq!(m["payload"], clip_id.as_str(), "{m:#}");
        assert_eq!(m["payload_named_by"], "store", "{m:#}");
        assert!(m["p_value"].as_f64().unwrap() <= 1e-6, "{m:#}");
        assert!(m["presence_p_value"].as_f64().unwrap() > 1e-6, "{m:#}");
        assert!(
            m["marked"].as_array().unwrap().contains(&true.into()),
            "{m:#}"
        );
        assert_eq!(named["recovered_manifest"]["clip_id"], clip_id.as_str());
        // The human report says what the clip id added.
        let text = hallmark(home.path(), &["verify", copy.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("with its clip id") && text.contains("named by the manifest store"),
            "{text}"
        );
        println!("{seen:#?}");
        return;
    }
    panic!("no compression left the mark inconclusive and proven with the store: {seen:#?}");
}
