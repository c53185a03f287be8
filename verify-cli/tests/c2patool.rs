//! The outside judge: c2patool 0.27.22 reads what we sign.

mod common;

use common::*;
use std::process::Command;

fn c2patool(args: &[&str]) -> serde_json::Value {
    let out = Command::new("c2patool")
        .args(args)
        .output()
        .expect("c2patool (installed by scripts/setup)");
    assert!(
        out.status.success(),
        "c2patool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "c2patool JSON: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn failure_codes(report: &serde_json::Value) -> Vec<String> {
    let failures = &report["validation_results"]["activeManifest"]["failure"];
    failures
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn c2patool_finds_our_mp4_valid_and_ed25519() {
    let (home, sealed) = sealed_clip();
    let report = c2patool(&[sealed.to_str().unwrap()]);
    assert_eq!(report["validation_state"], "Valid", "{report:#}");
    assert_eq!(failure_codes(&report), vec!["signingCredential.untrusted"]);
    let active = report["active_manifest"].as_str().unwrap();
    let manifest = &report["manifests"][active];
    assert_eq!(manifest["signature_info"]["alg"], "Ed25519", "{manifest:#}");
    assert_eq!(manifest["claim_generator_info"][0]["name"], "hallmark");

    let root = home.root_cert();
    let report = c2patool(&[
        sealed.to_str().unwrap(),
        "trust",
        "--trust_anchors",
        root.to_str().unwrap(),
    ]);
    assert_eq!(report["validation_state"], "Trusted", "{report:#}");
    assert!(failure_codes(&report).is_empty());
}
