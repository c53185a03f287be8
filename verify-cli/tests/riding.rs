//! A mark that rides the camera (issue 13, point 5: the seal's cost at the same preset and
//! CRF): on a camera pan the sealed file is near the plain encode's size — a mark that stays
//! put was coded again in every predicted frame (4.1× the plain bytes on this clip before) —
//! and the verifier follows the motion to find it after a re-encode; the same re-encode of
//! the unsealed pan shows no mark.

mod common;

use common::*;

/// Bytes of the video stream's packets.
fn video_bytes(file: &std::path::Path) -> u64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=size", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {file:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<u64>().ok())
        .sum()
}

/// The shared photograph `photo` at twice the width `w`, panned across and down (a width
/// every 8 s) in a `w × h` window for `seconds` at 30 fps, nearly lossless: a camera move over
/// a still scene.
fn photo_pan(photo: &str, (w, h): (u32, u32), seconds: u32, name: &str) -> std::path::PathBuf {
    let pan = scratch().join(name);
    let vf = format!(
        "scale={}:-2,crop={w}:{h}:x='(iw-ow)*t/8':y='(ih-oh)*t/8',format=yuv420p",
        2 * w
    );
    let (photo, seconds) = (media(photo), seconds.to_string());
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        "30",
        "-i",
        photo.to_str().unwrap(),
        "-t",
        &seconds,
        "-vf",
        &vf,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "12",
        pan.to_str().unwrap(),
    ]);
    pan
}

/// The clip id the sealed file's picture mark carries (16 hex digits), as `verify` reads it.
fn sealed_clip_id(home: &Home, sealed: &std::path::Path) -> String {
    let (_, r) = verify_json(home.path(), sealed, &["--no-store"]);
    let id = r["watermark"]["video"]["payload"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(id.len(), 16, "{r:#}");
    id
}

#[test]
fn a_pan_is_sealed_near_the_plain_size_and_found_riding_after_a_re_encode() {
    // A photograph (not one the mark was tuned on) panned 80 px/s across and 62 px/s down,
    // 640×360, 3 s at 30 fps: a camera move over a still scene, as much AI video moves.
    let pan = photo_pan("images/rocket.jpg", (640, 360), 3, "riding-pan.mp4");
    let home = Home::with_keys("Riding Test");
    let sealed = home.seal(
        &pan,
        "riding-sealed.mp4",
        &["--crf", "18", "--preset", "fast", "--no-store"],
    );
    let plain = scratch().join("riding-plain.mp4");
    ffmpeg(&[
        "-i",
        pan.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-preset",
        "fast",
        "-crf",
        "18",
        plain.to_str().unwrap(),
    ]);
    // Measured 1.33× (the mark that stays put: 4.15×; riding with the explained share
    // judged from 1 at the start, its first 0.2 s unridden: 1.57×).
    let ratio = video_bytes(&sealed) as f64 / video_bytes(&plain) as f64;
    assert!(
        ratio < 1.5,
        "sealed / plain video bytes at CRF 18: {ratio:.3}"
    );

    // (Its manifest names the clip: its first key frame, where the mark rests, proves it.)
    let id = sealed_clip_id(&home, &sealed);

    // A platform's re-encode: no manifest, x264 veryfast CRF 26.
    let repost =
        |src: &std::path::Path, name: &str| edited_with(src, "null", name, &["-crf", "26"]);
    let (_, r) = verify_json(
        home.path(),
        &repost(&sealed, "riding-repost.mp4"),
        &["--no-store"],
    );
    let v = &r["watermark"]["video"];
    assert_eq!(v["detected"], true, "{r:#}");
    assert_eq!(v["payload"], id.as_str(), "{r:#}");
    assert_eq!(v["riding"], true, "{r:#}");
    let (_, r) = verify_json(
        home.path(),
        &repost(&pan, "riding-unsealed-repost.mp4"),
        &["--no-store"],
    );
    assert_eq!(r["watermark"]["video"]["detected"], false, "{r:#}");
}

#[test]
fn a_pan_filmed_at_a_slight_angle_is_found_riding() {
    // A camera pan over a star field (dark sky, points: content that, riding with the mark,
    // sums as coherently as it does), 1280×720, 4 s, then filmed off a screen at a slight
    // angle: the bench's screen recording's keystone, and one half as strong again. The
    // riding sums' mark is then on a lattice sheared by ≈ 1–3°, which the lattice stage
    // registered only where it happened to be among the 8 general candidates (with 8, two
    // runs of this test failed, and by hand one key of four lost both strengths, another the
    // first); with 32 it is among them.
    let pan = photo_pan(
        "images/hubble_deep_field.jpg",
        (1280, 720),
        4,
        "slant-pan.mp4",
    );
    let home = Home::with_keys("Slant Test");
    let sealed = home.seal(
        &pan,
        "slant-sealed.mp4",
        &["--crf", "18", "--preset", "fast", "--no-store"],
    );
    let id = sealed_clip_id(&home, &sealed);
    // Corners moved by (3 %, 2 %), (2 %, 0), (0, 0), (4 %, 3 %) of the frame, times `k`.
    let keystone = |k: f64| {
        format!(
            "perspective=x0=W*{a}:y0=H*{b}:x1=W*(1-{b}):y1=0:x2=0:y2=H:x3=W*(1-{c}):y3=H*(1-{a})",
            a = 0.03 * k,
            b = 0.02 * k,
            c = 0.04 * k
        )
    };
    for k in [0.5, 0.75] {
        let f = edited_with(
            &sealed,
            &keystone(k),
            &format!("slant-{k}.mp4"),
            &["-crf", "23"],
        );
        let (_, r) = verify_json(home.path(), &f, &["--no-store"]);
        let v = &r["watermark"]["video"];
        assert_eq!(v["detected"], true, "keystone × {k}: {r:#}");
        assert_eq!(v["payload"], id.as_str(), "keystone × {k}: {r:#}");
        assert_eq!(v["riding"], true, "keystone × {k}: {r:#}");
    }
    let f = edited_with(&pan, &keystone(0.5), "slant-unsealed.mp4", &["-crf", "23"]);
    let (_, r) = verify_json(home.path(), &f, &["--no-store"]);
    assert_eq!(r["watermark"]["video"]["detected"], false, "{r:#}");
}
