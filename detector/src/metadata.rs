//! What a file's own metadata says about how it was made: EXIF (camera make and model, the
//! software that wrote it), XMP (the IPTC digital source type, the creator tool), PNG text
//! chunks (the parameters AI front ends write) and the container's tags (an MP4's `©too`).
//!
//! Anyone can write or remove any of it, so each finding is an unauthenticated claim: an
//! admission of AI counts (who would forge one against themselves?), nothing else does.
//! Every value is untrusted text: read through well-kept parsers (`kamadak-exif`,
//! `quick-xml`, `png`, FFmpeg's demuxers), from a bounded part of the file, cut to
//! [`MAX_VALUE_CHARS`] and stripped of control characters.

use std::io::{Cursor, Read};
use std::path::Path;

use serde::Serialize;

/// How much of the file's start is read for EXIF, XMP and PNG text (metadata sits before
/// the picture data in every format read here; a TIFF's may follow it, within this).
pub const HEAD_BYTES: u64 = 16 << 20;

/// The same for video and sound files, whose metadata is in their first megabytes if
/// anywhere (their container's own tags come from FFmpeg).
pub const MEDIA_HEAD_BYTES: u64 = 4 << 20;

/// A value quoted in a report is cut to this many characters.
pub const MAX_VALUE_CHARS: usize = 200;

/// At most this many findings are kept from one file.
const MAX_FINDINGS: usize = 16;

/// XMP packets larger than this are not parsed.
const MAX_XMP_BYTES: usize = 1 << 20;

/// What a signal says about the content's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Says {
    /// Made (wholly or partly) by a generative model.
    AiGenerated,
    /// Made by a computer without a trained model (CGI, algorithmic media).
    Synthetic,
    /// Edited by a person or an editing tool.
    Edited,
    /// Captured by a camera or a microphone.
    Captured,
    /// Declared not AI-generated (hallmark's `seal --not-ai`).
    NotAi,
    /// Signed provenance that says nothing about how the content was made.
    Unstated,
}

impl Says {
    pub fn words(self) -> &'static str {
        match self {
            Says::AiGenerated => "AI-generated",
            Says::Synthetic => "computer-made (not by a trained model)",
            Says::Edited => "edited",
            Says::Captured => "captured by a camera",
            Says::NotAi => "not AI-generated",
            Says::Unstated => "signed; says nothing about how it was made",
        }
    }
}

/// One statement of the file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub says: Says,
    /// The generator, camera or editor it names.
    pub names: Option<String>,
    /// Where: "EXIF Software", "XMP Iptc4xmpExt:DigitalSourceType", "PNG text 'parameters'",
    /// "container tag encoder".
    pub found_in: String,
    /// The value as written (cut, cleaned).
    pub value: String,
}

/// Everything `path`'s metadata says, `tags` being its container's tags (FFmpeg's, from
/// [`hallmark_media::Decoder::container_tags`]; empty when FFmpeg could not open it).
/// Never fails and never panics: what cannot be read says nothing.
/// `head_bytes`: how much of the file's start to read.
pub fn read(path: &Path, tags: &[(String, String)], head_bytes: u64) -> Vec<Finding> {
    let head = read_head(path, head_bytes).unwrap_or_default();
    let mut out = Vec::new();
    // The parsers are well kept, but the input is hostile: a panic in one of them must
    // cost this file its metadata, not its report.
    let parsed = std::panic::catch_unwind(|| {
        let mut found = Vec::new();
        exif_findings(&head, &mut found);
        png_findings(&head, &mut found);
        if let Some(packet) = xmp_packet(&head) {
            xmp_findings(packet, &mut found);
        }
        found
    });
    out.extend(parsed.unwrap_or_default());
    tag_findings(tags, &mut out);
    let mut unique: Vec<Finding> = Vec::new();
    for f in out {
        if !unique
            .iter()
            .any(|u| u.says == f.says && u.names == f.names && u.found_in == f.found_in)
        {
            unique.push(f);
        }
    }
    unique.truncate(MAX_FINDINGS);
    unique
}

fn read_head(path: &Path, head_bytes: u64) -> std::io::Result<Vec<u8>> {
    if !std::fs::metadata(path)?.is_file() {
        return Ok(Vec::new());
    }
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(head_bytes)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Untrusted text as a report may quote it: control characters (newlines included) become
/// spaces, runs of spaces one, at most [`MAX_VALUE_CHARS`] characters.
pub fn clean(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if count == MAX_VALUE_CHARS {
            out.push('…');
            break;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim_end().to_string()
}

/// Generators, by a word their tools write: (needle, lower case, matched as whole words;
/// the name reported).
const GENERATORS: &[(&str, &str)] = &[
    ("flux", "FLUX (Black Forest Labs)"),
    ("black forest labs", "FLUX (Black Forest Labs)"),
    ("midjourney", "Midjourney"),
    ("dall-e", "DALL·E (OpenAI)"),
    ("dall·e", "DALL·E (OpenAI)"),
    ("dalle", "DALL·E (OpenAI)"),
    ("sora", "Sora (OpenAI)"),
    ("chatgpt", "ChatGPT (OpenAI)"),
    ("stable diffusion", "Stable Diffusion"),
    ("stablediffusion", "Stable Diffusion"),
    ("stability ai", "Stable Diffusion"),
    ("sdxl", "Stable Diffusion"),
    ("comfyui", "ComfyUI"),
    ("automatic1111", "AUTOMATIC1111 Stable Diffusion web UI"),
    ("novelai", "NovelAI"),
    ("invokeai", "InvokeAI"),
    ("fooocus", "Fooocus"),
    ("firefly", "Adobe Firefly"),
    ("imagen", "Google Imagen"),
    ("gemini", "Google Gemini"),
    ("veo", "Google Veo"),
    ("meta ai", "Meta AI"),
    ("imagine with meta", "Meta AI"),
    ("runwayml", "Runway"),
    ("runway gen", "Runway"),
    ("pika", "Pika"),
    ("kling", "Kling"),
    ("hailuo", "MiniMax Hailuo"),
    ("luma dream machine", "Luma Dream Machine"),
    ("ideogram", "Ideogram"),
    ("leonardo.ai", "Leonardo.Ai"),
    ("hunyuanvideo", "HunyuanVideo"),
    ("cogvideox", "CogVideoX"),
    ("ltx-video", "LTX-Video"),
];

/// Phrases by which a tool says its output is AI-generated, whoever it is.
const AI_PHRASES: &[&str] = &[
    "ai generated",
    "ai-generated",
    "generated by ai",
    "generated with ai",
    "made with ai",
    "created with ai",
    "imagined with ai",
    "txt2img",
    "img2img",
];

/// Editors, by a word of their `Software` string.
const EDITORS: &[(&str, &str)] = &[
    ("photoshop", "Adobe Photoshop"),
    ("lightroom", "Adobe Lightroom"),
    ("gimp", "GIMP"),
    ("affinity photo", "Affinity Photo"),
    ("snapseed", "Snapseed"),
    ("pixelmator", "Pixelmator"),
    ("darktable", "darktable"),
    ("capture one", "Capture One"),
    ("premiere", "Adobe Premiere"),
    ("final cut", "Final Cut Pro"),
    ("davinci resolve", "DaVinci Resolve"),
];

/// `needle` in `haystack` (both lower case) as whole words.
fn has_words(haystack: &str, needle: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    haystack.match_indices(needle).any(|(at, _)| {
        !word(haystack[..at].chars().next_back())
            && !word(haystack[at + needle.len()..].chars().next())
    })
}

fn named(text: &str, table: &[(&str, &'static str)]) -> Option<&'static str> {
    let lower = text.to_lowercase();
    table
        .iter()
        .find(|(needle, _)| has_words(&lower, needle))
        .map(|(_, name)| *name)
}

/// What a tool's name says: a generator or an AI phrase (AI-generated), an editor (edited).
fn tool_says(text: &str) -> Option<(Says, Option<String>)> {
    if let Some(name) = named(text, GENERATORS) {
        return Some((Says::AiGenerated, Some(name.to_string())));
    }
    let lower = text.to_lowercase();
    if AI_PHRASES.iter().any(|p| has_words(&lower, p)) {
        return Some((Says::AiGenerated, None));
    }
    named(text, EDITORS).map(|name| (Says::Edited, Some(name.to_string())))
}

fn finding(says: Says, names: Option<String>, found_in: &str, value: &str) -> Finding {
    Finding {
        says,
        names: names.map(|n| clean(&n)),
        found_in: found_in.to_string(),
        value: clean(value),
    }
}

/// What an IPTC digital source type (its URI or bare name) says.
pub fn source_type_says(value: &str) -> Option<Says> {
    let name = value.trim().rsplit('/').next()?;
    Some(match name {
        "trainedAlgorithmicMedia"
        | "compositeWithTrainedAlgorithmicMedia"
        // IPTC: "may or may not include generative AI" — written by AI editors (Meta AI's
        // edits) for content with synthetic parts: taken as the admission it is meant as.
        | "compositeSynthetic" => Says::AiGenerated,
        "algorithmicMedia" | "digitalCreation" | "digitalArt" | "dataDrivenMedia" => {
            Says::Synthetic
        }
        "humanEdits" | "minorHumanEdits" | "compositeCapture" | "composite"
        | "algorithmicallyEnhanced" => Says::Edited,
        "digitalCapture" | "computationalCapture" | "negativeFilm" | "positiveFilm" | "print"
        | "screenCapture" | "virtualRecording" => Says::Captured,
        _ => return None,
    })
}

fn exif_findings(head: &[u8], out: &mut Vec<Finding>) {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(head)) else {
        return;
    };
    let text = |tag: exif::Tag| -> Option<String> {
        let field = exif.get_field(tag, exif::In::PRIMARY)?;
        match &field.value {
            exif::Value::Ascii(parts) => {
                let joined: Vec<String> = parts
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect();
                (!joined.is_empty()).then(|| joined.join(" "))
            }
            _ => None,
        }
    };
    let make = text(exif::Tag::Make);
    let model = text(exif::Tag::Model);
    let mut make_is_tool = false;
    if let Some(make) = &make {
        if let Some((says, names)) = tool_says(make) {
            out.push(finding(says, names, "EXIF Make", make));
            make_is_tool = true;
        }
    }
    if let Some(software) = text(exif::Tag::Software) {
        if let Some((says, names)) = tool_says(&software) {
            out.push(finding(says, names, "EXIF Software", &software));
        }
    }
    // A camera's make and model: a capture claim (forgeable like the rest).
    if !make_is_tool {
        let camera = [make.as_deref(), model.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !camera.is_empty() {
            out.push(finding(
                Says::Captured,
                Some(camera.clone()),
                "EXIF Make/Model",
                &camera,
            ));
        }
    }
}

/// PNG text chunks: AUTOMATIC1111 (and its forks) write `parameters`, ComfyUI `prompt` and
/// `workflow` (JSON), InvokeAI `invokeai_metadata`, NovelAI `Software`/`Source`.
fn png_findings(head: &[u8], out: &mut Vec<Finding>) {
    if !head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return;
    }
    let limits = png::Limits { bytes: 64 << 20 };
    let Ok(reader) = png::Decoder::new_with_limits(Cursor::new(head), limits).read_info() else {
        return;
    };
    let info = reader.info();
    let mut texts: Vec<(String, String)> = Vec::new();
    for t in &info.uncompressed_latin1_text {
        texts.push((t.keyword.clone(), t.text.clone()));
    }
    for t in &info.compressed_latin1_text {
        if let Ok(text) = t.get_text() {
            texts.push((t.keyword.clone(), text));
        }
    }
    for t in &info.utf8_text {
        if let Ok(text) = t.get_text() {
            texts.push((t.keyword.clone(), text));
        }
    }
    for (key, text) in texts.iter().take(64) {
        let at = format!("PNG text '{}'", clean(key));
        match key.as_str() {
            "parameters" => {
                // "prompt\nNegative prompt: …\nSteps: 20, Sampler: …, Model: name, …"
                let model = text
                    .split([',', '\n'])
                    .find_map(|p| p.trim().strip_prefix("Model: "))
                    .map(|m| format!("model {}", m.trim()));
                let names = "Stable Diffusion web UI (AUTOMATIC1111 or a fork)".to_string();
                let value = model.unwrap_or_else(|| text.clone());
                out.push(finding(Says::AiGenerated, Some(names), &at, &value));
            }
            "prompt" | "workflow" if is_json_object(text) => {
                out.push(finding(
                    Says::AiGenerated,
                    Some("ComfyUI".into()),
                    &at,
                    "a ComfyUI workflow (JSON)",
                ));
            }
            "invokeai_metadata" | "sd-metadata" | "dream" => {
                out.push(finding(
                    Says::AiGenerated,
                    Some("InvokeAI".into()),
                    &at,
                    text,
                ));
            }
            "XML:com.adobe.xmp" if text.len() <= MAX_XMP_BYTES => {
                xmp_findings(text.as_bytes(), out);
            }
            "Software" | "Source" | "Comment" | "Description" => {
                if let Some((says, names)) = tool_says(text) {
                    out.push(finding(says, names, &at, text));
                }
            }
            _ => {}
        }
    }
}

fn is_json_object(text: &str) -> bool {
    text.len() <= 8 << 20
        && serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.is_object())
}

/// The XMP packet of a file (JPEG APP1, TIFF, WebP, HEIF, MP4, PDF…): found by its wrapper,
/// as the XMP specification (part 3, "scanning files for XMP packets") provides for formats
/// a reader does not parse; the packet is then parsed as XML.
fn xmp_packet(head: &[u8]) -> Option<&[u8]> {
    const START: &[u8] = b"<x:xmpmeta";
    const END: &[u8] = b"</x:xmpmeta>";
    let start = find(head, START)?;
    let len = find(&head[start..], END)? + END.len();
    (len <= MAX_XMP_BYTES).then(|| &head[start..start + len])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// XMP properties, as attributes or elements, by their local names: IPTC's
/// `DigitalSourceType`, `xmp:CreatorTool`, `tiff:Make`/`Model`/`Software`.
fn xmp_findings(packet: &[u8], out: &mut Vec<Finding>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(packet);
    let mut buf = Vec::new();
    let mut properties: Vec<(String, String)> = Vec::new();
    // The element whose text is read (a property written as an element).
    let mut open: Option<String> = None;
    let mut events = 0;
    loop {
        events += 1;
        if events > 100_000 || properties.len() > 256 {
            break;
        }
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                for attr in e.attributes().flatten() {
                    let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    if key.ends_with(":resource") && is_property(&name) {
                        // <Iptc4xmpExt:DigitalSourceType rdf:resource="…"/>
                        properties.push((name.clone(), value));
                    } else if is_property(&key) {
                        properties.push((key, value));
                    }
                }
                open = is_property(&name).then_some(name);
            }
            Ok(Event::Text(t)) => {
                if let Some(name) = &open {
                    let text = String::from_utf8_lossy(t.as_ref()).trim().to_string();
                    if !text.is_empty() {
                        properties.push((name.clone(), text));
                    }
                }
            }
            Ok(Event::End(_)) => open = None,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    let mut camera = Vec::new();
    for (name, value) in properties {
        let local = name.rsplit(':').next().unwrap_or(&name);
        let at = format!("XMP {name}");
        match local {
            "DigitalSourceType" => {
                if let Some(says) = source_type_says(&value) {
                    out.push(finding(says, None, &at, &value));
                }
            }
            "CreatorTool" | "Software" => {
                if let Some((says, names)) = tool_says(&value) {
                    out.push(finding(says, names, &at, &value));
                }
            }
            "Make" | "Model" => camera.push(value),
            _ => {}
        }
    }
    if !camera.is_empty() {
        let camera = camera.join(" ");
        match tool_says(&camera) {
            Some((says, names)) => out.push(finding(says, names, "XMP tiff:Make/Model", &camera)),
            None => out.push(finding(
                Says::Captured,
                Some(camera.clone()),
                "XMP tiff:Make/Model",
                &camera,
            )),
        }
    }
}

fn is_property(name: &str) -> bool {
    let local = name.rsplit(':').next().unwrap_or(name);
    matches!(
        local,
        "DigitalSourceType" | "CreatorTool" | "Software" | "Make" | "Model"
    )
}

/// Container tags that name the software that wrote the file (FFmpeg's names: `encoder`
/// is an MP4's `©too`), and those that name the camera.
fn tag_findings(tags: &[(String, String)], out: &mut Vec<Finding>) {
    let mut camera: Vec<&str> = Vec::new();
    for (key, value) in tags {
        let lower = key.to_lowercase();
        let at = format!("container tag {}", clean(key));
        match lower.as_str() {
            "encoder"
            | "software"
            | "encoded_by"
            | "creation_tool"
            | "tool"
            | "com.apple.quicktime.software" => {
                if let Some((says, names)) = tool_says(value) {
                    out.push(finding(says, names, &at, value));
                }
            }
            // Free text: only an explicit admission counts.
            "comment" | "description" | "synopsis" => {
                let text = value.to_lowercase();
                if AI_PHRASES.iter().any(|p| has_words(&text, p)) {
                    out.push(finding(Says::AiGenerated, None, &at, value));
                }
            }
            "make"
            | "model"
            | "com.apple.quicktime.make"
            | "com.apple.quicktime.model"
            | "com.android.manufacturer"
            | "com.android.model" => camera.push(value),
            _ => {}
        }
    }
    if !camera.is_empty() {
        let camera = camera.join(" ");
        match tool_says(&camera) {
            Some((says, names)) => {
                out.push(finding(says, names, "container tag make/model", &camera))
            }
            None => out.push(finding(
                Says::Captured,
                Some(camera.clone()),
                "container tag make/model",
                &camera,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_words_match_whole_words_only() {
        assert_eq!(
            tool_says("AI generated;txt2img;flux").map(|(s, n)| (s, n.unwrap())),
            Some((Says::AiGenerated, "FLUX (Black Forest Labs)".into()))
        );
        assert_eq!(tool_says("Influx Studio 2"), None);
        assert_eq!(tool_says("Lavf59.27.100"), None);
        assert_eq!(tool_says("Canon EOS R5"), None);
        assert_eq!(
            tool_says("Adobe Photoshop 25.0 (Windows)").map(|(s, _)| s),
            Some(Says::Edited)
        );
    }

    #[test]
    fn source_types_by_uri_or_name() {
        let iptc = "http://cv.iptc.org/newscodes/digitalsourcetype/";
        assert_eq!(
            source_type_says(&format!("{iptc}trainedAlgorithmicMedia")),
            Some(Says::AiGenerated)
        );
        assert_eq!(
            source_type_says("compositeSynthetic"),
            Some(Says::AiGenerated)
        );
        assert_eq!(
            source_type_says(&format!("{iptc}digitalCapture")),
            Some(Says::Captured)
        );
        assert_eq!(source_type_says("somethingElse"), None);
    }

    #[test]
    fn quoted_values_are_bounded_and_cleaned() {
        let long = format!("a\u{1b}[31mb\n{}", "x".repeat(1000));
        let c = clean(&long);
        assert!(!c.chars().any(char::is_control), "{c:?}");
        assert_eq!(c.chars().count(), MAX_VALUE_CHARS + 1);
    }

    #[test]
    fn xmp_as_attribute_and_as_element() {
        let attr = br#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>"#;
        let mut out = Vec::new();
        xmp_findings(attr, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].says, Says::AiGenerated);
        assert_eq!(out[0].found_in, "XMP Iptc4xmpExt:DigitalSourceType");
        let element = br#"<x:xmpmeta><rdf:RDF><rdf:Description><xmp:CreatorTool>Midjourney</xmp:CreatorTool><Iptc4xmpExt:DigitalSourceType rdf:resource="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"/></rdf:Description></rdf:RDF></x:xmpmeta>"#;
        let mut out = Vec::new();
        xmp_findings(element, &mut out);
        let says: Vec<_> = out.iter().map(|f| (f.says, f.names.clone())).collect();
        assert_eq!(
            says,
            vec![
                (Says::AiGenerated, Some("Midjourney".into())),
                (Says::Captured, None)
            ]
        );
    }
}
