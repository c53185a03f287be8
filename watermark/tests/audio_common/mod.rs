//! Helpers for the audio watermark tests: real sound from `../shared/media`, made into test
//! inputs and attacked with the real `ffmpeg` CLI.
#![allow(dead_code)]

use hallmark_media::{AudioChunk, Decoder, MediaFrame, PixelLayout};
use hallmark_watermark::{AudioDetection, AudioDetector, AudioEmbedder, Payload, WatermarkKey};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn shared(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel);
    assert!(p.exists(), "missing shared media {}", p.display());
    p
}

pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg CLI (installed by scripts/setup)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch directory for one test, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("hallmark-audio-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 12 s of the shared music (44.1 kHz stereo), from 60 s in, as 32-bit float WAV.
pub fn music(dir: &Scratch) -> PathBuf {
    music_excerpt(dir, "music.wav", (60, 12), "pcm_f32le")
}

/// `seconds` of the shared music from `from` s in, as WAV with the PCM `codec`, into `dir`.
pub fn music_excerpt(
    dir: &Scratch,
    name: &str,
    (from, seconds): (u32, u32),
    codec: &str,
) -> PathBuf {
    let out = dir.join(name);
    let src = shared("audio/music-introzik.ogg");
    let (from, seconds) = (from.to_string(), seconds.to_string());
    ffmpeg(&[
        "-ss",
        &from,
        "-t",
        &seconds,
        "-i",
        s(&src),
        "-c:a",
        codec,
        s(&out),
    ]);
    out
}

/// The four shared voice recordings (48 kHz mono) looped twice with the first one at each
/// end: ≈ 14 s of speech with pauses, as 32-bit float WAV.
pub fn voice(dir: &Scratch) -> PathBuf {
    {
        let out = dir.join("voice.wav");
        let names = [
            "Front_Center",
            "Front_Left",
            "Rear_Center",
            "Side_Left",
            "Front_Center",
        ];
        let inputs: Vec<PathBuf> = (0..2)
            .flat_map(|_| names.iter().map(|n| shared(&format!("audio/{n}.wav"))))
            .collect();
        let mut args: Vec<String> = Vec::new();
        for i in &inputs {
            args.push("-i".into());
            args.push(s(i).into());
        }
        args.push("-filter_complex".into());
        args.push(format!("concat=n={}:v=0:a=1", inputs.len()));
        args.extend(["-c:a".into(), "pcm_f32le".into(), s(&out).into()]);
        ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        out
    }
}

pub fn decode(path: &Path) -> Vec<AudioChunk> {
    let mut d = Decoder::open(path, PixelLayout::Yuv420p).expect("open");
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().expect("decode") {
        if let MediaFrame::Audio(a) = f {
            out.push(a);
        }
    }
    assert!(!out.is_empty(), "no sound in {}", path.display());
    out
}

/// Interleaved samples, rate, channels.
pub fn samples(chunks: &[AudioChunk]) -> (Vec<f32>, u32, u16) {
    let v = chunks
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect();
    (v, chunks[0].sample_rate, chunks[0].channels)
}

pub fn write_wav(path: &Path, rate: u32, channels: u16, x: &[f32]) {
    let data = (x.len() * 4) as u32;
    let mut b = Vec::with_capacity(44 + x.len() * 4);
    b.extend(b"RIFF");
    b.extend((36 + data).to_le_bytes());
    b.extend(b"WAVEfmt ");
    b.extend(16u32.to_le_bytes());
    b.extend(3u16.to_le_bytes()); // IEEE float
    b.extend(channels.to_le_bytes());
    b.extend(rate.to_le_bytes());
    b.extend((rate * channels as u32 * 4).to_le_bytes());
    b.extend((channels * 4).to_le_bytes());
    b.extend(32u16.to_le_bytes());
    b.extend(b"data");
    b.extend(data.to_le_bytes());
    for v in x {
        b.extend(v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

pub fn key(seed: u8, id: u8) -> WatermarkKey {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    WatermarkKey::from_secret(s, id)
}

pub fn payload(k: &WatermarkKey) -> Payload {
    Payload {
        clip_id: 0x0123_4567_89ab_cdef,
        key_id: k.key_id(),
    }
}

/// What marking a file did.
pub struct Marked {
    pub path: PathBuf,
    pub original: Vec<f32>,
    pub marked: Vec<f32>,
    pub rate: u32,
    pub channels: u16,
    /// Seconds of sound, and seconds spent embedding.
    pub seconds: f64,
    pub embed_s: f64,
}

impl Marked {
    /// Signal-to-watermark ratio over every sample of every channel, in dB.
    pub fn snr_db(&self) -> f64 {
        let (mut sig, mut err) = (0f64, 0f64);
        for (a, b) in self.original.iter().zip(&self.marked) {
            sig += (*a as f64).powi(2);
            err += (*b as f64 - *a as f64).powi(2);
        }
        10.0 * (sig / err).log10()
    }
}

/// Marks `src` chunk by chunk (as the decoder hands them out) and writes it as 32-bit float
/// WAV into `dir`.
pub fn mark(dir: &Scratch, src: &Path, k: &WatermarkKey, name: &str) -> Marked {
    mark_with(dir, src, k, payload(k), name)
}

/// [`mark`] with a payload of one's own.
pub fn mark_with(dir: &Scratch, src: &Path, k: &WatermarkKey, p: Payload, name: &str) -> Marked {
    let chunks = decode(src);
    let (original, rate, channels) = samples(&chunks);
    let mut e = AudioEmbedder::new(k, p, 0.0);
    let started = std::time::Instant::now();
    let mut marked = Vec::with_capacity(original.len());
    for c in chunks {
        for o in e.process(c) {
            marked.extend(o.samples);
        }
    }
    for o in e.finish() {
        marked.extend(o.samples);
    }
    let embed_s = started.elapsed().as_secs_f64();
    assert_eq!(marked.len(), original.len());
    let path = dir.join(name);
    write_wav(&path, rate, channels, &marked);
    Marked {
        path,
        seconds: original.len() as f64 / channels as f64 / rate as f64,
        original,
        marked,
        rate,
        channels,
        embed_s,
    }
}

pub fn detect(path: &Path, keys: &[WatermarkKey]) -> AudioDetection {
    let mut d = AudioDetector::new(keys);
    for c in decode(path) {
        d.add_chunk(&c);
    }
    d.result()
}

/// The attacks of the brief, as ffmpeg arguments between input and output:
/// (name, arguments, output extension, payload expected).
pub fn attacks() -> Vec<(&'static str, Vec<&'static str>, &'static str, bool)> {
    vec![
        (
            "AAC 64 kbit/s (.m4a)",
            vec!["-c:a", "aac", "-b:a", "64k"],
            "m4a",
            true,
        ),
        (
            "MP3 64 kbit/s",
            vec!["-c:a", "libmp3lame", "-b:a", "64k"],
            "mp3",
            true,
        ),
        (
            "Opus 32 kbit/s",
            vec!["-c:a", "libopus", "-b:a", "32k"],
            "opus",
            true,
        ),
        ("16 kHz mono", vec!["-ar", "16000", "-ac", "1"], "wav", true),
        (
            "volume +6 dB (16-bit, clips)",
            vec!["-af", "volume=6dB", "-c:a", "pcm_s16le"],
            "wav",
            true,
        ),
        ("volume -6 dB", vec!["-af", "volume=-6dB"], "wav", true),
        ("first 1.37 s trimmed", vec!["-ss", "1.37"], "wav", true),
        (
            "3 s excerpt (2.31-5.31 s)",
            vec!["-ss", "2.31", "-t", "3"],
            "wav",
            false,
        ),
    ]
}

/// Applies one attack to `input`, writing `name.ext` into `dir`.
pub fn attack(dir: &Scratch, input: &Path, args: &[&str], name: &str, ext: &str) -> PathBuf {
    let out = dir.join(&format!("{name}.{ext}"));
    let mut full = vec!["-i", s(input)];
    full.extend_from_slice(args);
    full.push(s(&out));
    ffmpeg(&full);
    out
}

/// The checks every attacked sound shares: the payload when it is wanted, never a wrong one,
/// and the unmarked copy through the same attack never detected.
pub fn payload_and_unmarked(
    what: &str,
    r: &AudioDetection,
    ru: &AudioDetection,
    exact: bool,
    want_payload: bool,
    failures: &mut Vec<String>,
) {
    if want_payload && !exact {
        failures.push(format!("{what}: payload {:?}", r.payload));
    }
    if r.payload.is_some() && !exact {
        failures.push(format!("{what}: WRONG payload {:?}", r.payload));
    }
    if ru.detected || ru.p_value <= 1e-6 || ru.payload.is_some() {
        failures.push(format!("{what}: unmarked copy detected ({ru:?})"));
    }
}
