//! The human-readable verification report.

use std::borrow::Cow;
use std::fmt::Write as _;

use hallmark_detector::verdict::{AiClaim, AiSource};
use hallmark_detector::{
    IngredientNode, MarkResult, PBound, Report, Signal, SignalKind, Verdict, VideoScan,
};

const RESET: &str = "\x1b[0m";

fn colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Verified => "\x1b[1;32m",
        Verdict::ValidUntrusted | Verdict::CredentialProblem | Verdict::Watermarked => "\x1b[1;33m",
        Verdict::Tampered | Verdict::Contradicted | Verdict::Error => "\x1b[1;31m",
        Verdict::NoProvenance => "\x1b[1m",
    }
}

/// Any string that came from a file, made safe to print on a terminal: control characters
/// (escape sequences, carriage returns, new lines…) and the bidirectional overrides that
/// reorder what a reader sees are written as `\u{…}` escapes. The JSON keeps them exact.
pub fn safe(text: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Verdict in plain words on the first line, then the details that back it.
pub fn human(report: &Report, color: bool) -> String {
    let mut out = String::new();
    let (on, off) = if color {
        (colour(report.verdict), RESET)
    } else {
        ("", "")
    };
    let _ = writeln!(
        out,
        "{on}{}{off}  {}",
        report.verdict.as_str().to_uppercase(),
        safe(&report.file)
    );
    let _ = writeln!(out, "  {}", safe(&report.summary));
    let _ = writeln!(out, "  AI-generated:    {}", ai_words(report));
    if let Some(problem) = report.credential_problem {
        let _ = writeln!(out, "  {:<16} {}", "Credential:", problem.words());
    }
    let proven = match report.proven_streams.as_slice() {
        [] => "nothing".to_string(),
        streams => {
            let by = match report.verdict {
                Verdict::Watermarked | Verdict::Contradicted => "by the watermark",
                _ => "by the manifest",
            };
            format!(
                "{} {by}",
                streams
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        }
    };
    if report.verdict != Verdict::Error {
        let _ = writeln!(out, "  {:<16} {proven}", "Proven:");
        signals(&mut out, &report.signals);
    }
    let c = &report.c2pa;
    if report.verdict == Verdict::Tampered {
        let _ = writeln!(
            out,
            "  What the failed manifest claims (none of it is proven):"
        );
    }
    if c.present {
        let field = |out: &mut String, name: &str, value: &Option<String>| {
            if let Some(v) = value {
                let _ = writeln!(out, "  {name:<16} {}", safe(v));
            }
        };
        field(&mut out, "C2PA state:", &c.validation_state);
        if !c.failures.is_empty() {
            let _ = writeln!(
                out,
                "  {:<16} {}",
                "Failures:",
                safe(&c.failures.join(", "))
            );
        }
        field(&mut out, "Signer:", &c.issuer);
        field(&mut out, "Common name:", &c.common_name);
        field(&mut out, "Algorithm:", &c.signature_alg);
        let time = c.signing_time.clone().or_else(|| {
            c.hallmark
                .as_ref()
                .and_then(|h| h.get("sealed_at"))
                .and_then(|t| t.as_str())
                .map(|t| format!("{t} (claimed by the signer, no trusted timestamp)"))
        });
        field(&mut out, "Signed:", &time);
        field(&mut out, "Tool:", &c.claim_generator);
        field(&mut out, "Title:", &c.title);
        field(&mut out, "Source type:", &c.digital_source_type);
        if !c.actions.is_empty() {
            let actions: Vec<&str> = c.actions.iter().map(|a| a.action.as_str()).collect();
            let _ = writeln!(out, "  {:<16} {}", "Actions:", safe(&actions.join(", ")));
        }
        for binding in &c.soft_bindings {
            let _ = writeln!(
                out,
                "  {:<16} {} = {}",
                "Soft binding:",
                safe(&binding.alg),
                safe(&binding.values.join(", "))
            );
        }
        if !c.ingredients.is_empty() {
            let _ = writeln!(out, "  Ingredients:");
            tree(&mut out, &c.ingredients, 2);
        }
        field(&mut out, "Remote manifest:", &c.remote_manifest_url);
    }
    let marks = report.watermark.as_ref().map(|w| {
        [
            ("picture", "frames", w.video.as_ref()),
            ("sound", "64 ms windows", w.audio.as_ref()),
        ]
    });
    for (what, unit, mark) in marks.into_iter().flatten() {
        let Some(mark) = mark else { continue };
        let state = if mark.detected {
            "present"
        } else if mark.inconclusive {
            "inconclusive"
        } else {
            "not found"
        };
        let unit = match mark.scan {
            Some(VideoScan::KeyFrames) => "key frames",
            _ => unit,
        };
        let _ = writeln!(
            out,
            "  {:<16} {state} in the {what} (p = {}{}, {} {unit}){}{}{}",
            "Watermark:",
            PBound(mark.p_value),
            // Where the clip id (decoded, or named and agreeing) made the difference, what the
            // pattern alone gave.
            mark.presence_p_value
                .filter(|&alone| alone > hallmark_detector::DETECT_P)
                .map(|alone| match (&mark.payload, mark.named_search) {
                    // Found as a named clip id's whole pattern whose coded bits did not
                    // single that clip id out: the mark is proven, its clip id is not.
                    (None, Some(true)) => format!(
                        " as the whole pattern of a clip id named for it, {} by its sync \
                         pattern alone; its coded bits do not single that clip id out",
                        PBound(alone)
                    ),
                    _ => format!(" with its clip id, {} without", PBound(alone)),
                })
                .unwrap_or_default(),
            mark.frames_analysed,
            mark.payload
                .as_ref()
                .map(|c| match (mark.payload_named_by, mark.payload_match_p) {
                    // Named elsewhere, proven by the mark's coded bits.
                    (Some(by), Some(p)) => format!(
                        ", clip id {c} (named by the {}, {}: p = {})",
                        match by {
                            hallmark_detector::PayloadSource::Sound => "sound's mark",
                            hallmark_detector::PayloadSource::Picture => "picture's mark",
                            hallmark_detector::PayloadSource::Store => "manifest store",
                        },
                        // The mark searched for as that clip id's whole pattern, or read
                        // where its sync pattern alone was found.
                        if mark.named_search == Some(true) {
                            "the mark found as its whole pattern and its coded bits agreeing"
                        } else {
                            "proven by the mark"
                        },
                        PBound(p)
                    ),
                    _ => format!(", clip id {c}"),
                })
                .unwrap_or_default(),
            mark.key
                .as_ref()
                .map(|k| format!(
                    ", key {}{}",
                    k.id,
                    k.organisation
                        .as_ref()
                        .map(|o| format!(" ({})", safe(o)))
                        .unwrap_or_default()
                ))
                .unwrap_or_default(),
            marked_seconds(mark)
        );
        if let Some(line) = geometry_words(mark) {
            let _ = writeln!(out, "  {:<16} {line}", "");
        }
    }
    if let Some(c) = &report.coverage {
        let mut parts = Vec::new();
        if let Some(s) = c.picture_seconds_analysed {
            parts.push(format!("picture {s:.0} s"));
        }
        if let Some(s) = c.sound_seconds_analysed {
            parts.push(format!("sound {s:.0} s"));
        }
        let of = c
            .duration_s
            .map(|d| format!(" of {d:.1} s"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<16} {}{of}; {} decode error{}",
            "Analysed:",
            parts.join(", "),
            c.decode_errors,
            if c.decode_errors == 1 { "" } else { "s" }
        );
        if let Some(e) = &c.decoding_stopped {
            let _ = writeln!(
                out,
                "  {:<16} decoding stopped before the end: {}",
                "",
                safe(e)
            );
        }
    }
    if let Some(m) = &report.media {
        let mut desc = format!("{} ({})", m.kind, m.container);
        if let (Some(w), Some(h)) = (m.width, m.height) {
            let _ = write!(desc, ", {w}x{h}");
        }
        if let Some(sr) = m.sample_rate {
            let _ = write!(desc, ", {sr} Hz x{}", m.channels.unwrap_or(0));
        }
        if let Some(d) = m.duration_s {
            let _ = write!(desc, ", {d:.2} s");
        }
        let _ = writeln!(out, "  {:<16} {}", "Media:", safe(&desc));
    }
    if let Some(e) = report
        .error
        .as_ref()
        .filter(|_| report.verdict != Verdict::Error)
    {
        let _ = writeln!(out, "  {:<16} {}", "Note:", safe(e));
    }
    if let Some(frames) = &report.keyframes {
        let _ = writeln!(
            out,
            "  {:<16} {} written for reverse image search",
            "Key frames:",
            frames.len()
        );
        for f in frames {
            let _ = writeln!(out, "    {:>9.3} s  {}", f.time_s, safe(&f.path));
        }
    }
    out
}

/// The signals, one row each, strongest first (the report's order), each with what it
/// does not prove; or that none was found, and what that means.
fn signals(out: &mut String, signals: &[Signal]) {
    if signals.is_empty() {
        let _ = writeln!(
            out,
            "  {:<16} none found (no manifest, no known watermark, no metadata about origin) — not evidence that the content is real",
            "Signals:"
        );
        return;
    }
    let _ = writeln!(out, "  Signals (strongest first):");
    for s in signals {
        let kind = match s.kind {
            SignalKind::C2pa => "C2PA manifest",
            SignalKind::HallmarkWatermark => "hallmark watermark",
            SignalKind::ThirdPartyWatermark => "other generator's watermark",
            SignalKind::Metadata => "metadata",
        };
        let strength = match s.p_value {
            Some(p) => format!("{}, p = {}", s.strength.words(), PBound(p)),
            None => s.strength.words().to_string(),
        };
        let mut line = format!("{kind} says {}", s.says.words());
        if let Some(n) = &s.names {
            let _ = write!(line, " — {}", safe(n));
        }
        let _ = write!(line, " [{strength}; in {}]", safe(&s.found_in));
        if let Some(v) = &s.value {
            let _ = write!(line, ": {}", safe(v));
        }
        let _ = writeln!(out, "    - {line}");
        let _ = writeln!(out, "      does not prove: {}", safe(&s.does_not_prove));
    }
}

/// The AI line: what is known, and on whose word.
fn ai_words(report: &Report) -> String {
    let source = |c: &AiClaim| -> String {
        let what = match c.source {
            AiSource::TrustedManifest => "a trusted manifest",
            AiSource::UntrustedManifest => "the manifest (signer not trusted)",
            AiSource::PictureMark => "the watermark in the picture",
            AiSource::SoundMark => "the watermark in the sound",
            AiSource::StoredManifest => "the recovered manifest",
            AiSource::ThirdPartyMark => "another generator's watermark",
            AiSource::Metadata => "the metadata, unauthenticated",
        };
        match &c.found_in {
            Some(at) => format!("{what}: {}", safe(at)),
            None => what.to_string(),
        }
    };
    let by = |ai: bool| {
        report
            .ai_evidence
            .iter()
            .filter(|c| c.counts && c.ai_generated == ai)
            .map(source)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match report.ai_generated {
        Some(true) => format!("yes (declared by {})", by(true)),
        Some(false) => format!("no (declared by {})", by(false)),
        None => {
            let claims: Vec<String> = report
                .ai_evidence
                .iter()
                .filter(|c| !c.ai_generated)
                .map(source)
                .collect();
            if claims.is_empty() {
                "unknown".into()
            } else {
                format!(
                    "unknown ({} claims it is not; only a trusted signer's word is taken)",
                    claims.join(", ")
                )
            }
        }
    }
}

/// How the picture was found changed and where the mark lies, when either is not the plain
/// case: "mirrored horizontally; in x 0–49 %, y 0–100 % of the frame", "turned 3.0°
/// clockwise", "stretched to 125 % of its width against its height"; for the sound, "played
/// 15 % faster than sealed; pitched 4 % lower".
fn geometry_words(mark: &MarkResult) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(o) = mark.orientation.filter(|o| *o != "upright") {
        parts.push(o.replace('-', " "));
    }
    if let Some(w) = mark.warp {
        if w.rotation_deg.abs() >= 0.25 {
            let way = if w.rotation_deg > 0.0 {
                "clockwise"
            } else {
                "anticlockwise"
            };
            parts.push(format!("turned {:.1}° {way}", w.rotation_deg.abs()));
        }
        let aspect = w.scale_x / w.scale_y;
        if (aspect - 1.0).abs() >= 0.03 {
            let how = if aspect > 1.0 {
                "stretched"
            } else {
                "squeezed"
            };
            parts.push(format!(
                "{how} to {:.0} % of its width against its height",
                100.0 * aspect
            ));
        }
        if w.shear_deg.abs() >= 0.5 {
            parts.push(format!(
                "sheared {:.1}° (seen at a slant)",
                w.shear_deg.abs()
            ));
        }
    }
    if let Some(k) = mark.sound_scale {
        // `time` is the sound's duration over the sealed one's: its speed is the inverse.
        if (k.time - 1.0).abs() >= 0.005 {
            let speed = 100.0 / k.time;
            let how = if speed > 100.0 { "faster" } else { "slower" };
            parts.push(format!(
                "played {:.0} % {how} than sealed",
                (speed - 100.0).abs()
            ));
        }
        if (k.frequency - 1.0).abs() >= 0.005 {
            let how = if k.frequency > 1.0 { "higher" } else { "lower" };
            parts.push(format!(
                "pitched {:.0} % {how}",
                100.0 * (k.frequency - 1.0).abs()
            ));
        }
    }
    if let Some(r) = mark.region.filter(|r| r.w < 0.999 || r.h < 0.999) {
        parts.push(format!(
            "in x {:.0}–{:.0} %, y {:.0}–{:.0} % of the frame",
            100.0 * r.x,
            100.0 * (r.x + r.w),
            100.0 * r.y,
            100.0 * (r.y + r.h)
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Where the timeline shows the mark: ", marked in 3 s of 10 analysed".
fn marked_seconds(mark: &MarkResult) -> String {
    let bin = mark.timeline_bin_s;
    let analysed = mark.marked.iter().filter(|m| m.is_some()).count() as f64 * bin;
    let marked = mark.marked.iter().filter(|m| **m == Some(true)).count() as f64 * bin;
    if marked == 0.0 {
        return String::new();
    }
    format!(", marked in {marked:.0} of {analysed:.0} analysed seconds")
}

fn tree(out: &mut String, nodes: &[IngredientNode], depth: usize) {
    for node in nodes {
        let _ = writeln!(
            out,
            "{:indent$}- {} [{}] {}{}",
            "",
            safe(node.title.as_deref().unwrap_or("(untitled)")),
            node.relationship,
            safe(node.format.as_deref().unwrap_or("")),
            node.issuer
                .as_ref()
                .map(|i| format!(", signed by {}", safe(i)))
                .unwrap_or_default(),
            indent = depth * 2
        );
        tree(out, &node.ingredients, depth + 1);
    }
}

/// One line after several reports: counts by verdict.
pub fn summary(counts: &[usize], total: usize, json: bool) {
    if json {
        let mut by = serde_json::Map::new();
        for (v, n) in Verdict::ALL.iter().zip(counts) {
            by.insert(v.as_str().into(), (*n).into());
        }
        println!(
            "{}",
            serde_json::json!({"summary": {"files": total, "verdicts": by}})
        );
    } else {
        let parts: Vec<String> = Verdict::ALL
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(v, n)| format!("{n} {}", v.as_str()))
            .collect();
        println!("{total} files: {}", parts.join(", "));
    }
}
