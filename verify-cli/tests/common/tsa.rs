//! A throw-away RFC 3161 time-stamp authority for tests: `openssl ts -reply` behind a tiny
//! HTTP server on 127.0.0.1 (one thread; `POST` of `application/timestamp-query` answered
//! with `application/timestamp-reply`). Its CA is made fresh for every instance.
//!
//! Include with `#[path = "common/tsa.rs"] mod tsa;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How the authority answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Time stamps every query.
    Working,
    /// Accepts connections but answers every query with `503 Service Unavailable`.
    Failing,
    /// Accepts connections, reads the query, and never answers (until dropped).
    Silent,
}

pub struct Tsa {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT/tsa`
    pub url: String,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    /// `Time stamp:` lines of the replies given, as `openssl ts -reply -text` prints them.
    issued: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

/// Runs `openssl ARGS` with the clock a day back (`faketime`), so that certificates made
/// now are valid from yesterday: an authority whose own clock runs behind still signs with
/// a certificate valid at its time.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("faketime")
        .args(["-f", "-1d", "openssl"])
        .current_dir(dir)
        .args(args)
        .output()
        .expect("faketime and openssl (installed by scripts/setup)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tsa {
    /// A working authority whose clock runs `clock` (a `faketime -f` offset such as
    /// `"-20m"`, or `None` for the real time).
    pub fn start(clock: Option<&str>) -> Tsa {
        Tsa::start_with(Mode::Working, clock)
    }

    pub fn start_with(mode: Mode, clock: Option<&str>) -> Tsa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Root CA (RSA 2048, SHA-256: algorithms every C2PA validator accepts for time stamps).
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-sha256",
                "-subj",
                "/CN=Test TSA Root/O=Test TSA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        // The time-stamping certificate: end entity, timeStamping the only (critical) EKU.
        std::fs::write(
            d.join("tsa-ext.cnf"),
            "[tsa_ext]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=critical,timeStamping\nsubjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "tsa.key",
                "-out",
                "tsa.csr",
                "-subj",
                "/CN=Test TSA/O=Test TSA",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "tsa.pem",
                "-days",
                "3650",
                "-sha256",
                "-extfile",
                "tsa-ext.cnf",
                "-extensions",
                "tsa_ext",
            ],
        );
        std::fs::write(d.join("tsaserial"), "01\n").unwrap();
        std::fs::write(
            d.join("openssl.cnf"),
            format!(
                "[tsa]\ndefault_tsa = tsa_config1\n\n[tsa_config1]\ndir = {}\n\
                 serial = $dir/tsaserial\ncrypto_device = builtin\nsigner_cert = $dir/tsa.pem\n\
                 signer_key = $dir/tsa.key\nsigner_digest = sha256\n\
                 default_policy = 1.2.3.4.1\nother_policies = 1.2.3.4.5.6\n\
                 digests = sha256, sha384, sha512\naccuracy = secs:1\n\
                 clock_precision_digits = 0\nordering = yes\ntsa_name = yes\n\
                 ess_cert_id_chain = no\n",
                d.display()
            ),
        )
        .unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, requests, issued) = (stop.clone(), requests.clone(), issued.clone());
            let dir = d.to_path_buf();
            let clock = clock.map(str::to_owned);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if mode == Mode::Silent {
                        hold(stream, &stop, &requests);
                        continue;
                    }
                    let _ = serve(stream, &dir, &requests, mode, clock.as_deref(), &issued);
                }
            })
        };
        Tsa {
            url: format!("http://{addr}/tsa"),
            dir,
            addr,
            stop,
            requests,
            issued,
            thread: Some(thread),
        }
    }

    /// The authority's root certificate (PEM): the trust anchor for its time stamps.
    pub fn root_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// HTTP requests received so far (bare connections, like the seal's reachability check,
    /// do not count).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The `genTime` of every time stamp issued, as RFC 3339 UTC (`2026-12-03T16:40:00Z`).
    pub fn issued(&self) -> Vec<String> {
        self.issued
            .lock()
            .unwrap()
            .iter()
            .map(|line| openssl_time_to_rfc3339(line))
            .collect()
    }
}

impl Drop for Tsa {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A URL on 127.0.0.1 where nothing listens (a port just freed).
pub fn down_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/tsa")
}

/// Reads what the client sends and keeps the connection open without a word until `stop`.
fn hold(mut stream: TcpStream, stop: &AtomicBool, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    let mut counted = false;
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => break, // the client gave up
            Ok(_) => {
                if !counted {
                    requests.fetch_add(1, Ordering::SeqCst);
                    counted = true;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn serve(
    mut stream: TcpStream,
    dir: &Path,
    requests: &AtomicUsize,
    mode: Mode,
    clock: Option<&str>,
    issued: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(()); // a bare connection (the seal's reachability check): not a request
    }
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let mut content_length = None;
    let mut chunked = false;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => content_length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-type" => content_type = value.to_ascii_lowercase(),
                _ => {}
            }
        }
    }
    if !request_line.starts_with("POST ") {
        respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"POST only",
        );
        return Ok(());
    }
    let body = if chunked {
        read_chunked(&mut reader)?
    } else {
        let mut body = vec![0u8; content_length.unwrap_or(0)];
        reader.read_exact(&mut body)?;
        body
    };
    if mode == Mode::Failing {
        respond(
            &mut stream,
            "503 Service Unavailable",
            "text/plain",
            b"down for maintenance",
        );
        return Ok(());
    }
    if content_type != "application/timestamp-query" {
        respond(
            &mut stream,
            "415 Unsupported Media Type",
            "text/plain",
            b"want application/timestamp-query",
        );
        return Ok(());
    }
    let query = dir.join(format!("q{n}.tsq"));
    let reply = dir.join(format!("r{n}.tsr"));
    std::fs::write(&query, &body)?;
    let mut cmd = match clock {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.args(["-f", offset, "openssl"]);
            c
        }
        None => Command::new("openssl"),
    };
    let out = cmd
        .current_dir(dir)
        .args(["ts", "-reply", "-config", "openssl.cnf", "-queryfile"])
        .arg(&query)
        .arg("-out")
        .arg(&reply)
        .output()?;
    if !out.status.success() {
        respond(
            &mut stream,
            "500 Internal Server Error",
            "text/plain",
            &out.stderr,
        );
        return Ok(());
    }
    let text = Command::new("openssl")
        .current_dir(dir)
        .args(["ts", "-reply", "-text", "-in"])
        .arg(&reply)
        .output()?;
    if let Some(line) = String::from_utf8_lossy(&text.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Time stamp:"))
    {
        issued.lock().unwrap().push(line.trim().to_owned());
    }
    let bytes = std::fs::read(&reply)?;
    respond(&mut stream, "200 OK", "application/timestamp-reply", &bytes);
    Ok(())
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut chunk = vec![0u8; size + 2]; // data and its CRLF
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// `Dec  3 16:40:00 2026 GMT` → `2026-12-03T16:40:00Z`.
fn openssl_time_to_rfc3339(text: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [month, day, time, year, ..] = parts[..] else {
        panic!("unexpected time-stamp time {text:?}");
    };
    let month = MONTHS
        .iter()
        .position(|m| *m == month)
        .unwrap_or_else(|| panic!("unexpected month in {text:?}"))
        + 1;
    let day: u32 = day.parse().unwrap();
    // Fractions (with clock_precision_digits > 0) are dropped: whole seconds are compared.
    let time = time.split('.').next().unwrap();
    format!("{year}-{month:02}-{day:02}T{time}Z")
}
