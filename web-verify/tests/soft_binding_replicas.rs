//! Past one machine: a clip sealed on one host (its own home, recording into a shared
//! PostgreSQL store) is recovered through two `hallmark serve` replicas running from two other
//! homes on that store, each with its workers sandboxed (the store's unix socket directory
//! bound in, no network). Runs the real `hallmark` binary (scripts/test builds it first) and
//! needs `HALLMARK_TEST_POSTGRES` (scripts/test starts a throw-away cluster and sets it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;
use support::{fresh_postgres, request};

fn hallmark() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let exe = target.join("release/hallmark");
    assert!(
        exe.is_file(),
        "{} is missing: build it first (cargo build --release -p hallmark-cli; scripts/test does)",
        exe.display()
    );
    exe
}

fn run(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(hallmark()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "hallmark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `hallmark serve`, stopped when dropped.
struct Replica {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Replica {
    /// Stopped as a service manager stops it (a SIGKILL would leave its upload directory in
    /// the system's temporary directory).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &Path) -> Replica {
    let mut child = Command::new(hallmark())
        .arg("--home")
        .arg(home)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--full-evidence",
            "--workers",
            "1",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve said where it listens").unwrap();
        if let Some(rest) = line.strip_prefix("hallmark: serving on http://") {
            break rest.trim_end_matches('/').parse().unwrap();
        }
    };
    // Keep draining its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Replica { child, addr }
}

const BOUNDARY: &str = "b0undary";

fn verify(addr: SocketAddr, file: &Path) -> serde_json::Value {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::fs::read(file).unwrap());
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let answer = request(
        addr,
        "POST",
        "/api/verify",
        &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
        &body,
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

#[test]
fn a_clip_sealed_on_one_host_is_recovered_through_serve_replicas_on_other_homes() {
    let Some(url) = fresh_postgres("replicas") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let os = |s: &str| std::ffi::OsString::from(s);
    let (sealing, replica_a, replica_b) = (
        dir.path().join("sealing-host"),
        dir.path().join("replica-a"),
        dir.path().join("replica-b"),
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/media/video/bikes.mp4");
    let sealed = dir.path().join("sealed.mp4");
    run(&[
        os("--home").as_os_str(),
        sealing.as_os_str(),
        os("seal").as_os_str(),
        source.as_os_str(),
        os("-o").as_os_str(),
        sealed.as_os_str(),
        os("--preset").as_os_str(),
        os("ultrafast").as_os_str(),
        os("--store").as_os_str(),
        url.as_os_str(),
    ]);
    // The replicas' homes: trust anchors and watermark keys, the shared store; no signing key.
    for home in [&replica_a, &replica_b] {
        run(&[
            os("--home").as_os_str(),
            sealing.as_os_str(),
            os("verifier-home").as_os_str(),
            home.as_os_str(),
            os("--store").as_os_str(),
            url.as_os_str(),
        ]);
        let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
        assert!(config.contains("postgresql://"), "{config}");
    }
    // What a platform does: the manifest is gone.
    let stripped = dir.path().join("stripped.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(&sealed)
        .args(["-map_metadata", "-1", "-c", "copy"])
        .arg(&stripped)
        .status()
        .unwrap();
    assert!(status.success());

    let replicas = [serve(&replica_a), serve(&replica_b)];
    let mut manifest_id = None;
    for replica in &replicas {
        let report = verify(replica.addr, &stripped);
        assert_eq!(report["verdict"], "watermarked", "{report}");
        let recovered = &report["recovered_manifest"];
        assert_eq!(recovered["status"], "recovered", "{report}");
        let id = recovered["manifest_id"].as_str().unwrap().to_string();
        assert!(id.starts_with("urn:c2pa:"), "{id}");
        assert_eq!(manifest_id.get_or_insert(id.clone()), &id);

        let clip = report["watermark"]["clip_id"].as_str().unwrap();
        let by_binding = request(
            replica.addr,
            "GET",
            &format!("/matches/byBinding?alg=org.hallmark.watermark.video.1&value={clip}"),
            "",
            b"",
        );
        assert_eq!(
            by_binding.json(),
            serde_json::json!({"matches": [{"manifestId": id, "similarityScore": 100}]})
        );
        let manifest = request(replica.addr, "GET", &format!("/manifests/{id}"), "", b"");
        assert_eq!(manifest.status, 200);
        assert_eq!(
            manifest.header("content-type").as_deref(),
            Some("application/c2pa")
        );
    }

    // By content: the real worker (`hallmark fingerprint`, sandboxed) fingerprints the upload.
    let answer = request(
        replicas[1].addr,
        "POST",
        "/matches/byContent",
        "Content-Type: video/mp4\r\n",
        &std::fs::read(&stripped).unwrap(),
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let matches = answer.json()["matches"].as_array().unwrap().clone();
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(matches[0]["manifestId"].as_str(), manifest_id.as_deref());
    let score = matches[0]["similarityScore"].as_u64().unwrap();
    assert!((75..=100).contains(&score), "{score}");
    // Something that is not media: the worker says so, the server answers 415.
    let junk = request(
        replicas[0].addr,
        "POST",
        "/matches/byContent",
        "Content-Type: video/mp4\r\n",
        b"this is not a video at all",
    );
    assert_eq!(junk.status, 415, "{}", String::from_utf8_lossy(&junk.body));
    std::thread::sleep(Duration::from_millis(10));
}
