//! Keys: modes, no overwrite without --force, first seal creates them once.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_writes_private_keys_0600_and_refuses_to_overwrite() {
    let home = Home::with_keys("Acme News");
    let keys = home.path().join("keys");
    assert_eq!(mode(&keys.join("root-ca.key")), 0o600);
    assert_eq!(mode(&keys.join("signer.key")), 0o600);
    assert_eq!(mode(&keys.join("watermark.key")), 0o600);
    let watermark_key = std::fs::read_to_string(keys.join("watermark.key")).unwrap();
    let key_pem = std::fs::read_to_string(keys.join("signer.key")).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 PEM"
    );
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    assert!(config.contains("keys/root-ca.pem"), "{config}");

    let out = home.run(&["keygen", "--org", "Acme News"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(keys.join("signer.key")).unwrap(),
        key_pem,
        "old key kept"
    );

    let out = home.run(&["keygen", "--org", "Acme News", "--force"]);
    assert!(out.status.success());
    assert_ne!(
        std::fs::read_to_string(keys.join("signer.key")).unwrap(),
        key_pem
    );
    assert_eq!(
        std::fs::read_to_string(keys.join("watermark.key")).unwrap(),
        watermark_key,
        "marked clips must stay detectable"
    );
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    assert_eq!(
        config.matches("root-ca.pem").count(),
        1,
        "anchor listed once: {config}"
    );
}

#[test]
fn keygen_never_prints_key_material() {
    let home = Home::empty();
    let out = home.run(&["keygen"]);
    let key = std::fs::read_to_string(home.path().join("keys/signer.key")).unwrap();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains(&body[..20]), "key material printed");
    assert!(printed.contains("self-signed"));
}

#[test]
fn certificates_have_the_c2pa_profile() {
    let home = Home::with_keys("Profile Check");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(home.path().join("keys/signer.pem"))
        .output()
        .expect("openssl (installed by scripts/setup)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(text.contains("1.3.6.1.4.1.62558.2.1"), "{text}");
    assert!(text.contains("Authority Key Identifier"), "{text}");
    assert!(text.contains("ED25519"), "{text}");
}

#[test]
fn first_seal_creates_keys_once_and_says_so() {
    let home = Home::empty();
    let src = media("images/coffee.png");
    let out1 = scratch().join("first-seal.png");
    let r = home.run(&["seal", src.to_str().unwrap(), "-o", out1.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("self-signed"));
    let key = std::fs::read(home.path().join("keys/signer.key")).unwrap();
    let out2 = scratch().join("second-seal.png");
    let r = home.run(&["seal", src.to_str().unwrap(), "-o", out2.to_str().unwrap()]);
    assert!(r.status.success());
    assert!(!String::from_utf8_lossy(&r.stderr).contains("created signing keys"));
    assert_eq!(
        std::fs::read(home.path().join("keys/signer.key")).unwrap(),
        key
    );
}
