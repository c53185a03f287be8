//! The server's limits, with stand-in workers (shell one-liners): a worker that hangs or
//! crashes costs one request a clear answer, never the server; admission holds against slow,
//! greedy and oversized uploads; answers carry no server path and the security headers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hallmark_web::ServeConfig;

mod support;
use support::{read_answer, Answer};

fn config(worker: &[&str], timeout: Duration) -> ServeConfig {
    let mut config = ServeConfig::new(worker.iter().map(|s| s.into()).collect());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_upload = 1 << 20;
    config.workers = 2;
    config.queue = 4;
    config.analysis_timeout = timeout;
    config.worker_memory = 1 << 30;
    config
}

fn start(worker: &[&str], timeout: Duration) -> SocketAddr {
    support::start(config(worker, timeout))
}

/// A worker that answers at once with a fixed report.
const QUICK: &[&str] = &[
    "sh",
    "-c",
    "printf '{\"verdict\":\"no-provenance\"}\\n'",
    "worker",
];

fn send(addr: SocketAddr, raw: &[u8]) -> Answer {
    support::send(addr, raw, Duration::from_secs(30))
}

const BOUNDARY: &str = "b0undary";

/// A multipart body: `fields` (name, value) first, then the file.
fn form(fields: &[(&str, &[u8])], file_name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\r\n").as_bytes());
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn head(body_len: usize, extra: &str) -> String {
    format!("POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {body_len}\r\n\r\n")
}

fn post(addr: SocketAddr, body: &[u8], extra: &str) -> Answer {
    let mut raw = head(body.len(), extra).into_bytes();
    raw.extend_from_slice(body);
    send(addr, &raw)
}

fn upload(addr: SocketAddr, bytes: &[u8]) -> (u16, serde_json::Value) {
    let answer = post(addr, &form(&[], "x.mp4", bytes), "");
    (answer.status, answer.json())
}

/// Sends the head and `sent` bytes of an upload's body and keeps the connection open.
fn stalled_upload(addr: SocketAddr, body_len: usize, sent: usize) -> TcpStream {
    let body = form(&[], "slow.mp4", &vec![7u8; body_len]);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head(body.len(), "").as_bytes()).unwrap();
    stream.write_all(&body[..sent]).unwrap();
    stream
}

fn healthy(addr: SocketAddr) -> bool {
    let answer = send(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    answer.status == 200 && answer.text() == "ok\n"
}

#[test]
fn a_hanging_worker_is_stopped_at_the_time_limit() {
    let addr = start(
        &["sh", "-c", "sleep 30", "worker"],
        Duration::from_millis(500),
    );
    let started = Instant::now();
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
fn the_upload_is_deleted_after_analysis_and_its_path_never_answered() {
    // The worker notes where its file is, and quotes it in its answer as a real one would in
    // an error message.
    let notes = tempfile::tempdir().unwrap();
    let note = notes.path().join("path");
    let script = format!(
        "realpath \"$1\" > {note}; printf '{{\"verdict\":\"error\",\"error\":\"cannot read %s (in %s)\",\"summary\":\"%s\"}}\\n' \"$(realpath \"$1\")\" \"$PWD\" \"$1\"",
        note = note.display()
    );
    let addr = start(&["sh", "-c", &script, "worker"], Duration::from_secs(10));
    let (_, report) = upload(addr, b"secret bytes");
    let path = std::fs::read_to_string(&note).unwrap();
    let path = std::path::Path::new(path.trim());
    assert!(path.is_absolute(), "{path:?}");
    assert!(!path.exists(), "{path:?} still exists");
    // The answer names the file only by the uploader's name.
    assert_eq!(report["error"], "cannot read x.mp4 (in .)", "{report}");
    assert_eq!(report["summary"], "x.mp4", "{report}");
    let dir = path.parent().unwrap().to_str().unwrap();
    assert!(!report.to_string().contains(dir), "{report}");
    assert!(!report.to_string().contains("hallmark-upload-"), "{report}");
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_a_stalled_upload_holds_no_worker() {
    let mut config = config(
        &[
            "sh",
            "-c",
            "sleep 2; printf '{\"verdict\":\"no-provenance\"}\\n'",
            "worker",
        ],
        Duration::from_secs(10),
    );
    config.workers = 1;
    config.queue = 0;
    let addr = support::start(config);
    // An upload stalled half way holds no worker: a complete one is analysed meanwhile.
    let _stalled = stalled_upload(addr, 100_000, 1000);
    std::thread::sleep(Duration::from_millis(200));
    let first = std::thread::spawn(move || upload(addr, b"first"));
    std::thread::sleep(Duration::from_millis(500));
    // The worker is busy with the first and there is no queue.
    let second = post(addr, &form(&[], "second.jpg", b"x"), "");
    assert_eq!(second.status, 503, "{}", second.head);
    assert_eq!(second.header("retry-after").as_deref(), Some("5"));
    assert!(second.json()["error"].as_str().unwrap().contains("busy"));
    let (status, report) = first.join().unwrap();
    assert_eq!((status, &report["verdict"]), (200, &"no-provenance".into()));
    let (status, _) = upload(addr, b"third");
    assert_eq!(status, 200);
}

#[test]
fn every_field_counts_and_a_big_one_is_refused() {
    let addr = start(QUICK, Duration::from_secs(10));
    // A small extra field is fine.
    let answer = post(addr, &form(&[("note", b"hello")], "a.jpg", b"x"), "");
    assert_eq!(answer.status, 200, "{}", answer.text());
    // 100 KB in a field other than `file`: refused, though the file is tiny.
    let big = vec![b'a'; 100_000];
    let answer = post(addr, &form(&[("note", &big)], "a.jpg", b"x"), "");
    assert_eq!(answer.status, 413, "{} {}", answer.head, answer.text());
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("\"note\""),
        "{}",
        answer.text()
    );
    // Many small fields add up the same.
    let many: Vec<(&str, &[u8])> = (0..40).map(|_| ("n", &big[..1000])).collect();
    let answer = post(addr, &form(&many, "a.jpg", b"x"), "");
    assert_eq!(answer.status, 413, "{}", answer.text());
    // A body whose length says it is over the limit is refused before it is read.
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head(3 << 20, "").as_bytes()).unwrap();
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 413, "{}", answer.head);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Chunked, with no length: counted as it comes.
    let body = form(&[], "big.mp4", &vec![0u8; 2 << 20]);
    let mut raw = format!("POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    for chunk in body.chunks(64 * 1024) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = send(addr, &raw);
    assert_eq!(answer.status, 413, "{}", answer.head);
    assert!(healthy(addr));
}

#[test]
fn the_temp_disk_cap_answers_503_with_retry_after() {
    let mut config = config(QUICK, Duration::from_secs(10));
    config.max_upload = 1 << 20;
    config.max_temp_disk = 1 << 20;
    let addr = support::start(config);
    // 700 KB of a 900 KB upload on disk, then a stall.
    let held = stalled_upload(addr, 900_000, 700_000);
    std::thread::sleep(Duration::from_millis(500));
    let answer = post(addr, &form(&[], "b.mp4", &vec![1u8; 600_000]), "");
    assert_eq!(answer.status, 503, "{} {}", answer.head, answer.text());
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    assert!(answer.json()["error"].as_str().unwrap().contains("space"));
    // The held upload goes away: its disk comes back.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = post(addr, &form(&[], "b.mp4", &vec![1u8; 600_000]), "");
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} {}",
            answer.head,
            answer.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn one_client_gets_its_share_of_uploads_and_of_the_rate() {
    let mut config = config(QUICK, Duration::from_secs(10));
    config.per_client_uploads = 2;
    config.per_client_rate = 0;
    let addr = support::start(config);
    let a = stalled_upload(addr, 50_000, 100);
    let b = stalled_upload(addr, 50_000, 100);
    std::thread::sleep(Duration::from_millis(300));
    let answer = post(addr, &form(&[], "c.jpg", b"x"), "");
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("from your address"));
    drop((a, b));
    let deadline = Instant::now() + Duration::from_secs(5);
    while post(addr, &form(&[], "c.jpg", b"x"), "").status != 200 {
        assert!(Instant::now() < deadline, "the client's places came back");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut config = self::config(QUICK, Duration::from_secs(10));
    config.per_client_rate = 6;
    let addr = support::start(config);
    for i in 0..6 {
        assert_eq!(post(addr, &form(&[], "c.jpg", b"x"), "").status, 200, "{i}");
    }
    let answer = post(addr, &form(&[], "c.jpg", b"x"), "");
    assert_eq!(answer.status, 503, "{}", answer.text());
    // One upload every 10 s: the next in at most 10.
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // Soft-binding lookups have a rate of their own: ten per upload, 60 a minute here.
    let lookup = || {
        send(
            addr,
            b"GET /matches/byBinding?alg=a&value=b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    };
    for i in 0..60 {
        assert_eq!(lookup().status, 200, "{i}");
    }
    let refused = lookup();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
}

#[test]
fn slow_heads_and_slow_bodies_are_cut_off() {
    let mut config = config(QUICK, Duration::from_secs(10));
    config.header_timeout = Duration::from_secs(1);
    config.upload_grace = Duration::from_secs(1);
    config.min_upload_rate = 10_000;
    config.per_client_uploads = 0;
    let addr = support::start(config);
    let started = Instant::now();
    // A head that never ends: the connection is closed.
    let mut slow_head = TcpStream::connect(addr).unwrap();
    slow_head
        .write_all(b"POST /api/verify HTTP/1.1\r\nHo")
        .unwrap();
    // A body at 20 bytes every 0.3 s: never stalled, always too slow.
    let body = form(&[], "slow.mp4", &[7u8; 5000]);
    let mut slow_body = TcpStream::connect(addr).unwrap();
    slow_body
        .write_all(head(body.len(), "").as_bytes())
        .unwrap();
    let trickle = std::thread::spawn(move || {
        for chunk in body.chunks(20) {
            if slow_body.write_all(chunk).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        read_answer(&mut slow_body)
    });
    slow_head
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = slow_head.read_to_end(&mut rest);
    assert!(closed.is_ok(), "closed, not timed out: {closed:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let answer = trickle.join().unwrap();
    assert_eq!(answer.status, 408, "{} {}", answer.head, answer.text());
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("too slow"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn assert_security_headers(answer: &Answer, what: &str) {
    let csp = answer
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP in {}", answer.head));
    for part in [
        "default-src 'none'",
        "script-src 'sha256-",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(part), "{what}: {part} not in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    assert_eq!(
        answer.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        answer.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
}

#[test]
fn every_answer_carries_the_security_headers_and_only_soft_binding_allows_other_origins() {
    let addr = start(QUICK, Duration::from_secs(10));
    let get = |path: &str| {
        send(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nOrigin: https://elsewhere.example\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    let page = get("/");
    assert_eq!(page.status, 200);
    assert_security_headers(&page, "page");
    // The hash in the policy is that of the page's own script.
    let page_text = page.text();
    let script = page_text
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .unwrap()
        .0;
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains(&format!("'sha256-{}'", sha256_base64(script.as_bytes()))),
        "{csp}"
    );
    let verified = post(
        addr,
        &form(&[], "a.jpg", b"x"),
        "Origin: https://elsewhere.example\r\n",
    );
    assert_eq!(verified.status, 200);
    assert_security_headers(&verified, "verify");
    assert_eq!(
        verified.header("cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(verified.header("access-control-allow-origin"), None);
    let refused = send(
        addr,
        b"POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(refused.status, 400);
    assert_security_headers(&refused, "error");
    assert_eq!(refused.header("access-control-allow-origin"), None);
    let missing = get("/no-such-page");
    assert_eq!(missing.status, 404);
    assert_security_headers(&missing, "404");
    let lookup = get("/matches/byBinding?alg=x&value=y");
    assert_eq!(lookup.status, 200, "{}", lookup.text());
    assert_eq!(
        lookup.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_security_headers(&lookup, "soft binding");
}

/// `openssl dgst -sha256 -binary | base64`, so the test does not share the server's code.
fn sha256_base64(bytes: &[u8]) -> String {
    let mut child = std::process::Command::new("sh")
        .args(["-c", "openssl dgst -sha256 -binary | base64"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A worker's full evidence: the fields the public summary withholds.
const EVIDENCE: &[&str] = &[
    "sh",
    "-c",
    "printf '%s\\n' '{\"verdict\":\"watermarked\",\"watermark\":{\"video\":{\"detected\":true,\"inconclusive\":false,\"p_value\":3.7e-21,\"bit_error_estimate\":0.02,\"timeline\":[1e-9,null],\"marked\":[true,null],\"payload\":\"00112233aabbccdd\"},\"audio\":null},\"audit\":{\"watermark_keys\":[\"abcd\"]}}'",
    "worker",
];

#[test]
fn the_public_gets_the_summary_and_the_token_the_full_evidence() {
    let mut config = config(EVIDENCE, Duration::from_secs(10));
    config.api_token = Some("0123456789abcdef-token".into());
    let addr = support::start(config);
    let public = post(addr, &form(&[], "a.mp4", b"x"), "").json();
    assert_eq!(public["evidence"], "summary", "{public}");
    let video = &public["watermark"]["video"];
    assert_eq!(video["detected"], true);
    assert_close(&video["p_value"], 1e-20);
    assert_eq!(video["payload"], "00112233aabbccdd");
    assert!(video.get("timeline").is_none() && video.get("marked").is_none());
    assert!(video.get("bit_error_estimate").is_none());
    assert!(public["audit"].get("watermark_keys").is_none());

    let full = post(
        addr,
        &form(&[], "a.mp4", b"x"),
        "Authorization: Bearer 0123456789abcdef-token\r\n",
    )
    .json();
    assert_eq!(full["evidence"], "full");
    assert_close(&full["watermark"]["video"]["p_value"], 3.7e-21);
    assert_eq!(
        full["watermark"]["video"]["marked"],
        serde_json::json!([true, null])
    );
    assert_eq!(full["audit"]["watermark_keys"], serde_json::json!(["abcd"]));

    let wrong = post(
        addr,
        &form(&[], "a.mp4", b"x"),
        "Authorization: Bearer 0123456789abcdef-tokem\r\n",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.json().get("watermark").is_none());

    // The operator may give everyone the full evidence.
    let mut config = self::config(EVIDENCE, Duration::from_secs(10));
    config.full_evidence = true;
    let addr = support::start(config);
    let full = post(addr, &form(&[], "a.mp4", b"x"), "").json();
    assert_eq!(full["evidence"], "full");
    assert_eq!(
        full["watermark"]["video"]["timeline"],
        serde_json::json!([1e-9, null])
    );
}

/// JSON numbers are read back within a unit in the last place.
fn assert_close(value: &serde_json::Value, expected: f64) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"));
    assert!(
        (got / expected - 1.0).abs() < 1e-12,
        "{got:e} is not {expected:e}"
    );
}
