//! Long sound: a marked stretch at the end of a long recording is found (the segment search
//! covers the whole sound, not its first 300 s) and the timeline's bins cover all of it.

mod audio_common;
use audio_common::*;
use hallmark_watermark::AudioDetector;

#[test]
fn a_marked_stretch_at_the_end_of_long_sound_is_found() {
    let dir = Scratch::new("long");
    let k = key(1, 3);
    let music = shared("audio/music-introzik.ogg");
    // 30 s of the shared music (from 60 s in), marked.
    let part = dir.join("part.wav");
    ffmpeg(&[
        "-ss",
        "60",
        "-t",
        "30",
        "-i",
        s(&music),
        "-c:a",
        "pcm_f32le",
        s(&part),
    ]);
    let m = mark(&dir, &part, &k, "marked.wav");
    // The whole unmarked track twice (390 s), then the marked 30 s, as AAC 128 kbit/s.
    let long = dir.join("long.m4a");
    ffmpeg(&[
        "-stream_loop",
        "1",
        "-i",
        s(&music),
        "-i",
        s(&m.path),
        "-filter_complex",
        "[0:a][1:a]concat=n=2:v=0:a=1[a]",
        "-map",
        "[a]",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        s(&long),
    ]);
    let chunks = decode(&long);
    let mut d = AudioDetector::new(std::slice::from_ref(&k));
    for c in &chunks {
        d.add_chunk(c);
    }
    let started = std::time::Instant::now();
    let r = d.result();
    println!(
        "420 s, the last 30 marked: z {:.2} p {:.2e}, {} tests, result() {:.3} s, bins of {} s: {:?}",
        r.score,
        r.p_value,
        r.family_size,
        started.elapsed().as_secs_f64(),
        r.timeline_bin_s,
        r.timeline
    );
    assert!(r.detected, "{r:?}");
    assert_eq!(r.payload, Some(payload(&k)));
    // ≈ 421 s (the track is 195.6 s) in at most 128 bins: 4 s each (2 s would need 211),
    // covering every second.
    let total_s: f64 = chunks
        .iter()
        .map(|c| c.samples.len() as f64 / f64::from(c.channels) / f64::from(c.sample_rate))
        .sum();
    assert_eq!(r.timeline_bin_s, 4.0);
    assert_eq!(
        r.timeline.len(),
        (total_s / 4.0).ceil() as usize,
        "{total_s} s"
    );
    assert!(r.timeline.iter().all(Option::is_some), "{:?}", r.timeline);
    // 421 s: the whole sound, then 3 + 7 + 15 windows down to eighths.
    assert_eq!(r.family_size, 26);
    // Where the mark is: every bin wholly inside the last 30 s stands out, none of those
    // wholly before it does.
    let start_s = total_s - 30.0;
    for (i, p) in r.timeline.iter().enumerate() {
        let (from, to) = (i as f64 * 4.0, (i + 1) as f64 * 4.0);
        let p = p.unwrap();
        if from >= start_s && to <= total_s {
            assert!(p < 1e-3, "marked bin {i}: {:?}", r.timeline);
        } else if to <= start_s {
            assert!(p > 1e-3, "unmarked bin {i}: {:?}", r.timeline);
        }
    }

    // The unmarked track alone, twice over: nothing.
    let mut d = AudioDetector::new(std::slice::from_ref(&k));
    let mut fed_s = 0.0;
    for c in &chunks {
        fed_s += c.samples.len() as f64 / f64::from(c.channels) / f64::from(c.sample_rate);
        if fed_s > start_s {
            break;
        }
        d.add_chunk(c);
    }
    let r = d.result();
    println!(
        "{start_s:.1} s unmarked: z {:.2} p {:.2e}",
        r.score, r.p_value
    );
    assert!(!r.detected && !r.inconclusive, "{r:?}");
}
