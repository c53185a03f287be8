//! A verdict nobody can make lie: each case a user found on the landed tree, run through the
//! real binary on files the test makes.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::OnceLock;

/// 8 s of bikes.mp4 with music: both marks prove themselves after sealing.
fn clip_with_music() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| footage_with_music("video/bikes.mp4", 8, "bikes-music-8s.mp4"))
        .clone()
}

/// The AI clip sealed by the "Studio" home, once per test binary.
fn studio_clip() -> &'static (Home, PathBuf) {
    static SEALED: OnceLock<(Home, PathBuf)> = OnceLock::new();
    SEALED.get_or_init(|| {
        let home = Home::with_keys("Studio");
        let out = home.seal(&clip_with_music(), "studio.mp4", &["--preset", "ultrafast"]);
        (home, out)
    })
}

#[test]
fn a_sealed_clip_is_verified_and_its_marks_agree() {
    let (home, sealed) = studio_clip();
    let (code, r) = verify_json(home.path(), sealed, &[]);
    assert_eq!(r["verdict"], "verified", "{r:#}");
    assert_eq!(code, 0);
    // The mark is consulted beside a valid manifest (a trusted hallmark manifest takes the
    // quick scan).
    let w = &r["watermark"];
    assert_eq!(w["video"]["detected"], true, "{r:#}");
    assert_eq!(w["audio"]["detected"], true, "{r:#}");
    assert_eq!(
        w["video"]["ai_generated"], true,
        "the mark carries the AI declaration"
    );
    assert_eq!(r["proven_streams"], serde_json::json!(["picture", "sound"]));
    assert_eq!(r["ai_generated"], true);
    assert!(r["summary"].as_str().unwrap().contains("agrees"), "{r:#}");
    assert!(r["conflicts"].as_array().unwrap().is_empty());
}

/// AI-washing: the AI clip, stripped and re-sealed as "not AI" by someone else, was
/// `valid-untrusted`, "AI-generated: no", and its mark was never looked for.
#[test]
fn a_stripped_ai_clip_resealed_as_not_ai_is_contradicted() {
    let (studio, sealed) = studio_clip();
    let stripped = strip_manifest(sealed, "washed-stripped.mp4");
    let washer = Home::with_keys("Washer");
    let washed = washer.seal(
        &stripped,
        "washed.mp4",
        &["--not-ai", "--preset", "ultrafast"],
    );
    // The studio's verifier holds its own watermark key.
    let (code, r) = verify_json(studio.path(), &washed, &[]);
    assert_eq!(r["verdict"], "contradicted", "{r:#}");
    assert_eq!(code, 1, "contradicted exits like tampered");
    assert_eq!(r["ai_generated"], true, "the mark declares AI: {r:#}");
    let kinds: Vec<&str> = r["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"unaccounted-mark"), "{r:#}");
    assert!(kinds.contains(&"denies-ai"), "{r:#}");
    let summary = r["summary"].as_str().unwrap();
    assert!(summary.contains("Washer"), "{summary}");
    assert!(summary.contains("not AI-generated"), "{summary}");
    assert!(summary.contains("as AI-generated"), "{summary}");
    // The original clip id, from the studio's soft binding.
    let (_, original) = verify_json(studio.path(), sealed, &[]);
    let clip = original["watermark"]["clip_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(summary.contains(&clip), "{summary}");
    // The human report says it too, and the exit code is the same.
    let out = studio.run(&["verify", "--no-color", washed.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("CONTRADICTED"), "{text}");
    assert_eq!(out.status.code(), Some(1));
}

/// "Not AI" from anyone: an untrusted signer's denial is shown as its claim, never as
/// `ai_generated: false`; a trusted one's is taken.
#[test]
fn only_a_trusted_signer_can_say_not_ai() {
    let camera = Home::with_keys("Camera Co");
    let signed = camera.seal(
        &short_clip(),
        "camera-not-ai.mp4",
        &["--not-ai", "--preset", "ultrafast"],
    );
    let (_, trusted) = verify_json(camera.path(), &signed, &[]);
    assert_eq!(trusted["verdict"], "verified", "{trusted:#}");
    assert_eq!(trusted["ai_generated"], false, "{trusted:#}");

    let stranger = Home::empty();
    let (_, r) = verify_json(stranger.path(), &signed, &["--no-store"]);
    assert_eq!(r["verdict"], "valid-untrusted", "{r:#}");
    assert_eq!(r["credential_problem"], "untrusted");
    assert!(
        r["ai_generated"].is_null(),
        "an untrusted 'not AI' decides nothing: {r:#}"
    );
    let claim = &r["ai_evidence"][0];
    assert_eq!(claim["source"], "untrusted-manifest", "{r:#}");
    assert_eq!(claim["ai_generated"], false);
    assert_eq!(claim["counts"], false);
    let out = stranger.run(&[
        "verify",
        "--no-color",
        "--no-store",
        signed.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("claims it is not"), "{text}");
}

/// One stream spoke for the whole file: a sealed clip's sound under other footage was
/// "watermarked", the page saying the mark "is in the picture".
#[test]
fn a_sealed_sound_under_other_footage_proves_only_the_sound() {
    let (studio, sealed) = studio_clip();
    let out = scratch().join("sound-under-other-footage.mp4");
    let other = media("video/carphone_pristine.mp4");
    ffmpeg(&[
        "-stream_loop",
        "5",
        "-i",
        other.to_str().unwrap(),
        "-i",
        sealed.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-t",
        "8",
        "-vf",
        "scale=640:360",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "20",
        "-c:a",
        "copy",
        "-map_metadata",
        "-1",
        out.to_str().unwrap(),
    ]);
    let (code, r) = verify_json(studio.path(), &out, &["--no-store"]);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    assert_eq!(code, 3);
    assert_eq!(r["watermark"]["audio"]["detected"], true, "{r:#}");
    assert_eq!(r["watermark"]["video"]["detected"], false, "{r:#}");
    assert_eq!(r["proven_streams"], serde_json::json!(["sound"]));
    assert_eq!(r["different_sources"], true, "{r:#}");
    let summary = r["summary"].as_str().unwrap();
    assert!(summary.contains("in the sound"), "{summary}");
    assert!(!summary.contains("in the picture"), "{summary}");
    assert!(summary.contains("different sources"), "{summary}");
}

/// A tampered manifest on a file FFmpeg cannot open came out `error`.
#[test]
fn a_failed_manifest_stays_tampered_when_the_media_cannot_be_decoded() {
    let (home, sealed) = sealed_clip();
    let mut bytes = std::fs::read(sealed).unwrap();
    // Rename the top-level `moov` box: FFmpeg cannot open an MP4 without it; the C2PA box
    // is still read, and the hash binding (which covers the moov) fails.
    let at = find_top_level_box(&bytes, b"moov").expect("a moov box");
    bytes[at + 4..at + 8].copy_from_slice(b"free");
    let broken = scratch().join("sealed-no-moov.mp4");
    std::fs::write(&broken, &bytes).unwrap();
    let (code, r) = verify_json(home.path(), &broken, &[]);
    assert_eq!(r["verdict"], "tampered", "{r:#}");
    assert_eq!(code, 1);
    assert!(!r["c2pa"]["failures"].as_array().unwrap().is_empty());
}

fn find_top_level_box(bytes: &[u8], kind: &[u8; 4]) -> Option<usize> {
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if &bytes[at + 4..at + 8] == kind {
            return Some(at);
        }
        if size < 8 {
            return None;
        }
        at += size;
    }
    None
}

/// The timeline lit up on unmarked content ("present (p < 0.001)" beside "not found").
#[test]
fn unmarked_content_is_never_drawn_marked() {
    let (home, _) = sealed_clip();
    let (_, r) = verify_json(home.path(), &short_clip(), &["--no-store"]);
    assert_eq!(r["verdict"], "no-provenance", "{r:#}");
    for stream in ["video", "audio"] {
        let m = &r["watermark"][stream];
        assert_eq!(m["detected"], false, "{r:#}");
        let cells = m["marked"].as_array().unwrap();
        assert!(!cells.is_empty(), "{stream}: {r:#}");
        assert!(
            cells.iter().all(|c| c != &serde_json::json!(true)),
            "{stream}: nothing is drawn marked when the mark is not found: {r:#}"
        );
    }
}

/// Manifest strings were printed raw: a title of `ESC[2J…VERIFIED by Reuters` repainted the
/// reader's terminal.
#[test]
fn strings_from_a_file_cannot_drive_the_terminal() {
    let home = Home::with_keys("Newsroom");
    let title = "\u{1b}[2J\u{1b}[HVERIFIED by Reuters\r\n\u{202e}gnp.evil";
    let signed = home.seal(
        &short_clip(),
        "hostile-title.mp4",
        &["--title", title, "--preset", "ultrafast"],
    );
    let out = home.run(&["verify", "--no-color", signed.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains('\r'), "{text:?}");
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    // The JSON keeps the title exact.
    let (_, r) = verify_json(home.path(), &signed, &[]);
    assert_eq!(r["c2pa"]["title"], title);
}

/// Every JSON report says what it was made with.
#[test]
fn every_report_can_be_audited() {
    let (home, sealed) = sealed_clip();
    let (_, r) = verify_json(home.path(), sealed, &[]);
    let a = &r["audit"];
    let bytes = std::fs::read(sealed).unwrap();
    assert_eq!(a["file_sha256"], hex(&Sha256::digest(&bytes)), "{r:#}");
    assert_eq!(a["hallmark_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        a["verified_at"].as_str().unwrap().starts_with("20"),
        "{r:#}"
    );
    let root = std::fs::read_to_string(home.root_cert()).unwrap();
    let der = pem_der(&root);
    assert_eq!(
        a["trust_anchors_sha256"],
        serde_json::json!([hex(&Sha256::digest(&der))]),
        "{r:#}"
    );
    assert_eq!(a["watermark_keys"].as_array().unwrap().len(), 1, "{r:#}");
    // An unreadable file too.
    let missing = scratch().join("no-such-file.mp4");
    let (_, r) = verify_json(home.path(), &missing, &[]);
    assert_eq!(r["verdict"], "error");
    assert!(r["audit"]["hallmark_version"].is_string(), "{r:#}");
    assert_eq!(r["schema"], "hallmark.verify/2");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER of the one certificate in `text`.
fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).expect("a PEM certificate").into_contents()
}

/// Keys have names: a mark is reported with its key's 64-bit id and the organisation that
/// holds it (the home's own: its certificate's; a configured one: its config entry's). Two
/// keys sharing the payload's one-byte id are both tried, and the one that matched is named.
#[test]
fn the_key_that_marked_a_clip_is_named() {
    let (studio, sealed) = studio_clip();
    let (_, own) = verify_json(studio.path(), sealed, &["--no-store"]);
    let key = &own["watermark"]["video"]["key"];
    assert_eq!(key["organisation"], "Studio", "{own:#}");
    let id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 16, "a 64-bit id: {id}");
    assert_eq!(own["audit"]["watermark_keys"][0], id.as_str());

    // A newsroom that looks for the studio's marks, named in its config.
    let stripped = strip_manifest(sealed, "named-key-stripped.mp4");
    let key_file = studio.path().join("keys/watermark.key");
    let newsroom = Home::empty();
    let config = format!(
        "watermark_keys = [{{ path = {:?}, organisation = \"Studio Pictures Ltd\" }}]\n",
        key_file.to_str().unwrap()
    );
    std::fs::write(newsroom.path().join("config.toml"), &config).unwrap();
    let (_, r) = verify_json(newsroom.path(), &stripped, &["--no-store"]);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    assert_eq!(r["watermark"]["video"]["key"]["id"], id.as_str(), "{r:#}");
    assert_eq!(
        r["watermark"]["video"]["key"]["organisation"],
        "Studio Pictures Ltd"
    );
    let summary = r["summary"].as_str().unwrap();
    assert!(summary.contains("Studio Pictures Ltd"), "{summary}");

    // A second key with the same one-byte id (another secret), listed first: the short id
    // no longer names one key, but every key is tried and the one that matched is named.
    let text = std::fs::read_to_string(&key_file).unwrap();
    let short_id = &text.trim()[..2];
    let twin = newsroom.path().join("twin.key");
    std::fs::write(&twin, format!("{short_id}{}\n", "ab".repeat(32))).unwrap();
    std::fs::write(
        newsroom.path().join("config.toml"),
        format!(
            "watermark_keys = [{:?}, {{ path = {:?}, organisation = \"Studio Pictures Ltd\" }}]\n",
            twin.to_str().unwrap(),
            key_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let (_, r) = verify_json(newsroom.path(), &stripped, &["--no-store"]);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    assert_eq!(r["watermark"]["video"]["key"]["id"], id.as_str(), "{r:#}");
    assert_eq!(
        r["watermark"]["video"]["key"]["organisation"],
        "Studio Pictures Ltd"
    );
    assert_eq!(
        r["watermark"]["video"]["key_id"].as_u64(),
        u64::from_str_radix(short_id, 16).ok()
    );
    assert_eq!(r["audit"]["watermark_keys"].as_array().unwrap().len(), 2);
}

/// Silent gaps: the scan stopped at the first decode error and said nothing. Now a corrupt
/// stretch in the middle is counted, skipped, and the rest still analysed.
#[test]
fn a_corrupt_stretch_is_counted_and_the_rest_analysed() {
    let (studio, sealed) = studio_clip();
    let stripped = strip_manifest(sealed, "corrupt-source.mp4");
    let mut bytes = std::fs::read(&stripped).unwrap();
    let (start, len) = mdat_range(&bytes);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for b in &mut bytes[start + len * 45 / 100..start + len * 55 / 100] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    let corrupt = scratch().join("corrupt-middle.mp4");
    std::fs::write(&corrupt, &bytes).unwrap();
    let (_, r) = verify_json(studio.path(), &corrupt, &["--no-store"]);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    let c = &r["coverage"];
    assert!(c["decode_errors"].as_u64().unwrap() > 0, "{r:#}");
    assert!(c["decoding_stopped"].is_null(), "{r:#}");
    // Past the corrupt tenth: most of the 8 s still analysed.
    assert!(
        c["picture_seconds_analysed"].as_f64().unwrap() >= 6.0,
        "{r:#}"
    );
    let summary = r["summary"].as_str().unwrap();
    assert!(summary.contains("could not be decoded"), "{summary}");
}
