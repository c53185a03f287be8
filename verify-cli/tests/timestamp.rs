//! Trusted time stamps (RFC 3161): `seal --tsa URL` against a real local authority
//! (`openssl ts` behind a loopback HTTP server), verified now and with the clock 3 years
//! on (Debian's `faketime` around the hallmark binary), after the signing certificate
//! expired.

mod common;
#[path = "common/tsa.rs"]
mod tsa;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{ffmpeg, hallmark, listing, scratch, Home};
use tsa::Tsa;

/// The authority's clock runs 20 minutes behind: a signing time from it cannot be mistaken
/// for the local clock's.
const TSA_CLOCK: &str = "-20m";
/// Past the signing certificate's lifetime (2 years), well within the authority's (10).
const LATER: &str = "+3y";

/// 1 s of a 320x240 test pattern with a tone: quick to seal.
fn tiny_clip() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        let out = scratch().join("tiny.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
            out.to_str().unwrap(),
        ]);
        out
    })
    .clone()
}

struct Sealed {
    home: Home,
    tsa: Tsa,
    /// The short clip sealed with `--tsa`.
    stamped: PathBuf,
    /// The same, sealed without a time stamp.
    plain: PathBuf,
}

fn sealed() -> &'static Sealed {
    static SEALED: OnceLock<Sealed> = OnceLock::new();
    SEALED.get_or_init(|| {
        let home = Home::with_keys("Time Stamped Newsroom");
        let tsa = Tsa::start(Some(TSA_CLOCK));
        let clip = common::short_clip();
        let stamped = home.seal(
            &clip,
            "stamped.mp4",
            &["--preset", "ultrafast", "--tsa", &tsa.url],
        );
        let plain = home.seal(&clip, "plain.mp4", &["--preset", "ultrafast"]);
        Sealed {
            home,
            tsa,
            stamped,
            plain,
        }
    })
}

/// `verify --json` of one file, under `faketime -f OFFSET` when `offset` is given, trusting
/// the home's root (from its config) and `anchors`.
fn verify_at(
    home: &Path,
    offset: Option<&str>,
    anchors: &[&Path],
    file: &Path,
) -> (i32, serde_json::Value) {
    let mut cmd = match offset {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.args(["-f", offset]).arg(env!("CARGO_BIN_EXE_hallmark"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_hallmark")),
    };
    cmd.arg("--home").arg(home).args(["verify", "--json"]);
    for anchor in anchors {
        cmd.arg("--trust-anchors").arg(anchor);
    }
    let out = cmd
        .arg(file)
        .env_remove("HALLMARK_HOME")
        .output()
        .expect("faketime (installed by scripts/setup)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().unwrap_or_else(|| {
        panic!(
            "no JSON for {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(line).expect("valid JSON"),
    )
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time (`...Z` or `...+00:00`, no
/// fraction needed).
fn epoch_s(rfc3339: &str) -> i64 {
    let t = rfc3339.trim_end_matches('Z').trim_end_matches("+00:00");
    let t = t.split('.').next().unwrap();
    let (date, time) = t.split_once('T').expect("RFC 3339 time");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let h: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + h[0] * 3600 + h[1] * 60 + h[2]
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_time_stamped_seal_verifies_with_the_authoritys_time() {
    let s = sealed();
    assert!(s.tsa.requests() >= 1, "the authority was never asked");
    let (code, report) = verify_at(s.home.path(), None, &[&s.tsa.root_pem()], &s.stamped);
    assert_eq!(report["verdict"], "verified", "{report:#}");
    assert_eq!(code, 0);
    let signing_time = report["c2pa"]["signing_time"]
        .as_str()
        .unwrap_or_else(|| panic!("no signing time: {report:#}"));
    // The time the authority put in its reply, not the local clock (20 minutes ahead).
    let issued = s.tsa.issued();
    assert!(
        issued.iter().any(|t| epoch_s(t) == epoch_s(signing_time)),
        "signing time {signing_time} is none of the authority's {issued:?}"
    );
    let behind = now_s() - epoch_s(signing_time);
    assert!(
        (15 * 60..30 * 60).contains(&behind),
        "signing time {signing_time} is {behind} s behind the local clock, not the authority's 20 minutes"
    );
}

#[test]
fn b_time_stamped_seal_is_still_verified_three_years_later() {
    let s = sealed();
    let (code, report) = verify_at(s.home.path(), Some(LATER), &[&s.tsa.root_pem()], &s.stamped);
    assert_eq!(report["verdict"], "verified", "{report:#}");
    assert_eq!(code, 0);
    assert!(report["c2pa"]["signing_time"].is_string(), "{report:#}");
}

#[test]
fn c_untimestamped_seal_is_an_expired_credential_three_years_later() {
    let s = sealed();
    // Today it verifies: what changes below is the clock alone.
    let (_, now) = verify_at(s.home.path(), None, &[], &s.plain);
    assert_eq!(now["verdict"], "verified", "{now:#}");

    let (code, report) = verify_at(s.home.path(), Some(LATER), &[], &s.plain);
    let failures = common::strings(&report["c2pa"]["failures"]);
    eprintln!("untimestamped seal 3 years later: c2pa.failures = {failures:?}");
    assert!(
        failures.iter().any(|f| f == "signingCredential.expired"),
        "the clock did not move for hallmark, or the SDK did not see the expiry: {report:#}"
    );
    assert_ne!(report["verdict"], "verified", "{report:#}");
    assert_ne!(report["verdict"], "tampered", "{report:#}");
    assert_eq!(report["verdict"], "credential-problem", "{report:#}");
    assert_eq!(report["credential_problem"], "expired", "{report:#}");
    assert_ne!(code, 0);
}

#[test]
fn c_time_stamp_from_an_untrusted_authority_does_not_outlive_the_certificate() {
    // The same time-stamped file, but the verifier does not trust the authority's root:
    // the SDK ignores the time stamp (timeStamp.untrusted) and judges the certificate at
    // the current time, so 3 years later it has expired.
    let s = sealed();
    let (_, now) = verify_at(s.home.path(), None, &[], &s.stamped);
    eprintln!(
        "time stamp from an untrusted authority, today: verdict {}, c2pa.failures = {:?}, signing_time = {}",
        now["verdict"],
        common::strings(&now["c2pa"]["failures"]),
        now["c2pa"]["signing_time"]
    );
    assert_eq!(now["verdict"], "verified", "{now:#}");
    let (_, report) = verify_at(s.home.path(), Some(LATER), &[], &s.stamped);
    eprintln!(
        "time stamp from an untrusted authority, 3 years later: c2pa.failures = {:?}",
        common::strings(&report["c2pa"]["failures"])
    );
    assert_ne!(report["verdict"], "verified", "{report:#}");
    assert_eq!(report["verdict"], "credential-problem", "{report:#}");
    assert_eq!(report["credential_problem"], "expired", "{report:#}");
}

fn out_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn d_unreachable_authority_fails_the_seal_and_writes_nothing() {
    let home = Home::with_keys("Down TSA");
    let dir = out_dir("down");
    let url = tsa::down_url();
    let out = dir.join("x.mp4");
    let r = home.run(&[
        "seal",
        tiny_clip().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tsa",
        &url,
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("time-stamp authority"), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("no output was written"), "{stderr}");
    assert!(listing(&dir).is_empty(), "left {:?}", listing(&dir));
}

#[test]
fn d_authority_refusing_at_signing_time_fails_the_seal_and_writes_nothing() {
    // Reachable (the check before encoding passes) but answering 503: the SDK's request
    // fails when signing, after the encode.
    let tsa = Tsa::start_with(tsa::Mode::Failing, None);
    let home = Home::with_keys("Failing TSA");
    let dir = out_dir("failing");
    let out = dir.join("x.mp4");
    let r = home.run(&[
        "seal",
        tiny_clip().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tsa",
        &tsa.url,
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(
        tsa.requests() >= 1,
        "the authority was never asked: {stderr}"
    );
    assert!(stderr.contains("time-stamp authority"), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    assert!(listing(&dir).is_empty(), "left {:?}", listing(&dir));
}

#[test]
fn d_authority_that_never_answers_fails_the_seal_after_its_timeout() {
    // Accepts the connection and the query, then says nothing: the seal gives up after 20 s
    // instead of hanging.
    let tsa = Tsa::start_with(tsa::Mode::Silent, None);
    let home = Home::with_keys("Silent TSA");
    let dir = out_dir("silent");
    let out = dir.join("x.mp4");
    let started = std::time::Instant::now();
    let r = home.run(&[
        "seal",
        tiny_clip().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tsa",
        &tsa.url,
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(
        tsa.requests() >= 1,
        "the authority was never asked: {stderr}"
    );
    assert!(stderr.contains("no answer within 20 s"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    assert!(listing(&dir).is_empty(), "left {:?}", listing(&dir));
}

#[test]
fn d_invalid_tsa_url_is_refused_before_anything_is_done() {
    let home = Home::with_keys("Bad URL");
    let dir = out_dir("bad-url");
    let out = dir.join("x.mp4");
    let r = home.run(&[
        "seal",
        tiny_clip().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tsa",
        "ftp://example.com/tsa",
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http:// or https://"), "{stderr}");
    assert!(listing(&dir).is_empty(), "left {:?}", listing(&dir));
}

#[test]
fn config_tsa_url_is_used_and_the_flag_overrides_it() {
    let tsa = Tsa::start(None);
    let home = Home::with_keys("Configured TSA");
    let config = home.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!("tsa_url = \"{}\"\n{text}", tsa.url);
    std::fs::write(&config, text).unwrap();

    let sealed = home.seal(&tiny_clip(), "configured.mp4", &["--preset", "ultrafast"]);
    assert!(
        tsa.requests() >= 1,
        "the configured authority was never asked"
    );
    let (_, report) = verify_at(home.path(), None, &[&tsa.root_pem()], &sealed);
    assert_eq!(report["verdict"], "verified", "{report:#}");
    assert!(report["c2pa"]["signing_time"].is_string(), "{report:#}");

    // --tsa wins over the config: pointed at a dead authority, the seal fails.
    let before = tsa.requests();
    let dir = out_dir("override");
    let out = dir.join("x.mp4");
    let url = tsa::down_url();
    let r = home.run(&[
        "seal",
        tiny_clip().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tsa",
        &url,
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    assert_eq!(tsa.requests(), before, "the configured authority was asked");
    assert!(listing(&dir).is_empty(), "left {:?}", listing(&dir));
}

#[test]
fn generate_asks_the_authority_too() {
    let tsa = Tsa::start(None);
    let home = Home::with_keys("Generated TSA");
    let out = scratch().join("generated-stamped.mp4");
    let r = hallmark(
        home.path(),
        &[
            "generate",
            "a beach at sunset",
            "-o",
            out.to_str().unwrap(),
            "--duration",
            "0.5",
            "--size",
            "160x96",
            "--fps",
            "10",
            "--preset",
            "ultrafast",
            "--tsa",
            &tsa.url,
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(tsa.requests() >= 1, "the authority was never asked");
    let (_, report) = verify_at(home.path(), Some(LATER), &[&tsa.root_pem()], &out);
    assert_eq!(report["verdict"], "verified", "{report:#}");
}

#[test]
fn c2patool_accepts_the_time_stamp() {
    // The outside judge (c2patool 0.27.22, its own SDK version) trusting the home's root and
    // the authority's: the time stamp is validated and trusted, and its time is the one shown.
    let s = sealed();
    let anchors = scratch().join("stamped-anchors.pem");
    std::fs::write(
        &anchors,
        format!(
            "{}{}",
            std::fs::read_to_string(s.home.root_cert()).unwrap(),
            std::fs::read_to_string(s.tsa.root_pem()).unwrap()
        ),
    )
    .unwrap();
    let out = Command::new("c2patool")
        .arg(&s.stamped)
        .args(["trust", "--trust_anchors"])
        .arg(&anchors)
        .output()
        .expect("c2patool (installed by scripts/setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["validation_state"], "Trusted", "{report:#}");
    let codes = |kind: &str| -> Vec<String> {
        report["validation_results"]["activeManifest"][kind]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["code"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(codes("failure").is_empty(), "{report:#}");
    let success = codes("success");
    for code in ["timeStamp.validated", "timeStamp.trusted"] {
        assert!(success.iter().any(|c| c == code), "no {code}: {report:#}");
    }
    let active = report["active_manifest"].as_str().unwrap();
    let time = report["manifests"][active]["signature_info"]["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no signing time: {report:#}"));
    assert!(
        s.tsa.issued().iter().any(|t| epoch_s(t) == epoch_s(time)),
        "c2patool's signing time {time} is none of the authority's {:?}",
        s.tsa.issued()
    );
}
