//! The C2PA Soft Binding Resolution API 1.0 as served, checked against the shapes of its
//! OpenAPI document (C2PA 2.2 "Soft Binding API": `c2pa.softBindingQueryResult`,
//! `c2pa.softBindingAlgList`, `application/c2pa`), over a store on each backend (SQLite, and
//! PostgreSQL when `HALLMARK_TEST_POSTGRES` names a server: scripts/test always does).
//! `/matches/byContent` runs a stand-in worker that prints the real fingerprint of a real
//! clip (the real worker, `hallmark fingerprint`, is run by tests/soft_binding_replicas.rs).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hallmark_store::{fingerprint_file, ManifestStore, StoredManifest, STORE_FILE};
use hallmark_web::ServeConfig;
use serde_json::json;
use support::{fresh_postgres, request, Answer};

const VIDEO_ALG: &str = "org.hallmark.watermark.video.1";
const AUDIO_ALG: &str = "org.hallmark.watermark.audio.1";

fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(path)
}

/// `c2pa.softBindingQueryResult`: an object whose `matches` is an array of objects with a
/// string `manifestId` and, here always, an integer `similarityScore` in 0..=100; nothing
/// else. Returns (id, score) pairs.
fn query_result(answer: &Answer) -> Vec<(String, u64)> {
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = answer.json();
    let object = v.as_object().expect("an object");
    assert_eq!(object.keys().collect::<Vec<_>>(), ["matches"], "{v}");
    v["matches"]
        .as_array()
        .expect("matches is an array")
        .iter()
        .map(|m| {
            let keys: Vec<_> = m.as_object().expect("a match object").keys().collect();
            assert_eq!(keys, ["manifestId", "similarityScore"], "{m}");
            let score = m["similarityScore"].as_u64().expect("an integer score");
            assert!(score <= 100, "{m}");
            (
                m["manifestId"].as_str().expect("a string id").to_string(),
                score,
            )
        })
        .collect()
}

/// The active manifest's label in a manifest store (its last manifest box).
fn active_label(store: &[u8]) -> String {
    let (_, sbox) = jumbf::parser::SuperBox::from_slice(store).unwrap();
    let last = sbox
        .child_boxes
        .iter()
        .filter_map(|c| c.as_super_box())
        .next_back()
        .unwrap();
    last.desc.label.unwrap().to_string()
}

fn api_follows_the_spec(location: &Path) {
    let dir = tempfile::tempdir().unwrap();
    // A real manifest store (c2pa-rs's sidecar fixture) and a real clip's fingerprint.
    let manifest = std::fs::read(shared("fixtures/c2pa/cloud_manifest.c2pa")).unwrap();
    let label = active_label(&manifest);
    let manifest_id = format!("urn:c2pa:{}", label.trim_start_matches("urn:c2pa:"));
    let bbb = shared("media/video/bigbuckbunny.mp4");
    let print = fingerprint_file(&bbb, 120.0).unwrap();
    let clip = "8f0123456789abcd";
    let mut store = ManifestStore::open(location).unwrap();
    let stored = |id: &str, at: &str, manifest: Vec<u8>, print| StoredManifest {
        manifest_id: id.into(),
        clip_id: clip.into(),
        bindings: vec![
            (AUDIO_ALG.into(), clip.into()),
            (VIDEO_ALG.into(), clip.into()),
        ],
        format: "video/mp4".into(),
        manifest,
        fingerprint: print,
        sealed_at: at.into(),
    };
    store
        .insert(&stored(
            &manifest_id,
            "2026-12-03T12:00:00Z",
            manifest.clone(),
            print.clone(),
        ))
        .unwrap();
    store
        .insert(&stored(
            "urn:c2pa:older",
            "2026-12-01T12:00:00Z",
            vec![0; 4],
            hallmark_store::Fingerprint::default(),
        ))
        .unwrap();

    // The stand-in fingerprint worker: prints the real print of the clip, as
    // `hallmark fingerprint` does, whatever it is given.
    let answer = dir.path().join("print.json");
    std::fs::write(
        &answer,
        format!("{}\n", json!({"fingerprint": print.to_hex()})),
    )
    .unwrap();
    let worker = dir.path().join("worker.sh");
    std::fs::write(&worker, format!("#!/bin/sh\ncat '{}'\n", answer.display())).unwrap();
    std::fs::set_permissions(&worker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut config = ServeConfig::new(vec![worker.into_os_string()]);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.store = Some(location.to_path_buf());
    config.max_upload = 64 << 20;
    config.max_temp_disk = 64 << 20;
    let addr = support::start(config);
    let get = |path: &str| request(addr, "GET", path, "", b"");

    // GET /services/supportedAlgorithms → c2pa.softBindingAlgList.
    let algs = get("/services/supportedAlgorithms");
    assert_eq!(algs.status, 200);
    assert_eq!(
        algs.json(),
        json!({"watermarks": [{"alg": VIDEO_ALG}, {"alg": AUDIO_ALG}],
               "fingerprints": [{"alg": "org.hallmark.fingerprint.1"}]})
    );
    assert_eq!(
        algs.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    // GET /matches/byBinding: base64 of the clip id's 8 bytes, or its hex digits.
    let b64 = "jwEjRWeJq80=";
    for value in [b64, "jwEjRWeJq80", clip, "8F0123456789ABCD"] {
        let found = query_result(&get(&format!(
            "/matches/byBinding?alg={VIDEO_ALG}&value={}",
            value.replace('=', "%3D")
        )));
        assert_eq!(
            found,
            [
                (manifest_id.clone(), 100),
                ("urn:c2pa:older".to_string(), 100)
            ],
            "{value}"
        );
    }
    let one = query_result(&get(&format!(
        "/matches/byBinding?alg={AUDIO_ALG}&value={clip}&maxResults=1"
    )));
    assert_eq!(one, [(manifest_id.clone(), 100)]);
    assert!(query_result(&get(&format!(
        "/matches/byBinding?alg={VIDEO_ALG}&value=AAAAAAAAAAE%3D"
    )))
    .is_empty());
    for bad in [
        format!("/matches/byBinding?alg={VIDEO_ALG}&value={clip}&maxResults=0"),
        format!("/matches/byBinding?alg={VIDEO_ALG}&value={clip}&maxResults=x"),
        format!("/matches/byBinding?alg={VIDEO_ALG}"),
        format!("/matches/byBinding?alg={VIDEO_ALG}&value=AAAA"),
    ] {
        let answer = get(&bad);
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.json()["error"].is_string(), "{bad}");
    }

    // An algorithm this service does not resolve: no manifest is held under it.
    assert!(query_result(&get(&format!(
        "/matches/byBinding?alg=com.other.watermark.1&value={b64}"
    )))
    .is_empty());

    // POST /matches/byBinding with c2pa.softBindingQuery.
    let json_type = "Content-Type: application/json\r\n";
    let query = json!({"alg": VIDEO_ALG, "value": b64}).to_string();
    let found = query_result(&request(
        addr,
        "POST",
        "/matches/byBinding?maxResults=1",
        json_type,
        query.as_bytes(),
    ));
    assert_eq!(found, [(manifest_id.clone(), 100)]);
    let malformed = request(
        addr,
        "POST",
        "/matches/byBinding",
        json_type,
        b"{\"alg\": 1}",
    );
    assert_eq!(malformed.status, 400);
    let huge = request(
        addr,
        "POST",
        "/matches/byBinding",
        json_type,
        &vec![b' '; 20_000],
    );
    assert_eq!(huge.status, 413);

    // POST /matches/byContent: the asset is the body; the similarity is measured.
    let copy = dir.path().join("copy.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(&bbb)
        .args([
            "-vf",
            "scale=480:-2",
            "-c:v",
            "libx264",
            "-crf",
            "30",
            "-an",
        ])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&copy).unwrap();
    let found = query_result(&request(
        addr,
        "POST",
        "/matches/byContent?maxResults=5",
        "Content-Type: video/mp4\r\n",
        &bytes,
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, manifest_id);
    // The stand-in prints the stored clip's own print: identical content scores 100.
    assert_eq!(found[0].1, 100);
    let other = request(
        addr,
        "POST",
        "/matches/byContent?alg=com.other.fingerprint.1",
        "Content-Type: video/mp4\r\n",
        &bytes,
    );
    assert_eq!(other.status, 400);
    let pdf = request(
        addr,
        "POST",
        "/matches/byContent",
        "Content-Type: application/pdf\r\n",
        b"%PDF-1.4",
    );
    assert_eq!(pdf.status, 415);
    let empty = request(
        addr,
        "POST",
        "/matches/byContent",
        "Content-Type: image/png\r\n",
        b"",
    );
    assert_eq!(empty.status, 400);

    // GET /manifests/{id}: the manifest store, or only its active manifest.
    let whole = get(&format!("/manifests/{manifest_id}"));
    assert_eq!(whole.status, 200);
    assert_eq!(
        whole.header("content-type").as_deref(),
        Some("application/c2pa")
    );
    assert_eq!(whole.body, manifest);
    let active = get(&format!(
        "/manifests/{manifest_id}?returnActiveManifest=true"
    ));
    assert_eq!(active.status, 200);
    assert_eq!(
        active.header("content-type").as_deref(),
        Some("application/c2pa")
    );
    let (rest, sbox) = jumbf::parser::SuperBox::from_slice(&active.body).unwrap();
    assert!(rest.is_empty());
    assert_eq!(sbox.desc.label, Some(label.as_str()));
    assert!(active.body.len() < manifest.len());
    assert!(manifest
        .windows(active.body.len())
        .any(|w| w == active.body.as_slice()));
    let explicit = get(&format!(
        "/manifests/{manifest_id}?returnActiveManifest=false"
    ));
    assert_eq!(explicit.body, manifest);
    assert_eq!(
        get(&format!(
            "/manifests/{manifest_id}?returnActiveManifest=yes"
        ))
        .status,
        400
    );
    assert_eq!(get("/manifests/urn:c2pa:none").status, 404);
    // A stored record whose bytes are no manifest store: a clear 500, not a crash.
    assert_eq!(
        get("/manifests/urn:c2pa:older?returnActiveManifest=true").status,
        500
    );
}

#[test]
fn the_api_follows_the_spec_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    api_follows_the_spec(&dir.path().join(STORE_FILE));
}

#[test]
fn the_api_follows_the_spec_postgres() {
    if let Some(url) = fresh_postgres("api") {
        api_follows_the_spec(&url);
    }
}

/// Without a store, every lookup answers that nothing is known (in the spec's shape).
#[test]
fn no_store_knows_nothing() {
    let mut config = ServeConfig::new(vec!["/bin/false".into()]);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let addr = support::start(config);
    let found = query_result(&request(
        addr,
        "GET",
        &format!("/matches/byBinding?alg={VIDEO_ALG}&value=jwEjRWeJq80%3D"),
        "",
        b"",
    ));
    assert!(found.is_empty());
    assert_eq!(
        request(addr, "GET", "/manifests/urn:c2pa:x", "", b"").status,
        404
    );
}
