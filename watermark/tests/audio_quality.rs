//! The audio mark is quiet: SNR ≥ 30 dB over the whole sound on the shared music, voice and
//! jingle, no second much louder than that, nothing added to silence; and it is there
//! (detected with its payload) before any attack.

mod audio_common;
use audio_common::*;

#[test]
fn snr_is_at_least_30_db_on_music_voice_and_jingle() {
    let dir = Scratch::new("snr");
    let k = key(1, 3);
    let inputs = [
        ("music (12 s, 44.1 kHz stereo)", music(&dir)),
        ("voice (14 s, 48 kHz mono)", voice(&dir)),
        (
            "jingle (5 s, 44.1 kHz stereo)",
            shared("audio/startup3.wav"),
        ),
    ];
    for (i, (name, src)) in inputs.iter().enumerate() {
        let m = mark(&dir, src, &k, &format!("marked-{i}.wav"));
        let snr = m.snr_db();
        // The quietest-relative second (seconds of silence, where nothing is added, skipped).
        let per_s = m.rate as usize * m.channels as usize;
        let worst = m
            .original
            .chunks(per_s)
            .zip(m.marked.chunks(per_s))
            .filter_map(|(a, b)| {
                let sig: f64 = a.iter().map(|v| (*v as f64).powi(2)).sum();
                let err: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (*y as f64 - *x as f64).powi(2))
                    .sum();
                (err > 0.0).then(|| 10.0 * (sig / err).log10())
            })
            .fold(f64::INFINITY, f64::min);
        let r = detect(&m.path, std::slice::from_ref(&k));
        println!(
            "{name}: SNR {snr:.1} dB (worst second {worst:.1} dB); embedding {:.1} ms per second of sound; unattacked z {:.1}, p {:.1e}, coded BER {:.3}",
            m.embed_s * 1000.0 / m.seconds,
            r.score,
            r.p_value,
            r.bit_error_estimate.unwrap_or(1.0)
        );
        assert!(snr >= 30.0, "{name}: SNR {snr:.2} dB");
        assert!(worst >= 24.0, "{name}: a second at {worst:.2} dB");
        assert!(r.detected, "{name}: {r:?}");
        assert_eq!(r.payload, Some(payload(&k)), "{name}: {r:?}");
    }
}

#[test]
fn digital_silence_between_words_stays_silent() {
    let dir = Scratch::new("silence");
    let k = key(2, 4);
    // One word, one second of digital silence, another word.
    let out = dir.join("gap.wav");
    let a = shared("audio/Front_Center.wav");
    let b = shared("audio/Rear_Center.wav");
    ffmpeg(&[
        "-i",
        s(&a),
        "-f",
        "lavfi",
        "-t",
        "1",
        "-i",
        "anullsrc=r=48000:cl=mono",
        "-i",
        s(&b),
        "-filter_complex",
        "[0:a][1:a][2:a]concat=n=3:v=0:a=1",
        "-c:a",
        "pcm_f32le",
        s(&out),
    ]);
    let m = mark(&dir, &out, &k, "gap-marked.wav");
    // The silent second sits between 1.4 s and 2.4 s; leave 0.1 s for the words' edges
    // (the mark follows the sound's own spectrum, so it fades with it).
    let (lo, hi) = (
        (1.55 * m.rate as f64) as usize,
        (2.25 * m.rate as f64) as usize,
    );
    assert!(m.original[lo..hi].iter().all(|v| *v == 0.0));
    let loudest = m.marked[lo..hi].iter().fold(0f32, |p, v| p.max(v.abs()));
    assert!(loudest < 1e-5, "silence got {loudest}");
}
