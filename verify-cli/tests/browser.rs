//! End to end in a real browser: Debian's chromium (headless, driven by playwright-core)
//! drops files on the page served by `hallmark serve` and reads the rendered verdicts.
//! Screenshots are kept in target/e2e-screenshots/.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn page_renders_the_verdict_of_each_dropped_file() {
    let (home, sealed) = sealed_clip();
    let dir = scratch().join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let tampered = copy_with_flipped_media_byte(sealed, "browser-tampered.mp4");
    let stripped = strip_manifest(sealed, "stripped.mp4");
    let broken = dir.join("broken.mp4");
    std::fs::write(&broken, b"definitely not a video").unwrap();

    let server = Server::start(home.path(), &[]);
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-verify/e2e");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(e2e.join("drop.mjs"))
        .arg(server.url())
        .arg(&shots)
        .args([sealed.as_path(), &tampered, &stripped, &broken])
        .output()
        .expect("node (setup installs playwright-core in web-verify/e2e)");
    drop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdicts: Vec<&str> = lines.iter().filter_map(|l| l["verdict"].as_str()).collect();
    assert_eq!(
        verdicts,
        ["verified", "tampered", "watermarked", "error"],
        "{lines:#?}"
    );
    assert!(
        lines[0]["text"].as_str().unwrap().contains("Proven"),
        "{:#?}",
        lines[0]
    );
    assert!(lines[0]["card"].as_str().unwrap().contains("Ed25519"));
    assert!(lines[1]["card"]
        .as_str()
        .unwrap()
        .contains("assertion.bmffHash.mismatch"));
    assert!(
        lines[2]["timeline"].as_u64().unwrap() >= 2,
        "the watermark timeline shows the marked seconds: {:#?}",
        lines[2]
    );
    assert_eq!(
        lines[4]["external"],
        serde_json::json!([]),
        "the page made external requests"
    );
    assert!(shots.join("sealed.mp4.png").exists());
}
