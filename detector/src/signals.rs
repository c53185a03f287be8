//! Every provenance signal a report found, in one list (`Report::signals`), strongest first:
//! the C2PA manifest (cryptographic), hallmark's marks and other generators' default marks
//! (statistical, with a p-value), the file's metadata (unauthenticated claims).
//!
//! The list describes; it decides nothing. The verdict is still the provenance verdict of
//! [`crate::verdict::decide`], and only an admission of AI among the weaker signals may make
//! `ai_generated` true (never false).

use serde::Serialize;

use crate::metadata::{self, Says};
use crate::recover::Recovery;
use crate::report::{MarkResult, Report, Verdict};
use crate::verdict::Stream;

/// Which kind of evidence a signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalKind {
    /// A C2PA manifest (the file's own, or recovered from the manifest store).
    C2pa,
    /// hallmark's invisible mark, in the picture or the sound.
    HallmarkWatermark,
    /// The default invisible mark of an open generator's reference code.
    ThirdPartyWatermark,
    /// The file's metadata (EXIF, XMP, PNG text, container tags).
    Metadata,
}

/// How much a signal can be relied on, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strength {
    /// A signature that was checked: what it says is bound to the signer and the content.
    Cryptographic,
    /// A statistical test: `p_value` is the chance that unmarked content scores this high.
    Statistical,
    /// Text anyone can write, change or remove.
    UnauthenticatedClaim,
}

impl Strength {
    pub fn words(self) -> &'static str {
        match self {
            Strength::Cryptographic => "cryptographic",
            Strength::Statistical => "statistical",
            Strength::UnauthenticatedClaim => "unauthenticated claim",
        }
    }
}

/// One provenance signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    /// What it says about how the content was made.
    pub says: Says,
    /// The generator, camera, editor or signer it names (untrusted text for metadata: cut
    /// to 200 characters, control characters removed).
    pub names: Option<String>,
    pub strength: Strength,
    /// Statistical signals: the chance that content without the mark scores this high.
    pub p_value: Option<f64>,
    /// Where it was found: "C2PA manifest", "picture", "sound", "EXIF Software", …
    pub found_in: String,
    /// The value as written (metadata), or a short description (cut, cleaned).
    pub value: Option<String>,
    /// What it does not prove, in plain words.
    pub does_not_prove: String,
}

/// A third-party mark, as the report keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThirdPartyFinding {
    /// The generator whose default mark it is ("Stable Diffusion 1.x").
    pub generator: String,
    /// The message the mark carries, and how many of its bits were read as such.
    pub message: String,
    pub matching_bits: usize,
    pub bits: usize,
    /// Family-wise p-value (every generator and test tried).
    pub p_value: f64,
}

const METADATA_CAVEAT: &str = "Metadata is text anyone can write, change or remove: this is the file's own claim, not proof. Its absence proves nothing either.";

/// Every signal of `report` (its C2PA data, its marks, the store's answer already in it),
/// with the `third_party` marks detected and the `metadata` findings, strongest first.
pub fn collect(
    report: &Report,
    third_party: &[ThirdPartyFinding],
    metadata: &[metadata::Finding],
) -> Vec<Signal> {
    let mut out = Vec::new();
    c2pa_signals(report, &mut out);
    for stream in [Stream::Picture, Stream::Sound] {
        if let Some(m) = mark(report, stream).filter(|m| m.detected) {
            out.push(hallmark_signal(stream, m));
        }
    }
    for t in third_party {
        out.push(Signal {
            kind: SignalKind::ThirdPartyWatermark,
            says: Says::AiGenerated,
            names: Some(metadata::clean(&t.generator)),
            strength: Strength::Statistical,
            p_value: Some(t.p_value),
            found_in: "picture".into(),
            value: Some(metadata::clean(&format!(
                "default invisible watermark \"{}\", {}/{} bits",
                t.message, t.matching_bits, t.bits
            ))),
            does_not_prove: "It shows the picture went through that generator's reference code, or had its open-source mark added: anyone can add or remove such a mark, and its absence proves nothing (it is optional and fragile).".into(),
        });
    }
    for f in metadata {
        out.push(Signal {
            kind: SignalKind::Metadata,
            says: f.says,
            names: f.names.clone(),
            strength: Strength::UnauthenticatedClaim,
            p_value: None,
            found_in: f.found_in.clone(),
            value: Some(f.value.clone()),
            does_not_prove: METADATA_CAVEAT.into(),
        });
    }
    // Strongest first; among statistical signals the smaller p first; stable otherwise.
    out.sort_by(|a, b| {
        a.strength.cmp(&b.strength).then(
            a.p_value
                .unwrap_or(1.0)
                .total_cmp(&b.p_value.unwrap_or(1.0)),
        )
    });
    out
}

fn mark(report: &Report, stream: Stream) -> Option<&MarkResult> {
    let w = report.watermark.as_ref()?;
    match stream {
        Stream::Picture => w.video.as_ref(),
        Stream::Sound => w.audio.as_ref(),
    }
}

fn hallmark_signal(stream: Stream, m: &MarkResult) -> Signal {
    let says = match m.ai_generated {
        Some(true) => Says::AiGenerated,
        Some(false) => Says::NotAi,
        None => Says::Unstated,
    };
    let names = m.key.as_ref().map(|k| match &k.organisation {
        Some(org) => format!("hallmark signer {org} (key {})", k.id),
        None => format!("hallmark signer (key {})", k.id),
    });
    Signal {
        kind: SignalKind::HallmarkWatermark,
        says,
        names: names.map(|n| metadata::clean(&n)),
        strength: Strength::Statistical,
        p_value: Some(m.p_value),
        found_in: stream.as_str().into(),
        value: m.payload.as_ref().map(|c| format!("clip {c}")),
        does_not_prove: "It proves that a hallmark signer holding this watermark key sealed this stream and what the seal declared about AI; not who signed, nor what the lost manifest said (unless recovered from the store).".into(),
    }
}

/// What a manifest says, by its digital source types and hallmark's own declaration.
fn manifest_says(c: &crate::report::C2paReport) -> Says {
    let said: Vec<Says> = c
        .actions
        .iter()
        .filter_map(|a| a.digital_source_type.as_deref())
        .filter_map(metadata::source_type_says)
        .collect();
    if said.contains(&Says::AiGenerated) || crate::provenance::declared_ai(c) == Some(true) {
        return Says::AiGenerated;
    }
    if let Some(s) = said.first() {
        return *s;
    }
    match crate::provenance::declared_ai(c) {
        Some(false) => Says::NotAi,
        _ => Says::Unstated,
    }
}

/// The agent that made an AI action, else the claim generator.
fn manifest_names(c: &crate::report::C2paReport) -> Option<String> {
    c.actions
        .iter()
        .find(|a| {
            a.digital_source_type
                .as_deref()
                .and_then(metadata::source_type_says)
                == Some(Says::AiGenerated)
        })
        .and_then(|a| a.software_agent.clone())
        .or_else(|| c.claim_generator.clone())
        .map(|n| metadata::clean(&n))
}

fn signer(c: &crate::report::C2paReport) -> String {
    c.issuer
        .clone()
        .or_else(|| c.common_name.clone())
        .map(|s| metadata::clean(&s))
        .unwrap_or_else(|| "an unknown signer".into())
}

fn c2pa_signals(report: &Report, out: &mut Vec<Signal>) {
    let c = &report.c2pa;
    if let Some(url) = &c.remote_manifest_url {
        if c.validation_state.is_none() {
            out.push(Signal {
                kind: SignalKind::C2pa,
                says: Says::Unstated,
                names: None,
                strength: Strength::UnauthenticatedClaim,
                p_value: None,
                found_in: "a remote manifest's address".into(),
                value: Some(metadata::clean(url)),
                does_not_prove: "hallmark does not fetch remote manifests: until it is downloaded and verified (--sidecar), it proves nothing.".into(),
            });
        }
    }
    if c.validation_state.is_some() {
        // The signature binds what the manifest says where the verdict says it is intact.
        let (strength, state) = match report.verdict {
            Verdict::Verified => (Strength::Cryptographic, "trusted signer"),
            Verdict::ValidUntrusted => (Strength::Cryptographic, "signer not on your trust list"),
            Verdict::Contradicted => (
                Strength::Cryptographic,
                "intact, but contradicted by a mark",
            ),
            Verdict::CredentialProblem
                if report
                    .credential_problem
                    .is_none_or(|p| p.signature_checked()) =>
            {
                (
                    Strength::Cryptographic,
                    "the signer's credential has a problem",
                )
            }
            Verdict::CredentialProblem => (
                Strength::UnauthenticatedClaim,
                "its signature could not be checked",
            ),
            _ => (Strength::UnauthenticatedClaim, "fails validation"),
        };
        out.push(Signal {
            kind: SignalKind::C2pa,
            says: manifest_says(c),
            names: manifest_names(c),
            strength,
            p_value: None,
            found_in: "C2PA manifest".into(),
            value: Some(format!("signed by {} ({state})", signer(c))),
            does_not_prove: match strength {
                Strength::Cryptographic => "It proves the manifest is intact and bound to this content since signing; whether the signer told the truth about how the content was made is the signer's word, and who signed is proven only for a trusted signer.".into(),
                _ => "A manifest that fails validation, or whose signature could not be checked, proves nothing: its statements are unauthenticated.".into(),
            },
        });
    }
    if let Some(r) = report
        .recovered_manifest
        .as_ref()
        .filter(|r| r.status == Recovery::Recovered)
    {
        if let Some(stored) = &r.c2pa {
            let valid = matches!(
                stored.validation_state.as_deref(),
                Some("Trusted" | "Valid")
            );
            out.push(Signal {
                kind: SignalKind::C2pa,
                says: manifest_says(stored),
                names: manifest_names(stored),
                strength: if valid {
                    Strength::Cryptographic
                } else {
                    Strength::UnauthenticatedClaim
                },
                p_value: None,
                found_in: "manifest store (recovered by the watermark's clip id)".into(),
                value: Some(format!("clip {}, signed by {}", r.clip_id, signer(stored))),
                does_not_prove: "The stored manifest's signature is checked, but its hash is of the sealed file's bytes: the watermark and the content fingerprint, not the hash, tie it to this file.".into(),
            });
        }
    }
}

/// The metadata findings that admit AI: they may make `ai_generated` true.
pub fn metadata_admissions(findings: &[metadata::Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.says == Says::AiGenerated)
        .map(|f| match &f.names {
            Some(n) => format!("{} ({n})", f.found_in),
            None => f.found_in.clone(),
        })
        .collect()
}
