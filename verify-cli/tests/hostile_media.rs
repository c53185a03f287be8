//! Hostile uploads that point FFmpeg at other local files — an HLS playlist, an ffconcat
//! list, an image-sequence pattern — are refused by `verify` (verdict `error`, with the
//! reason) and by `seal`, and nothing of the file they point at shows in the report.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const PLAYLIST: &str = "playlists may point at other files";
const PATTERN: &str = "a file name with a pattern (%d, *, ?) stands for other files";

/// A directory with a watermarked clip (sealed, manifest stripped: its mark is the only
/// evidence it carries) and a sealed still, and the hostile files pointing at them.
struct Scene {
    dir: PathBuf,
    marked_clip: PathBuf,
}

fn scene() -> &'static Scene {
    static SCENE: std::sync::OnceLock<Scene> = std::sync::OnceLock::new();
    SCENE.get_or_init(|| {
        let (home, sealed) = sealed_clip();
        let dir = scratch().join("hostile");
        std::fs::create_dir_all(&dir).unwrap();
        let marked_clip = strip_manifest(sealed, "hostile/marked.mp4");
        let still = home.seal(&media("images/astronaut.png"), "hostile/frame001.png", &[]);
        assert!(still.exists());
        std::fs::write(
            dir.join("playlist.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\nmarked.mp4\n#EXT-X-ENDLIST\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("list.ffconcat"),
            "ffconcat version 1.0\nfile marked.mp4\n",
        )
        .unwrap();
        // A real picture, named as a pattern that stands for frame001.png.
        std::fs::copy(media("images/camera.png"), dir.join("frame%03d.png")).unwrap();
        Scene { dir, marked_clip }
    })
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

fn assert_refused(name: &str, format: &str, reason: &str) {
    let (home, _) = sealed_clip();
    let path = scene().dir.join(name);
    let (code, r) = verify_json(home.path(), &path, &[]);
    assert_eq!(r["schema"], "hallmark.verify/2", "{r:#}");
    assert_eq!(r["verdict"], "error", "{name}: {r:#}");
    assert_ne!(code, 0, "{name}");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("format {format} is not accepted: {reason}")),
        "{name}: {error}"
    );
    // Nothing of the file it points at: no mark found, no picture described.
    assert!(r["watermark"].is_null(), "{name}: {r:#}");
    assert!(r["media"].is_null(), "{name}: {r:#}");
    assert_eq!(r["audit"]["file_sha256"], sha256(&path), "{name}");
}

#[test]
fn the_pointed_at_clip_is_watermarked() {
    // The refusals below are what keeps this out of the hostile files' reports.
    let (home, _) = sealed_clip();
    let (_, r) = verify_json(home.path(), &scene().marked_clip, &[]);
    assert_eq!(r["verdict"], "watermarked", "{r:#}");
}

#[test]
fn an_hls_playlist_is_refused() {
    assert_refused("playlist.m3u8", "hls", PLAYLIST);
}

#[test]
fn an_ffconcat_list_is_refused() {
    assert_refused("list.ffconcat", "concat", PLAYLIST);
}

#[test]
fn an_image_sequence_pattern_is_refused() {
    assert_refused("frame%03d.png", "image2", PATTERN);
}

#[test]
fn seal_refuses_them_too() {
    let (home, _) = sealed_clip();
    for (name, format) in [
        ("playlist.m3u8", "hls"),
        ("list.ffconcat", "concat"),
        ("frame%03d.png", "image2"),
    ] {
        let out = scene().dir.join(format!("resealed-{format}.mp4"));
        let r = home.run(&[
            "seal",
            scene().dir.join(name).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{name} sealed: {stderr}");
        assert!(
            stderr.contains(&format!("format {format} is not accepted")),
            "{name}: {stderr}"
        );
        assert!(!out.exists(), "{name}: {} written", out.display());
    }
}

/// `hallmark verify --json FILE` under GNU time: (report, peak RSS in bytes, seconds).
fn verify_measured(home: &Path, file: &Path) -> (serde_json::Value, u64, f64) {
    let started = std::time::Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kb %M"])
        .arg(env!("CARGO_BIN_EXE_hallmark"))
        .arg("--home")
        .arg(home)
        .args(["verify", "--json", "--no-store"])
        .arg(file)
        .env_remove("HALLMARK_HOME")
        .output()
        .expect("GNU time (installed by scripts/setup)");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kb "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in {stderr}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.lines().next().expect("a report")).unwrap();
    (report, kb * 1024, seconds)
}

#[test]
fn extreme_shapes_are_analysed_within_bounds() {
    // A 4096×16 strip would get a 32768-column analysis grid (16 MB per image, ≈ 21 000
    // scales to search) without the grid's cap; a 16×4096 needle a one-column one.
    let (home, _) = sealed_clip();
    for size in ["4096x16", "16x4096"] {
        let clip = scratch().join(format!("strip-{size}.mp4"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25:duration=10"),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            clip.to_str().unwrap(),
        ]);
        let (r, peak, seconds) = verify_measured(home.path(), &clip);
        assert_eq!(r["verdict"], "no-provenance", "{size}: {r:#}");
        let (w, h) = size.split_once('x').unwrap();
        assert_eq!(r["media"]["width"].to_string(), w, "{size}");
        assert_eq!(r["media"]["height"].to_string(), h, "{size}");
        let video = &r["watermark"]["video"];
        assert_eq!(video["detected"], false, "{size}");
        assert!(
            video["frames_analysed"].as_u64().unwrap() >= 200,
            "{size}: {video}"
        );
        assert!(peak < 1 << 30, "{size}: peak memory {} MB", peak >> 20);
        assert!(seconds < 60.0, "{size}: {seconds:.1} s");
        eprintln!("{size}: {seconds:.2} s, peak {} MB", peak >> 20);
    }
}
