//! Helpers of web-verify's tests: raw HTTP/1.1 requests and their answers, fresh PostgreSQL
//! databases.

// Each test binary uses a part of these.
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Serves `config` on a thread of its own, never stopped (the test process's exit ends it);
/// the bound address. Its upload directory goes under the target's tmp, not the system's:
/// a server that never stops never removes it.
pub fn start(mut config: hallmark_web::ServeConfig) -> SocketAddr {
    if config.temp_dir.is_none() {
        let parent = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-verify-uploads");
        std::fs::create_dir_all(&parent).unwrap();
        config.temp_dir = Some(parent);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(hallmark_web::serve(config, |addr| tx.send(addr).unwrap()))
            .unwrap();
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// The body as text (lossy), for messages and comparisons.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {} {}", self.head, String::from_utf8_lossy(&self.body))
        })
    }
}

/// One request on a fresh connection (`Connection: close`), its answer read to the end.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> Answer {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    send(addr, &raw, Duration::from_secs(120))
}

/// Raw bytes on a fresh connection (a request the tests shape themselves), the answer read to
/// the end or to `timeout` of silence.
pub fn send(addr: SocketAddr, raw: &[u8], timeout: Duration) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    // The server may answer (413, 503) and close before the whole body is written.
    let _ = stream.write_all(raw);
    read_answer(&mut stream)
}

/// Reads an answer until the server closes the connection (or the read times out).
pub fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    // Bodies come whole (Content-Length) or chunked; the server chunks none of these.
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head,
        body,
    }
}

#[path = "../../../store/tests/support/fresh_postgres.rs"]
mod fresh_postgres;
pub use fresh_postgres::fresh_postgres;
