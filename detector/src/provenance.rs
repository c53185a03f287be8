//! Reading and judging C2PA manifests with the `c2pa` SDK.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use c2pa::{Manifest, Reader, ValidationState};
use serde_json::Value;

use crate::report::{ActionSummary, C2paReport, IngredientNode, SoftBinding, StatusDetail};

/// The one failure that does not make a manifest invalid: we just do not know the signer.
pub const UNTRUSTED: &str = "signingCredential.untrusted";

/// IPTC digital source types that mean "made by a trained model". (`algorithmicMedia` is
/// synthetic but not AI: pure algorithms, no training data.)
const AI_SOURCE_TYPES: [&str; 2] = [
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
];

/// What reading a file's C2PA data gave.
pub enum Outcome {
    /// A manifest store was read (valid or not).
    Read(Box<C2paReport>),
    /// No C2PA data in the file.
    Absent,
    /// The file only points at a remote manifest, which we do not fetch.
    Remote(String),
    /// The SDK does not handle this format at all.
    Unsupported,
    /// The SDK stopped reading because a stapled OCSP response says the signing
    /// certificate was revoked (0.90.22 reports no failure code for it: the reader fails
    /// with `CertificateTrustError`, which only its OCSP check raises).
    Revoked,
    /// The file or its manifest could not be parsed.
    Unreadable(String),
}

pub fn read(
    context: &std::sync::Arc<c2pa::Context>,
    path: &Path,
    sidecar: Option<&Path>,
    fragments: &[std::path::PathBuf],
) -> Outcome {
    let reader = Reader::from_shared_context(context);
    let result = if !fragments.is_empty() {
        reader.with_fragmented_files(path, &fragments.to_vec())
    } else if let Some(sidecar) = sidecar {
        match (std::fs::read(sidecar), File::open(path)) {
            (Ok(manifest), Ok(file)) => {
                let format = c2pa::format_from_path(path).unwrap_or_default();
                reader.with_manifest_data_and_stream(&manifest, &format, file)
            }
            (Err(e), _) => return Outcome::Unreadable(format!("{}: {e}", sidecar.display())),
            (_, Err(e)) => return Outcome::Unreadable(format!("{}: {e}", path.display())),
        }
    } else {
        reader.with_file(path)
    };
    match result {
        Ok(reader) => Outcome::Read(Box::new(summarise(&reader))),
        Err(c2pa::Error::JumbfNotFound) | Err(c2pa::Error::ProvenanceMissing) => Outcome::Absent,
        Err(c2pa::Error::RemoteManifestUrl(url)) | Err(c2pa::Error::RemoteManifestFetch(url)) => {
            Outcome::Remote(url)
        }
        Err(c2pa::Error::UnsupportedType) => Outcome::Unsupported,
        Err(c2pa::Error::CertificateTrustError(_)) => Outcome::Revoked,
        Err(e) => Outcome::Unreadable(e.to_string()),
    }
}

fn state_name(state: ValidationState) -> &'static str {
    match state {
        ValidationState::Invalid => "Invalid",
        ValidationState::Valid => "Valid",
        ValidationState::Trusted => "Trusted",
    }
}

fn summarise(reader: &Reader) -> C2paReport {
    let mut report = C2paReport {
        present: true,
        validation_state: Some(state_name(reader.validation_state()).into()),
        manifest_count: reader.manifests().len(),
        active_manifest: reader.active_label().map(str::to_owned),
        remote_manifest_url: reader.remote_url().map(str::to_owned),
        ..Default::default()
    };
    if let Some(results) = reader.validation_results() {
        if let Some(active) = results.active_manifest() {
            for status in active.failure() {
                report.failures.push(status.code().to_owned());
                report.failure_details.push(StatusDetail {
                    code: status.code().to_owned(),
                    explanation: status.explanation().map(str::to_owned),
                    url: status.url().map(str::to_owned),
                });
            }
        }
        for delta in results.ingredient_deltas().into_iter().flatten() {
            for status in delta.validation_deltas().failure() {
                report.ingredient_failures.push(status.code().to_owned());
            }
        }
    } else if let Some(statuses) = reader.validation_status() {
        // v1-style results: everything that did not pass counts against the active manifest.
        for status in statuses.iter().filter(|s| !s.passed()) {
            report.failures.push(status.code().to_owned());
        }
    }

    if let Some(manifest) = reader.active_manifest() {
        if let Some(sig) = manifest.signature_info() {
            // The serialised name ("Ed25519", "Es256") is what c2patool prints; Display is lowercase.
            report.signature_alg = sig
                .alg
                .and_then(|a| serde_json::to_value(a).ok())
                .and_then(|v| v.as_str().map(str::to_owned));
            report.issuer = sig.issuer.clone();
            report.common_name = sig.common_name.clone();
            report.signing_time = sig.time.clone();
        }
        report.claim_generator = claim_generator(manifest);
        report.title = manifest.title().map(str::to_owned);
        for assertion in manifest.assertions() {
            let Ok(value) = assertion.value() else {
                continue;
            };
            match assertion.label() {
                "c2pa.actions" | "c2pa.actions.v2" => collect_actions(value, &mut report.actions),
                "c2pa.soft-binding" => report.soft_bindings.push(soft_binding(value)),
                "org.hallmark.seal" => report.hallmark = Some(value.clone()),
                _ => {}
            }
        }
        report.digital_source_type = report
            .actions
            .iter()
            .find_map(|a| a.digital_source_type.clone());
        let mut seen = HashSet::new();
        report.ingredients = ingredient_tree(reader, manifest, &mut seen, 0);
    }
    report
}

/// The soft bindings a manifest declares.
fn soft_bindings_of(manifest: &Manifest) -> Vec<SoftBinding> {
    manifest
        .assertions()
        .iter()
        .filter(|a| a.label() == "c2pa.soft-binding")
        .filter_map(|a| a.value().ok().map(soft_binding))
        .collect()
}

/// Clip ids of hallmark marks a manifest accounts for: its own soft bindings and those of
/// its ingredients' manifests, at any depth.
pub fn accounted_clip_ids(report: &C2paReport) -> Vec<String> {
    fn hallmark(bindings: &[SoftBinding], out: &mut Vec<String>) {
        for b in bindings
            .iter()
            .filter(|b| b.alg.starts_with(crate::verdict::HALLMARK_BINDING_PREFIX))
        {
            out.extend(b.values.iter().cloned());
        }
    }
    fn walk(nodes: &[IngredientNode], out: &mut Vec<String>) {
        for n in nodes {
            hallmark(&n.soft_bindings, out);
            walk(&n.ingredients, out);
        }
    }
    let mut out = Vec::new();
    hallmark(&report.soft_bindings, &mut out);
    walk(&report.ingredients, &mut out);
    out
}

/// Whether the manifest (or an ingredient's) names any hallmark mark.
pub fn names_hallmark_mark(report: &C2paReport) -> bool {
    let hallmark = |b: &SoftBinding| b.alg.starts_with(crate::verdict::HALLMARK_BINDING_PREFIX);
    fn any(nodes: &[IngredientNode], f: &dyn Fn(&SoftBinding) -> bool) -> bool {
        nodes
            .iter()
            .any(|n| n.soft_bindings.iter().any(f) || any(&n.ingredients, f))
    }
    report.soft_bindings.iter().any(hallmark) || any(&report.ingredients, &hallmark)
}

fn claim_generator(manifest: &Manifest) -> Option<String> {
    if let Some(generator) = manifest.claim_generator() {
        return Some(generator.to_owned());
    }
    // v2 claims carry claim_generator_info instead of a string.
    let info = manifest.claim_generator_info.as_ref()?.first()?;
    Some(match &info.version {
        Some(v) => format!("{}/{}", info.name, v),
        None => info.name.clone(),
    })
}

fn collect_actions(value: &Value, out: &mut Vec<ActionSummary>) {
    for action in value
        .get("actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let agent = action.get("softwareAgent").and_then(|a| match a {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("name").and_then(Value::as_str).map(|name| {
                match o.get("version").and_then(Value::as_str) {
                    Some(v) => format!("{name}/{v}"),
                    None => name.to_owned(),
                }
            }),
            _ => None,
        });
        out.push(ActionSummary {
            action: action
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            digital_source_type: action
                .get("digitalSourceType")
                .and_then(Value::as_str)
                .map(str::to_owned),
            software_agent: agent,
            when: action
                .get("when")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
}

fn soft_binding(value: &Value) -> SoftBinding {
    let alg = value
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let values = value
        .get("blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("value").and_then(Value::as_str).map(str::to_owned))
        .collect();
    SoftBinding { alg, values }
}

fn ingredient_tree(
    reader: &Reader,
    manifest: &Manifest,
    seen: &mut HashSet<String>,
    depth: usize,
) -> Vec<IngredientNode> {
    // Manifests can reference each other; depth and `seen` keep a hostile store finite.
    if depth > 16 {
        return Vec::new();
    }
    manifest
        .ingredients()
        .iter()
        .map(|ingredient| {
            let label = ingredient.active_manifest().map(str::to_owned);
            let child = label.as_deref().and_then(|l| reader.get_manifest(l));
            let mut node = IngredientNode {
                title: ingredient.title().map(str::to_owned),
                format: ingredient.format().map(str::to_owned),
                relationship: format!("{:?}", ingredient.relationship()),
                manifest: label.clone(),
                issuer: child.and_then(|m| m.issuer()),
                claim_generator: child.and_then(claim_generator),
                soft_bindings: child.map(soft_bindings_of).unwrap_or_default(),
                ingredients: Vec::new(),
            };
            if let (Some(label), Some(child)) = (label, child) {
                if seen.insert(label) {
                    node.ingredients = ingredient_tree(reader, child, seen, depth + 1);
                }
            }
            node
        })
        .collect()
}

/// AI disclosure from a manifest that validated; unknown (None) otherwise.
pub(crate) fn ai_generated(report: &C2paReport) -> Option<bool> {
    if report.validation_state.as_deref() == Some("Invalid") {
        return None;
    }
    declared_ai(report)
}

/// What the manifest declares about AI, whether or not it validated (the verdict decides
/// what that is worth).
pub(crate) fn declared_ai(report: &C2paReport) -> Option<bool> {
    let is_ai = |t: &str| {
        AI_SOURCE_TYPES
            .iter()
            .any(|ai| t.rsplit('/').next() == Some(*ai))
    };
    let types: Vec<&str> = report
        .actions
        .iter()
        .filter_map(|a| a.digital_source_type.as_deref())
        .collect();
    if types.iter().any(|t| is_ai(t)) {
        return Some(true);
    }
    if let Some(declared) = report.hallmark.as_ref().and_then(|h| h.get("ai_generated")) {
        return declared.as_bool();
    }
    if !types.is_empty() {
        return Some(false);
    }
    None
}

/// Reads a manifest store on its own (as kept in hallmark's manifest store), without the
/// asset it was signed for: its signature, certificate and trust are checked; the hash of
/// the asset cannot be, and is not claimed.
pub fn read_store_bytes(context: &std::sync::Arc<c2pa::Context>, manifest: &[u8]) -> Outcome {
    match Reader::from_shared_context(context)
        .with_stream("application/c2pa", std::io::Cursor::new(manifest))
    {
        Ok(reader) => Outcome::Read(Box::new(summarise(&reader))),
        Err(e) => Outcome::Unreadable(e.to_string()),
    }
}
