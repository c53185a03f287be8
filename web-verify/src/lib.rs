//! `hallmark serve`: the public verification page and its JSON API.
//!
//! Safe on the open internet by construction: uploads stream to a size-limited temp file that
//! is deleted after analysis; each analysis runs in a separate worker process (`hallmark verify
//! --json`) under a time and memory limit, so a decoder crash or hang cannot take the server
//! down; a concurrency limit with a bounded queue answers `503` + `Retry-After` when full.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

const PAGE: &str = include_str!("page.html");

/// How the server runs. `worker` is the command that analyses one file: the server appends the
/// file's path and reads one JSON report from its stdout.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub max_upload: u64,
    /// Analyses running at once.
    pub workers: usize,
    /// Uploads allowed to wait for a worker; beyond that the server answers 503.
    pub queue: usize,
    pub analysis_timeout: Duration,
    /// Address-space limit of a worker process, in bytes.
    pub worker_memory: u64,
    pub worker: Vec<std::ffi::OsString>,
    /// The manifest store behind the soft-binding resolution API (`None`: it answers that
    /// nothing is known).
    pub store: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

struct AppState {
    config: ServeConfig,
    running: Semaphore,
    /// Uploads admitted (waiting or running).
    admitted: AtomicUsize,
}

/// The routes, for tests and embedding.
pub fn router(config: ServeConfig) -> Router {
    let state = Arc::new(AppState {
        running: Semaphore::new(config.workers.max(1)),
        admitted: AtomicUsize::new(0),
        config,
    });
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/verify", post(verify))
        // C2PA soft-binding resolution API over the manifest store.
        .route("/matches/byBinding", get(matches_by_binding))
        .route("/manifests/{id}", get(manifest_by_id))
        // The upload limit is enforced while streaming, field by field, below.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Binds and serves until Ctrl-C. `on_listening` gets the bound address (port 0 → real port).
pub async fn serve(
    config: ServeConfig,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    on_listening(listener.local_addr().map_err(ServeError::Serve)?);
    axum::serve(listener, router(config))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(ServeError::Serve)
}

/// Releases an admission slot however the request ends.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn verify(State(state): State<Arc<AppState>>, mut multipart: Multipart) -> Response {
    let limit = state.config.workers.max(1) + state.config.queue;
    if state.admitted.fetch_add(1, Ordering::SeqCst) >= limit {
        state.admitted.fetch_sub(1, Ordering::SeqCst);
        let mut response = problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many files are being analysed; try again shortly",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return response;
    }
    let _admission = Admission(&state.admitted);

    let upload = match receive(&mut multipart, state.config.max_upload).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let Ok(_permit) = state.running.acquire().await else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let (status, mut report) = analyse(&state.config, &upload.file).await;
    // Never echo server paths: the report names the file as the uploader did.
    report["file"] = json!(upload.name);
    drop(upload); // deletes the temp file
    (status, Json(report)).into_response()
}

#[derive(serde::Deserialize)]
struct BindingQuery {
    alg: Option<String>,
    value: Option<String>,
}

/// `GET /matches/byBinding?alg=…&value=…` → `{"matches": [{"manifestId": …}]}`.
async fn matches_by_binding(
    State(state): State<Arc<AppState>>,
    Query(query): Query<BindingQuery>,
) -> Response {
    let (Some(alg), Some(value)) = (query.alg, query.value) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "give the soft binding as ?alg=ALGORITHM&value=VALUE",
        );
    };
    let found = with_store(&state, move |store| store.find_by_binding(&alg, &value)).await;
    match found {
        Ok(ids) => Json(json!({
            "matches": ids
                .into_iter()
                .map(|id| json!({"manifestId": id, "similarityScore": 100}))
                .collect::<Vec<_>>()
        }))
        .into_response(),
        Err(response) => response,
    }
}

/// `GET /manifests/{id}` → the manifest store bytes (`application/c2pa`).
async fn manifest_by_id(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match with_store(&state, move |store| store.get(&id)).await {
        Ok(Some(stored)) => (
            [(header::CONTENT_TYPE, "application/c2pa")],
            stored.manifest,
        )
            .into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no manifest with this id"),
        Err(response) => response,
    }
}

/// Runs a store query off the async threads. No store (none configured, or nothing sealed
/// yet) reads as empty.
async fn with_store<T: Default + Send + 'static>(
    state: &AppState,
    query: impl FnOnce(&hallmark_store::ManifestStore) -> Result<T, hallmark_store::StoreError>
        + Send
        + 'static,
) -> Result<T, Response> {
    let Some(path) = state.config.store.clone() else {
        return Ok(T::default());
    };
    let result = tokio::task::spawn_blocking(move || {
        match hallmark_store::ManifestStore::open_existing(&path)? {
            Some(store) => query(&store),
            None => Ok(T::default()),
        }
    })
    .await;
    match result {
        Ok(Ok(found)) => Ok(found),
        // The message would name a server path: keep it in the server's log only.
        Ok(Err(e)) => {
            eprintln!("hallmark serve: {e}");
            Err(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the manifest store could not be read",
            ))
        }
        Err(_) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

struct Upload {
    name: String,
    file: tempfile::NamedTempFile,
}

async fn receive(multipart: &mut Multipart, max: u64) -> Result<Upload, Response> {
    let bad = |m: &str| problem(StatusCode::BAD_REQUEST, m);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => {
                return Err(bad(
                    "no file: send multipart/form-data with a field named \"file\"",
                ))
            }
            Err(e) => return Err(bad(&format!("malformed upload: {e}"))),
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = sanitise_name(field.file_name().unwrap_or("upload"));
        // The extension tells the C2PA reader the format; keep a safe version of it.
        let ext: String = std::path::Path::new(&name)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(|e| format!(".{}", e.to_ascii_lowercase()))
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix("hallmark-upload-")
            .suffix(&ext)
            .tempfile()
            .map_err(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the upload"))?;
        let std_file = tmp
            .reopen()
            .map_err(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the upload"))?;
        let mut out = tokio::fs::File::from_std(std_file);
        let mut size = 0u64;
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    size += chunk.len() as u64;
                    if size > max {
                        return Err(problem(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!("the file is larger than this server's limit of {max} bytes"),
                        ));
                    }
                    out.write_all(&chunk).await.map_err(|_| {
                        problem(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the upload")
                    })?;
                }
                Ok(None) => break,
                Err(e) => return Err(bad(&format!("upload interrupted: {e}"))),
            }
        }
        out.flush()
            .await
            .map_err(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the upload"))?;
        return Ok(Upload { name, file: tmp });
    }
}

/// The uploader's file name, reduced to a harmless base name.
fn sanitise_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("upload");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    if clean.trim().is_empty() {
        "upload".into()
    } else {
        clean
    }
}

async fn analyse(config: &ServeConfig, file: &tempfile::NamedTempFile) -> (StatusCode, Value) {
    let error = |message: &str| {
        json!({"schema": "hallmark.verify/1", "verdict": "error", "ai_generated": null,
               "summary": format!("Error: {message}"), "error": message,
               "c2pa": {"present": false}, "media": null})
    };
    let Some((program, args)) = config.worker.split_first() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            error("no worker configured"),
        );
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .arg(file.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let memory = config.worker_memory;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: memory as libc::rlim_t,
                rlim_max: memory as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                error("could not start the analysis worker"),
            )
        }
    };
    match tokio::time::timeout(config.analysis_timeout, child.wait_with_output()).await {
        Err(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            error("the analysis took longer than this server allows; the file may be malformed"),
        ),
        Ok(Err(_)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            error("the analysis worker failed"),
        ),
        Ok(Ok(output)) => {
            let line = String::from_utf8_lossy(&output.stdout);
            match line.lines().next().and_then(|l| serde_json::from_str::<Value>(l).ok()) {
                Some(report) => (StatusCode::OK, report),
                // Crashed (signal), ran out of memory, or printed nothing.
                None => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    error("the file could not be analysed (the analysis worker stopped); it may be malformed"),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The page explains a recovered manifest's similarity with the store's own thresholds;
    /// a change to either must show up here rather than as a page that tells users wrong numbers.
    #[test]
    fn page_quotes_the_stores_match_thresholds() {
        let quoted = format!(
            "a match needs picture ≥ {:.2}, sound ≥ {:.2}",
            hallmark_store::VIDEO_MATCH,
            hallmark_store::AUDIO_MATCH
        );
        assert_eq!(super::PAGE.matches(&quoted).count(), 2, "{quoted}");
    }
}
