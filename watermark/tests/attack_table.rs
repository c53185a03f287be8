//! Real-codec attack table (slow: ~1 min; run with `--ignored --nocapture`). Prints the
//! numbers in README.md; asserts only that nothing panics.

mod common;
use common::*;
use hallmark_watermark::*;

#[test]
#[ignore]
fn real_codec_attack_table() {
    let frames = decode(&shared("video/bigbuckbunny.mp4"), 75);
    let k = key(1, 3);
    let mut emb = VideoEmbedder::new(&k, payload(&k), DEFAULT_STRENGTH);
    let marked: Vec<_> = frames
        .iter()
        .map(|f| {
            let mut m = f.clone();
            emb.embed(&mut m);
            m
        })
        .collect();
    let x = |crf: &'static str| vec!["-c:v", "libx264", "-preset", "veryfast", "-crf", crf];
    let codecs: Vec<(&str, Vec<&str>, &str)> = vec![
        ("H.264 CRF 23", x("23"), "mp4"),
        ("H.264 CRF 30", x("30"), "mp4"),
        ("H.264 CRF 35", x("35"), "mp4"),
        (
            "H.265 CRF 28",
            vec![
                "-c:v",
                "libx265",
                "-crf",
                "28",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error",
            ],
            "mp4",
        ),
        (
            "VP9 1 Mbit/s",
            vec![
                "-c:v",
                "libvpx-vp9",
                "-b:v",
                "1M",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ],
            "webm",
        ),
        (
            "360p + CRF 30",
            vec![
                "-vf",
                "scale=640:360",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "30",
            ],
            "mp4",
        ),
        (
            "crop 75% + CRF 30 + darker",
            vec![
                "-vf",
                "crop=iw*0.866:ih*0.866:iw*0.1:ih*0.04,scale=1280:720,eq=brightness=-0.06",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "30",
            ],
            "mp4",
        ),
    ];
    for (name, args, ext) in &codecs {
        let dec = ffmpeg_round_trip(&marked, 25.0, args, ext);
        let unmarked = ffmpeg_round_trip(&frames, 25.0, args, ext);
        let ps: f64 = dec
            .iter()
            .zip(&unmarked)
            .map(|(a, b)| psnr(&a.planes[0], &b.planes[0]))
            .sum::<f64>()
            / dec.len() as f64;
        let vs_source = |v: &[hallmark_media::VideoFrame]| -> f64 {
            if v[0].width != frames[0].width || v[0].height != frames[0].height {
                return f64::NAN;
            }
            v.iter()
                .zip(&frames)
                .map(|(a, b)| psnr(&a.planes[0], &b.planes[0]))
                .sum::<f64>()
                / v.len() as f64
        };
        let (own, marked_own) = (vs_source(&unmarked), vs_source(&dec));
        let mut d = VideoDetector::new(std::slice::from_ref(&k));
        let mut d1 = VideoDetector::new(std::slice::from_ref(&k));
        let mut du = VideoDetector::new(std::slice::from_ref(&k));
        for (i, f) in dec.iter().enumerate() {
            d.add_frame(f);
            if i < 25 {
                d1.add_frame(f);
            }
        }
        for f in &unmarked {
            du.add_frame(f);
        }
        let (r, r1, ru) = (d.result(), d1.result(), du.result());
        println!(
            "| {name} | {ps:.1} | {own:.1} | {marked_own:.1} | {:.1} | {:.1e} | {} | {:.3} | {:.1} | {:.1e} | {} | {:.1e} |",
            r.score,
            r.p_value,
            r.payload == Some(payload(&k)),
            r.bit_error_estimate.unwrap_or(f64::NAN),
            r1.score,
            r1.p_value,
            r1.payload == Some(payload(&k)),
            ru.p_value,
        );
    }
}
