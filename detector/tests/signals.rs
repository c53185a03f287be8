//! Provenance signals outside C2PA and hallmark's marks, on files tagged the way each
//! generator tags its output (made here: a real photo re-encoded by the `ffmpeg` CLI, the
//! tags written with `kamadak-exif`'s writer and the `png` crate), and on the shared
//! originals, which must report none.

use std::path::{Path, PathBuf};

use hallmark_detector::metadata::Says;
use hallmark_detector::verdict::AiSource;
use hallmark_detector::{Report, SignalKind, Strength, Target, Verdict, Verifier};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/media")
        .join(rel)
}

fn verify(path: &Path) -> Report {
    Verifier::new(&[]).unwrap().verify(&Target::file(path))
}

fn ffmpeg(args: &[&str]) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// A plain JPEG of a real photo (FFmpeg writes no EXIF and no XMP).
fn plain_jpeg(dir: &Path) -> Vec<u8> {
    let out = dir.join("plain.jpg");
    ffmpeg(&[
        "-i",
        shared("images/rocket.jpg").to_str().unwrap(),
        "-q:v",
        "4",
        out.to_str().unwrap(),
    ]);
    std::fs::read(out).unwrap()
}

/// `jpeg` with an APP1 segment holding `payload` right after its SOI marker.
fn with_app1(jpeg: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], b"\xff\xd8");
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(b"\xff\xe1");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// An EXIF APP1 payload with these ASCII fields of the primary image.
fn exif_app1(fields: &[(exif::Tag, &str)]) -> Vec<u8> {
    let fields: Vec<exif::Field> = fields
        .iter()
        .map(|(tag, text)| exif::Field {
            tag: *tag,
            ifd_num: exif::In::PRIMARY,
            value: exif::Value::Ascii(vec![text.as_bytes().to_vec()]),
        })
        .collect();
    let mut writer = exif::experimental::Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    [b"Exif\0\0".as_slice(), &tiff.into_inner()].concat()
}

fn xmp_packet(description: &str) -> String {
    format!(
        r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" {description}/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"#
    )
}

fn xmp_app1(description: &str) -> Vec<u8> {
    [
        b"http://ns.adobe.com/xap/1.0/\0".as_slice(),
        xmp_packet(description).as_bytes(),
    ]
    .concat()
}

/// A 64×48 gradient PNG with these text chunks (tEXt; `itxt`: iTXt).
fn png_with_text(path: &Path, texts: &[(&str, &str)], itxt: &[(&str, &str)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 64, 48);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    for (k, v) in texts {
        encoder
            .add_text_chunk(k.to_string(), v.to_string())
            .unwrap();
    }
    for (k, v) in itxt {
        encoder
            .add_itxt_chunk(k.to_string(), v.to_string())
            .unwrap();
    }
    let mut writer = encoder.write_header().unwrap();
    let pixels: Vec<u8> = (0..64 * 48 * 3).map(|i| (i % 251) as u8).collect();
    writer.write_image_data(&pixels).unwrap();
}

/// The report's metadata signals that admit AI, as (names, found_in).
fn ai_claims(r: &Report) -> Vec<(Option<String>, String)> {
    r.signals
        .iter()
        .filter(|s| s.kind == SignalKind::Metadata && s.says == Says::AiGenerated)
        .map(|s| (s.names.clone(), s.found_in.clone()))
        .collect()
}

/// An AI admission in the metadata: no provenance, but AI-generated, on the metadata's word.
fn assert_admits_ai(r: &Report, names: &str, found_in: &str) {
    assert_eq!(r.verdict, Verdict::NoProvenance, "{}", r.summary);
    assert_eq!(r.ai_generated, Some(true), "{}", r.summary);
    assert!(
        ai_claims(r)
            .iter()
            .any(|(n, f)| n.as_deref() == Some(names) && f == found_in),
        "{names} in {found_in}: {:#?}",
        r.signals
    );
    for s in &r.signals {
        assert_eq!(s.strength, Strength::UnauthenticatedClaim, "{s:?}");
        assert!(s.does_not_prove.contains("anyone can write"), "{s:?}");
    }
    assert!(
        r.ai_evidence
            .iter()
            .any(|c| c.source == AiSource::Metadata && c.counts && c.ai_generated),
        "{:?}",
        r.ai_evidence
    );
    assert!(
        r.summary.contains("Its metadata says it is AI-generated"),
        "{}",
        r.summary
    );
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["schema"], "hallmark.verify/2");
    assert_eq!(json["signals"][0]["kind"], "metadata", "{json:#}");
    assert_eq!(json["signals"][0]["strength"], "unauthenticated-claim");
    assert_eq!(json["ai_evidence"][0]["source"], "metadata");
}

#[test]
fn flux_exif_software_and_make() {
    let dir = tempfile::tempdir().unwrap();
    // What black-forest-labs/flux's sampling script writes (PIL, EXIF of a JPEG).
    let app1 = exif_app1(&[
        (exif::Tag::Make, "Black Forest Labs"),
        (exif::Tag::Model, "flux-dev"),
        (exif::Tag::Software, "AI generated;txt2img;flux"),
        (exif::Tag::ImageDescription, "a cat on a skateboard"),
    ]);
    let path = dir.path().join("flux.jpg");
    std::fs::write(&path, with_app1(&plain_jpeg(dir.path()), &app1)).unwrap();
    let r = verify(&path);
    assert_admits_ai(&r, "FLUX (Black Forest Labs)", "EXIF Software");
    assert_admits_ai(&r, "FLUX (Black Forest Labs)", "EXIF Make");
    // The maker of a generator is no camera: no capture claim beside it.
    assert!(
        !r.signals.iter().any(|s| s.says == Says::Captured),
        "{:#?}",
        r.signals
    );
}

#[test]
fn iptc_digital_source_type_in_xmp() {
    let dir = tempfile::tempdir().unwrap();
    let plain = plain_jpeg(dir.path());
    let iptc = "http://cv.iptc.org/newscodes/digitalsourcetype/";
    // As Meta AI, Midjourney and Google write it (JPEG XMP, an attribute or a resource).
    for (name, description) in [
        (
            "attribute.jpg",
            format!(r#"Iptc4xmpExt:DigitalSourceType="{iptc}trainedAlgorithmicMedia""#),
        ),
        (
            "composite.jpg",
            format!(r#"Iptc4xmpExt:DigitalSourceType="{iptc}compositeSynthetic""#),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, with_app1(&plain, &xmp_app1(&description))).unwrap();
        let r = verify(&path);
        assert_eq!(r.ai_generated, Some(true), "{name}: {:#?}", r.signals);
        assert_eq!(
            r.signals[0].found_in, "XMP Iptc4xmpExt:DigitalSourceType",
            "{name}"
        );
    }
    // Midjourney's PNG: XMP in an iTXt chunk, with its creator tool.
    let path = dir.path().join("midjourney.png");
    let packet = xmp_packet(&format!(
        r#"Iptc4xmpExt:DigitalSourceType="{iptc}trainedAlgorithmicMedia" xmp:CreatorTool="Midjourney""#
    ));
    png_with_text(&path, &[], &[("XML:com.adobe.xmp", &packet)]);
    let r = verify(&path);
    assert_admits_ai(&r, "Midjourney", "XMP xmp:CreatorTool");
    // A capture, said in XMP: a claim, and no AI.
    let path = dir.path().join("capture.jpg");
    let description = format!(r#"Iptc4xmpExt:DigitalSourceType="{iptc}digitalCapture""#);
    std::fs::write(&path, with_app1(&plain, &xmp_app1(&description))).unwrap();
    let r = verify(&path);
    assert_eq!(r.ai_generated, None);
    assert_eq!(r.signals.len(), 1, "{:#?}", r.signals);
    assert_eq!(r.signals[0].says, Says::Captured);
}

#[test]
fn automatic1111_and_comfyui_png_text() {
    let dir = tempfile::tempdir().unwrap();
    let a1111 = dir.path().join("a1111.png");
    png_with_text(
        &a1111,
        &[(
            "parameters",
            "a lighthouse at dusk\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: v1.10.1",
        )],
        &[],
    );
    let r = verify(&a1111);
    assert_admits_ai(
        &r,
        "Stable Diffusion web UI (AUTOMATIC1111 or a fork)",
        "PNG text 'parameters'",
    );
    assert_eq!(r.signals[0].value.as_deref(), Some("model sd_xl_base_1.0"));

    let comfy = dir.path().join("comfyui.png");
    png_with_text(
        &comfy,
        &[
            (
                "prompt",
                r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}}"#,
            ),
            ("workflow", r#"{"last_node_id": 9, "nodes": []}"#),
        ],
        &[],
    );
    let r = verify(&comfy);
    assert_admits_ai(&r, "ComfyUI", "PNG text 'prompt'");
    assert_admits_ai(&r, "ComfyUI", "PNG text 'workflow'");
    // A `prompt` that is not a ComfyUI graph is nobody's admission.
    let text = dir.path().join("prompt-text.png");
    png_with_text(&text, &[("prompt", "just some words")], &[]);
    assert!(verify(&text).signals.is_empty());
}

#[test]
fn camera_exif_is_a_capture_claim_not_proof() {
    let dir = tempfile::tempdir().unwrap();
    let app1 = exif_app1(&[
        (exif::Tag::Make, "Canon"),
        (exif::Tag::Model, "Canon EOS R5"),
        (exif::Tag::Software, "Firmware Version 1.8.1"),
    ]);
    let path = dir.path().join("camera.jpg");
    std::fs::write(&path, with_app1(&plain_jpeg(dir.path()), &app1)).unwrap();
    let r = verify(&path);
    assert_eq!(r.verdict, Verdict::NoProvenance);
    // Never "not AI" from metadata.
    assert_eq!(r.ai_generated, None);
    assert_eq!(r.signals.len(), 1, "{:#?}", r.signals);
    let s = &r.signals[0];
    assert_eq!(
        (s.kind, s.says, s.strength),
        (
            SignalKind::Metadata,
            Says::Captured,
            Strength::UnauthenticatedClaim
        )
    );
    assert_eq!(s.names.as_deref(), Some("Canon Canon EOS R5"));
    assert!(r.summary.contains("captured by a camera"), "{}", r.summary);
    assert!(r.summary.contains("prove nothing"), "{}", r.summary);
}

#[test]
fn video_container_tags_that_name_a_generator() {
    let dir = tempfile::tempdir().unwrap();
    let tagged = dir.path().join("tagged.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:duration=1",
        "-c:v",
        "libx264",
        "-metadata",
        "comment=AI generated video",
        tagged.to_str().unwrap(),
    ]);
    // An MP4's ©too (FFmpeg's `encoder`) naming the generator. The ffmpeg CLI always
    // writes its own name there ("Lavf59.27.100"): the text is overwritten in place, same
    // length, so no box moves.
    let mut bytes = std::fs::read(&tagged).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"\xa9too")
        .expect("a ©too box");
    let size = u32::from_be_bytes(bytes[at - 4..at].try_into().unwrap()) as usize;
    // ©too box: size, type, then a `data` box: size, type, type code, locale, text.
    let text = at + 4 + 16..at - 4 + size;
    assert!(
        bytes[text.clone()].starts_with(b"Lavf"),
        "{:?}",
        &bytes[text.clone()]
    );
    let name = format!("{:<1$}", "Runway Gen-3", text.len());
    bytes[text].copy_from_slice(&name.as_bytes()[..name.len()]);
    std::fs::write(&tagged, bytes).unwrap();
    let r = verify(&tagged);
    assert_admits_ai(&r, "Runway", "container tag encoder");
    assert!(
        ai_claims(&r)
            .iter()
            .any(|(n, f)| n.is_none() && f == "container tag comment"),
        "{:#?}",
        r.signals
    );
    // FFmpeg's own encoder string names no generator.
    let plain = dir.path().join("plain.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:duration=1",
        "-c:v",
        "libx264",
        plain.to_str().unwrap(),
    ]);
    let r = verify(&plain);
    assert!(r.signals.is_empty(), "{:#?}", r.signals);
}

#[test]
fn unmarked_originals_report_no_signal() {
    for rel in [
        "video/bikes.mp4",
        "video/bigbuckbunny.mp4",
        "video/carphone_pristine.mp4",
        "images/rocket.jpg",
        "images/coffee.png",
        "images/camera.png",
        "audio/music-introzik.ogg",
        "audio/startup3.wav",
    ] {
        let r = verify(&shared(rel));
        assert_eq!(r.verdict, Verdict::NoProvenance, "{rel}");
        assert!(r.signals.is_empty(), "{rel}: {:#?}", r.signals);
        assert_eq!(r.ai_generated, None, "{rel}");
        assert!(
            r.summary.starts_with("No provenance signal found")
                && r.summary.contains("not evidence that the content is real"),
            "{rel}: {}",
            r.summary
        );
    }
    // Real photos written by Photoshop say so (EXIF, XMP, a PNG comment), nothing about AI.
    for rel in ["images/hubble_deep_field.jpg", "images/astronaut.png"] {
        let r = verify(&shared(rel));
        assert_eq!(r.ai_generated, None, "{rel}");
        assert!(!r.signals.is_empty(), "{rel}");
        assert!(
            r.signals
                .iter()
                .all(|s| s.says == Says::Edited && s.names.as_deref() == Some("Adobe Photoshop")),
            "{rel}: {:#?}",
            r.signals
        );
    }
}

#[test]
fn hostile_metadata_is_bounded_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.png");
    let software = format!("Midjourney\u{1b}[2J\u{1b}[31m\r\n{}", "A".repeat(100_000));
    png_with_text(&path, &[("Software", &software)], &[]);
    let r = verify(&path);
    assert_eq!(r.ai_generated, Some(true));
    let value = r.signals[0].value.clone().unwrap();
    assert!(value.chars().count() <= 201, "{}", value.len());
    assert!(!value.chars().any(char::is_control), "{value:?}");
    assert!(!r.summary.chars().any(char::is_control));
    assert!(r.summary.len() < 2000, "{}", r.summary.len());
}

/// Recognised files hallmark cannot decode — c2pa-rs's unsigned PDF, a HEIF photo cut short
/// — have no provenance, saying why no watermark was looked for (c2patool: "No claim found");
/// c2pa-rs's unsigned HEIF and AVIF photos, which libheif decodes, are searched instead.
#[test]
fn undecodable_recognised_stills_have_no_provenance() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/c2pa-rs");
    for file in ["sample1.heif", "sample1.avif"] {
        let r = verify(&fixtures.join(file));
        assert_eq!(r.verdict, Verdict::NoProvenance, "{file}: {}", r.summary);
        assert!(
            !r.summary.contains("cannot decode"),
            "{file}: {}",
            r.summary
        );
        let analysed = r.coverage.as_ref().and_then(|c| c.picture_seconds_analysed);
        assert_eq!(analysed, Some(1.0), "{file}: the picture was searched");
    }
    let dir = tempfile::tempdir().unwrap();
    let heif = std::fs::read(fixtures.join("sample1.heif")).unwrap();
    let cut = dir.path().join("cut.heif");
    std::fs::write(&cut, &heif[..heif.len() / 2]).unwrap();
    for (path, format) in [(fixtures.join("basic.pdf"), "PDF"), (cut, "HEIF")] {
        let r = verify(&path);
        let file = path.display();
        assert_eq!(r.verdict, Verdict::NoProvenance, "{file}: {}", r.summary);
        assert!(r.error.is_none(), "{file}");
        assert!(
            r.summary
                .contains(&format!("hallmark cannot decode this {format} file")),
            "{file}: {}",
            r.summary
        );
    }
    // Unknown bytes stay an error, whatever the name says.
    let noise = dir.path().join("noise.heic");
    let bytes: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(&noise, &bytes).unwrap();
    assert_eq!(verify(&noise).verdict, Verdict::Error);
    // A JPEG that FFmpeg cannot decode is damaged, not an unsupported format.
    let damaged = dir.path().join("damaged.jpg");
    std::fs::write(&damaged, [b"\xff\xd8\xff\xdb".as_slice(), &bytes].concat()).unwrap();
    assert_eq!(verify(&damaged).verdict, Verdict::Error);
}
/// Another generator's default mark (helper dwtdct's fixtures: Stable Diffusion 1.x's
/// dwtDct mark on a real photo, and the same photo unmarked): a statistical signal that
/// counts as AI, while the verdict stays no-provenance.
#[test]
fn third_party_marks_are_signals_and_admit_ai() {
    let verifier = Verifier::new(&[]).unwrap().with_watermark_keys(vec![
        hallmark_watermark::WatermarkKey::from_secret([7; 32], 1),
    ]);
    let marked =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/third-party/sd1-chelsea.png");
    let r = verifier.verify(&Target::file(&marked));
    assert_eq!(r.verdict, Verdict::NoProvenance, "{}", r.summary);
    assert_eq!(r.ai_generated, Some(true), "{:#?}", r.signals);
    let s = &r.signals[0];
    assert_eq!(
        (s.kind, s.strength, s.says),
        (
            SignalKind::ThirdPartyWatermark,
            Strength::Statistical,
            Says::AiGenerated
        )
    );
    assert!(s.p_value.unwrap() <= 1e-6, "{s:?}");
    assert!(
        s.names.as_deref().unwrap().contains("Stable Diffusion"),
        "{s:?}"
    );
    assert!(r
        .ai_evidence
        .iter()
        .any(|c| c.source == AiSource::ThirdPartyMark && c.counts));
    assert!(
        r.summary.contains("default invisible watermark"),
        "{}",
        r.summary
    );
    // The photo it was made from carries none (only its camera's make and model, in XMP).
    let r = verifier.verify(&Target::file(shared("images/chelsea.png")));
    let kinds: Vec<(SignalKind, Says)> = r.signals.iter().map(|s| (s.kind, s.says)).collect();
    assert_eq!(
        kinds,
        [(SignalKind::Metadata, Says::Captured)],
        "{:#?}",
        r.signals
    );
    assert_eq!(r.ai_generated, None);
}
