//! The human-readable verification report.

use std::fmt::Write as _;

use hallmark_detector::{IngredientNode, Report, Verdict, VideoScan};

const RESET: &str = "\x1b[0m";

fn colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Verified => "\x1b[1;32m",
        Verdict::ValidUntrusted | Verdict::Watermarked => "\x1b[1;33m",
        Verdict::Tampered | Verdict::Error => "\x1b[1;31m",
        Verdict::NoProvenance => "\x1b[1m",
    }
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
        report.file
    );
    let _ = writeln!(out, "  {}", report.summary);
    let ai = match report.ai_generated {
        Some(true) => "yes (declared in a valid manifest)",
        Some(false) => "no (declared in a valid manifest)",
        None => "unknown",
    };
    let _ = writeln!(out, "  AI-generated:    {ai}");
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
                let _ = writeln!(out, "  {name:<16} {v}");
            }
        };
        field(&mut out, "C2PA state:", &c.validation_state);
        if !c.failures.is_empty() {
            let _ = writeln!(out, "  {:<16} {}", "Failures:", c.failures.join(", "));
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
            let _ = writeln!(out, "  {:<16} {}", "Actions:", actions.join(", "));
        }
        for binding in &c.soft_bindings {
            let _ = writeln!(
                out,
                "  {:<16} {} = {}",
                "Soft binding:",
                binding.alg,
                binding.values.join(", ")
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
            "  {:<16} {state} in the {what} (p = {:.1e}, {} {unit}){}",
            "Watermark:",
            mark.p_value,
            mark.frames_analysed,
            mark.payload
                .as_ref()
                .map(|c| format!(", clip id {c}"))
                .unwrap_or_default()
        );
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
        let _ = writeln!(out, "  {:<16} {desc}", "Media:");
    }
    out
}

fn tree(out: &mut String, nodes: &[IngredientNode], depth: usize) {
    for node in nodes {
        let _ = writeln!(
            out,
            "{:indent$}- {} [{}] {}{}",
            "",
            node.title.as_deref().unwrap_or("(untitled)"),
            node.relationship,
            node.format.as_deref().unwrap_or(""),
            node.issuer
                .as_ref()
                .map(|i| format!(", signed by {i}"))
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
