//! `seal --not-ai` refuses an input whose own provenance declares it AI-generated: its C2PA
//! manifest (a trained-algorithmic-media `digitalSourceType` in an action, or hallmark's
//! assertion with `ai_generated: true`), or hallmark's watermark with the AI bit (the mark
//! is looked for with every watermark key the home knows). Exit 2, a clear error, no output.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{listing, scratch, short_clip, strip_manifest, Home};
use serde_json::json;

fn out_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `seal INPUT -o DIR/out.mp4 --not-ai` and returns (exit code, stderr).
fn seal_not_ai(home: &Home, input: &Path, dir: &Path) -> (Option<i32>, String) {
    let out = dir.join("out.mp4");
    let r = home.run(&[
        "seal",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--not-ai",
        "--preset",
        "ultrafast",
    ]);
    (
        r.status.code(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

fn assert_refused(code: Option<i32>, stderr: &str, dir: &Path, why: &str) {
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot be sealed as not AI-generated"),
        "{stderr}"
    );
    assert!(stderr.contains(why), "{stderr}");
    assert!(stderr.contains("no output was written"), "{stderr}");
    assert!(listing(dir).is_empty(), "left {:?}", listing(dir));
}

/// The short clip sealed `--ai` (the default) by one home.
fn sealed_ai() -> &'static (Home, PathBuf) {
    static SEALED: OnceLock<(Home, PathBuf)> = OnceLock::new();
    SEALED.get_or_init(|| {
        let home = Home::with_keys("AI Studio");
        let out = home.seal(&short_clip(), "ai.mp4", &["--preset", "ultrafast"]);
        (home, out)
    })
}

/// A short test pattern signed by the SDK with `action` declaring `source_type`, and no
/// hallmark assertion or mark.
fn signed_by_someone_else(name: &str, source_type: &str) -> PathBuf {
    let src = scratch().join(format!("{name}-src.mp4"));
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10:duration=0.5",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        src.to_str().unwrap(),
    ]);
    let mut builder = c2pa::Builder::from_context(c2pa::Context::new())
        .with_definition(json!({
            "title": name,
            "claim_generator_info": [{"name": "another-tool", "version": "1"}],
        }))
        .unwrap();
    builder
        .add_action(json!({"action": "c2pa.created", "digitalSourceType": source_type}))
        .unwrap();
    let signer = c2pa::EphemeralSigner::new("another tool").unwrap();
    let out = scratch().join(format!("{name}.mp4"));
    let mut src = std::fs::File::open(&src).unwrap();
    let mut dst = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&out)
        .unwrap();
    builder
        .sign(&signer, "video/mp4", &mut src, &mut dst)
        .unwrap();
    out
}

const IPTC: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/";

#[test]
fn input_whose_manifest_declares_ai_is_refused() {
    // Another home, which does not know the first one's watermark key: only the manifest
    // can tell.
    let (_, ai) = sealed_ai();
    let other = Home::with_keys("Newsroom");
    let dir = out_dir("manifest-ai");
    let (code, stderr) = seal_not_ai(&other, ai, &dir);
    assert_refused(
        code,
        &stderr,
        &dir,
        "C2PA manifest declares it AI-generated",
    );
}

#[test]
fn input_from_another_tool_declaring_trained_or_composite_ai_is_refused() {
    let home = Home::with_keys("Newsroom");
    for (name, kind) in [
        ("trained", "trainedAlgorithmicMedia"),
        ("composite", "compositeWithTrainedAlgorithmicMedia"),
    ] {
        let input = signed_by_someone_else(name, &format!("{IPTC}{kind}"));
        let dir = out_dir(&format!("other-tool-{name}"));
        let (code, stderr) = seal_not_ai(&home, &input, &dir);
        assert_refused(code, &stderr, &dir, kind);
    }
}

#[test]
fn input_from_another_tool_declaring_a_capture_is_sealed() {
    let home = Home::with_keys("Newsroom");
    let input = signed_by_someone_else("capture", &format!("{IPTC}digitalCapture"));
    let dir = out_dir("other-tool-capture");
    let (code, stderr) = seal_not_ai(&home, &input, &dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(listing(&dir), ["out.mp4"]);
}

#[test]
fn stripped_input_whose_mark_declares_ai_is_refused() {
    // The manifest is gone; the mark (AI bit set) is still in picture and sound, and this
    // home knows the key that made it.
    let (home, ai) = sealed_ai();
    let stripped = strip_manifest(ai, "ai-stripped.mp4");
    let dir = out_dir("mark-ai");
    let (code, stderr) = seal_not_ai(home, &stripped, &dir);
    assert_refused(code, &stderr, &dir, "watermark");
}

#[test]
fn stripped_input_whose_mark_declares_ai_is_refused_by_a_home_listing_that_key() {
    // A second home that lists the first one's watermark key in its config.
    let (first, ai) = sealed_ai();
    let stripped = strip_manifest(ai, "ai-stripped-2.mp4");
    let other = Home::with_keys("Partner");
    // Before it lists the key, this home cannot see the mark, and seals.
    let dir = out_dir("mark-ai-partner-unknown");
    let (code, stderr) = seal_not_ai(&other, &stripped, &dir);
    assert_eq!(code, Some(0), "{stderr}");
    let config = other.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let key = first.path().join("keys/watermark.key");
    let others: String = text
        .lines()
        .filter(|l| !l.starts_with("watermark_keys"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &config,
        format!("watermark_keys = [{:?}]\n{others}", key.to_str().unwrap()),
    )
    .unwrap();
    let dir = out_dir("mark-ai-partner");
    let (code, stderr) = seal_not_ai(&other, &stripped, &dir);
    assert_refused(code, &stderr, &dir, "watermark");
}

#[test]
fn stripped_input_whose_mark_declares_not_ai_is_sealed() {
    // Control for the mark check: the same footage sealed --not-ai, stripped, then sealed
    // --not-ai again by the same home: its mark is found but says not AI.
    let home = Home::with_keys("Camera Crew");
    let not_ai = home.seal(
        &short_clip(),
        "not-ai.mp4",
        &["--not-ai", "--preset", "ultrafast"],
    );
    let stripped = strip_manifest(&not_ai, "not-ai-stripped.mp4");
    let dir = out_dir("mark-not-ai");
    let (code, stderr) = seal_not_ai(&home, &stripped, &dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(listing(&dir), ["out.mp4"]);
}

#[test]
fn sealing_ai_input_as_ai_is_allowed() {
    let (home, ai) = sealed_ai();
    let out = home.seal(ai, "ai-again.mp4", &["--ai", "--preset", "ultrafast"]);
    assert!(out.exists());
}
