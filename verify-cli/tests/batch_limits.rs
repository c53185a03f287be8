//! `hallmark verify` on a batch gives every file a time and a memory budget in a worker
//! process: a file that panics, hangs or exhausts its memory is reported as an `error` (with
//! the schema's fields) and the batch goes on; the workers' reports are the in-process ones.
//!
//! The misbehaving files are made so by the hidden `--fault-injection KIND=NAME` flag, which
//! only worker processes honour: a real input that panics the analysis on demand does not
//! exist (it would be a bug, fixed), and a real hang or blow-up would make the test as slow as
//! the budget. Real inputs are used where they exist: a tiny memory budget on a normal file,
//! and a FIFO named like a clip.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A directory of three small, ordinary files: a still, a 2 s clip with sound, a voice.
fn batch() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("batch");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(media("images/astronaut.png"), dir.join("a.png")).unwrap();
        std::fs::copy(short_clip(), dir.join("b.mp4")).unwrap();
        std::fs::copy(media("audio/Front_Center.wav"), dir.join("c.wav")).unwrap();
        dir
    })
}

/// `hallmark verify --json --no-store ARGS`: exit code, the per-file reports, the summary and
/// the time it took.
fn verify_batch(args: &[&str]) -> (i32, Vec<Value>, Value, Duration) {
    verify_batch_with_env(args, &[])
}

/// [`verify_batch`] with `env` set for the process.
fn verify_batch_with_env(
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, Vec<Value>, Value, Duration) {
    let (home, _) = sealed_clip();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .arg("--home")
        .arg(home.path())
        .args(["verify", "--json", "--no-store"])
        .args(args)
        .env_remove("HALLMARK_HOME")
        .envs(env.iter().copied())
        .output()
        .expect("run hallmark");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    let summary = if lines.last().is_some_and(|l| l["summary"].is_object()) {
        lines.pop().unwrap()
    } else {
        Value::Null
    };
    (out.status.code().unwrap_or(-1), lines, summary, took)
}

fn by_name<'a>(reports: &'a [Value], name: &str) -> &'a Value {
    reports
        .iter()
        .find(|r| r["file"].as_str().is_some_and(|f| f.ends_with(name)))
        .unwrap_or_else(|| panic!("no report for {name}: {reports:#?}"))
}

/// A report without the time it was made.
fn timeless(mut r: Value) -> Value {
    r["audit"]["verified_at"] = Value::Null;
    r
}

/// SHA-256 of a file, by coreutils' `sha256sum`.
fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The in-process reports of the batch (the reference).
fn in_process() -> &'static Vec<Value> {
    static REPORTS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    REPORTS.get_or_init(|| {
        let (_, reports, _, _) = verify_batch(&["--in-process", batch().to_str().unwrap()]);
        assert_eq!(reports.len(), 3);
        for r in &reports {
            assert_ne!(r["verdict"], "error", "{r:#}");
        }
        reports
    })
}

/// The file `name` failed with `message` (in the schema), every other file of the batch got
/// its in-process report.
fn assert_only_failed(reports: &[Value], summary: &Value, name: &str, message: &str) {
    assert_eq!(reports.len(), 3, "{reports:#?}");
    assert_eq!(summary["summary"]["files"], 3, "{summary}");
    assert_eq!(summary["summary"]["verdicts"]["error"], 1, "{summary}");
    let failed = by_name(reports, name);
    assert_eq!(failed["schema"], "hallmark.verify/2");
    assert_eq!(failed["verdict"], "error", "{failed:#}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains(message), "{name}: {error}");
    assert_eq!(
        failed["audit"]["file_sha256"],
        sha256(&batch().join(name)),
        "{failed:#}"
    );
    for r in reports
        .iter()
        .filter(|r| !r["file"].as_str().unwrap().ends_with(name))
    {
        let file = r["file"].as_str().unwrap();
        let want = in_process().iter().find(|w| w["file"] == file).unwrap();
        assert_eq!(timeless(r.clone()), timeless(want.clone()), "{file}");
    }
}

#[test]
fn workers_report_what_the_in_process_path_reports() {
    let (code, reports, summary, _) = verify_batch(&[batch().to_str().unwrap()]);
    let want: Vec<Value> = in_process().iter().cloned().map(timeless).collect();
    let got: Vec<Value> = reports.into_iter().map(timeless).collect();
    assert_eq!(got, want);
    assert_eq!(summary["summary"]["files"], 3);
    assert_eq!(code, 3, "no file verified, none tampered or in error");
}

#[test]
fn a_panicking_analysis_is_an_error_and_the_batch_goes_on() {
    let (code, reports, summary, _) = verify_batch(&[
        "--fault-injection",
        "panic=b.mp4",
        batch().to_str().unwrap(),
    ]);
    assert_only_failed(&reports, &summary, "b.mp4", "the analysis crashed");
    assert_eq!(code, 2);
}

#[test]
fn a_hanging_analysis_is_stopped_at_its_time_budget_and_the_batch_goes_on() {
    // The first file hangs: the worker is ended and a fresh one verifies the rest.
    let (code, reports, summary, took) = verify_batch(&[
        "--file-timeout",
        "6",
        "--fault-injection",
        "hang=a.png",
        batch().to_str().unwrap(),
    ]);
    assert_only_failed(
        &reports,
        &summary,
        "a.png",
        "analysis stopped: over its time budget of 6 s",
    );
    assert_eq!(code, 2);
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn a_memory_blow_up_is_stopped_at_its_memory_budget_and_the_batch_goes_on() {
    let (code, reports, summary, _) = verify_batch(&[
        "--file-memory",
        "1G",
        "--fault-injection",
        "memory=c.wav",
        batch().to_str().unwrap(),
    ]);
    assert_only_failed(
        &reports,
        &summary,
        "c.wav",
        "analysis stopped: over its memory budget of 1024 MB",
    );
    assert_eq!(code, 2);
}

#[test]
fn a_budget_too_small_for_a_real_file_is_reported_not_fatal() {
    // 100 MB of address space: the scan's threads are refused, a real out-of-memory. With
    // RUST_BACKTRACE set the analysis hung on std's backtrace lock when
    // the backtrace could not be allocated, until the file's time budget (300 s) ran out.
    // (Until hallmark stopped linking libavdevice/libavfilter, 100 MB could not even map its
    // libraries.)
    let clip = batch().join("b.mp4");
    let (code, reports, _, took) = verify_batch_with_env(
        &["--file-memory", "100M", clip.to_str().unwrap()],
        &[("RUST_BACKTRACE", "1")],
    );
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r["verdict"], "error", "{r:#}");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("over its memory budget of 100 MB"),
        "{error}"
    );
    assert_eq!(r["audit"]["file_sha256"], sha256(&clip));
    assert_eq!(code, 2);
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn a_fifo_named_like_a_clip_does_not_hang_the_batch() {
    let dir = scratch().join("with-fifo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(media("images/astronaut.png"), dir.join("a.png")).unwrap();
    let fifo = dir.join("clip.mp4");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for mode in ["--in-process", "--file-timeout=60"] {
        let (_, reports, _, took) = verify_batch(&[mode, dir.to_str().unwrap()]);
        let r = by_name(&reports, "clip.mp4");
        assert_eq!(r["verdict"], "error", "{mode}: {r:#}");
        assert!(r["audit"]["file_sha256"].is_null(), "{mode}: {r:#}");
        assert_ne!(by_name(&reports, "a.png")["verdict"], "error", "{mode}");
        assert!(took < Duration::from_secs(30), "{mode}: {took:?}");
    }
}

/// A single file gets the same budgets, in a forked child of `hallmark verify` (no second
/// start-up): a crash, a hang and a memory blow-up are that file's `error`, exit 2, and a
/// clean file's report is what the in-process path gives.
#[test]
fn a_single_file_is_verified_under_the_budgets_too() {
    let clip = batch().join("b.mp4");
    let path = clip.to_str().unwrap();
    for (fault, extra, message) in [
        ("panic=b.mp4", vec![], "the analysis crashed"),
        (
            "hang=b.mp4",
            vec!["--file-timeout", "3"],
            "over its time budget of 3 s",
        ),
        (
            "memory=b.mp4",
            vec!["--file-memory", "1G"],
            "over its memory budget of 1024 MB",
        ),
    ] {
        let mut args = vec!["--fault-injection", fault];
        args.extend(extra);
        args.push(path);
        let (code, reports, _, took) = verify_batch(&args);
        let r = &reports[0];
        assert_eq!(r["verdict"], "error", "{fault}: {r:#}");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{fault}: {error}");
        assert_eq!(r["audit"]["file_sha256"], sha256(&clip), "{fault}");
        assert_eq!(code, 2, "{fault}");
        assert!(took < Duration::from_secs(60), "{fault}: {took:?}");
    }
    let (_, forked, _, _) = verify_batch(&[path]);
    let want = in_process().iter().find(|w| w["file"] == path).unwrap();
    assert_eq!(timeless(forked[0].clone()), timeless(want.clone()));
}
