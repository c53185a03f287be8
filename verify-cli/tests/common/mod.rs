//! Helpers shared by the CLI tests: run the real `hallmark` binary, make inputs with the real
//! `ffmpeg` CLI from `../shared/media/`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use hallmark_media::{Decoder, EncodeSettings, Encoder, MediaFrame, OutputFormat, PixelLayout};
use hallmark_watermark::{Payload, VideoEmbedder, DEFAULT_STRENGTH};

pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

pub fn media(rel: &str) -> PathBuf {
    let p = shared().join("media").join(rel);
    assert!(p.exists(), "missing shared media {}", p.display());
    p
}

pub fn fixture(name: &str) -> PathBuf {
    let p = shared().join("fixtures/c2pa").join(name);
    assert!(p.exists(), "missing shared fixture {}", p.display());
    p
}

pub fn hallmark(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("HALLMARK_HOME")
        .output()
        .expect("run hallmark")
}

pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI (installed by scripts/setup)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Scratch directory kept for the whole test binary (inputs made once, shared by tests).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// 2 s of Big Buck Bunny, 1280x720 H.264 + AAC: real footage with sound.
pub fn short_clip() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| bbb_excerpt("2", None, "bbb-2s.mp4"))
        .clone()
}

/// The first `seconds` of Big Buck Bunny with its sound, through the filter `vf` when given,
/// as `name` in the scratch directory (x264 ultrafast, AAC).
pub fn bbb_excerpt(seconds: &str, vf: Option<&str>, name: &str) -> PathBuf {
    let out = scratch().join(name);
    let src = media("video/bigbuckbunny.mp4");
    let mut args = vec!["-i", src.to_str().unwrap(), "-t", seconds];
    if let Some(vf) = vf {
        args.extend(["-vf", vf]);
    }
    args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// A home dir with keys (keygen run once).
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn with_keys(org: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let out = hallmark(dir.path(), &["keygen", "--org", org]);
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Home { dir }
    }

    pub fn empty() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root_cert(&self) -> PathBuf {
        self.dir.path().join("keys/root-ca.pem")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        hallmark(self.path(), args)
    }

    /// Seals `input` into `scratch()/name` with `extra` options; panics with seal's error
    /// if it fails. Returns the sealed file.
    pub fn seal(&self, input: &Path, name: &str, extra: &[&str]) -> PathBuf {
        let out = scratch().join(name);
        let mut args = vec!["seal", input.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let r = self.run(&args);
        assert!(
            r.status.success(),
            "seal {input:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        out
    }
}

/// A sealed copy of the short clip, made once per test binary with its home.
pub fn sealed_clip() -> &'static (Home, PathBuf) {
    static SEALED: OnceLock<(Home, PathBuf)> = OnceLock::new();
    SEALED.get_or_init(|| {
        let home = Home::with_keys("Test Newsroom");
        let out = home.seal(&short_clip(), "sealed.mp4", &["--preset", "ultrafast"]);
        (home, out)
    })
}

/// Runs `verify --json` on one file and returns (exit code, parsed report).
pub fn verify_json(home: &Path, file: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["verify", "--json"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    let out = hallmark(home, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().unwrap_or_else(|| {
        panic!(
            "no JSON for {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(line).expect("valid JSON"),
    )
}

pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Files left in a directory (to check that nothing partial was written).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A copy with every metadata box stripped, as platforms do (`ffmpeg -map_metadata -1 -c copy`).
pub fn strip_manifest(src: &Path, name: &str) -> PathBuf {
    let out = scratch().join(name);
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-map_metadata",
        "-1",
        "-c",
        "copy",
        out.to_str().unwrap(),
    ]);
    out
}

/// A copy of an MP4 with one byte in the middle of its media data (`mdat`) changed.
pub fn copy_with_flipped_media_byte(src: &Path, name: &str) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    let (start, len) = mdat_range(&bytes);
    bytes[start + len / 2] ^= 0x5a;
    let out = scratch().join(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

/// Offset and size of the top-level `mdat` box of an MP4.
pub fn mdat_range(bytes: &[u8]) -> (usize, usize) {
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let mut size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let mut header = 8;
        if size == 1 {
            size = u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize;
            header = 16;
        } else if size == 0 {
            size = bytes.len() - pos;
        }
        if kind == b"mdat" {
            return (pos + header, size - header);
        }
        pos += size;
    }
    panic!("no mdat box");
}

/// `hallmark serve` on a free loopback port; stopped when dropped (SIGTERM, as a service
/// manager stops it, so that it removes its upload directory; killed after 5 s).
pub struct Server {
    pub child: std::process::Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The verifier home the server runs from (`serve` refuses a signing home).
    pub verifier_home: tempfile::TempDir,
}

/// `hallmark verifier-home` of `home` in a new temp dir (its store: `home`'s).
pub fn verifier_home(home: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = hallmark(home, &["verifier-home", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "verifier-home: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

impl Server {
    pub fn start(home: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(home, extra, &[])
    }

    /// As `start`, with environment variables set for the server (e.g. its `TMPDIR`).
    /// `home` is a signing home: the server runs from a verifier home made from it.
    pub fn start_with_env(home: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Server {
        Server::start_from(verifier_home(home), extra, env)
    }

    /// `serve` run from this verifier home itself.
    pub fn start_from(
        verifier_home: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_hallmark"))
            .arg("--home")
            .arg(verifier_home.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        assert!(addr.starts_with("127.0.0.1:"), "{line}");
        Server {
            child,
            addr,
            verifier_home,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        while started.elapsed().as_secs() < 5 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer read to the end (requests say `Connection: close`).
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

pub fn http(addr: &str, raw: &[u8]) -> Answer {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // The server may answer (413, 503) and close before it has read the whole body.
    let _ = stream.write_all(raw);
    let mut text = Vec::new();
    let _ = stream.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// A multipart POST to /api/verify with one field `file`: (request head, body).
pub fn verify_request(name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "hallmarkBoundary7d3f";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!("POST /api/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n", body.len());
    (head, body)
}

/// Runs `hallmark ARGS` (writing into `out_dir`), presses Ctrl-C once it has started writing
/// its temp file, and checks that it stops with exit 2, says so, and leaves `out_dir` empty.
pub fn assert_ctrl_c_leaves_nothing(home: &Path, args: &[&str], out_dir: &Path) {
    let child = Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .arg("--home")
        .arg(home)
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while listing(out_dir).is_empty() && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !listing(out_dir).is_empty(),
        "{args:?} never started writing its temp file"
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(listing(out_dir).is_empty(), "left {:?}", listing(out_dir));
}

/// The clip id a sealed file's manifest binds (its first soft binding).
pub fn clip_id_of(sealed: &Path, home: &Path) -> String {
    let (_, report) = verify_json(home, sealed, &[]);
    report["c2pa"]["soft_bindings"][0]["values"][0]
        .as_str()
        .expect("soft binding")
        .to_owned()
}

/// The first 4 s of the shared bikes footage marked with `clip_id` under the home's watermark
/// key, as someone copying a mark onto other content would (here with the key itself: the
/// strongest copy there is).
pub fn mark_copied_onto_other_footage(home: &Path, clip_id: &str, name: &str) -> PathBuf {
    let identity = hallmark_signer::load_identity(
        &hallmark_signer::Home::resolve(Some(home.to_path_buf())).unwrap(),
    )
    .unwrap();
    let payload = Payload {
        clip_id: u64::from_str_radix(clip_id, 16).unwrap(),
        key_id: identity.watermark_key().key_id(),
    };
    let footage = media("video/bikes.mp4");
    let mut decoder = Decoder::open(&footage, PixelLayout::Yuv420p).unwrap();
    let out = scratch().join(name);
    let video = decoder.info().video.clone().unwrap();
    let mut encoder = Encoder::create(
        &out,
        OutputFormat::Mp4,
        Some(&video),
        None,
        &EncodeSettings {
            preset: "ultrafast".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let mut embedder = VideoEmbedder::new(identity.watermark_key(), payload, DEFAULT_STRENGTH);
    while let Some(frame) = decoder.next_frame().unwrap() {
        if let MediaFrame::Video(mut frame) = frame {
            if frame.pts_s > 4.0 {
                break;
            }
            embedder.embed(&mut frame);
            encoder.write_video(&frame).unwrap();
        }
    }
    encoder.finish().unwrap();
    out
}

/// `seconds` of the shared video `video` (looped, 640x360) with a minute-in excerpt of the
/// shared music as its sound track, as `name` in the scratch directory: loud, broadband
/// sound whose mark proves itself after sealing.
pub fn footage_with_music(video: &str, seconds: u32, name: &str) -> PathBuf {
    let out = scratch().join(name);
    let video = media(video);
    let music = media("audio/music-introzik.ogg");
    let seconds = seconds.to_string();
    ffmpeg(&[
        "-stream_loop",
        "-1",
        "-i",
        video.to_str().unwrap(),
        "-ss",
        "60",
        "-i",
        music.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-t",
        &seconds,
        "-vf",
        "scale=640:360",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-b:a",
        "160k",
        out.to_str().unwrap(),
    ]);
    out
}

/// c2patool 0.27.22's reading of a file, the outside judge: Some(validation state, active
/// manifest label, failure codes), or None where it finds no manifest ("No claim found").
pub fn c2patool_reading(file: &Path) -> Option<(String, String, Vec<String>)> {
    let out = std::process::Command::new("c2patool")
        .arg(file)
        .output()
        .expect("c2patool (installed by scripts/setup)");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("No claim found"),
            "{}: {stderr}",
            file.display()
        );
        return None;
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failures = r["validation_results"]["activeManifest"]["failure"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect();
    Some((
        r["validation_state"].as_str().unwrap().to_owned(),
        r["active_manifest"].as_str().unwrap().to_owned(),
        failures,
    ))
}

/// `src` signed by c2patool with its built-in test certificate (another C2PA implementation),
/// a "created, digital capture" claim, written to `out`.
pub fn c2patool_sign(src: &Path, out: &Path) {
    let manifest = scratch().join("c2patool-manifest.json");
    std::fs::write(
        &manifest,
        r#"{"claim_generator": "hallmark-tests/1.0", "assertions": [{"label": "c2pa.actions",
            "data": {"actions": [{"action": "c2pa.created", "digitalSourceType":
            "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}]}"#,
    )
    .unwrap();
    let made = std::process::Command::new("c2patool")
        .arg(src)
        .arg("-m")
        .arg(&manifest)
        .arg("-o")
        .arg(out)
        .arg("-f")
        .output()
        .expect("c2patool (installed by scripts/setup)");
    assert!(
        made.status.success(),
        "{}: {}",
        src.display(),
        String::from_utf8_lossy(&made.stderr)
    );
}

/// `filter` applied to `src` and written as a platform reposts it ([`REPOST`]), with more
/// output arguments `x264` after (a later `-crf` wins), into the scratch file `name`.
pub fn edited_with(
    src: &std::path::Path,
    filter: &str,
    name: &str,
    x264: &[&str],
) -> std::path::PathBuf {
    let out = scratch().join(name);
    let mut args = vec!["-i", src.to_str().unwrap(), "-vf", filter];
    args.extend_from_slice(&REPOST);
    args.extend_from_slice(x264);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// How a repost is written: no metadata (the manifest gone), no sound, a platform's fast
/// x264 transcode.
pub const REPOST: [&str; 9] = [
    "-map_metadata",
    "-1",
    "-an",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-crf",
    "23",
];

/// `picture`'s video stream with `sound`'s audio stream, both copied, as `name` in the
/// scratch directory (a dubbed copy).
pub fn remux(picture: &Path, sound: &Path, name: &str) -> PathBuf {
    let out = scratch().join(name);
    ffmpeg(&[
        "-i",
        picture.to_str().unwrap(),
        "-i",
        sound.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c",
        "copy",
        out.to_str().unwrap(),
    ]);
    out
}
