//! End to end in a real browser: Debian's chromium (headless, driven by playwright-core)
//! gives files to the page served by `hallmark serve`, by keyboard and by drag and drop, and
//! reads what it rendered: verdict banner, cards, timelines, preview, analysis indicator.
//! Screenshots (phone and desktop) are kept in target/e2e-screenshots/.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A report the real server does not produce for any file at hand (every state of the sound
/// timeline, hostile strings), answered by the browser in place of the server, after a delay.
fn fake(dir: &Path, name: &str, report: Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, report.to_string()).unwrap();
    path
}

fn no_manifest() -> Value {
    json!({"present": false, "validation_state": null, "failures": [], "failure_details": [],
           "ingredient_failures": [], "actions": [], "ingredients": [], "soft_bindings": [],
           "manifest_count": 0})
}

fn mark(timeline: Value, marked: Value) -> Value {
    json!({"detected": true, "inconclusive": false, "p_value": 1e-12, "payload": "0123456789abcdef",
           "key_id": 3, "bit_error_estimate": 0.02, "frames_analysed": 96, "timeline": timeline,
           "marked": marked})
}

fn text<'a>(line: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(line, |v, k| &v[*k])
        .as_str()
        .unwrap_or_else(|| panic!("no {path:?} in {line:#}"))
}

#[test]
fn page_renders_what_can_be_proven_about_each_file() {
    let (home, sealed) = sealed_clip();
    let dir = scratch().join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let tampered = copy_with_flipped_media_byte(sealed, "browser-tampered.mp4");
    let stripped = strip_manifest(sealed, "stripped.mp4");
    let unmarked = short_clip();
    let broken = dir.join("broken.mp4");
    std::fs::write(&broken, b"definitely not a video").unwrap();
    let sound = media("audio/startup3.wav");

    let hostile = "<img src=x onerror=\"window.__xss=1\">";
    // A mark copied onto other footage (with the key): the real server reports a mismatch.
    let forged = mark_copied_onto_other_footage(
        home.path(),
        &clip_id_of(sealed, home.path()),
        "browser-forged.mp4",
    );
    let sound_and_hostile = fake(
        &dir,
        "hostile.json",
        json!({"schema": "hallmark.verify/2", "file": format!("{hostile}.mp4"), "verdict": "watermarked",
               "ai_generated": null, "summary": "<script>window.__xss=2</script>",
               "proven_streams": ["picture", "sound"], "ai_evidence": [{"source": hostile, "ai_generated": false, "counts": false}],
               "c2pa": no_manifest(),
               "watermark": {"video": mark(json!([1e-5, 1e-4, 0.2, 0.3, null]), json!([true, true, false, false, null])),
                             "audio": mark(json!([1e-6, 1e-5, 0.5, 0.02, 1e-4]), json!([true, true, false, false, true])),
                             "clip_id": hostile},
               "recovered_manifest": {"status": "not-found", "clip_id": hostile, "manifest_id": null,
                   "sealed_at": null, "similarity": {"video": null, "audio": null},
                   "c2pa": null, "ai_generated": null, "message": null},
               "media": {"kind": "video", "container": "mp4", "duration_s": 5.0, "width": 1280, "height": 720,
                   "sample_rate": 48000, "channels": 2}, "error": null}),
    );
    let plan = json!([
        {"file": sealed, "via": "keyboard"},
        {"file": tampered, "via": "drop"},
        {"file": stripped, "via": "keyboard"},
        {"file": unmarked, "via": "drop", "shot": "unmarked.mp4"},
        {"file": broken, "via": "keyboard", "latency_ms": 2500},
        {"file": sound, "via": "drop"},
        {"file": forged, "via": "drop", "shot": "mismatch"},
        {"file": unmarked, "via": "keyboard", "fake": sound_and_hostile, "delay_ms": 300, "shot": "sound-timeline-hostile-strings"},
    ]);
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();

    // The operator's view: the full evidence (the public summary is checked below).
    let lines = drive(home.path(), &["--full-evidence"], &plan_path);
    let verdicts: Vec<&str> = lines.iter().filter_map(|l| l["verdict"].as_str()).collect();
    assert_eq!(
        verdicts,
        [
            "verified",
            "tampered",
            "watermarked",
            "no-provenance",
            "error",
            "no-provenance",
            "tampered",
            "watermarked"
        ],
        "{lines:#?}"
    );
    let [sealed, tampered, stripped, unmarked, broken, sound, mismatch, hostile, log] = &lines[..]
    else {
        panic!("{lines:#?}")
    };

    for line in &lines[..8] {
        // Keyboard: Tab reaches the drop zone and Enter opens the picker; the result's
        // heading then takes the focus.
        if line["via"] == "keyboard" {
            assert_eq!(line["focused"], "drop", "{line:#}");
        }
        assert_eq!(line["focused_after"], "H2", "{line:#}");
        assert_eq!(line["overflow_x"], false, "wider than a phone: {line:#}");
        assert!(
            line["contrast"]["ratio"].as_f64().unwrap() >= 4.5,
            "text contrast below WCAG AA: {:#}",
            line["contrast"]
        );
        assert_eq!(line["work_hidden"], true, "{line:#}");
        assert!(line["raw_json"].as_str().unwrap().starts_with("blob:"));
        assert!(line["preview"].is_object(), "{line:#}");
        if line["fake"] == false {
            // The server reports no progress: between upload and answer the page showed an
            // indeterminate indicator saying what is being done.
            assert_eq!(line["seen"]["analysis"], true, "{line:#}");
            assert_eq!(line["seen"]["indeterminate"], true, "{line:#}");
            assert!(
                strings(&line["seen"]["status"]).iter().any(|s| s.contains(
                    "checking the C2PA manifest, then looking for the watermark in the picture and the sound"
                )),
                "{line:#}"
            );
        }
    }
    // The elapsed counter ticks while the answer is slow to come (2.5 s of network latency).
    assert!(
        broken["seen"]["elapsed"].as_array().unwrap().len() >= 2,
        "{broken:#}"
    );

    // Sealed: proven, with the C2PA card; no need to look for the watermark.
    assert!(text(sealed, &["text"]).contains("Proven:"), "{sealed:#}");
    let card = text(sealed, &["cards", "c2pa"]);
    for needle in [
        "Ed25519",
        "Test Newsroom",
        "Trusted",
        "Signing time",
        "Actions",
    ] {
        assert!(card.contains(needle), "{needle}: {card}");
    }
    // The mark is consulted beside a valid manifest too.
    assert!(
        text(sealed, &["cards", "watermark"]).contains("present"),
        "{sealed:#}"
    );
    // The frame preview, decoded by the browser from the dropped file, a third of the way in.
    assert_eq!(sealed["preview"]["tag"], "video", "{sealed:#}");
    assert_eq!(sealed["preview"]["state"], "ready", "{sealed:#}");
    assert_eq!(sealed["preview"]["video_width"], 1280);
    assert!(sealed["preview"]["current_time"].as_f64().unwrap() > 0.4);
    assert!(text(sealed, &["preview", "src"]).starts_with("blob:"));

    assert!(text(tampered, &["cards", "c2pa"]).contains("assertion.bmffHash.mismatch"));

    // Stripped but watermarked: the manifest comes back from the home's store.
    assert_eq!(stripped["recovered_status"], "recovered", "{stripped:#}");
    let card = text(stripped, &["cards", "recovered"]);
    for needle in [
        "Manifest recovered from the store",
        "recovered",
        "Test Newsroom",
        "Trusted",
        "Similarity",
        "not the signed ones",
    ] {
        assert!(card.contains(needle), "{needle}: {card}");
    }
    assert!(text(stripped, &["text"]).contains("Not proven:"));
    // The server scans quickly by default: the key frames proved the mark, and the page
    // says so; the seconds without a key frame show as not analysed.
    let picture = &stripped["timeline"]["picture"];
    assert!(
        picture["on"].as_u64().unwrap() >= 1,
        "the watermark timeline shows the marked seconds: {stripped:#}"
    );
    assert_eq!(
        picture["on"].as_u64().unwrap() + picture["none"].as_u64().unwrap(),
        2,
        "{stripped:#}"
    );
    assert!(
        text(stripped, &["cards", "watermark"]).contains("key frames only"),
        "{stripped:#}"
    );
    // The sound was analysed too (this clip's sound is quiet: its mark is not proven there).
    let cells = &stripped["timeline"]["sound"];
    assert_eq!(
        ["on", "off", "none"]
            .iter()
            .map(|k| cells[k].as_u64().unwrap())
            .sum::<u64>(),
        2,
        "one cell per second of sound: {stripped:#}"
    );
    assert!(text(stripped, &["cards", "watermark"]).contains("In the sound"));

    assert!(unmarked["recovered_status"].is_null());
    // Its timeline used to light second 0 "present" beside "Watermark: not found".
    for medium in ["picture", "sound"] {
        assert_eq!(
            unmarked["timeline"][medium]["on"],
            json!(0),
            "nothing drawn marked on unmarked content: {unmarked:#}"
        );
    }
    assert!(text(unmarked, &["cards", "watermark"]).contains("not found"));

    assert!(text(broken, &["text"]).contains("could not be read"));
    assert_eq!(broken["preview"]["state"], "none");
    assert!(text(broken, &["preview", "caption"]).contains("No preview in this browser"));

    assert_eq!(sound["preview"]["tag"], "audio", "{sound:#}");

    // A mark copied onto other content: a clear warning, no borrowed manifest.
    assert_eq!(mismatch["fake"], false);
    assert_eq!(mismatch["recovered_status"], "mismatch", "{mismatch:#}");
    assert!(text(mismatch, &["cards", "recovered"]).contains("Warning"));
    assert!(!text(mismatch, &["cards", "recovered"]).contains("Test Newsroom"));

    // The sound timeline is drawn like the picture's, from the report's `marked` cells (not
    // from the per-second p-values); hostile strings stay text.
    let sound = &hostile["timeline"]["sound"];
    assert_eq!(
        (&sound["on"], &sound["off"], &sound["none"]),
        (&json!(3), &json!(2), &json!(0)),
        "{hostile:#}"
    );
    assert_eq!(hostile["recovered_status"], "not-found");
    assert!(text(hostile, &["cards", "recovered"]).contains("has no record of it"));
    assert!(hostile["injected"].is_null(), "{hostile:#}");
    assert_eq!(hostile["foreign_elements"], 0);
    assert!(text(hostile, &["cards", "file"]).contains(hostile_text()));

    assert_eq!(
        log["external"],
        json!([]),
        "the page made external requests"
    );
    assert_eq!(log["page_errors"], json!([]), "script errors");
    for shot in ["sealed.mp4", "stripped.mp4", "mismatch", "broken.mp4"] {
        for size in ["phone", "desktop"] {
            assert!(shots().join(format!("{shot}-{size}.png")).exists());
        }
    }
}

fn shots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-screenshots")
}

/// Runs the plan through chromium against `hallmark serve EXTRA`; one JSON line per file,
/// then the log line.
fn drive(home: &Path, extra: &[&str], plan: &Path) -> Vec<Value> {
    let server = Server::start(home, extra);
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-verify/e2e");
    std::fs::create_dir_all(shots()).unwrap();
    let out = Command::new("node")
        .arg(e2e.join("drop.mjs"))
        .arg(server.url())
        .arg(shots())
        .arg(plan)
        .output()
        .expect("node (setup installs playwright-core in web-verify/e2e)");
    drop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The public's view (the server's default): the verdict and what is proven, each p-value as
/// an upper bound, no timeline and no detector read-outs; the page says why. It runs under the
/// server's content security policy, with no script error.
#[test]
fn page_renders_the_public_summary() {
    let (home, sealed) = sealed_clip();
    let dir = scratch().join("browser-summary");
    std::fs::create_dir_all(&dir).unwrap();
    let stripped = strip_manifest(sealed, "summary-stripped.mp4");
    let plan = json!([
        {"file": stripped, "via": "keyboard", "shot": "summary-stripped"},
        {"file": short_clip(), "via": "drop", "shot": "summary-unmarked"},
    ]);
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let lines = drive(home.path(), &[], &plan_path);
    let [stripped, unmarked, log] = &lines[..] else {
        panic!("{lines:#?}")
    };
    assert_eq!(stripped["verdict"], "watermarked", "{stripped:#}");
    assert_eq!(unmarked["verdict"], "no-provenance", "{unmarked:#}");
    assert_eq!(stripped["recovered_status"], "recovered", "{stripped:#}");
    assert!(
        text(stripped, &["text"]).contains("Proven:"),
        "{stripped:#}"
    );
    let card = text(stripped, &["cards", "watermark"]);
    for needle in [
        "present",
        "p-value ≤ 1e-",
        "rounded up to a power of ten by this server",
        "kept for its operator",
        "key frames only",
    ] {
        assert!(card.contains(needle), "{needle}: {card}");
    }
    assert!(!card.contains("Bit error estimate"), "{card}");
    for line in [stripped, unmarked] {
        for medium in ["picture", "sound"] {
            assert!(
                line["timeline"][medium].is_null(),
                "no timeline drawn from a summary: {line:#}"
            );
        }
        assert_eq!(line["focused_after"], "H2", "{line:#}");
        assert_eq!(line["work_hidden"], true, "{line:#}");
    }
    assert!(text(unmarked, &["cards", "watermark"]).contains("not found"));
    assert_eq!(log["external"], json!([]), "{log:#}");
    assert_eq!(log["page_errors"], json!([]), "script errors: {log:#}");
}

fn hostile_text() -> &'static str {
    "<img src=x onerror=\"window.__xss=1\">.mp4"
}
