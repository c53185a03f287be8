//! Helpers of the soft-binding tests: raw HTTP/1.1 requests, and fresh PostgreSQL databases.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

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

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {} {}", self.head, String::from_utf8_lossy(&self.body))
        })
    }
}

pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
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

/// A fresh database on the test server (`None`, said loudly, without one).
pub fn fresh_postgres(name: &str) -> Option<PathBuf> {
    let Ok(url) = std::env::var("HALLMARK_TEST_POSTGRES") else {
        eprintln!(
            "\n*** SKIPPED the PostgreSQL half of {name}: HALLMARK_TEST_POSTGRES is not set \
             (scripts/test starts a throw-away cluster and sets it) ***\n"
        );
        return None;
    };
    let db = format!(
        "w_{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let slash = base.rfind('/').unwrap();
    let mut out = format!("{}/{db}", &base[..slash]);
    if !query.is_empty() {
        out = format!("{out}?{query}");
    }
    Some(PathBuf::from(out))
}
