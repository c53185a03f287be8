//! The C2PA Soft Binding Resolution API 1.0 over the manifest store, as its OpenAPI document
//! has it (C2PA 2.2, "Soft Binding API"; the document is mirrored in AdobeDocs/cai-soft-binding-api,
//! `static/c2pa-original-soft-binding.json`):
//!
//! - `GET /matches/byBinding?alg=…&value=…[&maxResults=N]` and `POST /matches/byBinding`
//!   (a `{"alg", "value"}` JSON body) → `c2pa.softBindingQueryResult`:
//!   `{"matches": [{"manifestId", "similarityScore"}]}`; the value is base64 (the clip id's
//!   8 bytes) or, as hallmark's manifests record it, 16 hex digits;
//! - `POST /matches/byContent[?alg=…&maxResults=N]`: the asset itself is the body
//!   (`image/*`, `video/*`, `audio/*`); its fingerprint decides, and `similarityScore` is
//!   the measured similarity (0–100). The upload goes through the same admission as
//!   `/api/verify` and is fingerprinted in a sandboxed worker (`hallmark fingerprint`);
//! - `GET /manifests/{manifestId}[?returnActiveManifest=true]` → `application/c2pa`: the
//!   whole manifest store, or only its active manifest;
//! - `GET /services/supportedAlgorithms` → `c2pa.softBindingAlgList`.
//!
//! Lookups have their own per-client rate; the store's connections are kept between
//! requests (a PostgreSQL connection costs a server process).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use hallmark_store::{Fingerprint, ManifestStore, StoreError};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::admission::Meter;
use crate::{
    admit_upload, client_of, log, lookup_refused, policy, problem, queue_for_worker, too_large,
    worker_command, AppState, Spool, Upload, WorkerLimits,
};

/// The picture watermark's and the sound watermark's algorithm names (as the seal records
/// them in its `c2pa.soft-binding` assertions).
pub const WATERMARK_ALGS: [&str; 2] = [
    "org.hallmark.watermark.video.1",
    "org.hallmark.watermark.audio.1",
];
/// The fingerprint `/matches/byContent` matches with (the store's perceptual fingerprint).
pub const FINGERPRINT_ALG: &str = "org.hallmark.fingerprint.1";

/// `maxResults` when the query gives none (the spec's default), and the most we return.
const DEFAULT_RESULTS: usize = 10;
const MAX_RESULTS: usize = 100;
/// A `POST /matches/byBinding` body, at most.
const QUERY_BODY_LIMIT: usize = 16 * 1024;
/// A manifest id longer than this is no id of ours.
const MAX_ID_LEN: usize = 512;
/// Seconds of an uploaded asset that are fingerprinted (the index probes its first minute).
const CONTENT_SECONDS: &str = "120";
/// Bytes of a fingerprint worker's answer, at most (two minutes print to ~200 KB).
const WORKER_OUTPUT_LIMIT: u64 = 8 << 20;
/// Idle store connections kept.
const POOL_SIZE: usize = 16;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/matches/byBinding",
            get(by_binding_get).post(by_binding_post),
        )
        .route("/matches/byContent", axum::routing::post(by_content))
        .route("/manifests/{id}", get(manifest_by_id))
        .route("/services/supportedAlgorithms", get(supported_algorithms))
        .layer(axum::middleware::map_response(policy::any_origin))
}

fn bad_request(message: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, message)
}

/// `maxResults`: an integer ≥ 1 (default 10; more than 100 is read as 100).
fn max_results(given: Option<&str>) -> Result<usize, Box<Response>> {
    match given {
        None => Ok(DEFAULT_RESULTS),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok((n.min(MAX_RESULTS as u64)) as usize),
            _ => Err(Box::new(bad_request(
                "maxResults must be an integer of at least 1",
            ))),
        },
    }
}

/// The stored form of a watermark binding's value: 16 lowercase hex digits. The API's
/// values are base64 (here: the clip id's 8 bytes, big-endian); the hex digits the
/// manifests record are accepted as they are.
fn binding_value(value: &str) -> Option<String> {
    use base64::Engine;
    let value = value.trim();
    if value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(value.to_ascii_lowercase());
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines.iter().find_map(|e| e.decode(value).ok())?;
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    Some(format!("{:016x}", u64::from_be_bytes(bytes)))
}

fn matches(found: impl IntoIterator<Item = (String, u8)>) -> Response {
    Json(json!({
        "matches": found
            .into_iter()
            .map(|(id, score)| json!({"manifestId": id, "similarityScore": score}))
            .collect::<Vec<_>>()
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct BindingQuery {
    alg: Option<String>,
    value: Option<String>,
    #[serde(rename = "maxResults")]
    max_results: Option<String>,
}

/// `GET /matches/byBinding?alg=…&value=…&maxResults=N`.
async fn by_binding_get(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    Query(query): Query<BindingQuery>,
) -> Response {
    if let Some(refused) = lookup_refused(&state, &extensions) {
        return refused;
    }
    let limit = match max_results(query.max_results.as_deref()) {
        Ok(limit) => limit,
        Err(response) => return *response,
    };
    let (Some(alg), Some(value)) = (query.alg, query.value) else {
        return bad_request("give the soft binding as ?alg=ALGORITHM&value=VALUE");
    };
    by_binding(&state, alg, value, limit).await
}

#[derive(serde::Deserialize)]
struct MaxResultsQuery {
    #[serde(rename = "maxResults")]
    max_results: Option<String>,
}

/// `POST /matches/byBinding` with `{"alg": …, "value": …}` (`c2pa.softBindingQuery`).
async fn by_binding_post(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MaxResultsQuery>,
    request: Request,
) -> Response {
    if let Some(refused) = lookup_refused(&state, request.extensions()) {
        return refused;
    }
    let limit = match max_results(query.max_results.as_deref()) {
        Ok(limit) => limit,
        Err(response) => return *response,
    };
    let body = match axum::body::to_bytes(request.into_body(), QUERY_BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("a soft binding query is at most {QUERY_BODY_LIMIT} bytes"),
            )
        }
    };
    #[derive(serde::Deserialize)]
    struct SoftBindingQuery {
        alg: String,
        value: String,
    }
    match serde_json::from_slice::<SoftBindingQuery>(&body) {
        Ok(q) => by_binding(&state, q.alg, q.value, limit).await,
        Err(_) => bad_request("send a JSON object {\"alg\": ALGORITHM, \"value\": BASE64}"),
    }
}

async fn by_binding(state: &AppState, alg: String, value: String, limit: usize) -> Response {
    // An algorithm this service does not resolve: it holds no manifest under it (the
    // algorithms it does resolve: GET /services/supportedAlgorithms).
    if !WATERMARK_ALGS.contains(&alg.as_str()) {
        return matches(Vec::new());
    }
    let Some(value) = binding_value(&value) else {
        return bad_request("the value must be the clip id: 8 bytes in base64 (or 16 hex digits)");
    };
    let found = with_store(state, move |store| {
        store.find_by_binding_limited(&alg, &value, limit)
    })
    .await;
    match found {
        // The binding names the clip exactly: the strongest possible match.
        Ok(ids) => matches(ids.into_iter().map(|id| (id, 100))),
        Err(response) => response,
    }
}

#[derive(serde::Deserialize)]
struct ContentQuery {
    alg: Option<String>,
    #[serde(rename = "maxResults")]
    max_results: Option<String>,
    #[serde(rename = "hintAlg")]
    hint_alg: Option<String>,
    #[serde(rename = "hintValue")]
    hint_value: Option<String>,
}

/// `POST /matches/byContent`: the asset is the body. Admitted like `/api/verify` (the
/// client's concurrent uploads and rate, the queue, the pace and size of the body, the
/// disk), fingerprinted in a sandboxed worker, then matched by the store's content index.
async fn by_content(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ContentQuery>,
    request: Request,
) -> Response {
    let limit = match max_results(query.max_results.as_deref()) {
        Ok(limit) => limit,
        Err(response) => return *response,
    };
    if query.alg.as_deref().is_some_and(|a| a != FINGERPRINT_ALG) {
        return bad_request(&format!(
            "byContent matches with {FINGERPRINT_ALG} (GET /services/supportedAlgorithms)"
        ));
    }
    // A hint names a binding; this service needs none (the content decides), but a
    // malformed one is still the caller's mistake.
    if query.hint_alg.is_some() != query.hint_value.is_some() {
        return bad_request("hintAlg and hintValue come together");
    }
    let media_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let Some(ext) = extension_for(&media_type) else {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the asset as the body with its media type (image/*, video/* or audio/*)",
        );
    };

    let config = &state.config;
    let client = client_of(request.extensions());
    let _slot = match admit_upload(&state, client, request.headers(), config.max_upload) {
        Ok(slot) => slot,
        Err(refused) => return *refused,
    };
    let upload = match receive_body(&state, request.into_body(), ext).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let _worker = match queue_for_worker(&state).await {
        Ok(guards) => guards,
        Err(refused) => return *refused,
    };
    let print = match fingerprint_upload(config, &upload).await {
        Ok(print) => print,
        Err(response) => return response,
    };
    drop(upload);
    let found = with_store(&state, move |store| store.find_by_content(&print, limit)).await;
    match found {
        Ok(found) => matches(found.into_iter().map(|m| (m.manifest_id, m.score))),
        Err(response) => response,
    }
}

/// The file extension that tells the decoder what the body is (`None`: not a media type
/// this service reads).
fn extension_for(media_type: &str) -> Option<&'static str> {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    let (kind, _) = essence.split_once('/')?;
    match kind {
        "video" | "image" | "audio" => {}
        _ => return None,
    }
    Some(match essence {
        "video/quicktime" => ".mov",
        "video/webm" | "audio/webm" => ".webm",
        "video/x-matroska" => ".mkv",
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/webp" => ".webp",
        "audio/wav" | "audio/x-wav" | "audio/vnd.wave" => ".wav",
        "audio/mpeg" => ".mp3",
        "audio/ogg" | "video/ogg" => ".ogg",
        "audio/mp4" => ".m4a",
        _ => ".mp4",
    })
}

/// Streams a raw request body into the upload directory, under the meter's pace, the size
/// limit and the disk budget.
async fn receive_body<'a>(
    state: &'a AppState,
    body: Body,
    ext: &str,
) -> Result<Upload<'a>, Response> {
    let max = state.config.max_upload;
    let meter = Meter::new(state.pace(), max);
    let mut stream = meter.wrap(body.into_data_stream());
    let mut spool = Spool::start(state, ext).map_err(|e| *e)?;
    loop {
        let next: Option<Result<Bytes, _>> = meter
            .within(stream.next())
            .await
            .map_err(|why| problem(StatusCode::REQUEST_TIMEOUT, &why.message(&state.pace())))?;
        match next {
            Some(Ok(chunk)) => spool.write(&chunk).await?,
            None => break,
            Some(Err(_)) if meter.too_big() => return Err(too_large(max)),
            Some(Err(_)) => return Err(bad_request("upload interrupted")),
        }
    }
    if spool.size() == 0 {
        return Err(bad_request("the body is empty: send the asset"));
    }
    spool.finish(format!("upload{ext}")).await
}

/// Runs `hallmark fingerprint` on the upload in a worker (sandboxed like the analyses, under
/// the same limits) and reads the fingerprint it prints.
async fn fingerprint_upload(
    config: &crate::ServeConfig,
    upload: &Upload<'_>,
) -> Result<Fingerprint, Response> {
    let failed = |status, message: &str| problem(status, message);
    let Some(program) = config.worker.first() else {
        return Err(failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no worker configured",
        ));
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let limits = WorkerLimits {
        cpu_seconds: config
            .analysis_timeout
            .as_secs()
            .max(1)
            .saturating_mul(threads)
            + 5,
        memory: config.worker_memory,
        ..WorkerLimits::default()
    };
    let args = [
        "fingerprint".into(),
        "--seconds".into(),
        CONTENT_SECONDS.into(),
    ];
    let command = worker_command(
        program,
        &args,
        upload.file.path(),
        config.sandbox.as_ref(),
        &limits,
    )
    .map_err(|_| failed(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|_| {
        failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not start the analysis worker",
        )
    })?;
    let stdout = child.stdout.take();
    let run = async {
        let mut text = Vec::new();
        if let Some(stdout) = stdout {
            // An exploited worker may print without end: read a bounded amount.
            stdout
                .take(WORKER_OUTPUT_LIMIT)
                .read_to_end(&mut text)
                .await?;
        }
        child.wait().await.map(|status| (status, text))
    };
    let unreadable = || {
        failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the file could not be read as media (the analysis worker stopped); it may be malformed",
        )
    };
    match tokio::time::timeout(config.analysis_timeout, run).await {
        Err(_) => Err(failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the analysis took longer than this server allows; the file may be malformed",
        )),
        Ok(Err(_)) => Err(failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the analysis worker failed",
        )),
        Ok(Ok((status, text))) => {
            let report: Option<Value> = String::from_utf8_lossy(&text)
                .lines()
                .next()
                .and_then(|l| serde_json::from_str(l).ok());
            let Some(report) = report.filter(|_| status.success()) else {
                return Err(unreadable());
            };
            if let Some(error) = report.get("error").and_then(Value::as_str) {
                // The decoder's own words about the file; no server path is in them (the
                // worker is given the file's name only).
                let name = upload
                    .file
                    .path()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(failed(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &format!(
                        "the asset could not be read as media: {}",
                        error.replace(&name, &upload.name)
                    ),
                ));
            }
            report
                .get("fingerprint")
                .and_then(Value::as_str)
                .and_then(Fingerprint::from_hex)
                .ok_or_else(unreadable)
        }
    }
}

/// `GET /manifests/{manifestId}[?returnActiveManifest=true]` → the manifest store bytes
/// (`application/c2pa`; as a sidecar they verify the sealed file), or only the active
/// manifest's JUMBF box.
async fn manifest_by_id(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(refused) = lookup_refused(&state, &extensions) {
        return refused;
    }
    let active_only = match query.get("returnActiveManifest").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return bad_request("returnActiveManifest is true or false"),
    };
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return bad_request("not a C2PA manifest id");
    }
    let wanted = id.clone();
    match with_store(&state, move |store| store.get(&wanted)).await {
        Ok(Some(stored)) => {
            let bytes = if active_only {
                match active_manifest(&stored.manifest, &id) {
                    Some(bytes) => bytes,
                    None => {
                        log(&format!("the stored manifest store of {id} does not parse"));
                        return problem(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the stored manifest could not be read",
                        );
                    }
                }
            } else {
                stored.manifest
            };
            ([(header::CONTENT_TYPE, "application/c2pa")], bytes).into_response()
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "no manifest with this id"),
        Err(response) => response,
    }
}

/// The manifest `id` names (its JUMBF superbox, as stored) out of a manifest store: the box
/// labelled with `id`'s label, else the store's last manifest (the active one, by C2PA's rule).
pub fn active_manifest(store: &[u8], id: &str) -> Option<Vec<u8>> {
    let (_, store) = jumbf::parser::SuperBox::from_slice_with_depth_limit(store, 1).ok()?;
    let manifests: Vec<&jumbf::parser::SuperBox> = store
        .child_boxes
        .iter()
        .filter_map(|child| child.as_super_box())
        .collect();
    let label = id.rsplit('/').next().unwrap_or(id);
    manifests
        .iter()
        .find(|m| m.desc.label == Some(label))
        .or(manifests.last())
        .map(|m| m.original.to_vec())
}

/// `GET /services/supportedAlgorithms` → `c2pa.softBindingAlgList`.
async fn supported_algorithms() -> Response {
    Json(json!({
        "watermarks": WATERMARK_ALGS.iter().map(|alg| json!({"alg": alg})).collect::<Vec<_>>(),
        "fingerprints": [{"alg": FINGERPRINT_ALG}],
    }))
    .into_response()
}

/// Idle store connections, by location (one server has one store; tests start several).
static POOL: Mutex<Vec<(PathBuf, ManifestStore)>> = Mutex::new(Vec::new());

fn take_store(location: &Path) -> Result<Option<ManifestStore>, StoreError> {
    let pooled = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.iter()
            .position(|(l, _)| l == location)
            .map(|i| pool.swap_remove(i).1)
    };
    match pooled {
        Some(store) => Ok(Some(store)),
        None => ManifestStore::open_existing(location),
    }
}

fn give_back(location: &Path, store: ManifestStore) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_SIZE {
        pool.push((location.to_path_buf(), store));
    }
}

/// Runs a store query off the async threads, on a kept connection. No store (none
/// configured, or nothing sealed yet) reads as empty. A failed query's connection is not
/// kept (the server may have gone).
pub(crate) async fn with_store<T: Default + Send + 'static>(
    state: &AppState,
    query: impl FnOnce(&ManifestStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let Some(location) = state.config.store.clone() else {
        return Ok(T::default());
    };
    let result = tokio::task::spawn_blocking(move || match take_store(&location)? {
        Some(store) => {
            let found = query(&store)?;
            give_back(&location, store);
            Ok::<T, StoreError>(found)
        }
        None => Ok(T::default()),
    })
    .await;
    match result {
        Ok(Ok(found)) => Ok(found),
        // The message would name a server path: keep it in the server's log only.
        Ok(Err(e)) => {
            log(&e.to_string());
            Err(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the manifest store could not be read",
            ))
        }
        Err(_) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_values_are_base64_or_the_recorded_hex() {
        assert_eq!(
            binding_value("00000000000000AA").as_deref(),
            Some("00000000000000aa")
        );
        // 8 bytes 0x8f 0x01 … in base64, padded and not, standard and URL-safe.
        assert_eq!(
            binding_value("jwEjRWeJq80=").as_deref(),
            Some("8f0123456789abcd")
        );
        assert_eq!(
            binding_value("jwEjRWeJq80").as_deref(),
            Some("8f0123456789abcd")
        );
        assert_eq!(binding_value("AAAA"), None); // 3 bytes
        assert_eq!(binding_value("not base64 at all!"), None);
        assert_eq!(binding_value(""), None);
    }

    #[test]
    fn max_results_is_an_integer_of_at_least_one() {
        assert_eq!(max_results(None).ok(), Some(10));
        assert_eq!(max_results(Some("3")).ok(), Some(3));
        assert_eq!(max_results(Some("100000")).ok(), Some(100));
        assert!(max_results(Some("0")).is_err());
        assert!(max_results(Some("-1")).is_err());
        assert!(max_results(Some("ten")).is_err());
    }

    #[test]
    fn media_types_choose_the_decoders_hint() {
        assert_eq!(extension_for("video/mp4"), Some(".mp4"));
        assert_eq!(extension_for("image/jpeg; charset=x"), Some(".jpg"));
        assert_eq!(extension_for("audio/wav"), Some(".wav"));
        assert_eq!(extension_for("application/pdf"), None);
        assert_eq!(extension_for("text/plain"), None);
        assert_eq!(extension_for(""), None);
    }

    #[test]
    fn garbage_is_no_manifest_store() {
        assert_eq!(active_manifest(b"", "urn:c2pa:x"), None);
        assert_eq!(
            active_manifest(&[0, 0, 0, 8, b'j', b'u'], "urn:c2pa:x"),
            None
        );
    }
}
