//! `hallmark serve` over loopback: the API answers what `verify --json` answers, safely.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;

fn get(addr: &str, path: &str) -> Answer {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn upload(addr: &str, name: &str, bytes: &[u8]) -> (u16, serde_json::Value) {
    let (head, body) = verify_request(name, bytes);
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    let answer = http(addr, &raw);
    let json = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("{e}: {} {}", answer.head, answer.body));
    (answer.status, json)
}

#[test]
fn api_gives_the_verify_report_without_paths() {
    let (home, sealed) = sealed_clip();
    let server = Server::start(home.path(), &[]);
    let bytes = std::fs::read(sealed).unwrap();
    let (status, r) = upload(&server.addr, "my clip.mp4", &bytes);
    assert_eq!(status, 200);
    assert_eq!(r["verdict"], "verified", "{r:#}");
    assert_eq!(r["file"], "my clip.mp4");
    assert!(
        !r.to_string().contains("/tmp"),
        "no server path echoed: {r}"
    );
    // The public answer: the verdict, the mark's p-value as its power of ten, no timeline.
    assert_eq!(r["evidence"], "summary", "{r:#}");
    let video = &r["watermark"]["video"];
    assert_eq!(video["detected"], true, "{r:#}");
    let p = video["p_value"].as_f64().unwrap();
    let power = 10f64.powf(p.log10().round());
    assert!((p / power - 1.0).abs() < 1e-9, "{p:e}: {r:#}");
    // The summary's words round it the same way.
    let summary = r["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("p ≤ {power:e}")), "{summary}");
    assert!(!summary.contains("p = "), "{summary}");
    assert!(video.get("timeline").is_none() && video.get("marked").is_none());
    assert!(video.get("bit_error_estimate").is_none());
    assert!(r["audit"].get("watermark_keys").is_none(), "{r:#}");
    assert!(r["audit"]["file_sha256"].is_string(), "{r:#}");

    let mut tampered = bytes.clone();
    let n = tampered.len();
    tampered[n - 5000] ^= 0x5a;
    let (_, r) = upload(&server.addr, "clip.mp4", &tampered);
    assert_eq!(r["verdict"], "tampered", "{r:#}");

    let (_, r) = upload(
        &server.addr,
        "plain.mp4",
        &std::fs::read(short_clip()).unwrap(),
    );
    assert_eq!(r["verdict"], "no-provenance");

    let (_, r) = upload(
        &server.addr,
        "../../etc/passwd.jpg",
        &std::fs::read(fixture("C.jpg")).unwrap(),
    );
    assert_eq!(r["verdict"], "valid-untrusted");
    assert_eq!(r["file"], "passwd.jpg", "only a base name is kept");
}

#[test]
fn malformed_uploads_get_a_clear_answer_and_the_server_keeps_serving() {
    let home = Home::empty();
    let server = Server::start(home.path(), &["--max-upload", "1M"]);
    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    for (name, bytes) in [
        ("empty.mp4", Vec::new()),
        ("noise.mp4", noise.clone()),
        ("noise.jpg", noise.clone()),
        ("no-extension", noise),
    ] {
        let (status, r) = upload(&server.addr, name, &bytes);
        assert_eq!(status, 200, "{name}");
        assert_eq!(r["verdict"], "error", "{name}: {r:#}");
        assert!(r["error"].as_str().unwrap().len() > 10);
    }
    let (status, r) = upload(&server.addr, "big.mp4", &vec![0u8; 2 << 20]);
    assert_eq!(status, 413);
    assert!(r["error"].as_str().unwrap().contains("limit"));
    let answer = http(&server.addr, b"POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(answer.status, 400, "{}", answer.head);
    let health = get(&server.addr, "/healthz");
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
}

#[test]
fn page_is_served_with_no_external_requests() {
    let home = Home::empty();
    let server = Server::start(home.path(), &[]);
    let page = get(&server.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .head
        .to_ascii_lowercase()
        .contains("content-type: text/html"));
    assert!(page.body.contains("/api/verify"));
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(
            !page.body.contains(external),
            "external reference {external}"
        );
    }
}

#[test]
fn sigterm_stops_the_server_and_removes_its_upload_dir() {
    // How a service manager stops it (systemd, `docker stop`): before, SIGTERM killed the
    // server on the spot and left its upload directory behind at every restart.
    let home = Home::empty();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_env(home.path(), &[], &[("TMPDIR", tmp.path())]);
    assert_eq!(get(&server.addr, "/healthz").status, 200);
    let uploads = listing(tmp.path());
    assert!(
        uploads.iter().any(|n| n.starts_with("hallmark-serve-")),
        "{uploads:?}"
    );
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(listing(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_stalled_upload_holds_no_analysis_slot() {
    let home = Home::empty();
    let server = Server::start(home.path(), &["--workers", "1", "--queue", "0"]);
    // Headers and part of the body, then a stall: the only worker stays free.
    let (head, body) = verify_request("slow.mp4", &vec![7u8; 100_000]);
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body[..1000]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (status, r) = upload(
        &server.addr,
        "second.jpg",
        &std::fs::read(fixture("C.jpg")).unwrap(),
    );
    assert_eq!(
        (status, r["verdict"].as_str()),
        (200, Some("valid-untrusted")),
        "{r:#}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    // The slow upload, once complete, is analysed too.
    slow.write_all(&body[1000..]).unwrap();
    let mut rest = String::new();
    slow.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
}

#[test]
fn a_decompression_bomb_hits_the_worker_memory_limit_not_the_server() {
    // 140 KB on disk, 144 MB of pixels once decoded.
    let bomb = scratch().join("bomb.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:s=12000x12000",
        "-frames:v",
        "1",
        "-pix_fmt",
        "gray",
        bomb.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&bomb).unwrap();
    assert!(bytes.len() < 1 << 20);
    let home = Home::empty();
    let server = Server::start(home.path(), &["--worker-memory", "160M"]);
    let (status, r) = upload(&server.addr, "innocent.png", &bytes);
    assert!(status == 422 || r["verdict"] == "error", "{status} {r:#}");
    assert!(r["error"].as_str().unwrap().len() > 10);
    let health = get(&server.addr, "/healthz");
    assert_eq!(health.status, 200);
    // The same file within a sane limit is simply analysed.
    let roomy = Server::start(home.path(), &["--worker-memory", "2G"]);
    let (status, r) = upload(&roomy.addr, "innocent.png", &bytes);
    assert_eq!(
        (status, r["verdict"].as_str().unwrap()),
        (200, "no-provenance"),
        "{r:#}"
    );
}

/// GET returning the raw body bytes (manifest stores are binary).
fn get_bytes(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

#[test]
fn soft_binding_resolution_api_serves_the_stored_manifest() {
    let (home, sealed) = sealed_clip();
    let (_, original) = verify_json(home.path(), sealed, &[]);
    let manifest_id = original["c2pa"]["active_manifest"].as_str().unwrap();
    let binding = &original["c2pa"]["soft_bindings"][0];
    let (alg, value) = (
        binding["alg"].as_str().unwrap(),
        binding["values"][0].as_str().unwrap(),
    );
    let server = Server::start(home.path(), &[]);

    // The stripped copy's report carries the recovered manifest, as `verify --json` does.
    let stripped = strip_manifest(sealed, "serve-stripped.mp4");
    let (status, r) = upload(
        &server.addr,
        "stripped.mp4",
        &std::fs::read(&stripped).unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    assert_eq!(r["recovered_manifest"]["status"], "recovered");
    assert_eq!(r["recovered_manifest"]["manifest_id"], manifest_id);
    // The page's default is the quick scan: the key frames proved the mark.
    assert_eq!(r["watermark"]["video"]["scan"], "key-frames", "{r:#}");

    let answer = get(
        &server.addr,
        &format!("/matches/byBinding?alg={alg}&value={value}"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let matches: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        matches["matches"][0]["manifestId"], manifest_id,
        "{matches}"
    );
    assert_eq!(matches["matches"].as_array().unwrap().len(), 1);
    let none = get(
        &server.addr,
        &format!("/matches/byBinding?alg={alg}&value=0000000000000000"),
    );
    let none: serde_json::Value = serde_json::from_str(&none.body).unwrap();
    assert_eq!(none["matches"], serde_json::json!([]));
    assert_eq!(get(&server.addr, "/matches/byBinding?alg=x").status, 400);

    let (status, head, bytes) = get_bytes(&server.addr, &format!("/manifests/{manifest_id}"));
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/c2pa"),
        "{head}"
    );
    // The bytes are the signed manifest store itself: as a sidecar they verify the sealed file.
    let sidecar = scratch().join("serve-resolved.c2pa");
    std::fs::write(&sidecar, &bytes).unwrap();
    let (_, r) = verify_json(
        home.path(),
        sealed,
        &["--sidecar", sidecar.to_str().unwrap()],
    );
    assert_eq!(r["verdict"], "verified", "{r:#}");
    assert_eq!(r["c2pa"]["active_manifest"], manifest_id);

    let (status, _, _) = get_bytes(&server.addr, "/manifests/urn:c2pa:no-such-manifest");
    assert_eq!(status, 404);
}

#[test]
fn full_scan_gives_every_second_of_the_picture() {
    let (home, sealed) = sealed_clip();
    let stripped = strip_manifest(sealed, "serve-full-scan.mp4");
    let bytes = std::fs::read(&stripped).unwrap();
    let server = Server::start(home.path(), &["--full-scan", "--full-evidence"]);
    let (status, r) = upload(&server.addr, "stripped.mp4", &bytes);
    assert_eq!(status, 200);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
    assert_eq!(r["evidence"], "full", "{r:#}");
    let video = &r["watermark"]["video"];
    // A 2 s clip: every frame (clips of 4 s or more: their reference frames).
    assert_eq!(video["scan"], "all-frames", "{r:#}");
    let timeline = video["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{r:#}");
    assert!(
        timeline
            .iter()
            .all(|p| p.as_f64().is_some_and(|p| p < 1e-3)),
        "every second analysed and marked: {r:#}"
    );
}

#[test]
fn no_answer_names_the_server() {
    // The server's temp dir, home and store all have names of their own, so that any trace of
    // them in an answer is found.
    let (home, sealed) = sealed_clip();
    let tmp = scratch().join("serve-private-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let store = scratch().join("serve-private-store.sqlite");
    let server = Server::start_with_env(
        home.path(),
        &["--max-upload", "8M", "--store", store.to_str().unwrap()],
        &[("TMPDIR", &tmp)],
    );
    let good = std::fs::read(sealed).unwrap();
    let stripped = std::fs::read(strip_manifest(sealed, "serve-private-stripped.mp4")).unwrap();
    let mut answers = vec![];
    let mut ask = |what: &str, raw: Vec<u8>| {
        let answer = http(&server.addr, &raw);
        answers.push((what.to_string(), answer));
        answers.last().map(|(_, a)| a.status).unwrap()
    };
    let post = |name: &str, bytes: &[u8]| {
        let (head, body) = verify_request(name, bytes);
        let mut raw = head.into_bytes();
        raw.extend_from_slice(&body);
        raw
    };
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
    };
    assert_eq!(ask("good file", post("good.mp4", &good)), 200);
    assert_eq!(
        ask("broken file", post("broken.mp4", b"definitely not a video")),
        200
    );
    assert_eq!(
        ask("broken picture", post("broken.jpg", &good[..5000])),
        200
    );
    assert_eq!(ask("too big", post("big.mp4", &vec![0u8; 9 << 20])), 413);
    assert_eq!(ask("not multipart", b"POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello".to_vec()), 400);
    assert_eq!(ask("page", get("/")), 200);
    assert_eq!(ask("no such page", get("/etc/passwd")), 404);
    // Now the store breaks (not a database): lookups fail, and say so without its path.
    std::fs::write(&store, b"this is not an SQLite database, it is a text file").unwrap();
    let (_, original) = verify_json(home.path(), sealed, &[]);
    let id = original["c2pa"]["active_manifest"]
        .as_str()
        .unwrap()
        .to_string();
    let clip = original["c2pa"]["soft_bindings"][0]["values"][0]
        .as_str()
        .unwrap()
        .to_string();
    let by_binding = format!("/matches/byBinding?alg=org.hallmark.watermark.video.1&value={clip}");
    assert_eq!(ask("byBinding, broken store", get(&by_binding)), 500);
    assert_eq!(
        ask("manifest, broken store", get(&format!("/manifests/{id}"))),
        500
    );
    assert_eq!(
        ask(
            "stripped file, broken store",
            post("stripped.mp4", &stripped)
        ),
        200
    );
    let stripped_report: serde_json::Value =
        serde_json::from_str(&answers.last().unwrap().1.body).unwrap();
    assert_eq!(
        stripped_report["recovered_manifest"]["status"], "store-error",
        "{stripped_report:#}"
    );

    let user = std::env::var("USER")
        .ok()
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .filter(|u| !u.is_empty())
        .unwrap();
    let secrets = [
        tmp.to_string_lossy().into_owned(),
        home.path().to_string_lossy().into_owned(),
        store.to_string_lossy().into_owned(),
        std::env::var("HOME").unwrap(),
        format!("/{user}"),
        "/tmp".to_string(),
        "hallmark-upload-".to_string(),
        "hallmark-serve-".to_string(),
        "serve-private".to_string(),
        "target/release".to_string(),
    ];
    for (what, answer) in &answers {
        let text = format!("{}\n{}", answer.head, answer.body);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what}: names {secret}: {text}"
            );
        }
        // The user name as a word of its own (a file's text may contain it inside a word).
        // The page is built into the binary, the same for every server (its CSS says `:root`).
        if what == "page" {
            continue;
        }
        let words = text.split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-');
        assert!(
            !words.into_iter().any(|w| w == user),
            "{what}: names the user {user}: {text}"
        );
    }
    // The errors say what happened, in the uploader's terms.
    let broken: serde_json::Value = serde_json::from_str(&answers[1].1.body).unwrap();
    assert_eq!(broken["verdict"], "error");
    assert!(broken["error"].as_str().unwrap().len() > 10, "{broken:#}");
}
