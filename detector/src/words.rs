//! The judgement put into the report, and into plain words. Nothing is decided here:
//! [`crate::verdict::decide`] has done that.

use crate::metadata::{self, Says};
use crate::recover::{RecoveredManifest, Recovery};
use crate::report::{MarkResult, Report, Verdict};
use crate::signals::{self, SignalKind, ThirdPartyFinding};
use crate::verdict::{
    AiSource, Conflict, CredentialProblem, Evidence, Judgement, ManifestEvidence, Stream,
};

/// A p-value as words print it: two significant digits, rounded **up**, so the printed number
/// is never a stronger claim than the detector's (1.04e-40 prints "1.1e-40", not "1.0e-40").
/// Readers downstream (the public page rounds each "p = …" of a summary up to its power of ten)
/// may then take the printed number as an upper bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PBound(pub f64);

impl std::fmt::Display for PBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.0;
        let nearest = format!("{p:.1e}");
        if !p.is_finite() || nearest.parse::<f64>().is_ok_and(|q| q >= p) {
            return f.write_str(&nearest);
        }
        // Rounded down: one tenth more on the mantissa ("9.9e-5" becomes "1.0e-4").
        let (mantissa, exponent) = nearest.split_once('e').unwrap_or((&nearest, "0"));
        let tenths = (mantissa.parse::<f64>().unwrap_or(0.0) * 10.0).round() as i64 + 1;
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let (tenths, exponent) = if tenths >= 100 {
            (tenths / 10, exponent + 1)
        } else {
            (tenths, exponent)
        };
        write!(f, "{}.{}e{exponent}", tenths / 10, tenths % 10)
    }
}

/// `report` with the judgement's fields, its signals (the ones in it, other generators'
/// marks `third_party` and the `metadata` findings) and its summary.
pub fn fill(
    mut report: Report,
    evidence: &Evidence,
    j: Judgement,
    third_party: &[ThirdPartyFinding],
    metadata: &[metadata::Finding],
) -> Report {
    report.verdict = j.verdict;
    report.credential_problem = j.credential_problem;
    report.ai_generated = j.ai_generated;
    report.signals = signals::collect(&report, third_party, metadata);
    report.summary = summary(&report, evidence, &j);
    report.ai_evidence = j.ai_evidence;
    report.proven_streams = j.proven_streams;
    report.different_sources = j.different_sources;
    report.conflicts = j.conflicts;
    if report.verdict == Verdict::Error && report.error.is_none() {
        report.error = Some("the file is neither readable media nor a C2PA asset".into());
    }
    if report.verdict != Verdict::Error {
        report.error = None;
    }
    report
}

fn signer(report: &Report) -> String {
    signer_of(Some(&report.c2pa))
}

/// Who signed a manifest, as its certificate names them.
fn signer_of(c: Option<&crate::report::C2paReport>) -> String {
    c.and_then(|c| c.issuer.clone().or_else(|| c.common_name.clone()))
        .unwrap_or_else(|| "an unknown signer".into())
}

fn mark(report: &Report, stream: Stream) -> Option<&MarkResult> {
    let w = report.watermark.as_ref()?;
    match stream {
        Stream::Picture => w.video.as_ref(),
        Stream::Sound => w.audio.as_ref(),
    }
}

/// "the picture", "the sound", "the picture and the sound".
fn streams_words(streams: &[Stream]) -> String {
    streams
        .iter()
        .map(|s| format!("the {}", s.as_str()))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Where the detected marks are: "in the picture (p = 1e-30) and in the sound (p = …)".
fn places(report: &Report) -> (Vec<Stream>, String) {
    let found: Vec<(Stream, f64)> = [Stream::Picture, Stream::Sound]
        .into_iter()
        .filter_map(|s| {
            mark(report, s)
                .filter(|m| m.detected)
                .map(|m| (s, m.p_value))
        })
        .collect();
    let words = found
        .iter()
        .map(|(s, p)| format!("in the {} (p = {})", s.as_str(), PBound(*p)))
        .collect::<Vec<_>>()
        .join(" and ");
    (found.into_iter().map(|(s, _)| s).collect(), words)
}

fn summary(report: &Report, evidence: &Evidence, j: &Judgement) -> String {
    let signer = signer(report);
    let clip = report.watermark.as_ref().and_then(|w| w.clip_id.clone());
    let (marked, place) = places(report);
    let recovered = report.recovered_manifest.as_ref();
    let mut out = match j.verdict {
        Verdict::Verified => format!(
            "Verified: signed by {signer}, a trusted signer, and the content is unchanged since signing."
        ),
        Verdict::ValidUntrusted => format!(
            "Valid but untrusted: the manifest is intact and the content unchanged since signing, but the signer ({signer}) is not on your trust list, so who signed it is not proven."
        ),
        Verdict::CredentialProblem => match j.credential_problem {
            Some(p) if !p.signature_checked() => format!(
                "Credential problem: {}, so the signature could not be relied on: who signed it ({signer}) and whether the manifest or content changed are not proven. Nothing shows tampering either.",
                p.words()
            ),
            p => format!(
                "Credential problem: the manifest is intact and the content unchanged since signing, but {}, so who signed it ({signer}) is not proven. This is not tampering.",
                p.map(CredentialProblem::words)
                    .unwrap_or("the signer's credential could not be validated")
            ),
        },
        Verdict::Contradicted => contradicted(report, j, &signer),
        Verdict::Tampered => tampered(report, evidence, recovered, clip.as_deref()),
        Verdict::Watermarked => watermarked(report, &place, clip.as_deref(), recovered),
        Verdict::NoProvenance => no_provenance(report, evidence),
        Verdict::Error => format!(
            "Error: {}",
            report
                .error
                .as_deref()
                .unwrap_or("the file is neither readable media nor a C2PA asset")
        ),
    };
    let manifest_binds = matches!(
        j.verdict,
        Verdict::Verified | Verdict::ValidUntrusted | Verdict::CredentialProblem
    );
    let checked = j
        .credential_problem
        .is_none_or(CredentialProblem::signature_checked);
    if manifest_binds {
        let clip_words = clip
            .as_deref()
            .map(|c| format!(" (clip {c})"))
            .unwrap_or_default();
        if !marked.is_empty() && checked {
            out.push_str(&format!(
                " hallmark's mark {place} agrees with it{clip_words}."
            ));
        } else if !marked.is_empty() {
            out.push_str(&format!(
                " hallmark's mark is {place}{clip_words}: a hallmark signer sealed this content; the manifest cannot say more."
            ));
        }
        if let Some(ManifestEvidence::Read(f)) = Some(&evidence.manifest) {
            if f.declares_ai == Some(false) && j.ai_generated.is_none() {
                out.push_str(&format!(
                    " It says the content is not AI-generated: that is {signer}'s claim, not proven."
                ));
            }
        }
        if !evidence.media_readable {
            match &evidence.recognised_format {
                Some(format) => out.push_str(&format!(
                    " hallmark cannot decode this {format} file, so no watermark was looked for in it."
                )),
                None => out.push_str(
                    " The picture and sound could not be decoded, so no watermark was looked for.",
                ),
            }
        }
    }
    if j.different_sources {
        out.push_str(&different_sources(report));
    }
    if let Some(c) = report
        .coverage
        .as_ref()
        .filter(|_| j.verdict != Verdict::Error)
    {
        if c.decoding_stopped.is_some() {
            out.push_str(" Decoding stopped at an error before the end of the file: what follows was not analysed.");
        } else if c.decode_errors > 0 {
            out.push_str(&format!(
                " {} packet{} could not be decoded and {} skipped; the rest was analysed.",
                c.decode_errors,
                if c.decode_errors == 1 { "" } else { "s" },
                if c.decode_errors == 1 { "was" } else { "were" },
            ));
        }
    }
    if j.verdict != Verdict::Contradicted
        && j.ai_evidence
            .iter()
            .any(|c| c.counts && matches!(c.source, AiSource::PictureMark | AiSource::SoundMark))
        && !manifest_binds
    {
        out.push_str(" The mark declares the content AI-generated.");
    }
    if j.verdict != Verdict::Error {
        out.push_str(&other_signals(report));
    }
    out
}

/// The signals below the verdict's own evidence — other generators' marks, the metadata —
/// in words, each with what it is worth.
fn other_signals(report: &Report) -> String {
    let mut out = String::new();
    for s in report
        .signals
        .iter()
        .filter(|s| s.kind == SignalKind::ThirdPartyWatermark)
    {
        out.push_str(&format!(
            " The picture carries {}'s default invisible watermark (p = {}): it went through that generator's code, or someone added its open-source mark; counted as AI-generated.",
            s.names.as_deref().unwrap_or("an open generator"),
            PBound(s.p_value.unwrap_or(1.0)),
        ));
    }
    let claims: Vec<&signals::Signal> = report
        .signals
        .iter()
        .filter(|s| s.kind == SignalKind::Metadata)
        .collect();
    let quote = |s: &signals::Signal| {
        let value = s.value.as_deref().unwrap_or_default();
        match &s.names {
            Some(n) if !value.contains(n.as_str()) => format!("{} \"{value}\" ({n})", s.found_in),
            _ => format!("{} \"{value}\"", s.found_in),
        }
    };
    let ai: Vec<String> = claims
        .iter()
        .filter(|s| s.says == Says::AiGenerated)
        .map(|s| quote(s))
        .collect();
    if !ai.is_empty() {
        out.push_str(&format!(
            " Its metadata says it is AI-generated ({}): an unauthenticated claim, taken as the admission it is.",
            ai.join("; ")
        ));
    }
    let rest: Vec<String> = claims
        .iter()
        .filter(|s| s.says != Says::AiGenerated)
        .map(|s| format!("{}: {}", s.says.words(), quote(s)))
        .collect();
    if !rest.is_empty() {
        out.push_str(&format!(
            " Its metadata claims it was {}. Anyone can write such claims: they prove nothing.",
            rest.join("; ")
        ));
    }
    out
}

fn contradicted(report: &Report, j: &Judgement, signer: &str) -> String {
    let trust = match report.credential_problem {
        None => "a trusted signer",
        Some(CredentialProblem::Untrusted) => "not on your trust list",
        Some(_) => "whose credential has a problem",
    };
    let declares = match j.ai_evidence.iter().find(|c| {
        matches!(
            c.source,
            AiSource::TrustedManifest | AiSource::UntrustedManifest
        )
    }) {
        Some(c) if !c.ai_generated => "says the content is not AI-generated",
        Some(_) => "declares the content AI-generated",
        None => "says nothing about AI",
    };
    let (marked, _) = places(report);
    let clip = report.watermark.as_ref().and_then(|w| w.clip_id.clone());
    let sealed_ai = j.ai_evidence.iter().any(|c| {
        c.ai_generated
            && c.counts
            && !matches!(
                c.source,
                AiSource::TrustedManifest | AiSource::UntrustedManifest
            )
    });
    let by = report
        .recovered_manifest
        .as_ref()
        .filter(|r| r.status == Recovery::Recovered)
        .map(|r| {
            let who = signer_of(r.c2pa.as_ref());
            format!(
                " by {who}{}",
                r.sealed_at
                    .as_deref()
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let mut out = format!(
        "Contradicted: this file's manifest, signed by {signer} ({trust}), {declares}; but {} carries hallmark's mark{}, sealed{}{by}.",
        streams_words(&marked),
        clip.as_deref().map(|c| format!(" of clip {c}")).unwrap_or_default(),
        if sealed_ai { " as AI-generated" } else { "" },
    );
    for conflict in &j.conflicts {
        match conflict {
            Conflict::UnaccountedMark { .. } => {
                if !out.contains("does not account") {
                    out.push_str(" The manifest does not account for that mark (no soft binding or ingredient names the clip): it hides an earlier seal.");
                }
            }
            Conflict::DeniesAi { .. } => out.push_str(
                " The manifest denies the AI that the mark or the manifest store declares.",
            ),
        }
    }
    out
}

fn tampered(
    report: &Report,
    evidence: &Evidence,
    recovered: Option<&RecoveredManifest>,
    clip: Option<&str>,
) -> String {
    if !matches!(evidence.manifest, ManifestEvidence::Read(_)) {
        // No manifest of its own: the mark was copied onto other content.
        let similarity = recovered.map(similarity_words).unwrap_or_default();
        return format!(
            "Mismatch: the file carries hallmark's watermark for clip {}, but its content is not that clip ({similarity}; different content scores picture ≤ {:.2} or sound ≤ {:.2}). The mark was copied onto other content, or the content was changed beyond recognition; the clip's manifest does not describe this file.",
            clip.unwrap_or("?"),
            hallmark_store::VIDEO_DIFFERENT,
            hallmark_store::AUDIO_DIFFERENT,
        );
    }
    let c = &report.c2pa;
    let codes: Vec<&str> = c
        .failures
        .iter()
        .map(String::as_str)
        .filter(|f| CredentialProblem::of_code(f).is_none())
        .collect();
    let codes = if codes.is_empty() {
        "validation failed".to_string()
    } else {
        codes.join(", ")
    };
    let mut out = format!("Tampered: the file has a C2PA manifest that fails validation ({codes}); the file or its manifest changed after signing.");
    if let Some(problem) = report.credential_problem {
        out.push_str(&format!(" Besides, {}.", problem.words()));
    }
    if let Some(r) = recovered.filter(|r| r.status == Recovery::Recovered) {
        out.push_str(&format!(
            " Its watermark (clip {}) leads to the manifest store, which holds that clip's manifest, {}: the content was sealed, but this file is not what was signed.",
            r.clip_id,
            stored_trust(r)
        ));
    } else {
        let (marked, place) = places(report);
        if let Some(clip) = clip.filter(|_| !marked.is_empty()) {
            out.push_str(&format!(
                " It carries hallmark's watermark (clip {clip}) {place}."
            ));
        }
    }
    out
}

fn watermarked(
    report: &Report,
    place: &str,
    clip: Option<&str>,
    recovered: Option<&RecoveredManifest>,
) -> String {
    if let Some(r) = recovered.filter(|r| r.status == Recovery::Recovered && r.c2pa.is_some()) {
        let ai = match r.ai_generated {
            Some(true) => " It declares the content AI-generated.",
            Some(false) => " It declares the content not AI-generated.",
            None => "",
        };
        return format!(
            "Watermarked, manifest recovered: the file has no valid C2PA manifest, but hallmark's invisible watermark is {place}, clip id {}, and the manifest store holds that clip's manifest, {}; this content matches the sealed clip ({}).{ai} The file's bytes are not the signed ones (re-encoded or stripped), so the watermark and the fingerprint, not the manifest's hash, tie it to that manifest.",
            r.clip_id,
            stored_trust(r),
            similarity_words(r),
        );
    }
    let detected = [Stream::Picture, Stream::Sound]
        .into_iter()
        .filter_map(|s| mark(report, s).filter(|m| m.detected));
    let key = detected
        .clone()
        .find_map(|m| m.key.as_ref())
        .map(|k| match &k.organisation {
            Some(org) => format!("{} ({org})", k.id),
            None => k.id.clone(),
        })
        .or_else(|| {
            detected
                .clone()
                .find_map(|m| m.key_id)
                .map(|k| format!("with short id {k}"))
        })
        .unwrap_or_else(|| "?".into());
    let mut out = format!(
        "Watermarked: no C2PA manifest, but hallmark's invisible watermark is {place}{}. It was sealed by a hallmark signer holding watermark key {key}; the manifest itself is not here, so who signed it and what it said are not proven.",
        clip.map(|c| format!(", clip id {c}")).unwrap_or_default(),
    );
    if let Some(r) = recovered.filter(|r| r.status == Recovery::Unconfirmed) {
        out.push_str(&format!(
            " The manifest store knows clip {}, but this content could not be confirmed to be that clip ({}), so its manifest is not attached.",
            clip.unwrap_or("?"),
            similarity_words(r)
        ));
    }
    out
}

fn no_provenance(report: &Report, evidence: &Evidence) -> String {
    if let Some(url) = &report.c2pa.remote_manifest_url {
        return format!(
            "No provenance in the file: its manifest is stored remotely at {url}, which hallmark does not fetch. Download it and verify with --sidecar."
        );
    }
    let searched = report
        .watermark
        .as_ref()
        .is_some_and(|w| w.video.is_some() || w.audio.is_some());
    let inconclusive: Vec<Stream> = [Stream::Picture, Stream::Sound]
        .into_iter()
        .filter(|s| mark(report, *s).is_some_and(|m| m.inconclusive))
        .collect();
    let mut out = if report.signals.is_empty() {
        format!(
            "No provenance signal found: no C2PA manifest{}, no other generator's watermark and no metadata saying how it was made. That is not evidence that the content is real: detectors that guess lose about half their AUC on content from the wild (Deepfake-Eval-2024), so hallmark does not guess.",
            if searched { ", no hallmark watermark" } else { "" }
        )
    } else if searched {
        "No provenance: the file carries no C2PA manifest and no hallmark watermark was found, so nothing about its origin can be proven.".to_string()
    } else {
        "No provenance: the file carries no C2PA manifest, so nothing about its origin can be proven.".to_string()
    };
    if let Some(format) = evidence
        .recognised_format
        .as_deref()
        .filter(|_| !evidence.media_readable)
    {
        out.push_str(&format!(
            " hallmark cannot decode this {format} file, so no watermark was looked for in it."
        ));
    }
    if !inconclusive.is_empty() {
        out.push_str(&format!(
            " A weak trace of the mark in {} is inconclusive: it proves nothing.",
            streams_words(&inconclusive)
        ));
    }
    out
}

fn different_sources(report: &Report) -> String {
    let with: Vec<Stream> = [Stream::Picture, Stream::Sound]
        .into_iter()
        .filter(|s| mark(report, *s).is_some_and(|m| m.detected))
        .collect();
    if with.len() == 2 {
        let clip = |s| {
            mark(report, s)
                .and_then(|m| m.payload.clone())
                .unwrap_or_default()
        };
        return format!(
            " The picture carries the mark of clip {} and the sound that of clip {}: they come from different sources.",
            clip(Stream::Picture),
            clip(Stream::Sound)
        );
    }
    let Some(&proven) = with.first() else {
        return String::new();
    };
    let other = match proven {
        Stream::Picture => Stream::Sound,
        Stream::Sound => Stream::Picture,
    };
    let seconds = mark(report, other)
        .map(|m| m.timeline.iter().filter(|p| p.is_some()).count())
        .unwrap_or(0);
    format!(
        " Only the {} is proven: the {}, {seconds} s of it analysed, shows no sign of the mark, so picture and sound come from different sources.",
        proven.as_str(),
        other.as_str()
    )
}

fn similarity_words(r: &RecoveredManifest) -> String {
    let scores: Vec<String> = [
        r.similarity.video.map(|s| format!("picture {s:.2}")),
        r.similarity.audio.map(|s| format!("sound {s:.2}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if scores.is_empty() {
        // A still against a clip's fingerprint, or a medium the stored clip lacks: nothing
        // was compared, which must be said, not left as empty brackets.
        "no fingerprint of it could be compared with the stored clip's".into()
    } else {
        scores.join(", ")
    }
}

fn stored_trust(r: &RecoveredManifest) -> String {
    let Some(c2pa) = &r.c2pa else {
        return "which could not be read".into();
    };
    let signer = signer_of(Some(c2pa));
    match c2pa.validation_state.as_deref() {
        Some("Trusted") => format!("signed by {signer}, a trusted signer"),
        Some("Valid") => format!("signed by {signer}, who is not on your trust list"),
        _ => format!(
            "but that manifest fails validation ({})",
            c2pa.failures.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::Similarity;

    fn recovered(video: Option<f64>, audio: Option<f64>) -> RecoveredManifest {
        RecoveredManifest {
            status: Recovery::Unconfirmed,
            clip_id: "c".into(),
            manifest_id: None,
            sealed_at: None,
            similarity: Similarity { video, audio },
            c2pa: None,
            ai_generated: None,
            message: None,
        }
    }

    /// The bug this guards: "p = {:.1e}" printed 1.04e-40 as "1.0e-40", and the public page,
    /// rounding the summary's number up to its power of ten, said "p ≤ 1e-40" where the
    /// evidence (and the page's own JSON) said 1e-39.
    #[test]
    fn printed_p_values_never_claim_more_than_the_evidence() {
        for (p, printed) in [
            (1.04e-40, "1.1e-40"),
            (1.0e-5, "1.0e-5"),
            (3.3e-21, "3.3e-21"),
            (9.96e-5, "1.0e-4"),
            (0.5, "5.0e-1"),
            (1.0, "1.0e0"),
            (2.5705217e-105, "2.6e-105"),
        ] {
            assert_eq!(PBound(p).to_string(), printed, "{p:e}");
        }
        // Every printed number, read back, is at or above the value, and at most one step of
        // the last digit above it.
        let mut p = 1.0f64;
        while p > 1e-300 {
            let text = PBound(p).to_string();
            let read: f64 = text.parse().unwrap();
            assert!(read >= p, "{p:e} printed {text}");
            assert!(read <= p * 1.1 + f64::MIN_POSITIVE, "{p:e} printed {text}");
            p *= 0.987_654_321;
        }
    }

    #[test]
    fn similarity_is_never_an_empty_bracket() {
        assert_eq!(
            similarity_words(&recovered(Some(0.5), Some(0.25))),
            "picture 0.50, sound 0.25"
        );
        assert_eq!(
            similarity_words(&recovered(None, None)),
            "no fingerprint of it could be compared with the stored clip's"
        );
    }
}
