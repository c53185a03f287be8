//! `hallmark verify --keyframes DIR`: a video's scene-starting key frames as JPEG for
//! reverse image search, named by their time and listed in the report.

mod common;

use common::*;
use std::path::Path;

/// ffprobe's key frame times of the picture (the sync samples).
fn key_frame_times(file: &Path) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
        ])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Two shots at 320×180, a key frame every second: a still photo held for 3 s (its key
/// frames at 1 and 2 s repeat the first), then Big Buck Bunny (moving: every key frame
/// shows something new).
fn two_shots() -> std::path::PathBuf {
    let out = scratch().join("two-shots.mp4");
    ffmpeg(&[
        "-loop",
        "1",
        "-t",
        "3",
        "-i",
        media("images/rocket.jpg").to_str().unwrap(),
        "-t",
        "3",
        "-i",
        media("video/bigbuckbunny.mp4").to_str().unwrap(),
        "-filter_complex",
        "[0:v]scale=320:180,setsar=1,fps=25[a];[1:v]scale=320:180,setsar=1,fps=25[b];[a][b]concat=n=2:v=1[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        out.to_str().unwrap(),
    ]);
    out
}

#[test]
fn key_frames_that_start_a_scene_are_written_named_by_time() {
    let home = Home::empty();
    let clip = two_shots();
    let keys = key_frame_times(&clip);
    assert_eq!(keys.len(), 6, "{keys:?}");
    let dir = tempfile::tempdir().unwrap();
    let frames_dir = dir.path().join("frames");
    let (code, r) = verify_json(
        home.path(),
        &clip,
        &["--keyframes", frames_dir.to_str().unwrap()],
    );
    assert_eq!(
        (code, r["verdict"].as_str()),
        (3, Some("no-provenance")),
        "{r:#}"
    );
    let listed = r["keyframes"].as_array().expect("keyframes listed");
    let times: Vec<f64> = listed
        .iter()
        .map(|k| k["time_s"].as_f64().unwrap())
        .collect();
    // The still's first frame, the cut at 3 s, and the moving shot's key frames; not the
    // still's repeats.
    assert_eq!(times, [0.0, 3.0, 4.0, 5.0], "key frames {keys:?}");
    for k in listed {
        let path = Path::new(k["path"].as_str().unwrap());
        assert!(path.starts_with(&frames_dir), "{}", path.display());
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..3], b"\xff\xd8\xff", "a JPEG: {}", path.display());
        assert_eq!(
            (k["width"].as_u64(), k["height"].as_u64()),
            (Some(320), Some(180))
        );
    }
    let names = listing(&frames_dir);
    assert_eq!(names.len(), listed.len());
    assert!(
        names.contains(&"two-shots-t00h00m03.000s.jpg".to_string()),
        "{names:?}"
    );
    // The cut's frame is the second shot's picture (ffmpeg decodes the same second).
    let reference = dir.path().join("ref.jpg");
    ffmpeg(&[
        "-ss",
        "3",
        "-i",
        clip.to_str().unwrap(),
        "-frames:v",
        "1",
        reference.to_str().unwrap(),
    ]);
    let ours = frames_dir.join("two-shots-t00h00m03.000s.jpg");
    let psnr = psnr(&ours, &reference);
    assert!(psnr > 30.0, "PSNR {psnr}");

    // Without the flag: no field at all (the schema is unchanged for those who did not ask).
    let (_, r) = verify_json(home.path(), &clip, &[]);
    assert!(r.get("keyframes").is_none(), "{r:#}");
    // A still writes nothing and says so with an empty list.
    let (_, r) = verify_json(
        home.path(),
        &media("images/rocket.jpg"),
        &["--keyframes", frames_dir.to_str().unwrap()],
    );
    assert!(r.get("keyframes").is_none() || r["keyframes"] == serde_json::json!([]));
}

/// PSNR of two pictures of the same size, by ffmpeg's psnr filter.
fn psnr(a: &Path, b: &Path) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args(["-lavfi", "psnr", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.split("average:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}
