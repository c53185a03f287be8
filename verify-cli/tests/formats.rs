//! Sealing works for audio and stills too, and the result verifies.

mod common;

use common::*;

fn seal_and_verify(input: &std::path::Path, out_name: &str) -> serde_json::Value {
    static HOME: std::sync::OnceLock<Home> = std::sync::OnceLock::new();
    let home = HOME.get_or_init(|| Home::with_keys("Format Lab"));
    let out = scratch().join(out_name);
    let r = home.run(&["seal", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(
        r.status.success(),
        "seal {out_name}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let (code, report) = verify_json(home.path(), &out, &[]);
    assert_eq!(
        (code, report["verdict"].as_str().unwrap()),
        (0, "verified"),
        "{out_name}: {report:#}"
    );
    report
}

#[test]
fn wav_voice_to_wav() {
    let r = seal_and_verify(&media("audio/Front_Center.wav"), "voice.wav");
    assert_eq!(r["media"]["kind"], "audio");
    assert_eq!(r["media"]["sample_rate"], 48000);
}

#[test]
fn ogg_music_to_m4a_and_mp3() {
    let excerpt = scratch().join("music-6s.ogg");
    let src = media("audio/music-introzik.ogg");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-t",
        "6",
        "-c:a",
        "libvorbis",
        excerpt.to_str().unwrap(),
    ]);
    let r = seal_and_verify(&excerpt, "music.m4a");
    assert_eq!(r["media"]["channels"], 2);
    // The ingredient is an OGG file the C2PA SDK cannot parse: recorded by title and format.
    assert_eq!(r["c2pa"]["ingredients"][0]["title"], "music-6s.ogg");
    let r = seal_and_verify(&excerpt, "music.mp3");
    assert_eq!(r["media"]["sample_rate"], 44100);
}

#[test]
fn png_and_jpeg_stills() {
    let r = seal_and_verify(&media("images/astronaut.png"), "astronaut.png");
    assert_eq!(r["media"]["kind"], "image");
    assert_eq!(r["media"]["width"], 512);
    let r = seal_and_verify(&media("images/rocket.jpg"), "rocket.jpg");
    assert_eq!(r["media"]["width"], 640);
    assert_eq!(r["media"]["height"], 427);
}

#[test]
fn common_containers_are_read_and_sealed_to_mp4() {
    let src = media("video/bikes.mp4");
    let src = src.to_str().unwrap();
    let cases: [(&str, &[&str]); 4] = [
        ("bikes.mkv", &["-c:v", "libx264", "-preset", "ultrafast"]),
        ("bikes.mov", &["-c:v", "libx264", "-preset", "ultrafast"]),
        ("bikes.avi", &["-c:v", "mpeg4", "-q:v", "3"]),
        (
            "bikes.webm",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "1M",
            ],
        ),
    ];
    for (name, codec) in cases {
        let input = scratch().join(name);
        let mut args = vec!["-i", src, "-t", "2"];
        args.extend_from_slice(codec);
        args.push(input.to_str().unwrap());
        ffmpeg(&args);
        let r = seal_and_verify(&input, &format!("{name}.mp4"));
        assert_eq!(
            (r["media"]["width"].as_u64(), r["media"]["height"].as_u64()),
            (Some(640), Some(272)),
            "{name}"
        );
        let duration = r["media"]["duration_s"].as_f64().unwrap();
        assert!((duration - 2.0).abs() < 0.1, "{name}: {duration}");
    }
}
