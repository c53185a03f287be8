//! Workers hold only what verifying needs: the verifier home, `serve`'s refusal of a signing
//! home, and the sandbox each analysis worker runs in.

mod common;

use common::*;
use std::path::Path;

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn verifier_home_verifies_without_the_signing_keys() {
    let (home, sealed) = sealed_clip();
    let out = tempfile::tempdir().unwrap();
    let ver = out.path().join("verifier");
    let made = home.run(&["verifier-home", ver.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&made.stderr);
    assert!(made.status.success(), "{said}");
    assert!(
        said.contains("trust anchor") && said.contains("SECRET"),
        "{said}"
    );
    let listed = files(&ver);
    assert!(
        !listed
            .iter()
            .any(|f| f.ends_with("signer.key") || f.ends_with("root-ca.key")),
        "{listed:?}"
    );
    let signer_key = std::fs::read(home.path().join("keys/signer.key")).unwrap();
    let root_key = std::fs::read(home.path().join("keys/root-ca.key")).unwrap();
    for f in &listed {
        let bytes = std::fs::read(ver.join(f)).unwrap();
        assert!(
            bytes != signer_key && bytes != root_key,
            "{f} is a signing key"
        );
    }
    // Its verdicts are the signing home's: the signer trusted, the mark found and named.
    let (code, r) = verify_json(&ver, sealed, &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["verdict"], "verified", "{r:#}");
    assert_eq!(r["watermark"]["video"]["detected"], true, "{r:#}");
    let config = std::fs::read_to_string(ver.join("config.toml")).unwrap();
    assert!(config.contains("Test Newsroom"), "{config}");
    assert!(
        config.contains(&home.path().join("manifests.sqlite").display().to_string()),
        "{config}"
    );

    // Nothing is overwritten.
    let again = home.run(&["verifier-home", ver.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(ver.join("config.toml")).unwrap(),
        config
    );

    // Without watermark keys: the manifest still verifies, the mark is not found.
    let bare = out.path().join("bare");
    let made = home.run(&[
        "verifier-home",
        bare.to_str().unwrap(),
        "--no-watermark-keys",
        "--store",
        "/nonexistent/store.sqlite",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        !files(&bare).iter().any(|f| f.ends_with(".key")),
        "{:?}",
        files(&bare)
    );
    let (_, r) = verify_json(&bare, sealed, &[]);
    assert_eq!(r["verdict"], "verified", "{r:#}");
    assert_ne!(r["watermark"]["video"]["detected"], true, "{r:#}");
    let config = std::fs::read_to_string(bare.join("config.toml")).unwrap();
    assert!(config.contains("/nonexistent/store.sqlite"), "{config}");
}

#[test]
fn serve_refuses_a_home_with_signing_keys() {
    let home = Home::with_keys("Test Newsroom");
    let out = home.run(&["serve", "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("signer.key") && said.contains("root-ca.key"),
        "{said}"
    );
    assert!(said.contains("verifier-home DIR"), "{said}");

    // One private key is enough to refuse.
    std::fs::remove_file(home.path().join("keys/signer.key")).unwrap();
    let out = home.run(&["serve", "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("root-ca.key") && !said.contains("signer.key"),
        "{said}"
    );

    // The verifier home made from it serves.
    let server = Server::start(home.path(), &[]);
    let answer = http(
        &server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{}", answer.head);
}
