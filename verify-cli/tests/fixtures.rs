//! Every C2PA file in ../shared/fixtures/c2pa/ gets the answer its README expects.

mod common;

use common::*;

fn check(
    file: &str,
    extra: &[&str],
    verdict: &str,
    state: Option<&str>,
    failures: &[&str],
) -> serde_json::Value {
    let home = Home::empty();
    let path = fixture(file);
    let (code, r) = verify_json(home.path(), &path, extra);
    assert_eq!(r["verdict"], verdict, "{file}: {r:#}");
    assert_eq!(
        r["c2pa"]["validation_state"].as_str(),
        state,
        "{file}: {r:#}"
    );
    let got = strings(&r["c2pa"]["failures"]);
    for f in failures {
        assert!(
            got.iter().any(|g| g == f),
            "{file}: expected {f} in {got:?}"
        );
    }
    let expected_code = match verdict {
        "verified" => 0,
        "tampered" => 1,
        "error" => 2,
        _ => 3,
    };
    assert_eq!(code, expected_code, "{file}");
    r
}

#[test]
fn valid_jpegs_are_valid_untrusted() {
    for file in ["C.jpg", "CA.jpg"] {
        let r = check(
            file,
            &[],
            "valid-untrusted",
            Some("Valid"),
            &["signingCredential.untrusted"],
        );
        assert_eq!(
            strings(&r["c2pa"]["failures"]),
            vec!["signingCredential.untrusted"],
            "{file}"
        );
    }
    // C.jpg declares algorithmicMedia: synthetic, but not from a trained model.
    let r = check("C.jpg", &[], "valid-untrusted", Some("Valid"), &[]);
    assert_eq!(
        r["c2pa"]["digital_source_type"],
        "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia"
    );
    // An untrusted signer's "not AI" is its claim, not a fact (schema 2).
    assert!(r["ai_generated"].is_null(), "{r:#}");
    assert_eq!(r["ai_evidence"][0]["source"], "untrusted-manifest", "{r:#}");
    assert_eq!(r["ai_evidence"][0]["ai_generated"], false);
    assert_eq!(r["ai_evidence"][0]["counts"], false);
    let r = check("CA.jpg", &[], "valid-untrusted", Some("Valid"), &[]);
    assert!(
        !r["c2pa"]["ingredients"].as_array().unwrap().is_empty(),
        "CA.jpg has a parent ingredient"
    );
}

#[test]
fn broken_signature_and_changed_pixels_are_tampered() {
    check(
        "E-sig-CA.jpg",
        &[],
        "tampered",
        Some("Invalid"),
        &["claimSignature.mismatch"],
    );
    check(
        "XCA.jpg",
        &[],
        "tampered",
        Some("Invalid"),
        &["assertion.dataHash.mismatch"],
    );
    check(
        "adobe-20220124-E-dat-CA.jpg",
        &[],
        "tampered",
        Some("Invalid"),
        &["assertion.dataHash.mismatch"],
    );
}

#[test]
fn plain_jpeg_has_no_provenance() {
    let r = check("no_manifest.jpg", &[], "no-provenance", None, &[]);
    assert_eq!(r["c2pa"]["present"], false);
    assert_eq!(r["error"], serde_json::Value::Null);
}

#[test]
fn signed_mp4_with_two_manifests_is_valid() {
    let r = check(
        "video1.mp4",
        &[],
        "valid-untrusted",
        Some("Valid"),
        &["signingCredential.untrusted"],
    );
    assert_eq!(
        strings(&r["c2pa"]["failures"]),
        vec!["signingCredential.untrusted"]
    );
    assert_eq!(r["c2pa"]["manifest_count"], 2);
    assert_eq!(r["c2pa"]["signature_alg"], "Es256");
}

#[test]
fn fragmented_mp4_is_read_as_init_plus_fragment() {
    check(
        "dashinit.mp4",
        &[],
        "tampered",
        Some("Invalid"),
        &["assertion.bmffHash.mismatch"],
    );
    let fragment = fixture("dash1.m4s");
    check(
        "dashinit.mp4",
        &["--fragment", fragment.to_str().unwrap()],
        "valid-untrusted",
        Some("Valid"),
        &["signingCredential.untrusted"],
    );
}

#[test]
fn malformed_wav_is_a_clear_error() {
    let r = check("sample3.invalid.wav", &[], "error", None, &[]);
    assert!(
        r["error"].as_str().unwrap().contains("could not be parsed"),
        "{r:#}"
    );
}

#[test]
fn cloud_jpeg_reports_its_remote_url_without_fetching() {
    let r = check("cloud.jpg", &[], "no-provenance", None, &[]);
    let url = r["c2pa"]["remote_manifest_url"].as_str().unwrap();
    assert!(url.starts_with("http"), "{url}");
    let sidecar = fixture("cloud_manifest.c2pa");
    check(
        "cloud.jpg",
        &["--sidecar", sidecar.to_str().unwrap()],
        "valid-untrusted",
        Some("Valid"),
        &["signingCredential.untrusted"],
    );
}
