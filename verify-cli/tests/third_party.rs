//! Other generators' default marks need no key: a verifier holding no watermark key (a
//! newsroom's) still finds them, and says nothing about hallmark's own mark.

mod common;

use common::*;

#[test]
fn a_verifier_without_watermark_keys_still_finds_other_generators_marks() {
    let (home, _) = sealed_clip();
    let out = tempfile::tempdir().unwrap();
    let bare = out.path().join("bare");
    let made = home.run(&[
        "verifier-home",
        bare.to_str().unwrap(),
        "--no-watermark-keys",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/third-party/svd-bbb.mp4");
    let (_, r) = verify_json(&bare, &fixture, &[]);
    assert_eq!(r["verdict"], "no-provenance", "{r:#}");
    assert_eq!(r["ai_generated"], true, "{r:#}");
    let found: Vec<&serde_json::Value> = r["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "third-party-watermark")
        .collect();
    assert_eq!(found.len(), 1, "{r:#}");
    assert!(
        found[0]["names"]
            .as_str()
            .unwrap_or_default()
            .contains("Stable Video Diffusion"),
        "{r:#}"
    );
    assert!(found[0]["p_value"].as_f64().unwrap() <= 1e-6, "{r:#}");
    // hallmark's own mark was not looked for: no claim either way.
    assert!(r["watermark"].is_null(), "{r:#}");
}
