//! The manifest store at scale (run by `scripts/bench-store`):
//!
//! - `bench_store load URL N`: bulk-loads N synthetic sealed clips into the PostgreSQL store at
//!   URL with COPY (schema by the store's own migrations; indexes rebuilt after the load):
//!   each a 512-byte manifest, two watermark bindings, a fingerprint (2 s of picture: 8
//!   samples of a smooth random 16×16 field; 8–20 s of synthetic music or speech levels)
//!   and its content keys, picture and sound;
//! - `bench_store content URL FILE [FILE…]`: adds each FILE as a clip (its real
//!   fingerprint), then times `find_by_content` for an upload of each (given as
//!   `FILE=UPLOAD`) in-process, p50/p99;
//! - `bench_store http ADDR[,ADDR…] SECONDS THREADS N`: GET /matches/byBinding of random
//!   loaded clips through the replicas in turn (keep-alive connections, one per thread),
//!   for SECONDS; prints p50/p99 and requests/s, and the statuses;
//! - `bench_store burst ADDR COUNT`: COUNT lookups at once from one address: how many the
//!   per-client rate admits (200) and refuses (503 with Retry-After);
//! - `bench_store upload ADDR[,ADDR…] COUNT FILE`: POST /matches/byContent of FILE through
//!   the replicas in turn, one at a time; p50/p99 and the matches.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use hallmark_store::{fingerprint_file, Fingerprint, ManifestStore, StoredManifest};

const VIDEO_ALG: &str = "org.hallmark.watermark.video.1";
const AUDIO_ALG: &str = "org.hallmark.watermark.audio.1";

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn clip_id(i: u64) -> String {
    format!("{:016x}", splitmix(i) & !(1 << 63))
}

fn manifest_id(i: u64) -> String {
    format!(
        "urn:c2pa:{:08x}-0000-4000-8000-{:012x}",
        i >> 32,
        i & 0xffff_ffff_ffff
    )
}

/// A smooth random picture sample: three random gradients and a blob, like a frame's layout;
/// and a sound of 8–20 s (a typical generated clip) from [`synthetic_sound`].
fn synthetic_print(i: u64) -> Fingerprint {
    let mut s = splitmix(i ^ 0x5151);
    let mut next = || {
        s = splitmix(s);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (a, b, c, d, e, f) = (next(), next(), next(), next(), next(), next());
    let video = (0..8)
        .map(|t| {
            let mut cells = [0u8; 256];
            for (k, cell) in cells.iter_mut().enumerate() {
                let (x, y) = ((k % 16) as f64 / 15.0, (k / 16) as f64 / 15.0);
                let drift = t as f64 * 0.02;
                let v = 60.0
                    + 120.0 * a * x
                    + 100.0 * b * y
                    + 80.0 * (6.0 * (c * x + d * y + drift)).sin()
                    + 90.0 * (-((x - e).powi(2) + (y - f).powi(2)) * 12.0).exp();
                *cell = v.clamp(0.0, 255.0) as u8;
            }
            Some(cells)
        })
        .collect();
    Fingerprint {
        video,
        audio: synthetic_sound(i),
    }
}

/// A level envelope (dB, 20 a second) of 8–20 s: seven in ten music — a beat at 70–170 bpm
/// with a random accent pattern over four beats, sections ±3 dB every eight bars —, three in
/// ten speech — syllables (4 a second on average, 6–15 dB over the pauses) —, each with
/// 1 dB of noise. Rhythm makes real sound's keys less uniform than noise's: many clips at
/// one tempo share sign patterns, which is what loads the index's popular keys.
fn synthetic_sound(i: u64) -> Vec<f32> {
    let mut s = splitmix(i ^ 0xa0d1);
    let mut next = || {
        s = splitmix(s);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let rate = hallmark_store::AUDIO_RATE;
    let n = ((8.0 + 12.0 * next()) * rate) as usize;
    let mut levels = vec![0.0f64; n];
    if next() < 0.7 {
        let beat = 60.0 / (70.0 + 100.0 * next());
        let phase = next() * beat;
        let base = -22.0 + 8.0 * next();
        let accents: Vec<f64> = (0..4).map(|_| 3.0 + 6.0 * next()).collect();
        let decay = 0.05 + 0.15 * next();
        let sections: Vec<f64> = (0..8).map(|_| 6.0 * next() - 3.0).collect();
        for (k, level) in levels.iter_mut().enumerate() {
            let t = k as f64 / rate + phase;
            let beats = (t / beat).floor();
            let since = t - beats * beat;
            let section = sections[(beats / 32.0) as usize % sections.len()];
            *level = base + section + accents[beats as usize % 4] * (-since / decay).exp();
        }
    } else {
        let base = -45.0 + 10.0 * next();
        let mut t = next() * 0.25;
        let end = n as f64 / rate;
        while t < end {
            let (height, width) = (6.0 + 9.0 * next(), 0.1 + 0.15 * next());
            for (k, level) in levels.iter_mut().enumerate() {
                let x = (k as f64 / rate - t) / width;
                if x.abs() < 2.0 {
                    *level = level.max(height * (-x * x * 2.0).exp());
                }
            }
            t += -next().max(1e-9).ln() / 4.0;
        }
        levels.iter_mut().for_each(|l| *l += base);
    }
    levels
        .iter()
        .map(|l| {
            // Box–Muller noise of 1 dB.
            let (u, v) = (next().max(1e-12), next());
            (l + (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut o, b| {
            let _ = write!(o, "{b:02x}");
            o
        })
}

fn load(url: &str, n: u64) {
    let started = Instant::now();
    drop(ManifestStore::open(Path::new(url)).expect("the store"));
    let mut db = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    db.batch_execute(
        "SET synchronous_commit = off;
         DROP INDEX IF EXISTS content_keys_by_key_seq; DROP INDEX IF EXISTS content_keys_by_seq;
         DROP INDEX IF EXISTS manifests_by_clip;
         ALTER TABLE bindings DROP CONSTRAINT IF EXISTS bindings_manifest_id_fkey;
         ALTER TABLE bindings DROP CONSTRAINT IF EXISTS bindings_pkey;",
    )
    .unwrap();
    let base: i64 = db
        .query_one("SELECT coalesce(max(seq), 0) FROM manifests", &[])
        .unwrap()
        .get(0);
    let mut manifests = db
        .copy_in("COPY manifests (manifest_id, clip_id, format, manifest, fingerprint, sealed_at) FROM STDIN")
        .unwrap();
    let mut line = String::new();
    for i in 0..n {
        line.clear();
        let manifest: Vec<u8> = (0..64)
            .flat_map(|k| splitmix(i * 64 + k).to_le_bytes())
            .collect();
        let print = synthetic_print(i).to_bytes();
        line.push_str(&format!(
            "{}\t{}\tvideo/mp4\t\\\\x{}\t\\\\x{}\t2026-12-03T{:02}:{:02}:{:02}Z\n",
            manifest_id(i),
            clip_id(i),
            hex(&manifest),
            hex(&print),
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60
        ));
        manifests.write_all(line.as_bytes()).unwrap();
    }
    manifests.finish().unwrap();
    let (lo, hi, count): (i64, i64, i64) = {
        let r = db
            .query_one(
                "SELECT min(seq), max(seq), count(*) FROM manifests WHERE seq > $1",
                &[&base],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(
        (lo, hi, count),
        (base + 1, base + n as i64, n as i64),
        "seq order"
    );
    eprintln!(
        "bench-store: {n} manifests copied in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut bindings = db
        .copy_in("COPY bindings (alg, value, manifest_id) FROM STDIN")
        .unwrap();
    for i in 0..n {
        let (clip, id) = (clip_id(i), manifest_id(i));
        bindings
            .write_all(format!("{VIDEO_ALG}\t{clip}\t{id}\n{AUDIO_ALG}\t{clip}\t{id}\n").as_bytes())
            .unwrap();
    }
    bindings.finish().unwrap();
    let mut keys = db
        .copy_in("COPY content_keys (key, seq) FROM STDIN")
        .unwrap();
    let (mut rows, mut sound_rows) = (0u64, 0u64);
    for i in 0..n {
        let seq = base + 1 + i as i64;
        let print = synthetic_print(i);
        let mut text = String::new();
        for key in print.content_keys() {
            text.push_str(&format!("{key}\t{seq}\n"));
            rows += 1;
        }
        sound_rows += print.sound_keys().len() as u64;
        keys.write_all(text.as_bytes()).unwrap();
    }
    keys.finish().unwrap();
    eprintln!(
        "bench-store: bindings and {rows} content keys ({sound_rows} of the sound) copied at {:.0} s; indexing",
        started.elapsed().as_secs_f64()
    );
    db.batch_execute(
        "SET maintenance_work_mem = '512MB';
         ALTER TABLE bindings ADD PRIMARY KEY (alg, value, manifest_id);
         ALTER TABLE bindings ADD FOREIGN KEY (manifest_id) REFERENCES manifests (manifest_id) ON DELETE CASCADE NOT VALID;
         CREATE INDEX manifests_by_clip ON manifests (clip_id);
         CREATE INDEX content_keys_by_key_seq ON content_keys (key, seq);
         CREATE INDEX content_keys_by_seq ON content_keys (seq);",
    )
    .unwrap();
    // What autovacuum does to a table that only grows (PostgreSQL 13 and later; it is off
    // for the load): statistics, and the visibility map that lets the vote read the index
    // alone. Its own statement: VACUUM cannot run in a transaction.
    db.batch_execute("VACUUM ANALYZE").unwrap();
    let size: String = db
        .query_one(
            "SELECT pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .unwrap()
        .get(0);
    println!(
        "loaded {n} clips ({rows} content keys, {sound_rows} of them the sound's) in {:.0} s; database {size}",
        started.elapsed().as_secs_f64()
    );
    // How evenly the keys spread: a popular key is read for every probe that has it.
    for r in db
        .query(
            "WITH k AS (SELECT key, count(*) AS c FROM content_keys GROUP BY key)
             SELECT (key >> 32)::bigint, count(*), sum(c)::bigint, max(c),
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY c),
                    percentile_disc(0.99) WITHIN GROUP (ORDER BY c)
             FROM k GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
    {
        let (band, distinct, total, max, p50, p99): (i64, i64, i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        let what = if band == 2 { "sound" } else { "picture" };
        println!(
            "content keys, band {band} ({what}): {total} rows under {distinct} keys; clips a key: median {p50}, 99 % {p99}, max {max}"
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn content(url: &str, pairs: &[String]) {
    let mut store = ManifestStore::open(Path::new(url)).unwrap();
    let mut uploads = Vec::new();
    let mut stored: Vec<(&str, String)> = Vec::new();
    for pair in pairs {
        let (sealed, upload) = pair.split_once('=').expect("FILE=UPLOAD");
        // A clip given twice (its picture copy, its sound alone) is stored once.
        let id = match stored.iter().find(|(file, _)| *file == sealed) {
            Some((_, id)) => id.clone(),
            None => {
                let k = stored.len();
                let id = format!("urn:c2pa:bench-real-{k}");
                store
                    .insert(&StoredManifest {
                        manifest_id: id.clone(),
                        clip_id: format!("{:016x}", 0xbe0000 + k),
                        bindings: Vec::new(),
                        format: "video/mp4".into(),
                        manifest: vec![0; 16],
                        fingerprint: fingerprint_file(Path::new(sealed), 600.0).unwrap(),
                        sealed_at: "2026-12-03T20:00:00Z".into(),
                    })
                    .unwrap();
                stored.push((sealed, id.clone()));
                id
            }
        };
        uploads.push((id, fingerprint_file(Path::new(upload), 120.0).unwrap()));
    }
    let mut db = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    for (id, print) in &uploads {
        let keys = print.probe_keys();
        let hits: i64 = db
            .query_one(
                "SELECT count(*) FROM content_keys WHERE key = ANY($1)",
                &[&keys],
            )
            .unwrap()
            .get(0);
        println!(
            "{id}: {} s of picture, {} s of sound; {} probe keys, {hits} index rows hit",
            print.video.len() as f64 / hallmark_store::VIDEO_RATE,
            print.audio.len() as f64 / hallmark_store::AUDIO_RATE,
            keys.len()
        );
        // The candidates' vote as the store runs it: how it reads the index and the table.
        let plan = db
            .query(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT seq, count(*) AS votes FROM content_keys
                 WHERE key = ANY($1) GROUP BY seq ORDER BY votes DESC, seq DESC LIMIT 24",
                &[&keys],
            )
            .unwrap();
        for line in plan.iter().map(|r| r.get::<_, String>(0)) {
            if !line.trim().starts_with("Index Cond") {
                println!("  {line}");
            }
        }
    }
    let mut times = Vec::new();
    let mut each = vec![Vec::new(); uploads.len()];
    let mut right = 0;
    for round in 0..20 {
        for (k, (id, print)) in uploads.iter().enumerate() {
            let t = Instant::now();
            let found = store.find_by_content(print, 10).unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            times.push(ms);
            each[k].push(ms);
            if round == 0 {
                println!("byContent (store) {id}: {found:?}");
            }
            right += usize::from(found.first().is_some_and(|m| &m.manifest_id == id));
        }
    }
    for ((id, _), t) in uploads.iter().zip(&mut each) {
        t.sort_by(f64::total_cmp);
        println!(
            "find_by_content {id}: p50 {:.1} ms, max {:.1} ms",
            percentile(t, 0.5),
            percentile(t, 1.0)
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "find_by_content over the store: {} queries, p50 {:.1} ms, p99 {:.1} ms, found first {}/{}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        right,
        times.len()
    );
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: &str) -> Connection {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(300)))
            .unwrap();
        Connection {
            reader: BufReader::new(stream),
        }
    }

    /// (status, body); `None` when the server closed the connection.
    fn send(&mut self, head: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut status = String::new();
        if self.reader.read_line(&mut status).ok()? == 0 {
            return None;
        }
        let code = status.split_whitespace().nth(1)?.parse().ok()?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().ok()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).ok()?;
        Some((code, body))
    }
}

fn http(addrs: &[String], seconds: u64, threads: usize, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let addr = addrs[t % addrs.len()].clone();
            std::thread::spawn(move || {
                let mut conn = Connection::open(&addr);
                let mut times = Vec::new();
                let (mut ok, mut found, mut other) = (0u64, 0u64, 0u64);
                let mut r = splitmix(t as u64 + 77);
                while Instant::now() < deadline {
                    r = splitmix(r);
                    let i = r % n;
                    let head = format!(
                        "GET /matches/byBinding?alg={VIDEO_ALG}&value={}&maxResults=10 HTTP/1.1\r\nHost: x\r\n\r\n",
                        clip_id(i)
                    );
                    let t0 = Instant::now();
                    match conn.send(&head, b"") {
                        Some((200, body)) => {
                            ok += 1;
                            if String::from_utf8_lossy(&body).contains(&manifest_id(i)) {
                                found += 1;
                            }
                        }
                        Some(_) => other += 1,
                        None => {
                            other += 1;
                            conn = Connection::open(&addr);
                        }
                    }
                    times.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                (addr, times, ok, found, other)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut per: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let (mut ok, mut found, mut other) = (0, 0, 0);
    for w in workers {
        let (addr, times, o, f, x) = w.join().unwrap();
        let e = per.entry(addr).or_default();
        e.0 += times.len() as u64;
        e.1 += o;
        all.extend(times);
        ok += o;
        found += f;
        other += x;
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    println!(
        "byBinding over HTTP: {} requests in {wall:.1} s = {:.0} req/s ({threads} connections), p50 {:.2} ms, p99 {:.2} ms; 200: {ok} (manifest found: {found}), other: {other}",
        all.len(),
        all.len() as f64 / wall,
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
    for (addr, (requests, ok)) in per {
        println!("  replica {addr}: {requests} requests, {ok} answered 200");
    }
}

fn burst(addr: &str, count: usize) {
    let mut conn = Connection::open(addr);
    let (mut ok, mut busy, mut other) = (0, 0, 0);
    for i in 0..count as u64 {
        let head = format!(
            "GET /matches/byBinding?alg={VIDEO_ALG}&value={} HTTP/1.1\r\nHost: x\r\n\r\n",
            clip_id(i)
        );
        match conn.send(&head, b"") {
            Some((200, _)) => ok += 1,
            Some((503, _)) => busy += 1,
            Some(_) => other += 1,
            None => {
                other += 1;
                conn = Connection::open(addr);
            }
        }
    }
    println!("burst of {count} lookups from one address on {addr}: 200: {ok}, 503: {busy}, other: {other}");
}

fn upload(addrs: &[String], count: usize, file: &str) {
    let bytes = std::fs::read(file).unwrap();
    let mut times = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut last = String::new();
    for k in 0..count {
        let mut conn = Connection::open(&addrs[k % addrs.len()]);
        let head = format!(
            "POST /matches/byContent HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
            bytes.len()
        );
        let t0 = Instant::now();
        let answer = conn.send(&head, &bytes);
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        let (status, body) = answer.unwrap_or((0, Vec::new()));
        *statuses.entry(status).or_default() += 1;
        last = String::from_utf8_lossy(&body).into_owned();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "byContent over HTTP ({} bytes, worker decode included): {count} requests, p50 {:.0} ms, p99 {:.0} ms; statuses {statuses:?}; last answer {last}",
        bytes.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    match args.first().map(String::as_str) {
        Some("load") => load(&args[1], args[2].parse().unwrap()),
        Some("content") => content(&args[1], &args[2..]),
        Some("http") => http(
            &list(&args[1]),
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        ),
        Some("burst") => burst(&args[1], args[2].parse().unwrap()),
        Some("upload") => upload(&list(&args[1]), args[2].parse().unwrap(), &args[3]),
        _ => {
            eprintln!("usage: bench_store load|content|http|burst|upload …");
            std::process::exit(2);
        }
    }
}
