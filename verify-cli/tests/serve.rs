//! `hallmark serve` over loopback: the API answers what `verify --json` answers, safely.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(home: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    Server { child, addr }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

fn request(addr: &str, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(raw).unwrap();
    let mut text = Vec::new();
    stream.read_to_end(&mut text).unwrap();
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap();
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get(addr: &str, path: &str) -> Answer {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn multipart(name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "hallmarkBoundary7d3f";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!("POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n", body.len());
    (head, body)
}

fn upload(addr: &str, name: &str, bytes: &[u8]) -> (u16, serde_json::Value) {
    let (head, body) = multipart(name, bytes);
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    let answer = request(addr, &raw);
    let json = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("{e}: {} {}", answer.head, answer.body));
    (answer.status, json)
}

#[test]
fn api_gives_the_verify_report_without_paths() {
    let (home, sealed) = sealed_clip();
    let server = start(home.path(), &[]);
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
    let server = start(home.path(), &["--max-upload", "1M"]);
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
    let answer = request(&server.addr, b"POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(answer.status, 400, "{}", answer.head);
    let health = get(&server.addr, "/healthz");
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
}

#[test]
fn page_is_served_with_no_external_requests() {
    let home = Home::empty();
    let server = start(home.path(), &[]);
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
    let server = start(home.path(), &["--workers", "1", "--queue", "0"]);
    // Hold the only slot: send headers and part of the body, then stall.
    let (head, body) = multipart("slow.mp4", &vec![7u8; 100_000]);
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body[..1000]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (head2, body2) = multipart("second.jpg", b"x");
    let mut raw = head2.into_bytes();
    raw.extend_from_slice(&body2);
    let answer = request(&server.addr, &raw);
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
