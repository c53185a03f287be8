//! What a report may say to the public: the worker's `verify --json` report with the server's
//! own paths taken out, and, unless the caller may see full evidence, the watermark's
//! detector read-outs reduced to what a visitor needs.

use serde_json::{Map, Value};

/// Whether an answer carries the worker's full evidence or the public summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    Full,
    Summary,
}

impl Evidence {
    pub fn name(self) -> &'static str {
        match self {
            Evidence::Full => "full",
            Evidence::Summary => "summary",
        }
    }
}

/// Fields of each stream's mark that only full evidence carries: the detector's fine read-outs,
/// which would let anyone tune an edit until the mark is gone (or forged) by trial.
const MARK_FIELDS_WITHHELD: &[&str] = &["timeline", "marked", "bit_error_estimate"];

/// Makes a worker's report public: paths replaced everywhere, then reduced to `evidence`.
pub fn publish(mut report: Value, scrub: &Scrubber, evidence: Evidence) -> Value {
    scrub.value(&mut report);
    if let Value::Object(map) = &mut report {
        if evidence == Evidence::Summary {
            summarise(map);
        }
        map.insert("evidence".into(), Value::from(evidence.name()));
    }
    report
}

fn summarise(report: &mut Map<String, Value>) {
    // The plain-words summary quotes p-values too.
    for field in ["summary", "error"] {
        if let Some(Value::String(text)) = report.get_mut(field) {
            *text = round_p_values_in(text);
        }
    }
    if let Some(Value::Object(watermark)) = report.get_mut("watermark") {
        for stream in ["video", "audio"] {
            if let Some(Value::Object(mark)) = watermark.get_mut(stream) {
                for field in MARK_FIELDS_WITHHELD {
                    mark.remove(*field);
                }
                for field in ["p_value", "presence_p_value", "payload_match_p"] {
                    if let Some(p) = mark.get(field).and_then(Value::as_f64) {
                        mark.insert(field.into(), Value::from(round_up_to_power_of_ten(p)));
                    }
                }
            }
        }
    }
    // Each signal's p-value (hallmark's marks, other generators' marks) to its order of
    // magnitude, as the marks' own.
    if let Some(Value::Array(signals)) = report.get_mut("signals") {
        for signal in signals.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(p) = signal.get("p_value").and_then(Value::as_f64) {
                signal.insert("p_value".into(), Value::from(round_up_to_power_of_ten(p)));
            }
        }
    }
    // The fingerprints of the keys this server holds are no one else's business.
    if let Some(Value::Object(audit)) = report.get_mut("audit") {
        audit.remove("watermark_keys");
    }
    // The content fingerprint's similarity to the sealed clip, to two decimals (as the page
    // shows it): enough to read a match, too coarse to steer an edit by.
    if let Some(Value::Object(similarity)) = report
        .get_mut("recovered_manifest")
        .and_then(|m| m.get_mut("similarity"))
    {
        for (_, v) in similarity.iter_mut() {
            if let Some(x) = v.as_f64() {
                *v = Value::from((x * 100.0).round() / 100.0);
            }
        }
    }
}

/// Every "p = 2.4e-24" of a text as "p ≤ 1e-23". The worker prints each p rounded up
/// (`hallmark_detector::PBound`), so the printed number is already an upper bound and rounding it
/// up again gives the same power of ten as the report's own p-value.
pub fn round_p_values_in(text: &str) -> String {
    const SAID: &str = "p = ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SAID) {
        out.push_str(&rest[..at]);
        let after = &rest[at + SAID.len()..];
        let len = after
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_digit()
                    || *c == '.'
                    || *c == 'e'
                    || *c == 'E'
                    || ((*c == '-' || *c == '+') && *i > 0)
            })
            .map(|(i, c)| i + c.len_utf8())
            .last()
            .unwrap_or(0);
        // A sentence's full stop is not part of the number.
        let number = after[..len].trim_end_matches('.');
        match number.parse::<f64>() {
            Ok(p) if !number.is_empty() => {
                out.push_str(&format!("p ≤ {:e}", round_up_to_power_of_ten(p)));
                rest = &after[number.len()..];
            }
            _ => {
                out.push_str(SAID);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The smallest power of ten at or above `p`: an upper bound, never a stronger claim than the
/// detector's.
pub fn round_up_to_power_of_ten(p: f64) -> f64 {
    if !(p.is_finite() && p > 0.0) {
        return p;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let mut exponent = p.log10().ceil() as i32;
    // log10 may land a hair on either side of an exact power of ten.
    let power = |e: i32| format!("1e{e}").parse::<f64>().unwrap_or(0.0);
    if power(exponent - 1) >= p {
        exponent -= 1;
    }
    if power(exponent) < p {
        exponent += 1;
    }
    power(exponent.max(-300))
}

/// Replaces server paths in every string of a report.
#[derive(Debug, Default, Clone)]
pub struct Scrubber {
    /// (what, replacement), longest first.
    pairs: Vec<(String, String)>,
}

impl Scrubber {
    pub fn new() -> Scrubber {
        Scrubber::default()
    }

    /// Adds a path (and its canonical form, if different) to replace with `by`. Paths shorter
    /// than two characters are ignored (`/` would match everything).
    pub fn path(mut self, path: &std::path::Path, by: &str) -> Scrubber {
        let mut forms = vec![path.to_string_lossy().into_owned()];
        if let Ok(canonical) = std::fs::canonicalize(path) {
            forms.push(canonical.to_string_lossy().into_owned());
        }
        for form in forms {
            let form = form.trim_end_matches('/').to_string();
            if form.len() >= 2 && !self.pairs.iter().any(|(p, _)| *p == form) {
                self.pairs.push((form, by.to_string()));
            }
        }
        self.pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// Adds a plain string (a file name) to replace with `by`.
    pub fn text(mut self, what: &str, by: &str) -> Scrubber {
        if what.len() >= 2 {
            self.pairs.push((what.to_string(), by.to_string()));
            self.pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        self
    }

    pub fn string(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (what, by) in &self.pairs {
            if out.contains(what.as_str()) {
                out = replace_whole(&out, what, by);
            }
        }
        out
    }

    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                let clean = self.string(s);
                if clean != *s {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }
}

/// Replaces `what` where it stands as a whole path: not followed by more of a name
/// (`/home/al` must not eat `/home/alice`).
fn replace_whole(text: &str, what: &str, by: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(what) {
        let after = &rest[at + what.len()..];
        let mut next = after.chars();
        let continues_name = match next.next() {
            // "x.mp4." ends a sentence: a dot followed by nothing of a name is not a suffix.
            Some('.') => next.next().is_some_and(|c| c.is_alphanumeric()),
            Some(c) => c.is_alphanumeric() || matches!(c, '-' | '_' | '~'),
            None => false,
        };
        out.push_str(&rest[..at]);
        if continues_name {
            out.push_str(what);
        } else {
            out.push_str(by);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn p_values_round_up_to_their_power_of_ten() {
        for (p, up) in [
            (1e-21, 1e-21),
            (2e-21, 1e-20),
            (9.9e-21, 1e-20),
            (0.03, 0.1),
            (0.5, 1.0),
            (1.0, 1.0),
            (1e-3, 1e-3),
            (1.0000001e-3, 1e-2),
        ] {
            assert_eq!(round_up_to_power_of_ten(p), up, "{p}");
            assert!(round_up_to_power_of_ten(p) >= p);
        }
    }

    #[test]
    fn p_values_in_words_are_rounded_too() {
        assert_eq!(
            round_p_values_in("mark in the picture (p = 2.4e-24) and the sound (p = 0.03)."),
            "mark in the picture (p ≤ 1e-23) and the sound (p ≤ 1e-1)."
        );
        assert_eq!(round_p_values_in("p = 1e-5."), "p ≤ 1e-5.");
        assert_eq!(round_p_values_in("p = ?, p = "), "p = ?, p = ");
    }

    #[test]
    fn the_summary_keeps_the_verdict_and_drops_the_read_outs() {
        let report = json!({
            "verdict": "watermarked",
            "summary": "Watermarked: hallmark's mark in the picture (p = 3.3e-21).",
            "watermark": {
                "video": {"detected": true, "inconclusive": false, "p_value": 3.3e-21,
                          "presence_p_value": 4.1e-18, "payload": "0123456789abcdef", "payload_named_by": "store",
                          "payload_match_p": 2.4e-13, "key_id": 3, "bit_error_estimate": 0.021,
                          "frames_analysed": 50, "timeline": [1e-9, 0.2], "marked": [true, false],
                          "scan": "key-frames", "scan_passes": 1},
                "audio": null,
                "clip_id": "0123456789abcdef"
            },
            "coverage": {"picture_seconds_analysed": 2.0},
            "signals": [
                {"kind": "hallmark-watermark", "says": "ai-generated", "strength": "statistical",
                 "p_value": 3.3e-21, "found_in": "picture"},
                {"kind": "third-party-watermark", "says": "ai-generated",
                 "strength": "statistical", "p_value": 4.2e-9, "found_in": "picture"},
                {"kind": "metadata", "says": "ai-generated",
                 "strength": "unauthenticated-claim", "p_value": null,
                 "found_in": "EXIF Software"}
            ],
            "audit": {"file_sha256": "ab", "watermark_keys": ["cd"]},
            "recovered_manifest": {"status": "recovered", "similarity": {"video": 0.93456, "audio": null}}
        });
        let full = publish(report.clone(), &Scrubber::new(), Evidence::Full);
        assert_eq!(full["evidence"], "full");
        assert_eq!(full["watermark"]["video"]["p_value"], 3.3e-21);
        assert_eq!(full["watermark"]["video"]["timeline"], json!([1e-9, 0.2]));
        assert_eq!(full["audit"]["watermark_keys"], json!(["cd"]));

        let public = publish(report, &Scrubber::new(), Evidence::Summary);
        assert_eq!(public["evidence"], "summary");
        assert_eq!(
            public["summary"],
            "Watermarked: hallmark's mark in the picture (p ≤ 1e-20)."
        );
        assert_eq!(full["summary"], report_summary());
        let video = &public["watermark"]["video"];
        assert_eq!(video["detected"], true);
        assert_eq!(video["p_value"], 1e-20);
        assert_eq!(video["payload"], "0123456789abcdef");
        assert_eq!(video["payload_match_p"], 1e-12);
        assert_eq!(video["presence_p_value"], 1e-17);
        assert_eq!(full["watermark"]["video"]["payload_match_p"], 2.4e-13);
        assert_eq!(video["scan"], "key-frames");
        for gone in ["timeline", "marked", "bit_error_estimate"] {
            assert!(video.get(gone).is_none(), "{gone}");
        }
        assert!(public["audit"].get("watermark_keys").is_none());
        assert_eq!(full["signals"][1]["p_value"], 4.2e-9);
        let p: Vec<&Value> = public["signals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["p_value"])
            .collect();
        assert_eq!(p, [&json!(1e-20), &json!(1e-8), &Value::Null]);
        assert_eq!(public["signals"][2]["found_in"], "EXIF Software");
        assert_eq!(public["audit"]["file_sha256"], "ab");
        assert_eq!(public["coverage"]["picture_seconds_analysed"], 2.0);
        assert_eq!(
            public["recovered_manifest"]["similarity"],
            json!({"video": 0.93, "audio": null})
        );
    }

    fn report_summary() -> &'static str {
        "Watermarked: hallmark's mark in the picture (p = 3.3e-21)."
    }

    #[test]
    fn paths_are_replaced_in_every_string() {
        let scrub = Scrubber::new()
            .path(
                std::path::Path::new("/srv/up/hallmark-upload-x1.mp4"),
                "my clip.mp4",
            )
            .text("hallmark-upload-x1.mp4", "my clip.mp4")
            .path(std::path::Path::new("/srv/up"), "(upload)")
            .path(std::path::Path::new("/home/al"), "~");
        let mut report = json!({
            "error": "cannot open /srv/up/hallmark-upload-x1.mp4: bad",
            "summary": "Error: ./hallmark-upload-x1.mp4.",
            "nested": [{"m": "store /home/al/m.sqlite and /home/alice/x in /srv/up"}]
        });
        scrub.value(&mut report);
        assert_eq!(report["error"], "cannot open my clip.mp4: bad");
        assert_eq!(report["summary"], "Error: ./my clip.mp4.");
        assert_eq!(
            report["nested"][0]["m"],
            "store ~/m.sqlite and /home/alice/x in (upload)"
        );
    }
}
