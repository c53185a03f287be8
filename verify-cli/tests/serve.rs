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
fn full_queue_answers_503_with_retry_after() {
    let home = Home::empty();
    let server = Server::start(home.path(), &["--workers", "1", "--queue", "0"]);
    // Hold the only slot: send headers and part of the body, then stall.
    let (head, body) = verify_request("slow.mp4", &vec![7u8; 100_000]);
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body[..1000]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (head2, body2) = verify_request("second.jpg", b"x");
    let mut raw = head2.into_bytes();
    raw.extend_from_slice(&body2);
    let answer = http(&server.addr, &raw);
    assert_eq!(answer.status, 503, "{}", answer.head);
    assert!(answer.head.to_ascii_lowercase().contains("retry-after: 5"));
    // Once the slow upload finishes, the slot is free again.
    slow.write_all(&body[1000..]).unwrap();
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest).unwrap();
    let (status, _) = upload(
        &server.addr,
        "third.jpg",
        &std::fs::read(fixture("C.jpg")).unwrap(),
    );
    assert_eq!(status, 200);
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
