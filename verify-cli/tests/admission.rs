//! `hallmark serve` against slow and greedy clients, over loopback: uploads that trickle in
//! hold no analysis slot and are cut off; one address gets its share; every multipart byte
//! counts; the temporary disk is capped. All traffic stays on 127.0.0.1, bounded in count and
//! time.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Trickle {
    /// A request head, a few bytes a second, never finished.
    Head,
    /// A whole head, then the body a few bytes a second.
    Body,
}

/// What a trickling client saw: the status of the answer (None: the connection was closed
/// without one) and when.
#[derive(Debug)]
struct Trickled {
    status: Option<u16>,
    head: String,
    after: Duration,
}

/// One slow client: sends 3 bytes a second for at most `for_at_most`, reading whatever the
/// server answers meanwhile.
fn trickle(addr: &str, kind: Trickle, for_at_most: Duration) -> Trickled {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let (head, body) = verify_request("slow.mp4", &vec![7u8; 200_000]);
    let (first, rest): (Vec<u8>, Vec<u8>) = match kind {
        Trickle::Head => (
            b"POST /api/verify HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec(),
            vec![b'a'; 3 * 60],
        ),
        Trickle::Body => (head.into_bytes(), body),
    };
    let _ = stream.write_all(&first);
    let mut answer = Vec::new();
    let mut chunks = rest.chunks(3);
    while started.elapsed() < for_at_most {
        if let Some(chunk) = chunks.next() {
            let _ = stream.write_all(chunk);
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                let _ = stream.read_to_end(&mut answer);
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    Trickled {
        status: text.split_whitespace().nth(1).and_then(|s| s.parse().ok()),
        head: text,
        after: started.elapsed(),
    }
}

fn upload(addr: &str, name: &str, bytes: &[u8]) -> Answer {
    let (head, body) = verify_request(name, bytes);
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    http(addr, &raw)
}

fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("{e}: {} {}", answer.head, answer.body))
}

fn header(answer: &Answer, name: &str) -> Option<String> {
    answer.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[test]
fn forty_trickling_clients_do_not_lock_out_an_honest_upload() {
    let (home, sealed) = sealed_clip();
    let bytes = std::fs::read(sealed).unwrap();
    // The forty stand for forty attackers at forty addresses: the per-address limits, which
    // would refuse all but four of them here (one test below), are lifted. The rest is
    // `hallmark serve`'s defaults: 10 s for a head, 10 s of grace, then 16 KB/s.
    let server = Server::start(
        home.path(),
        &["--per-client-uploads", "0", "--per-client-rate", "0"],
    );
    let started = Instant::now();
    let tricklers: Vec<_> = (0..40)
        .map(|i| {
            let addr = server.addr.clone();
            let kind = if i % 2 == 0 {
                Trickle::Body
            } else {
                Trickle::Head
            };
            std::thread::spawn(move || (kind, trickle(&addr, kind, Duration::from_secs(25))))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    // All forty are connected and sending; an honest upload is analysed at once.
    let honest = Instant::now();
    let answer = upload(&server.addr, "honest.mp4", &bytes);
    let took = honest.elapsed();
    assert_eq!(answer.status, 200, "{} {}", answer.head, answer.body);
    assert_eq!(json(&answer)["verdict"], "verified", "{}", answer.body);
    println!("admission: honest upload answered in {took:?} while 40 clients trickled");
    assert!(took < Duration::from_secs(8), "{took:?}");

    // The tricklers are cut off: heads after the header timeout, bodies once the grace
    // period is over and they are below the minimum rate.
    for t in tricklers {
        let (kind, seen) = t.join().unwrap();
        match kind {
            Trickle::Body => {
                assert_eq!(seen.status, Some(408), "{kind:?}: {seen:?}");
                assert!(seen.head.contains("too slow"), "{seen:?}");
            }
            // Closed, with or without a 408 first.
            Trickle::Head => assert!(
                matches!(seen.status, None | Some(408)),
                "{kind:?}: {seen:?}"
            ),
        }
        assert!(
            seen.after >= Duration::from_secs(9) && seen.after < Duration::from_secs(15),
            "{kind:?} cut off after {:?}",
            seen.after
        );
    }
    println!(
        "admission: all 40 tricklers cut off within {:?}",
        started.elapsed()
    );
    let health = http(
        &server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(health.status, 200);
}

#[test]
fn one_address_gets_its_share_of_uploads() {
    let home = Home::empty();
    let server = Server::start(
        home.path(),
        &["--upload-grace", "2", "--per-client-rate", "0"],
    );
    // 12 tricklers from one address: four hold their places, the other eight are refused at
    // once, each with a Retry-After.
    let tricklers: Vec<_> = (0..12)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || trickle(&addr, Trickle::Body, Duration::from_secs(10)))
        })
        .collect();
    let seen: Vec<Trickled> = tricklers.into_iter().map(|t| t.join().unwrap()).collect();
    let refused: Vec<&Trickled> = seen.iter().filter(|s| s.status == Some(503)).collect();
    let cut: Vec<&Trickled> = seen.iter().filter(|s| s.status == Some(408)).collect();
    assert_eq!((refused.len(), cut.len()), (8, 4), "{seen:#?}");
    for s in &refused {
        assert!(s.after < Duration::from_secs(2), "{s:?}");
        assert!(
            s.head.to_ascii_lowercase().contains("retry-after: 5"),
            "{s:?}"
        );
        assert!(s.head.contains("from your address"), "{s:?}");
    }
    // Their places are free again.
    let answer = upload(
        &server.addr,
        "c.jpg",
        &std::fs::read(fixture("C.jpg")).unwrap(),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn uploads_per_minute_are_limited_per_address() {
    let home = Home::empty();
    let server = Server::start(home.path(), &["--per-client-rate", "3"]);
    let bytes = std::fs::read(fixture("C.jpg")).unwrap();
    for _ in 0..3 {
        assert_eq!(upload(&server.addr, "c.jpg", &bytes).status, 200);
    }
    let answer = upload(&server.addr, "c.jpg", &bytes);
    assert_eq!(answer.status, 503, "{}", answer.body);
    let retry: u64 = header(&answer, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "one every 20 s: {retry}");
}

#[test]
fn a_big_field_other_than_file_is_refused() {
    let home = Home::empty();
    let server = Server::start(home.path(), &[]);
    let boundary = "hallmarkBoundary7d3f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\n{}\r\n",
        "a".repeat(200_000)
    )
    .into_bytes();
    let (_, file_part) = verify_request("c.jpg", &std::fs::read(fixture("C.jpg")).unwrap());
    body.extend_from_slice(&file_part);
    let mut raw = format!("POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(&body);
    let answer = http(&server.addr, &raw);
    assert_eq!(answer.status, 413, "{} {}", answer.head, answer.body);
    assert!(json(&answer)["error"]
        .as_str()
        .unwrap()
        .contains("\"comment\""));
}

#[test]
fn the_temp_disk_cap_answers_503_with_retry_after() {
    let home = Home::empty();
    let server = Server::start(
        home.path(),
        &["--max-upload", "1M", "--max-temp-disk", "1M"],
    );
    // One upload holds 700 KB of the 1 MB and stalls.
    let (head, body) = verify_request("held.mp4", &vec![7u8; 900_000]);
    let mut held = TcpStream::connect(&server.addr).unwrap();
    held.write_all(head.as_bytes()).unwrap();
    held.write_all(&body[..700_000]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let picture = std::fs::read(fixture("C.jpg")).unwrap();
    let mut big = picture.clone();
    big.resize(600_000, 0);
    let answer = upload(&server.addr, "c.jpg", &big);
    assert_eq!(answer.status, 503, "{} {}", answer.head, answer.body);
    assert_eq!(header(&answer, "retry-after").as_deref(), Some("5"));
    // Its disk comes back once it is gone.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = upload(&server.addr, "c.jpg", &big);
        if answer.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", answer.head, answer.body);
        std::thread::sleep(Duration::from_millis(200));
    }
    // A cap below the upload limit is refused at start.
    let out = home.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--max-upload",
        "2M",
        "--max-temp-disk",
        "1M",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-temp-disk"));
}
