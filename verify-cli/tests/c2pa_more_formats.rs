//! The other formats the C2PA world signs — GIF, WebP, TIFF, SVG, JPEG XL — signed by another
//! implementation (c2patool 0.27.22 with its built-in test certificate), as signed and with
//! one byte of the picture changed: hallmark's verdict, validation state, active manifest and
//! failure codes agree with c2patool's, and the picture is searched too (FFmpeg decodes all
//! five here: SVG through librsvg, JPEG XL through libjxl). Unsigned, each is
//! `no-provenance`, never `error`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The photo in format `ext` (FFmpeg's encoders; libjxl's `cjxl` for JPEG XL, which
/// FFmpeg 5.1 decodes but does not write), or a small drawing for SVG.
fn unsigned(ext: &str) -> PathBuf {
    let out = scratch().join(format!("formats-plain.{ext}"));
    if ext == "jxl" {
        let made = Command::new("cjxl")
            .arg(media("images/chelsea.png"))
            .arg(&out)
            .args(["-q", "90"])
            .output()
            .expect("cjxl (libjxl-tools, installed by scripts/setup)");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        return out;
    }
    if ext == "svg" {
        std::fs::write(
            &out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120"><rect width="160" height="120" fill="teal"/><circle cx="80" cy="60" r="40" fill="gold"/></svg>"#,
        )
        .unwrap();
        return out;
    }
    let src = media("images/chelsea.png");
    let mut args = vec!["-i", src.to_str().unwrap()];
    if ext == "webp" {
        args.extend(["-c:v", "libwebp", "-quality", "90"]);
    }
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// `signed` with one byte of its picture changed, away from the manifest: a run of the
/// unsigned file's picture bytes is found in the signed one (c2patool inserts its manifest
/// without re-encoding) and one byte of it flipped; for SVG, the circle's radius.
fn tampered(plain: &Path, signed: &Path, ext: &str) -> PathBuf {
    let mut bytes = std::fs::read(signed).unwrap();
    if ext == "svg" {
        let at = bytes
            .windows(6)
            .position(|w| w == br#"r="40""#)
            .expect("the circle");
        bytes[at + 4] = b'1';
    } else {
        let original = std::fs::read(plain).unwrap();
        let from = original.len() * 3 / 5;
        let run = &original[from..from + 32];
        let at = bytes
            .windows(run.len())
            .position(|w| w == run)
            .expect("the picture's bytes are in the signed file");
        bytes[at + 16] ^= 0x5a;
    }
    let out = scratch().join(format!("formats-tampered.{ext}"));
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn gif_webp_tiff_svg_and_jpeg_xl_agree_with_c2patool() {
    let home = Home::with_keys("Formats Desk");
    for ext in ["gif", "webp", "tif", "svg", "jxl"] {
        let plain = unsigned(ext);
        let (code, r) = verify_json(home.path(), &plain, &[]);
        assert_eq!(r["verdict"], "no-provenance", "{ext}: {r:#}");
        assert_eq!(code, 3, "{ext}");
        assert_eq!(
            r["watermark"]["video"]["frames_analysed"], 1,
            "{ext}: {r:#}"
        );

        let signed = scratch().join(format!("formats-signed.{ext}"));
        c2patool_sign(&plain, &signed);
        let changed = tampered(&plain, &signed, ext);
        for (file, verdict, state) in [
            (&signed, "valid-untrusted", "Valid"),
            (&changed, "tampered", "Invalid"),
        ] {
            let (c2patool_state, label, failures) =
                c2patool_reading(file).expect("c2patool reads the manifest");
            assert_eq!(c2patool_state, state, "{ext}: c2patool");
            let (_, r) = verify_json(home.path(), file, &[]);
            assert_eq!(r["verdict"], verdict, "{ext}: {r:#}");
            assert_eq!(r["c2pa"]["validation_state"], state, "{ext}: {r:#}");
            assert_eq!(r["c2pa"]["active_manifest"], label.as_str(), "{ext}");
            assert_eq!(strings(&r["c2pa"]["failures"]), failures, "{ext}");
            if verdict == "valid-untrusted" {
                // (A flipped byte may leave a JPEG XL codestream undecodable: not asked.)
                assert_eq!(
                    r["watermark"]["video"]["frames_analysed"], 1,
                    "{ext}: {r:#}"
                );
            }
        }
    }
}
