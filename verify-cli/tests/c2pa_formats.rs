//! Formats the C2PA world signs that FFmpeg cannot decode (a signed PDF, HEIF and AVIF
//! photos: `testdata/c2pa-rs/`), tried as a user would: hallmark's answer agrees with
//! c2patool 0.27.22's, and the report lists its signals (JSON and human report).

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/c2pa-rs")
        .join(name)
}

#[test]
fn a_signed_pdf_is_verified_as_c2patool_reads_it() {
    let home = Home::empty();
    let pdf = testdata("adobe-20240110-single_manifest_store.pdf");
    let (state, label, failures) = c2patool_reading(&pdf).expect("c2patool reads its manifest");
    let (code, r) = verify_json(home.path(), &pdf, &[]);
    // Before the C2PA SDK's `pdf` feature: `error`, "not a media file FFmpeg can read".
    assert_eq!(r["verdict"], "valid-untrusted", "{r:#}");
    assert_eq!(code, 3, "neither verified nor a failure");
    assert_eq!(r["c2pa"]["validation_state"], state.as_str());
    assert_eq!(r["c2pa"]["active_manifest"], label.as_str());
    assert_eq!(strings(&r["c2pa"]["failures"]), failures);
    assert_eq!(r["error"], serde_json::Value::Null);
    // Adobe Firefly made it: the manifest says so, under a signature that checks.
    assert_eq!(r["ai_generated"], true);
    let s = &r["signals"][0];
    assert_eq!(s["kind"], "c2pa", "{r:#}");
    assert_eq!(s["strength"], "cryptographic");
    assert_eq!(s["says"], "ai-generated");
    assert_eq!(s["names"], "Adobe Firefly");
    assert!(r["summary"]
        .as_str()
        .unwrap()
        .contains("hallmark cannot decode this PDF file"));
}

#[test]
fn unsigned_heif_avif_and_pdf_have_no_provenance_as_c2patool_finds_no_claim() {
    let home = Home::empty();
    for name in ["sample1.heif", "sample1.avif", "basic.pdf"] {
        let file = testdata(name);
        assert_eq!(c2patool_reading(&file), None, "{name}");
        let (code, r) = verify_json(home.path(), &file, &[]);
        // Before: `error` ("no audio or video stream", "invalid data found").
        assert_eq!(r["verdict"], "no-provenance", "{name}: {r:#}");
        assert_eq!(code, 3, "{name}: not an error (2)");
        assert_eq!(r["c2pa"]["present"], false, "{name}");
        assert_eq!(r["signals"], serde_json::json!([]), "{name}");
        let summary = r["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("No provenance signal found"),
            "{summary}"
        );
        // HEIF and AVIF are decoded (libheif) and searched for watermarks; a PDF is not.
        assert_eq!(
            summary.contains("cannot decode this"),
            name.ends_with(".pdf"),
            "{name}: {summary}"
        );
    }
}

#[test]
fn the_human_report_lists_the_signals_strongest_first() {
    let home = Home::empty();
    let out = home.run(&[
        "verify",
        testdata("adobe-20240110-single_manifest_store.pdf")
            .to_str()
            .unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("VALID-UNTRUSTED"), "{text}");
    assert!(text.contains("Signals (strongest first):"), "{text}");
    assert!(
        text.contains(
            "- C2PA manifest says AI-generated — Adobe Firefly [cryptographic; in C2PA manifest]"
        ),
        "{text}"
    );
    assert!(text.contains("does not prove:"), "{text}");
    assert!(
        text.contains("AI-generated:    yes (declared by the manifest (signer not trusted))"),
        "{text}"
    );

    // No signal at all: said plainly, with what it means.
    let out = home.run(&["verify", media("images/rocket.jpg").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Signals:         none found")
            && text.contains("not evidence that the content is real"),
        "{text}"
    );
}
