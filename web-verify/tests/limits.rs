//! A worker that hangs or crashes costs one request a clear answer, never the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hallmark_web::ServeConfig;

fn start(worker: &[&str], timeout: Duration) -> SocketAddr {
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_upload: 1 << 20,
        workers: 2,
        queue: 4,
        analysis_timeout: timeout,
        worker_memory: 1 << 30,
        worker: worker.iter().map(|s| s.into()).collect(),
        store: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(hallmark_web::serve(config, |addr| tx.send(addr).unwrap()))
            .unwrap();
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn upload(addr: SocketAddr, bytes: &[u8]) -> (u16, serde_json::Value) {
    let boundary = "b0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp4\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut raw = format!("POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(&body);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&raw).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

fn healthy(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.starts_with("HTTP/1.1 200") && text.ends_with("ok\n")
}

#[test]
fn a_hanging_worker_is_stopped_at_the_time_limit() {
    let addr = start(
        &["sh", "-c", "sleep 30", "worker"],
        Duration::from_millis(500),
    );
    let started = std::time::Instant::now();
    let (status, report) = upload(addr, b"anything");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status, 422);
    assert_eq!(report["verdict"], "error");
    assert!(report["error"]
        .as_str()
        .unwrap()
        .contains("longer than this server allows"));
    assert!(healthy(addr));
}

#[test]
fn a_crashing_worker_gives_a_clear_error() {
    let addr = start(
        &["sh", "-c", "kill -SEGV $$", "worker"],
        Duration::from_secs(10),
    );
    let (status, report) = upload(addr, b"anything");
    assert_eq!(status, 422);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("could not be analysed"),
        "{report}"
    );
    assert!(healthy(addr));
}

#[test]
fn the_worker_runs_under_the_memory_limit() {
    // The worker reports its own address-space limit instead of verifying.
    let addr = start(
        &[
            "sh",
            "-c",
            "printf '{\"verdict\":\"error\",\"limit\":\"%s\"}\\n' \"$(ulimit -v)\"",
            "worker",
        ],
        Duration::from_secs(10),
    );
    let (status, report) = upload(addr, b"anything");
    assert_eq!(status, 200);
    assert_eq!(
        report["limit"],
        (1u64 << 30 >> 10).to_string(),
        "ulimit -v is in KiB"
    );
}

#[test]
fn the_upload_is_deleted_after_analysis() {
    // The worker prints the path it was given; after the answer that file must be gone.
    let addr = start(
        &[
            "sh",
            "-c",
            "printf '{\"verdict\":\"error\",\"path\":\"%s\"}\\n' \"$1\"",
            "worker",
        ],
        Duration::from_secs(10),
    );
    let (_, report) = upload(addr, b"secret bytes");
    // The API replaces `file` but passes other fields through; the temp path must not exist.
    let path = report["path"].as_str().unwrap();
    assert!(!path.is_empty());
    assert!(!std::path::Path::new(path).exists(), "{path} still exists");
}
