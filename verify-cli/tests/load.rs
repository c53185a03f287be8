//! A bounded load test of `hallmark serve` over loopback: only 200s and 503s, bounded server
//! memory, and the server still answers afterwards. CI runs a short version; `scripts/loadtest`
//! runs 32 clients for 60 s (LOAD_CLIENTS, LOAD_SECONDS) and prints the numbers;
//! LOAD_SERVE_ARGS adds arguments to `hallmark serve` (e.g. `--full-scan`); LOAD_REPLICAS
//! runs that many servers from verifier homes of their own, the clients spread over them, and
//! LOAD_STORE (a `postgresql://` URL) makes them share that store (scripts/loadtest starts a
//! throw-away PostgreSQL for more than one replica).

mod common;

use common::*;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bounded_load_only_200_and_503() {
    let clients = env_or("LOAD_CLIENTS", 8) as usize;
    let seconds = env_or("LOAD_SECONDS", 8);

    // A ~5 MB sealed clip, from real footage.
    let (home, _) = sealed_clip();
    let big = scratch().join("load-src.mp4");
    let src = media("video/bigbuckbunny.mp4");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-b:v",
        "9M",
        "-c:a",
        "aac",
        big.to_str().unwrap(),
    ]);
    // LOAD_REPLICAS servers, each from a verifier home of its own, sharing the store: the
    // sealing home's SQLite file, or the PostgreSQL store LOAD_STORE names (the clip is then
    // sealed into it).
    let replicas = env_or("LOAD_REPLICAS", 1).max(1) as usize;
    let store = std::env::var("LOAD_STORE").ok().filter(|s| !s.is_empty());
    let mut seal_args = vec!["--preset", "ultrafast", "--crf", "12"];
    if let Some(url) = &store {
        seal_args.extend(["--store", url.as_str()]);
    }
    let sealed = home.seal(&big, "load.mp4", &seal_args);
    // Half the clients upload it sealed (the manifest proves it), half with the manifest
    // stripped (the full watermark search in picture and sound, then the store lookup).
    let stripped = strip_manifest(&sealed, "load-stripped.mp4");
    let request = |file: &std::path::Path| {
        let (head, body) = verify_request("clip.mp4", &std::fs::read(file).unwrap());
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        std::sync::Arc::new(request)
    };
    let uploads = [
        (request(&sealed), "verified"),
        (request(&stripped), "watermarked"),
    ];
    let clip_kb = std::fs::metadata(&sealed).unwrap().len() / 1024;
    let serve_args = std::env::var("LOAD_SERVE_ARGS").unwrap_or_default();
    let serve_args: Vec<&str> = serve_args.split_whitespace().collect();
    let servers: Vec<Server> = (0..replicas)
        .map(|_| match &store {
            None => Server::start(home.path(), &serve_args),
            Some(url) => {
                let verifier = tempfile::tempdir().unwrap();
                let made = home.run(&[
                    "verifier-home",
                    verifier.path().to_str().unwrap(),
                    "--store",
                    url,
                ]);
                assert!(
                    made.status.success(),
                    "{}",
                    String::from_utf8_lossy(&made.stderr)
                );
                Server::start_from(verifier, &serve_args, &[])
            }
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    // The largest resident size any replica reached.
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while Instant::now() < deadline + Duration::from_secs(1) {
            for pid in &pids {
                peak = peak.max(rss_kb(*pid));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    });
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            // Clients spread over the replicas, as a reverse proxy would.
            let addr = servers[i % replicas].addr.clone();
            let (request, expected) = uploads[i % 2].clone();
            std::thread::spawn(move || {
                let mut results = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let answer = http(&addr, &request);
                    // A 200 must carry the right verdict: load must not change the answer.
                    let status = match answer.status {
                        200 if !serde_json::from_str::<serde_json::Value>(&answer.body)
                            .is_ok_and(|r| r["verdict"] == expected) =>
                        {
                            0
                        }
                        s => s,
                    };
                    results.push((status, t.elapsed(), i % replicas));
                    if status == 503 {
                        std::thread::sleep(Duration::from_millis(200)); // a polite client backs off
                    }
                }
                results
            })
        })
        .collect();
    let results: Vec<(u16, Duration, usize)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let peak_kb = sampler.join().unwrap();

    let ok: Vec<Duration> = results
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, d, _)| *d)
        .collect();
    let busy = results.iter().filter(|(s, _, _)| *s == 503).count();
    let per_replica: Vec<usize> = (0..replicas)
        .map(|r| {
            results
                .iter()
                .filter(|(s, _, at)| *s == 200 && *at == r)
                .count()
        })
        .collect();
    let failed: Vec<u16> = results
        .iter()
        .map(|(s, _, _)| *s)
        .filter(|s| *s != 200 && *s != 503)
        .collect();
    let mut sorted = ok.clone();
    sorted.sort();
    let pct = |p: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    };
    println!(
        "load: {replicas} × serve {} (store: {}), {clients} clients, {seconds} s, {} KB clip (half sealed, half stripped): {} ok ({:.1}/s; per replica {per_replica:?}), {busy} busy (503), {} failed; ok latency p50 {} ms, p99 {} ms; largest server peak RSS {} MB",
        if serve_args.is_empty() {
            "(defaults)".to_string()
        } else {
            serve_args.join(" ")
        },
        if store.is_some() { "PostgreSQL" } else { "the sealing home's SQLite" },
        clip_kb,
        ok.len(),
        ok.len() as f64 / seconds as f64,
        failed.len(),
        pct(0.5),
        pct(0.99),
        peak_kb / 1024
    );
    assert!(
        failed.is_empty(),
        "statuses other than 200/503 (0: a 200 with the wrong verdict): {failed:?}"
    );
    assert!(!ok.is_empty());
    assert!(peak_kb < 300 * 1024, "server memory grew to {peak_kb} KB");

    for server in &servers {
        let health = http(
            &server.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(health.status, 200, "{}", health.head);
    }
    // Every replica answered uploads (a proxy's spread reached each).
    assert!(per_replica.iter().all(|n| *n > 0), "{per_replica:?}");
}
