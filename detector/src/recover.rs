//! Durable credentials: the watermark's clip id → the manifest store → the manifest the
//! clip was sealed with, accepted only if the upload is the same content.

use std::path::Path;
use std::sync::Arc;

use hallmark_store::{ContentMatch, Fingerprint, ManifestStore};
use hallmark_watermark::{Payload, PayloadReading};
use serde::Serialize;

use crate::provenance::{self, Outcome};
use crate::report::C2paReport;

/// What the store said about the watermark's clip id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recovery {
    /// The store holds the clip's manifest and this content matches the sealed clip.
    Recovered,
    /// The store holds the clip's manifest, but this content is not the sealed clip: the
    /// watermark was copied onto other content, or the content was changed beyond
    /// recognition. The manifest does not describe this file.
    Mismatch,
    /// The store holds the clip's manifest, but whether this is that content could not be
    /// settled (too short, or a similarity between the thresholds): not attached.
    Unconfirmed,
    /// The store has no record of the clip id (sealed elsewhere, or another store).
    NotFound,
    /// The store could not be read.
    StoreError,
}

/// `recovered_manifest` in the report.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveredManifest {
    pub status: Recovery,
    pub clip_id: String,
    /// The active manifest's label (`urn:c2pa:…`), when the store has one.
    pub manifest_id: Option<String>,
    pub sealed_at: Option<String>,
    /// Best mean correlation of the content with the sealed clip's fingerprint (per medium;
    /// null where either lacks it). Same content: picture ≥ 0.75 and sound ≥ 0.7; different:
    /// picture ≤ 0.45 or sound ≤ 0.4.
    pub similarity: Similarity,
    /// The stored manifest, validated on its own: signature, certificate and trust. Its
    /// hash binding is to the sealed file's bytes, which an upload re-encoded by a platform
    /// no longer has: that binding is replaced by the watermark and the fingerprint.
    pub c2pa: Option<C2paReport>,
    pub ai_generated: Option<bool>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Similarity {
    pub video: Option<f64>,
    pub audio: Option<f64>,
}

/// The store's clips with the upload's content tried against a proven mark whose payload
/// did not decode.
pub const PAYLOAD_CANDIDATES: usize = 8;
/// A candidate is the mark's clip when its p-value times the candidates tried is at most
/// this (the presence test's threshold).
pub const PAYLOAD_MATCH_P: f64 = hallmark_watermark::NAMED_MATCH_P;

/// The store's newest clips a proven mark is read against when no clip named for it agrees
/// (a copy cropped, recomposed or shown inside other footage: its content is not the sealed
/// clip's, so the store cannot name it by content). Every one tried counts in the p-value,
/// so a large store asks more of the reading than a small one.
pub const STORE_CANDIDATES: usize = 1 << 16;

/// The clip ids of the clips the store holds any of these contents as (`find_same_content`,
/// at most [`PAYLOAD_CANDIDATES`] each): candidates for a proven or inconclusive mark whose
/// payload did not decode. The store is opened once for all of them.
pub fn content_candidates(store_path: &Path, uploads: &[&Fingerprint]) -> Vec<u64> {
    let Ok(Some(store)) = ManifestStore::open_existing(store_path) else {
        return Vec::new();
    };
    uploads
        .iter()
        .flat_map(|upload| {
            store
                .find_same_content(upload, PAYLOAD_CANDIDATES)
                .unwrap_or_default()
        })
        .filter_map(|f| store.get(&f.manifest_id).ok().flatten())
        .filter_map(|m| u64::from_str_radix(&m.clip_id, 16).ok())
        .collect()
}

/// The clip ids of the store's newest [`STORE_CANDIDATES`] clips (the store's own order,
/// not the upload's): the second family [`match_payload`] tries for a proven mark.
pub fn recent_candidates(store_path: &Path) -> Vec<u64> {
    let Ok(Some(store)) = ManifestStore::open_existing(store_path) else {
        return Vec::new();
    };
    store
        .recent_clip_ids(STORE_CANDIDATES)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| u64::from_str_radix(c, 16).ok())
        .collect()
}

/// Of `candidates` (clip ids named without looking at the mark: by the sound's mark, by
/// the store), the one a proven mark's coded bits single out, with its p-value times the
/// candidates tried, when that is at most [`PAYLOAD_MATCH_P`]. Each p-value is that of a
/// clip id the mark does not carry agreeing as well ([`PayloadReading::p_values`]); the
/// candidates do not depend on the reading, so the correction for them is exact.
pub fn match_payload(
    candidates: &[u64],
    reading: &PayloadReading,
    key_id: u8,
) -> Option<(Payload, f64)> {
    let mut candidates: Vec<Payload> = candidates
        .iter()
        .map(|&clip_id| Payload { clip_id, key_id })
        .collect();
    candidates.sort_unstable_by_key(|c| c.clip_id);
    candidates.dedup();
    let ps = reading.p_values(&candidates);
    let tried = candidates.len() as f64;
    candidates
        .into_iter()
        .zip(ps)
        .map(|(c, p)| (c, (p * tried).min(1.0)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|(_, p)| *p <= PAYLOAD_MATCH_P)
}

/// Hash-binding failures expected when the stored manifest is read without its asset.
fn is_binding_failure(code: &str) -> bool {
    code.starts_with("assertion.dataHash")
        || code.starts_with("assertion.bmffHash")
        || code.starts_with("assertion.boxesHash")
        || code.starts_with("assertion.collectionHash")
        || code == "claim.hardBindings.missing"
}

/// Looks `clip_id` up in the store at `store_path` and compares the content. `fuller` is
/// asked for a fuller fingerprint of the upload when the picture could not be compared
/// (a print from key frames alone); `None` keeps `upload`. `sound_time_scale`: the upload's
/// sound duration over the sealed one's where the sound's mark was found at another tempo
/// (the sound's fingerprint is compared at that scale).
pub fn recover(
    context: &Arc<c2pa::Context>,
    store_path: &Path,
    clip_id: &str,
    upload: &Fingerprint,
    sound_time_scale: Option<f64>,
    fuller: impl FnOnce() -> Option<Fingerprint>,
) -> RecoveredManifest {
    let mut out = RecoveredManifest {
        status: Recovery::NotFound,
        clip_id: clip_id.to_owned(),
        manifest_id: None,
        sealed_at: None,
        similarity: Similarity {
            video: None,
            audio: None,
        },
        c2pa: None,
        ai_generated: None,
        message: None,
    };
    let found = ManifestStore::open_existing(store_path).and_then(|store| match store {
        Some(store) => store.find_by_clip_id(clip_id),
        None => Ok(None),
    });
    let stored = match found {
        Ok(Some(stored)) => stored,
        Ok(None) => return out,
        Err(e) => {
            out.status = Recovery::StoreError;
            out.message = Some(e.to_string());
            return out;
        }
    };
    out.manifest_id = Some(stored.manifest_id.clone());
    out.sealed_at = Some(stored.sealed_at.clone());
    let mut similarity = stored
        .fingerprint
        .compare_with_sound_scale(upload, sound_time_scale);
    let sealed_has_picture = stored.fingerprint.video.iter().any(Option::is_some);
    if similarity.video.is_none() && sealed_has_picture {
        if let Some(fuller) = fuller() {
            similarity = stored
                .fingerprint
                .compare_with_sound_scale(&fuller, sound_time_scale);
        }
    }
    out.similarity = Similarity {
        video: similarity.video,
        audio: similarity.audio,
    };
    match similarity.decision() {
        ContentMatch::Same => {}
        ContentMatch::Different => {
            out.status = Recovery::Mismatch;
            return out;
        }
        ContentMatch::Unsure => {
            out.status = Recovery::Unconfirmed;
            return out;
        }
    }
    match provenance::read_store_bytes(context, &stored.manifest) {
        Outcome::Read(mut c2pa) => {
            c2pa.failures.retain(|code| !is_binding_failure(code));
            c2pa.failure_details
                .retain(|d| !is_binding_failure(&d.code));
            // The SDK's state counted the missing asset against it; judge what is left.
            let rest: Vec<&String> = c2pa
                .failures
                .iter()
                .filter(|c| *c != provenance::UNTRUSTED)
                .collect();
            c2pa.validation_state = Some(
                if !rest.is_empty() {
                    "Invalid"
                } else if c2pa.failures.is_empty() {
                    "Trusted"
                } else {
                    "Valid"
                }
                .into(),
            );
            out.ai_generated = provenance::ai_generated(&c2pa);
            out.c2pa = Some(*c2pa);
            out.status = Recovery::Recovered;
        }
        _ => {
            out.status = Recovery::StoreError;
            out.message = Some(format!(
                "the stored manifest of clip {clip_id} could not be read"
            ));
        }
    }
    out
}
