//! A long file whose last 30 s are a sealed clip: `hallmark verify` finds the picture's and
//! the sound's mark (the segment search covers the whole file, not its first 300 s), its
//! picture timeline covers every second, and the scan saw the whole file.
//!
//! The file: 6 min of other footage (the shared bikes clip looped, under the shared music)
//! then a 30 s clip of Big Buck Bunny sealed by `hallmark seal`, concatenated and re-encoded
//! by the ffmpeg CLI (H.264 CRF 23, AAC 128 kbit/s) at 640×360, 25 fps, without the manifest
//! (a re-encode drops it), as a platform might post a compilation.

mod common;

use common::*;

/// Seconds of other footage before the sealed clip.
const OTHER_S: f64 = 360.0;
/// Seconds of the sealed clip.
const SEALED_S: f64 = 30.0;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_sealed_clip_at_the_end_of_a_long_file_is_found_and_the_whole_file_covered() {
    let started = std::time::Instant::now();
    let home = Home::with_keys("Long File Newsroom");
    // 30 s of Big Buck Bunny at 640×360 with stereo sound, sealed.
    let source = scratch().join("bbb-30s.mp4");
    ffmpeg(&[
        "-stream_loop",
        "-1",
        "-t",
        "30",
        "-i",
        s(&media("video/bigbuckbunny.mp4")),
        "-vf",
        "scale=640:360",
        "-ac",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "18",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        s(&source),
    ]);
    let sealed = home.seal(&source, "sealed-30s.mp4", &["--preset", "ultrafast"]);
    let clip_id = clip_id_of(&sealed, home.path());

    // 6 min of the bikes footage (looped, stretched to 640×360) under the music (looped),
    // then the sealed clip; one re-encode of it all.
    let long = scratch().join("long.mp4");
    let other_s = OTHER_S.to_string();
    let graph = "[0:v]scale=640:360,setsar=1,fps=25[v0];\
                 [1:a]aresample=48000,aformat=channel_layouts=stereo[a0];\
                 [2:v]scale=640:360,setsar=1,fps=25[v1];\
                 [2:a]aresample=48000,aformat=channel_layouts=stereo[a1];\
                 [v0][a0][v1][a1]concat=n=2:v=1:a=1[v][a]";
    ffmpeg(&[
        "-stream_loop",
        "-1",
        "-t",
        &other_s,
        "-i",
        s(&media("video/bikes.mp4")),
        "-stream_loop",
        "-1",
        "-t",
        &other_s,
        "-i",
        s(&media("audio/music-introzik.ogg")),
        "-i",
        s(&sealed),
        "-filter_complex",
        graph,
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "23",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        s(&long),
    ]);
    let made_s = started.elapsed().as_secs_f64();

    let t = std::time::Instant::now();
    let (_, report) = verify_json(home.path(), &long, &["--no-store"]);
    let verify_s = t.elapsed().as_secs_f64();
    let video = &report["watermark"]["video"];
    let audio = &report["watermark"]["audio"];
    let duration = report["media"]["duration_s"].as_f64().expect("duration");
    println!(
        "inputs made in {made_s:.0} s, verify {verify_s:.0} s; {duration:.1} s file: \
         picture p {} payload {}, sound p {} payload {}; coverage {}",
        video["p_value"], video["payload"], audio["p_value"], audio["payload"], report["coverage"]
    );
    assert!(
        (duration - OTHER_S - SEALED_S).abs() < 1.0,
        "{duration} s: {report}"
    );
    // No manifest (the re-encode dropped it): the marks speak.
    assert_eq!(report["c2pa"]["present"], false, "{report}");
    assert_eq!(video["detected"], true, "{report}");
    assert_eq!(
        video["payload"].as_str(),
        Some(clip_id.as_str()),
        "{report}"
    );
    assert_eq!(audio["detected"], true, "{report}");
    assert_eq!(
        audio["payload"].as_str(),
        Some(clip_id.as_str()),
        "{report}"
    );

    // The picture's timeline: one bin per second (≤ 512 s), every second of the file
    // analysed, the last 30 s included (before: nothing after 300 s).
    let timeline = video["timeline"].as_array().expect("timeline");
    // (Up to the second of the last frame: the file's duration may end with sound.)
    assert!(
        timeline.len() >= duration.floor() as usize && timeline.len() <= duration.ceil() as usize,
        "{} bins for {duration} s: {report}",
        timeline.len()
    );
    assert!(timeline.iter().all(|p| p.is_number()), "{report}");
    // The sealed seconds stand out at the clip's registration; the other footage does not.
    let strong = |from: f64, to: f64| {
        timeline[from as usize..to as usize]
            .iter()
            .filter(|p| p.as_f64().unwrap() < 1e-3)
            .count()
    };
    let (sealed_strong, other_strong) = (
        strong(OTHER_S + 1.0, duration.floor()),
        strong(0.0, OTHER_S - 1.0),
    );
    assert!(
        sealed_strong >= 20 && other_strong <= 3,
        "{sealed_strong} / {other_strong}: {report}"
    );

    // The scan decoded the whole file without a loss.
    let coverage = &report["coverage"];
    assert_eq!(coverage["decode_errors"], 0, "{report}");
    let seen = coverage["picture_seconds_analysed"]
        .as_f64()
        .expect("picture coverage");
    assert!(seen >= duration.floor(), "{seen} of {duration} s: {report}");
    let heard = coverage["sound_seconds_analysed"]
        .as_f64()
        .expect("sound coverage");
    assert!(heard >= duration - 0.5, "{heard} of {duration} s: {report}");
    assert!(coverage["decoding_stopped"].is_null(), "{report}");
}
