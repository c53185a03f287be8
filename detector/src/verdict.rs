//! Evidence in, one judgement out.
//!
//! Everything the verifier learnt about a file — its own manifest (validated), each stream's
//! mark, the manifest store's answer — is gathered into an [`Evidence`] first; [`decide`]
//! then turns it into the verdict, the AI disclosure and what is proven, without I/O. The
//! decision table is in the README ("How a verdict is decided") and in the tests below.

use serde::Serialize;

use crate::recover::Recovery;
use crate::report::Verdict;

/// Soft-binding algorithm names of hallmark's marks start with this.
pub const HALLMARK_BINDING_PREFIX: &str = "org.hallmark.watermark.";

/// A stream that shows no mark over at least this many analysed seconds "clearly does
/// not" carry it (shorter stretches may simply be too short for the test).
pub const SECONDS_TO_TELL: f64 = 4.0;

/// Why a manifest whose content and claim are intact is still not `verified`: its
/// signer's credential, not the file, is the trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialProblem {
    /// The signer's certificate does not lead to a trust anchor of this verifier.
    Untrusted,
    /// A time-stamp that is malformed, untrusted, outside its validity or not for this
    /// signature (`timeStamp.*`).
    Timestamp,
    /// The certificate had expired when verified, with no trusted time-stamp proving the
    /// signature was made while it was valid.
    Expired,
    /// The signature's algorithm is not supported (or deprecated): the signature cannot
    /// be checked at all.
    UnsupportedAlgorithm,
    /// The certificate is malformed or unfit for C2PA signing (chain, EKU, key usage, CA).
    InvalidCredential,
    /// The certificate was revoked (a stapled OCSP response says so).
    Revoked,
}

impl CredentialProblem {
    /// The family of a C2PA failure code, or `None` for a code that says the content or
    /// the manifest changed (or anything not known to be about the credential: fail
    /// closed).
    pub fn of_code(code: &str) -> Option<CredentialProblem> {
        Some(match code {
            "signingCredential.untrusted" => CredentialProblem::Untrusted,
            "signingCredential.expired" | "claimSignature.outsideValidity" => {
                CredentialProblem::Expired
            }
            "signingCredential.ocsp.revoked" => CredentialProblem::Revoked,
            "signingCredential.invalid" | "signingCredential.ocsp.unknown" => {
                CredentialProblem::InvalidCredential
            }
            "algorithm.unsupported" | "algorithm.deprecated" => {
                CredentialProblem::UnsupportedAlgorithm
            }
            c if c.starts_with("timeStamp.") => CredentialProblem::Timestamp,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialProblem::Untrusted => "untrusted",
            CredentialProblem::Timestamp => "timestamp",
            CredentialProblem::Expired => "expired",
            CredentialProblem::UnsupportedAlgorithm => "unsupported-algorithm",
            CredentialProblem::InvalidCredential => "invalid-credential",
            CredentialProblem::Revoked => "revoked",
        }
    }

    /// Whether the signature itself could be checked despite the problem: then the manifest
    /// and the content are known to be unchanged since signing. A revoked certificate stops
    /// the SDK before it checks anything; an unsupported algorithm cannot be checked.
    pub fn signature_checked(self) -> bool {
        !matches!(
            self,
            CredentialProblem::Revoked | CredentialProblem::UnsupportedAlgorithm
        )
    }

    /// What the problem means, in a sentence's middle.
    pub fn words(self) -> &'static str {
        match self {
            CredentialProblem::Untrusted => "the signer is not on your trust list",
            CredentialProblem::Timestamp => "its time-stamp could not be validated",
            CredentialProblem::Expired => "the signing certificate has expired and no trusted time-stamp proves the signature was made while it was valid",
            CredentialProblem::UnsupportedAlgorithm => "it is signed with an algorithm that is not supported",
            CredentialProblem::InvalidCredential => "the signing certificate is not valid for C2PA signing (its chain, key usage or form)",
            CredentialProblem::Revoked => "the signing certificate was revoked",
        }
    }
}

/// What the file's own C2PA data showed.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestEvidence {
    /// No C2PA data.
    Absent,
    /// Only a pointer to a manifest elsewhere (never fetched).
    Remote,
    /// A manifest store is there but could not be parsed.
    Unreadable,
    /// A manifest store was read and validated.
    Read(ManifestFacts),
}

/// A validated manifest, reduced to what the verdict depends on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManifestFacts {
    /// Failure codes that say the content or the manifest changed after signing (hash,
    /// signature, claim integrity), or that are not known to be about the credential.
    pub integrity_failures: Vec<String>,
    /// The worst credential problem (`None`: the signer is trusted and valid).
    pub credential: Option<CredentialProblem>,
    /// What the manifest declares about AI (any action's digital source type, or
    /// hallmark's own assertion).
    pub declares_ai: Option<bool>,
    /// Clip ids of hallmark marks the manifest accounts for: soft bindings of its own and
    /// of its ingredients' manifests.
    pub accounted_clip_ids: Vec<String>,
    /// It names some hallmark mark (a soft binding of hallmark's algorithms), whatever
    /// the clip id.
    pub names_hallmark_mark: bool,
}

impl ManifestFacts {
    /// Splits the active manifest's failure codes into integrity failures and the worst
    /// credential problem.
    pub fn classify(failures: &[String]) -> (Vec<String>, Option<CredentialProblem>) {
        let mut integrity = Vec::new();
        let mut credential = None;
        // A signature made with an algorithm the SDK cannot check is also reported as a
        // signature mismatch: that is the same problem, not a second one.
        let unsupported = failures.iter().any(|c| c == "algorithm.unsupported");
        for code in failures {
            if unsupported && code == "claimSignature.mismatch" {
                continue;
            }
            match CredentialProblem::of_code(code) {
                Some(p) => credential = credential.max(Some(p)),
                None => integrity.push(code.clone()),
            }
        }
        (integrity, credential)
    }

    /// No failure says the content or the manifest changed.
    pub fn intact(&self) -> bool {
        self.integrity_failures.is_empty()
    }

    /// The manifest names hallmark's clip `clip_id` (its own soft bindings or an
    /// ingredient's).
    pub fn accounts_for(&self, clip_id: &str) -> bool {
        self.accounted_clip_ids
            .iter()
            .any(|a| a.eq_ignore_ascii_case(clip_id))
    }
}

/// Whether a stream's mark was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarkState {
    /// p ≤ 1e-6 for the whole stream.
    Detected,
    /// 1e-6 < p < 0.01.
    Inconclusive,
    /// p ≥ 0.01.
    NotFound,
    /// The stream could not be analysed (no watermark key, or nothing decoded).
    NotAnalysed,
}

/// One stream's mark.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkEvidence {
    pub state: MarkState,
    /// The payload's clip id (16 hex digits), when it decoded.
    pub clip_id: Option<String>,
    /// The payload's AI declaration, when it decoded.
    pub ai_generated: Option<bool>,
    /// Seconds of the stream the test saw.
    pub analysed_s: f64,
}

impl MarkEvidence {
    fn detected(&self) -> bool {
        self.state == MarkState::Detected
    }

    /// Clearly without the mark: searched over enough of the stream and nothing there.
    fn clearly_absent(&self) -> bool {
        self.state == MarkState::NotFound && self.analysed_s >= SECONDS_TO_TELL
    }
}

/// What the manifest store said about the marks' clip id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreEvidence {
    pub status: Recovery,
    /// The stored manifest validated on its own (signature, certificate): `None` when
    /// it failed or was not read.
    pub credential: Option<Option<CredentialProblem>>,
    /// What the stored manifest declares about AI.
    pub declares_ai: Option<bool>,
}

impl StoreEvidence {
    /// The stored manifest describes this content and validated (trusted or not).
    fn recovered_valid(&self) -> bool {
        self.status == Recovery::Recovered && self.credential.is_some()
    }
}

/// Everything the verdict depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub manifest: ManifestEvidence,
    /// FFmpeg could open the file's picture or sound.
    pub media_readable: bool,
    /// The picture's mark (`None`: the file has no picture).
    pub picture: Option<MarkEvidence>,
    /// The sound's mark (`None`: the file has no sound).
    pub sound: Option<MarkEvidence>,
    /// The store's answer (`None`: no store, or no clip id to ask about).
    pub store: Option<StoreEvidence>,
    /// Admissions of AI by other generators' marks and by the file's metadata.
    pub admissions: Vec<AiAdmission>,
    /// What the file is, by its bytes, where FFmpeg cannot decode it but the format is one
    /// hallmark knows (HEIF, AVIF, PDF…): such a file without a manifest has no provenance,
    /// it is not an error.
    pub recognised_format: Option<String>,
}

/// A stream of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stream {
    Picture,
    Sound,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Picture => "picture",
            Stream::Sound => "sound",
        }
    }
}

/// Where a statement about AI came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AiSource {
    /// The file's own manifest, validated, its signer trusted.
    TrustedManifest,
    /// The file's own manifest, intact, but its signer not trusted (or its credential in
    /// trouble): an admission of AI counts, a denial is only the signer's claim.
    UntrustedManifest,
    /// The payload of the mark in the picture.
    PictureMark,
    /// The payload of the mark in the sound.
    SoundMark,
    /// The manifest recovered from the store for the mark's clip id.
    StoredManifest,
    /// Another generator's default invisible mark, detected in the picture.
    ThirdPartyMark,
    /// The file's metadata (EXIF, XMP, PNG text, container tags): an unauthenticated claim,
    /// counted only as an admission.
    Metadata,
}

/// One statement about whether the content is AI-generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AiClaim {
    pub source: AiSource,
    pub ai_generated: bool,
    /// Whether this statement decided the report's `ai_generated` (an untrusted denial
    /// never does).
    pub counts: bool,
    /// Which mark or metadata field, for the sources that are not unique in a file
    /// (`third-party-mark`, `metadata`): e.g. "EXIF Software (FLUX (Black Forest Labs))".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found_in: Option<String>,
}

/// An admission of AI from outside C2PA and hallmark's marks: another generator's mark
/// ([`AiSource::ThirdPartyMark`]) or the file's metadata ([`AiSource::Metadata`]). Such
/// signals can only make `ai_generated` true: a missing admission proves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiAdmission {
    pub source: AiSource,
    /// Which mark or field said so.
    pub found_in: String,
}

/// Why a valid manifest and the marks disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Conflict {
    /// A hallmark mark the manifest does not account for (no soft binding or ingredient
    /// with its clip id): the content was sealed before, and this manifest hides it.
    UnaccountedMark {
        stream: Stream,
        clip_id: Option<String>,
    },
    /// The manifest declares the content not AI-generated, but the mark or the store
    /// says it was sealed as AI-generated.
    DeniesAi { by: AiSource },
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub credential_problem: Option<CredentialProblem>,
    pub ai_generated: Option<bool>,
    pub ai_evidence: Vec<AiClaim>,
    /// Streams whose origin the verdict's evidence proves: every stream for a manifest
    /// that binds the file; the streams holding a detected mark otherwise.
    pub proven_streams: Vec<Stream>,
    /// The sound carries a clip's mark and the picture clearly does not, or the two carry
    /// different clips: the file's picture and sound come from different sources.
    pub different_sources: bool,
    pub conflicts: Vec<Conflict>,
}

/// The one place a verdict is decided. Pure: the same evidence always gives the same
/// judgement.
pub fn decide(e: &Evidence) -> Judgement {
    let marks: Vec<(Stream, &MarkEvidence)> =
        [(Stream::Picture, &e.picture), (Stream::Sound, &e.sound)]
            .into_iter()
            .filter_map(|(s, m)| m.as_ref().map(|m| (s, m)))
            .collect();
    let detected: Vec<(Stream, &MarkEvidence)> = marks
        .iter()
        .copied()
        .filter(|(_, m)| m.detected())
        .collect();
    let streams: Vec<Stream> = marks.iter().map(|(s, _)| *s).collect();
    let facts = match &e.manifest {
        ManifestEvidence::Read(f) => Some(f),
        _ => None,
    };
    // A manifest whose signature could not be checked at all (revoked: the SDK stopped;
    // unsupported algorithm) proves nothing, not even that it is intact, and shows no
    // tampering either.
    let unverifiable =
        facts.filter(|f| f.intact() && f.credential.is_some_and(|c| !c.signature_checked()));
    let intact = facts.filter(|f| f.intact() && unverifiable.is_none());

    // AI: every statement, then what may decide.
    let mut ai_evidence = Vec::new();
    if let Some(f) = intact {
        if let Some(ai) = f.declares_ai {
            let source = if f.credential.is_none() {
                AiSource::TrustedManifest
            } else {
                AiSource::UntrustedManifest
            };
            ai_evidence.push(AiClaim {
                source,
                ai_generated: ai,
                counts: ai || source == AiSource::TrustedManifest,
                found_in: None,
            });
        }
    }
    for (stream, m) in &detected {
        if let Some(ai) = m.ai_generated {
            let source = match stream {
                Stream::Picture => AiSource::PictureMark,
                Stream::Sound => AiSource::SoundMark,
            };
            // The mark's own "not AI" is its sealer's claim: an admission only counts.
            ai_evidence.push(AiClaim {
                source,
                ai_generated: ai,
                counts: ai,
                found_in: None,
            });
        }
    }
    // The store is asked about a detected mark's clip id; without one it has nothing to say.
    // Beside a manifest of the file's own that failed, the stored manifest describes the
    // original, not these changed bytes: nothing of it is claimed.
    let own_manifest_broken = facts.is_some() && intact.is_none() && unverifiable.is_none();
    if let Some(store) = e
        .store
        .as_ref()
        .filter(|s| s.recovered_valid() && !detected.is_empty() && !own_manifest_broken)
    {
        if let Some(ai) = store.declares_ai {
            let trusted = store.credential == Some(None);
            ai_evidence.push(AiClaim {
                source: AiSource::StoredManifest,
                ai_generated: ai,
                counts: ai || trusted,
                found_in: None,
            });
        }
    }
    // Other generators' marks and the metadata: admissions only (never "not AI").
    for a in &e.admissions {
        ai_evidence.push(AiClaim {
            source: a.source,
            ai_generated: true,
            counts: true,
            found_in: Some(a.found_in.clone()),
        });
    }
    let says_ai = ai_evidence.iter().any(|c| c.counts && c.ai_generated);
    let ai_generated = if says_ai {
        Some(true)
    } else if ai_evidence.iter().any(|c| c.counts && !c.ai_generated) {
        Some(false)
    } else {
        None
    };
    // A denial that lost to an admission does not count either.
    if says_ai {
        for c in &mut ai_evidence {
            if !c.ai_generated {
                c.counts = false;
            }
        }
    }

    // Streams: one carries a clip's mark, the other clearly does not (or another clip's).
    // Only the picture's absence is clear: every sealed frame carries its mark, while quiet
    // or narrow-band sound may not show a mark it carries (a sealed clip's soft intro
    // scores p ≈ 0.6), so a sound without it is not called another source.
    let different_sources = match (&e.picture, &e.sound) {
        (Some(p), Some(s)) => {
            (s.detected() && p.clearly_absent())
                || (p.detected()
                    && s.detected()
                    && p.clip_id.is_some()
                    && s.clip_id.is_some()
                    && p.clip_id != s.clip_id)
        }
        _ => false,
    };

    let mark_copied = e
        .store
        .as_ref()
        .is_some_and(|s| s.status == Recovery::Mismatch);
    let mut conflicts = Vec::new();
    if let Some(f) = intact {
        for (stream, m) in &detected {
            let accounted = match &m.clip_id {
                Some(id) => f.accounts_for(id),
                // An unreadable clip id cannot be checked against a manifest that names
                // hallmark marks; one that names none does not account for any.
                None => f.names_hallmark_mark,
            };
            if !accounted {
                conflicts.push(Conflict::UnaccountedMark {
                    stream: *stream,
                    clip_id: m.clip_id.clone(),
                });
            }
        }
        // Only hallmark's own evidence contradicts a manifest: another generator's mark or
        // the metadata may make the content AI, but the verdict stays the manifest's.
        if f.declares_ai == Some(false) {
            if let Some(by) = ai_evidence
                .iter()
                .find(|c| {
                    c.ai_generated
                        && matches!(
                            c.source,
                            AiSource::PictureMark | AiSource::SoundMark | AiSource::StoredManifest
                        )
                })
                .map(|c| c.source)
            {
                conflicts.push(Conflict::DeniesAi { by });
            }
        }
    }

    let credential_problem = facts.and_then(|f| f.credential);
    let verdict = match (&e.manifest, intact) {
        (ManifestEvidence::Read(_), None) if unverifiable.is_some() => Verdict::CredentialProblem,
        // Content or claim changed: whatever else is known.
        (ManifestEvidence::Read(_), None) => Verdict::Tampered,
        (ManifestEvidence::Read(_), Some(_)) if !conflicts.is_empty() => Verdict::Contradicted,
        (ManifestEvidence::Read(_), Some(f)) => match f.credential {
            None => Verdict::Verified,
            Some(CredentialProblem::Untrusted) => Verdict::ValidUntrusted,
            Some(_) => Verdict::CredentialProblem,
        },
        // No manifest that binds the file: the marks and the store speak.
        _ if mark_copied => Verdict::Tampered,
        _ if !detected.is_empty() => Verdict::Watermarked,
        (ManifestEvidence::Unreadable, _) => Verdict::Error,
        _ if !e.media_readable && e.recognised_format.is_none() => Verdict::Error,
        _ => Verdict::NoProvenance,
    };
    let proven_streams = match verdict {
        // Only the marks speak beside a manifest whose signature could not be checked.
        Verdict::CredentialProblem if unverifiable.is_some() => {
            detected.iter().map(|(s, _)| *s).collect()
        }
        Verdict::Verified | Verdict::ValidUntrusted | Verdict::CredentialProblem => streams,
        Verdict::Watermarked | Verdict::Contradicted => detected.iter().map(|(s, _)| *s).collect(),
        _ => Vec::new(),
    };
    Judgement {
        verdict,
        credential_problem,
        ai_generated,
        ai_evidence,
        proven_streams,
        different_sources,
        conflicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialProblem as Cp;
    use ManifestEvidence as M;
    use MarkState::*;
    use Verdict as V;

    const X: &str = "8000000000000abc"; // sealed as AI (top bit)
    const Y: &str = "0000000000000def"; // sealed as not AI

    fn manifest(credential: Option<Cp>, ai: Option<bool>, clips: &[&str]) -> ManifestEvidence {
        M::Read(ManifestFacts {
            integrity_failures: Vec::new(),
            credential,
            declares_ai: ai,
            accounted_clip_ids: clips.iter().map(|c| c.to_string()).collect(),
            names_hallmark_mark: !clips.is_empty(),
        })
    }

    fn broken(codes: &[&str]) -> ManifestEvidence {
        M::Read(ManifestFacts {
            integrity_failures: codes.iter().map(|c| c.to_string()).collect(),
            declares_ai: Some(false),
            ..Default::default()
        })
    }

    fn mark(state: MarkState, clip: Option<&str>, seconds: f64) -> Option<MarkEvidence> {
        Some(MarkEvidence {
            state,
            clip_id: clip.map(str::to_owned),
            ai_generated: clip.map(|c| c.starts_with('8')),
            analysed_s: seconds,
        })
    }

    fn store(
        status: Recovery,
        credential: Option<Option<Cp>>,
        ai: Option<bool>,
    ) -> Option<StoreEvidence> {
        Some(StoreEvidence {
            status,
            credential,
            declares_ai: ai,
        })
    }

    struct Row {
        name: &'static str,
        manifest: ManifestEvidence,
        readable: bool,
        picture: Option<MarkEvidence>,
        sound: Option<MarkEvidence>,
        store: Option<StoreEvidence>,
        verdict: Verdict,
        problem: Option<Cp>,
        ai: Option<bool>,
        proven: &'static [Stream],
        different: bool,
        admissions: Vec<AiAdmission>,
        recognised: Option<&'static str>,
    }

    fn row(name: &'static str, manifest: ManifestEvidence, verdict: Verdict) -> Row {
        Row {
            name,
            manifest,
            readable: true,
            picture: mark(NotFound, None, 10.0),
            sound: mark(NotFound, None, 10.0),
            store: None,
            verdict,
            problem: None,
            ai: None,
            proven: &[],
            different: false,
            admissions: Vec::new(),
            recognised: None,
        }
    }

    fn admitted(source: AiSource) -> Vec<AiAdmission> {
        vec![AiAdmission {
            source,
            found_in: "EXIF Software".into(),
        }]
    }

    #[test]
    fn the_decision_table() {
        use Stream::{Picture as P, Sound as S};
        let rows = vec![
            Row {
                ai: Some(true),
                proven: &[P, S],
                picture: mark(Detected, Some(X), 10.0),
                sound: mark(Detected, Some(X), 10.0),
                ..row(
                    "trusted hallmark seal, both marks agree",
                    manifest(None, Some(true), &[X]),
                    V::Verified,
                )
            },
            Row {
                sound: mark(Detected, Some(X), 10.0),
                ai: Some(true),
                proven: &[P, S],
                problem: Some(Cp::Untrusted),
                picture: mark(Detected, Some(X), 10.0),
                ..row(
                    "untrusted seal that accounts for its mark",
                    manifest(Some(Cp::Untrusted), Some(true), &[X]),
                    V::ValidUntrusted,
                )
            },
            Row {
                ai: Some(false),
                proven: &[P, S],
                ..row(
                    "trusted camera manifest, no mark",
                    manifest(None, Some(false), &[]),
                    V::Verified,
                )
            },
            Row {
                ai: None,
                proven: &[P, S],
                problem: Some(Cp::Untrusted),
                ..row(
                    "untrusted 'not AI' is only a claim",
                    manifest(Some(Cp::Untrusted), Some(false), &[]),
                    V::ValidUntrusted,
                )
            },
            Row {
                ai: Some(true),
                proven: &[P, S],
                problem: Some(Cp::Untrusted),
                ..row(
                    "untrusted admission of AI counts",
                    manifest(Some(Cp::Untrusted), Some(true), &[]),
                    V::ValidUntrusted,
                )
            },
            // AI-washing: stripped hallmark clip re-sealed as not AI by someone else.
            Row {
                ai: Some(true),
                proven: &[P, S],
                problem: Some(Cp::Untrusted),
                picture: mark(Detected, Some(X), 10.0),
                sound: mark(Detected, Some(X), 10.0),
                ..row(
                    "AI-washing: mark not accounted for",
                    manifest(Some(Cp::Untrusted), Some(false), &[]),
                    V::Contradicted,
                )
            },
            Row {
                sound: mark(Detected, Some(X), 10.0),
                ai: Some(true),
                proven: &[P, S],
                picture: mark(Detected, Some(X), 10.0),
                ..row(
                    "trusted manifest hides an earlier seal",
                    manifest(None, None, &[Y]),
                    V::Contradicted,
                )
            },
            Row {
                sound: mark(Detected, Some(X), 10.0),
                ai: Some(true),
                proven: &[P, S],
                picture: mark(Detected, Some(X), 10.0),
                ..row(
                    "manifest accounts for the clip but denies the AI the mark declares",
                    manifest(None, Some(false), &[X]),
                    V::Contradicted,
                )
            },
            Row {
                sound: mark(Detected, Some(X), 10.0),
                ai: Some(true),
                proven: &[P, S],
                problem: Some(Cp::Untrusted),
                picture: mark(Detected, Some(X), 10.0),
                ..row(
                    "re-seal whose ingredient names the clip",
                    manifest(Some(Cp::Untrusted), Some(true), &["00000000000000aa", X]),
                    V::ValidUntrusted,
                )
            },
            Row {
                sound: None,
                ai: None,
                proven: &[P],
                problem: Some(Cp::Untrusted),
                picture: mark(Detected, None, 10.0),
                ..row(
                    "unreadable clip id beside a manifest naming a hallmark mark",
                    manifest(Some(Cp::Untrusted), None, &[Y]),
                    V::ValidUntrusted,
                )
            },
            Row {
                sound: None,
                ai: None,
                proven: &[P],
                picture: mark(Detected, None, 10.0),
                ..row(
                    "unreadable clip id, manifest names no mark",
                    manifest(None, None, &[]),
                    V::Contradicted,
                )
            },
            Row {
                ai: Some(false),
                proven: &[P, S],
                picture: mark(Inconclusive, Some(X), 10.0),
                ..row(
                    "an inconclusive mark is no conflict",
                    manifest(None, Some(false), &[]),
                    V::Verified,
                )
            },
            Row {
                ai: Some(false),
                proven: &[P, S],
                store: store(Recovery::Recovered, Some(None), Some(true)),
                ..row(
                    "store unused without a detected mark",
                    manifest(None, Some(false), &[]),
                    V::Verified,
                )
            },
            // Credential trouble is not tampering.
            Row {
                ai: Some(true),
                proven: &[P, S],
                problem: Some(Cp::Expired),
                ..row(
                    "expired without timestamp",
                    manifest(Some(Cp::Expired), Some(true), &[X]),
                    V::CredentialProblem,
                )
            },
            Row {
                ai: None,
                proven: &[],
                problem: Some(Cp::Revoked),
                ..row(
                    "revoked, 'not AI' not taken",
                    manifest(Some(Cp::Revoked), Some(false), &[]),
                    V::CredentialProblem,
                )
            },
            Row {
                proven: &[P, S],
                problem: Some(Cp::InvalidCredential),
                ..row(
                    "wrong EKU",
                    manifest(Some(Cp::InvalidCredential), None, &[]),
                    V::CredentialProblem,
                )
            },
            Row {
                proven: &[],
                problem: Some(Cp::UnsupportedAlgorithm),
                ..row(
                    "unsupported algorithm",
                    manifest(Some(Cp::UnsupportedAlgorithm), None, &[]),
                    V::CredentialProblem,
                )
            },
            Row {
                ai: Some(true),
                sound: None,
                proven: &[P],
                problem: Some(Cp::Revoked),
                picture: mark(Detected, Some(X), 10.0),
                ..row(
                    "revoked: nothing of the manifest is checked, so nothing contradicts it; the mark speaks",
                    manifest(Some(Cp::Revoked), None, &[]),
                    V::CredentialProblem,
                )
            },
            Row {
                ai: None,
                proven: &[],
                problem: Some(Cp::UnsupportedAlgorithm),
                ..row(
                    "unsupported algorithm: its admission proves nothing either",
                    manifest(Some(Cp::UnsupportedAlgorithm), Some(true), &[]),
                    V::CredentialProblem,
                )
            },
            Row {
                sound: None,
                ai: Some(true),
                proven: &[P],
                problem: Some(Cp::Expired),
                picture: mark(Detected, Some(X), 10.0),
                ..row(
                    "expired and contradicted: the conflict wins",
                    manifest(Some(Cp::Expired), Some(false), &[]),
                    V::Contradicted,
                )
            },
            // Tampering.
            Row {
                ..row(
                    "hash mismatch",
                    broken(&["assertion.bmffHash.mismatch"]),
                    V::Tampered,
                )
            },
            Row {
                ..row(
                    "signature mismatch",
                    broken(&["claimSignature.mismatch"]),
                    V::Tampered,
                )
            },
            Row {
                problem: None,
                readable: false,
                picture: None,
                sound: None,
                ..row(
                    "a failed manifest stays tampered on undecodable media",
                    broken(&["assertion.dataHash.mismatch"]),
                    V::Tampered,
                )
            },
            Row {
                ai: None,
                sound: None,
                picture: mark(Detected, Some(Y), 10.0),
                store: store(Recovery::Recovered, Some(None), Some(true)),
                ..row(
                    "tampered: the stored manifest describes the original, not these bytes",
                    broken(&["assertion.bmffHash.mismatch"]),
                    V::Tampered,
                )
            },
            Row {
                sound: None,
                ai: Some(true),
                picture: mark(Detected, Some(X), 10.0),
                store: store(Recovery::Recovered, Some(None), Some(true)),
                ..row(
                    "tampered with the mark and a recovered manifest",
                    broken(&["assertion.bmffHash.mismatch"]),
                    V::Tampered,
                )
            },
            // No manifest: the marks and the store.
            Row {
                ..row("nothing at all", M::Absent, V::NoProvenance)
            },
            Row {
                ..row("remote manifest only", M::Remote, V::NoProvenance)
            },
            Row {
                readable: false,
                picture: None,
                sound: None,
                ..row("unreadable and unsigned", M::Absent, V::Error)
            },
            Row {
                picture: None,
                sound: None,
                ..row("unparseable manifest", M::Unreadable, V::Error)
            },
            Row {
                ai: Some(true),
                proven: &[P, S],
                picture: mark(Detected, Some(X), 10.0),
                sound: mark(Detected, Some(X), 10.0),
                ..row(
                    "stripped AI seal: the mark alone says AI",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                ai: None,
                proven: &[P],
                picture: mark(Detected, Some(Y), 10.0),
                sound: mark(Inconclusive, None, 10.0),
                ..row(
                    "stripped not-AI seal: the mark's denial is a claim",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                ai: Some(false),
                proven: &[P],
                picture: mark(Detected, Some(Y), 10.0),
                sound: None,
                store: store(Recovery::Recovered, Some(None), Some(false)),
                ..row(
                    "stripped not-AI seal, trusted stored manifest",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                ai: None,
                proven: &[P],
                picture: mark(Detected, Some(Y), 10.0),
                sound: None,
                store: store(Recovery::Recovered, Some(Some(Cp::Untrusted)), Some(false)),
                ..row(
                    "stripped not-AI seal, untrusted stored manifest",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                ai: Some(true),
                proven: &[S],
                different: true,
                picture: mark(NotFound, None, 12.0),
                sound: mark(Detected, Some(X), 12.0),
                ..row(
                    "sealed sound under other footage",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                ai: Some(true),
                proven: &[P],
                different: false,
                picture: mark(Detected, Some(X), 30.0),
                sound: mark(NotFound, None, 30.0),
                ..row(
                    "a sound without the mark is not called another source (quiet sound hides it)",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                ai: Some(true),
                proven: &[S],
                different: false,
                picture: mark(NotFound, None, 2.0),
                sound: mark(Detected, Some(X), 2.0),
                ..row(
                    "too short to tell the picture apart",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                ai: Some(true),
                proven: &[P, S],
                different: true,
                picture: mark(Detected, Some(X), 8.0),
                sound: mark(Detected, Some(Y), 8.0),
                ..row(
                    "picture and sound of two different clips",
                    M::Absent,
                    V::Watermarked,
                )
            },
            Row {
                sound: None,
                ai: Some(true),
                picture: mark(Detected, Some(X), 10.0),
                store: store(Recovery::Mismatch, None, None),
                ..row("mark copied onto other content", M::Absent, V::Tampered)
            },
            Row {
                ai: None,
                picture: mark(Inconclusive, Some(X), 10.0),
                ..row(
                    "an inconclusive mark proves nothing",
                    M::Absent,
                    V::NoProvenance,
                )
            },
            // Other signals: admissions of AI, never a verdict of their own.
            Row {
                ai: Some(true),
                admissions: admitted(AiSource::Metadata),
                ..row(
                    "metadata admits AI: still no provenance",
                    M::Absent,
                    V::NoProvenance,
                )
            },
            Row {
                ai: Some(true),
                admissions: admitted(AiSource::ThirdPartyMark),
                ..row(
                    "another generator's mark: AI, no provenance",
                    M::Absent,
                    V::NoProvenance,
                )
            },
            Row {
                ai: Some(true),
                proven: &[P, S],
                admissions: admitted(AiSource::Metadata),
                ..row(
                    "metadata admits AI beside a trusted 'not AI': AI, and no contradiction",
                    manifest(None, Some(false), &[]),
                    V::Verified,
                )
            },
            Row {
                readable: false,
                picture: None,
                sound: None,
                recognised: Some("HEIF"),
                ..row(
                    "a format FFmpeg cannot decode, recognised, unsigned",
                    M::Absent,
                    V::NoProvenance,
                )
            },
            Row {
                readable: false,
                picture: None,
                sound: None,
                recognised: Some("PDF"),
                problem: Some(Cp::Untrusted),
                proven: &[],
                ai: Some(true),
                ..row(
                    "a signed document FFmpeg cannot decode: its manifest speaks",
                    manifest(Some(Cp::Untrusted), Some(true), &[]),
                    V::ValidUntrusted,
                )
            },
        ];
        for r in rows {
            let e = Evidence {
                manifest: r.manifest,
                media_readable: r.readable,
                picture: r.picture,
                sound: r.sound,
                store: r.store,
                admissions: r.admissions,
                recognised_format: r.recognised.map(str::to_owned),
            };
            let j = decide(&e);
            assert_eq!(j.verdict, r.verdict, "{}: verdict", r.name);
            assert_eq!(
                j.credential_problem, r.problem,
                "{}: credential problem",
                r.name
            );
            assert_eq!(j.ai_generated, r.ai, "{}: ai_generated", r.name);
            assert_eq!(j.proven_streams, r.proven, "{}: proven streams", r.name);
            assert_eq!(
                j.different_sources, r.different,
                "{}: different sources",
                r.name
            );
            assert_eq!(
                j.verdict == V::Contradicted,
                !j.conflicts.is_empty() && j.verdict != V::Tampered,
                "{}: conflicts {:?}",
                r.name,
                j.conflicts
            );
            // Never "not AI" from anyone but a trusted signer.
            if j.ai_generated == Some(false) {
                assert!(
                    j.ai_evidence.iter().any(|c| c.counts
                        && !c.ai_generated
                        && matches!(
                            c.source,
                            AiSource::TrustedManifest | AiSource::StoredManifest
                        )),
                    "{}: {:?}",
                    r.name,
                    j.ai_evidence
                );
            }
        }
    }

    #[test]
    fn failure_codes_fall_into_families() {
        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: [(&[&str], &[&str], Option<Cp>); 11] = [
            (&["signingCredential.untrusted"], &[], Some(Cp::Untrusted)),
            (&["signingCredential.expired"], &[], Some(Cp::Expired)),
            (
                &[
                    "claimSignature.outsideValidity",
                    "signingCredential.untrusted",
                ],
                &[],
                Some(Cp::Expired),
            ),
            (&["signingCredential.ocsp.revoked"], &[], Some(Cp::Revoked)),
            (
                &["signingCredential.invalid"],
                &[],
                Some(Cp::InvalidCredential),
            ),
            (
                &["algorithm.unsupported"],
                &[],
                Some(Cp::UnsupportedAlgorithm),
            ),
            (&["timeStamp.untrusted"], &[], Some(Cp::Timestamp)),
            (
                &["assertion.dataHash.mismatch", "signingCredential.expired"],
                &["assertion.dataHash.mismatch"],
                Some(Cp::Expired),
            ),
            (&["general.error"], &["general.error"], None),
            (
                &["algorithm.unsupported", "claimSignature.mismatch"],
                &[],
                Some(Cp::UnsupportedAlgorithm),
            ),
            (
                &[
                    "assertion.dataHash.mismatch",
                    "algorithm.unsupported",
                    "claimSignature.mismatch",
                ],
                &["assertion.dataHash.mismatch"],
                Some(Cp::UnsupportedAlgorithm),
            ),
        ];
        for (failures, integrity, credential) in cases {
            let (i, c) = ManifestFacts::classify(&codes(failures));
            assert_eq!(i, codes(integrity), "{failures:?}");
            assert_eq!(c, credential, "{failures:?}");
        }
    }
}
