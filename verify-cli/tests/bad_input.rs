//! Bad input: a clear message, exit 2, no panic, nothing written.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn bad_files() -> Vec<(&'static str, PathBuf)> {
    let dir = scratch().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.join("random.mp4");
    let noise: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&random, noise).unwrap();
    let text = dir.join("notes.mp4");
    std::fs::write(&text, "This is a text file, not a video.\n".repeat(50)).unwrap();
    let truncated = dir.join("truncated.mp4");
    let (_, sealed) = sealed_clip();
    let bytes = std::fs::read(sealed).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    vec![
        ("empty", empty),
        ("random bytes", random),
        ("text renamed .mp4", text),
        ("truncated MP4", truncated),
    ]
}

fn assert_clean_error(what: &str, out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
}

#[test]
fn verify_rejects_bad_files_with_exit_2() {
    let home = Home::empty();
    for (what, file) in bad_files() {
        if what == "truncated MP4" {
            // Its manifest is still read, and its hash no longer matches: a file cut short
            // after signing has changed, whether or not FFmpeg can decode what is left.
            let (code, r) = verify_json(home.path(), &file, &[]);
            assert_eq!(
                (code, r["verdict"].as_str()),
                (1, Some("tampered")),
                "{r:#}"
            );
            continue;
        }
        let (code, r) = verify_json(home.path(), &file, &[]);
        assert_eq!(code, 2, "{what}: {r:#}");
        assert_eq!(r["verdict"], "error", "{what}");
        let msg = r["error"].as_str().unwrap();
        assert!(msg.len() > 10, "{what}: message too vague: {msg}");
        // The human report names the problem too.
        let out = home.run(&["verify", file.to_str().unwrap()]);
        assert_clean_error(what, &out);
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("ERROR"),
            "{what}"
        );
    }
}

#[test]
fn seal_rejects_bad_files_and_writes_nothing() {
    let home = Home::with_keys("Bad Input Lab");
    for (what, file) in bad_files() {
        let out_dir = tempfile::tempdir().unwrap();
        let out_path = out_dir.path().join("out.mp4");
        let out = home.run(&[
            "seal",
            file.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ]);
        assert_clean_error(what, &out);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{what}"
        );
        assert!(
            listing(out_dir.path()).is_empty(),
            "{what}: left {:?}",
            listing(out_dir.path())
        );
    }
}

#[test]
fn seal_refuses_a_format_that_does_not_fit() {
    let home = Home::with_keys("Format Police");
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("voice.mp4");
    let out = home.run(&[
        "seal",
        media("audio/Front_Left.wav").to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_clean_error("audio → mp4", &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains(".wav, .m4a or .mp3"));
    let out = home.run(&[
        "seal",
        short_clip().to_str().unwrap(),
        "-o",
        out_dir.path().join("x.avi").to_str().unwrap(),
    ]);
    assert_clean_error("unknown extension", &out);
    assert!(listing(out_dir.path()).is_empty());
}

#[test]
fn missing_file_and_unreadable_entries_in_a_directory() {
    let home = Home::empty();
    let (code, r) = verify_json(home.path(), Path::new("/nonexistent/clip.mp4"), &[]);
    assert_eq!((code, r["verdict"].as_str().unwrap()), (2, "error"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(media("images/coffee.png"), dir.path().join("coffee.png")).unwrap();
    // A dangling link cannot be read by anyone, root included.
    std::os::unix::fs::symlink("/nonexistent/target.mp4", dir.path().join("gone.mp4")).unwrap();
    let out = home.run(&["verify", "--json", dir.path().to_str().unwrap()]);
    assert_clean_error("directory", &out);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["verdict"], "no-provenance",
        "the readable file is still verified"
    );
    assert_eq!(lines[1]["verdict"], "error");
    assert!(lines[1]["error"].as_str().unwrap().contains("cannot read"));
}

#[test]
fn usage_errors_exit_2() {
    let home = Home::empty();
    for args in [
        vec!["verify"],
        vec!["seal", "x.mp4"],
        vec!["frobnicate"],
        vec!["seal", "a.mp4", "-o", "b.mp4", "--ai", "--not-ai"],
    ] {
        let out = home.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = home.run(&["verify", "--trust-anchors", "/nonexistent.pem", "x.mp4"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn ctrl_c_during_seal_leaves_no_file() {
    let home = Home::with_keys("Interrupted");
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("sealed.mp4");
    let input = media("video/bigbuckbunny.mp4");
    let args = [
        "seal",
        input.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
        "--preset",
        "veryslow",
    ];
    assert_ctrl_c_leaves_nothing(home.path(), &args, out_dir.path());
}
