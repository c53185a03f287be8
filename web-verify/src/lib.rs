//! `hallmark serve`: the public verification page and its JSON API.
//!
//! Safe on the open internet by construction:
//! - admission: a client may start `per_client_rate` uploads a minute and have
//!   `per_client_uploads` in progress; an upload must arrive at a minimum rate after a grace
//!   period and by a deadline (request heads within `header_timeout`); every byte of the body
//!   counts against the limit, and all uploads together may hold `max_temp_disk` bytes of disk;
//!   an analysis slot is taken only once the upload is complete, so slow clients hold none;
//!   beyond the limits: `503` + `Retry-After`;
//! - each analysis runs in a separate worker process (`hallmark verify --json`) under a time
//!   and memory limit, so a decoder crash or hang cannot take the server down, and in a
//!   sandbox ([`Sandbox`], bubblewrap) that holds only what verifying needs: no network, no
//!   file of the host but the system's libraries, the verifier home, the store and its input;
//! - answers name no server path, and give the public the verdict without the detector's fine
//!   read-outs (`full_evidence` or the API token for those);
//! - security headers (CSP by hash of the page's own script and style) on every answer.

mod admission;
mod evidence;
mod policy;
mod sandbox;
mod soft_binding;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use admission::{ClientKey, ClientLimits, DiskBudget, DiskUse, Late, Meter, Pace};
pub use evidence::{round_up_to_power_of_ten, Evidence, Scrubber};
pub use sandbox::{
    worker_command, HostUser, Sandbox, WorkerLimits, SCRATCH, STORE_DIR, WORKER_UID,
};

pub(crate) const PAGE: &str = include_str!("page.html");

/// Bytes a multipart body may carry beyond the file itself: framing, part headers and the
/// small fields a form may add.
const FORM_OVERHEAD: u64 = 64 * 1024;
/// Bytes of all fields other than `file` together (they are read and thrown away).
const OTHER_FIELDS_LIMIT: u64 = 16 * 1024;
/// Soft-binding lookups a client may make per upload it may start (per minute).
const LOOKUPS_PER_UPLOAD: u32 = 10;
/// `Retry-After` of a full server, in seconds.
const RETRY_AFTER_BUSY: u64 = 5;

/// How the server runs. `worker` is the command that analyses one file: the server appends the
/// file's path and reads one JSON report from its stdout.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub max_upload: u64,
    /// Analyses running at once.
    pub workers: usize,
    /// Complete uploads allowed to wait for a worker; beyond that the server answers 503.
    pub queue: usize,
    pub analysis_timeout: Duration,
    /// Address-space limit of a worker process, in bytes.
    pub worker_memory: u64,
    pub worker: Vec<std::ffi::OsString>,
    /// The sandbox each worker runs in (`None`: none, only the process limits).
    pub sandbox: Option<Sandbox>,
    /// The manifest store behind the soft-binding resolution API (`None`: it answers that
    /// nothing is known).
    pub store: Option<PathBuf>,
    /// A request's head must arrive within this.
    pub header_timeout: Duration,
    /// An upload may send nothing for this long (at its start, or between two chunks); after it,
    /// it must have kept up `min_upload_rate` on average.
    pub upload_grace: Duration,
    /// Bytes per second (0: no minimum).
    pub min_upload_rate: u64,
    /// An upload must be complete within this.
    pub upload_deadline: Duration,
    /// Uploads one client (IPv4 address or IPv6 /64) may have in progress at once (0: any).
    pub per_client_uploads: usize,
    /// Uploads one client may start per minute (0: any).
    pub per_client_rate: u32,
    /// Bytes of temporary disk all uploads in progress may hold together.
    pub max_temp_disk: u64,
    /// Where the upload directory is made (`None`: the system's temp dir).
    pub temp_dir: Option<PathBuf>,
    /// Connections held open at once; more are closed at once.
    pub max_connections: usize,
    /// Answer every caller with the worker's full evidence (timelines, exact p-values, …).
    pub full_evidence: bool,
    /// Callers presenting `Authorization: Bearer TOKEN` get full evidence.
    pub api_token: Option<String>,
}

impl ServeConfig {
    /// A configuration with this worker command and the defaults of `hallmark serve`.
    pub fn new(worker: Vec<std::ffi::OsString>) -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_upload: 500 << 20,
            workers: 2,
            queue: 16,
            analysis_timeout: Duration::from_secs(120),
            worker_memory: 4 << 30,
            worker,
            sandbox: None,
            store: None,
            header_timeout: Duration::from_secs(10),
            upload_grace: Duration::from_secs(10),
            min_upload_rate: 16 << 10,
            upload_deadline: Duration::from_secs(600),
            per_client_uploads: 4,
            per_client_rate: 30,
            max_temp_disk: 2 << 30,
            temp_dir: None,
            max_connections: 512,
            full_evidence: false,
            api_token: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make the upload directory in {dir}: {source}")]
    UploadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("--max-temp-disk ({disk} bytes) must be at least --max-upload ({upload} bytes)")]
    DiskBelowUpload { disk: u64, upload: u64 },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

struct AppState {
    config: ServeConfig,
    running: Semaphore,
    /// Complete uploads waiting for a worker or being analysed.
    pending: AtomicUsize,
    clients: ClientLimits,
    /// The soft-binding lookups' own rate (cheap, but each reads the store).
    lookups: ClientLimits,
    disk: DiskBudget,
    /// Private directory (0700) of the uploads in progress; removed when the server stops.
    uploads: tempfile::TempDir,
    /// Paths no answer may contain, and what they read as instead.
    scrub: Scrubber,
}

impl AppState {
    fn new(config: ServeConfig) -> Result<AppState, ServeError> {
        if config.max_temp_disk < config.max_upload {
            return Err(ServeError::DiskBelowUpload {
                disk: config.max_temp_disk,
                upload: config.max_upload,
            });
        }
        let parent = config.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        // tempfile leaves a directory's mode to the umask (0755 under the usual 022): set it,
        // so that no other local user can list what the public is uploading.
        let uploads = tempfile::Builder::new()
            .prefix("hallmark-serve-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&parent)
            .map_err(|source| ServeError::UploadDir {
                dir: parent.clone(),
                source,
            })?;
        let mut scrub = Scrubber::new().path(uploads.path(), ".").path(&parent, ".");
        if let Some(store) = &config.store {
            scrub = scrub.path(store, "the manifest store");
            if let Some(dir) = store.parent() {
                scrub = scrub.path(dir, ".");
            }
        }
        if let Some(inside) = config.sandbox.as_ref().and_then(Sandbox::store_inside) {
            scrub = scrub.path(&inside, "the manifest store");
        }
        // The worker's command line: its binary and its home (the server's user's files).
        for arg in &config.worker {
            let path = Path::new(arg);
            if path.is_absolute() {
                scrub = scrub.path(path, ".");
            }
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            scrub = scrub.path(Path::new(&home), "~");
        }
        Ok(AppState {
            running: Semaphore::new(config.workers.max(1)),
            pending: AtomicUsize::new(0),
            clients: ClientLimits::new(config.per_client_uploads, config.per_client_rate),
            lookups: ClientLimits::new(
                0,
                config.per_client_rate.saturating_mul(LOOKUPS_PER_UPLOAD),
            ),
            disk: DiskBudget::new(config.max_temp_disk),
            uploads,
            scrub,
            config,
        })
    }

    fn pace(&self) -> Pace {
        Pace {
            grace: self.config.upload_grace,
            min_rate: self.config.min_upload_rate,
            deadline: self.config.upload_deadline,
        }
    }

    fn queue_limit(&self) -> usize {
        self.config.workers.max(1) + self.config.queue
    }
}

/// The routes, for tests and embedding. Requests need a `ConnectInfo<SocketAddr>` extension
/// (as [`serve`] adds) to be counted per client; without one they share one count.
pub fn router(config: ServeConfig) -> Result<Router, ServeError> {
    Ok(routes(Arc::new(AppState::new(config)?)))
}

fn routes(state: Arc<AppState>) -> Router {
    // C2PA Soft Binding Resolution API 1.0 over the manifest store (soft_binding.rs).
    let soft_binding = soft_binding::routes();
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/api/verify",
            post(verify).layer(axum::middleware::map_response(policy::no_store)),
        )
        // C2PA soft-binding resolution API over the manifest store.
        .merge(soft_binding)
        // The upload limit is enforced while streaming, below.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(policy::secure))
        .with_state(state)
}

/// Binds and serves until Ctrl-C. `on_listening` gets the bound address (port 0 → real port).
pub async fn serve(
    config: ServeConfig,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let addr = config.listen;
    let header_timeout = config.header_timeout;
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let state = Arc::new(AppState::new(config)?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    // Before the address is announced: a SIGTERM sent as soon as the server answers must
    // find the handler in place (registered on the accept loop's first poll, it could come
    // after a first request was already answered on another worker thread, and the signal
    // then killed the server: seen once in `serve.rs`'s SIGTERM test on a loaded machine).
    let shutdown = shutdown_signal();
    on_listening(listener.local_addr().map_err(ServeError::Serve)?);
    let app = routes(state.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // Slow heads (and idle kept-alive connections) are closed after this.
        .header_read_timeout(header_timeout.max(Duration::from_millis(100)))
        .max_buf_size(64 * 1024);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait for connections to end.
                    log(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            drop(stream); // over the connection cap
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request.map(Body::new))
            });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    // Let answers in progress finish (analyses are bounded by their timeout).
    let bound = state.config.analysis_timeout + Duration::from_secs(5);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(bound) => {}
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `kill`, systemd and `docker stop` send): the server stops
/// taking connections, lets answers in progress finish and removes its upload directory.
/// The SIGTERM handler is installed when this is called, not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A line on the server's stderr. Never `eprintln!`: it panics when stderr is gone (a closed
/// pipe), and the server must keep serving.
fn log(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "hallmark serve: {message}");
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// `503` + `Retry-After`: the one answer a client must expect when the server is at a limit.
fn busy(retry_after: Duration, message: &str) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    response
}

/// Who sent a request: its peer's address as [`serve`] recorded it (all the same without).
fn client_of(extensions: &axum::http::Extensions) -> ClientKey {
    ClientKey::of(
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
    )
}

/// `503` when the client has made its share of soft-binding lookups this minute.
fn lookup_refused(state: &AppState, extensions: &axum::http::Extensions) -> Option<Response> {
    state
        .lookups
        .check_rate(client_of(extensions))
        .err()
        .map(|wait| busy(wait, "too many lookups from your address; wait a little"))
}

/// A complete upload's place among those waiting for or being analysed.
struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn full_queue() -> Response {
    busy(
        Duration::from_secs(RETRY_AFTER_BUSY),
        "busy: too many files are being analysed; try again shortly",
    )
}

/// Whether the request presents the API token (compared in constant time); `None`: it
/// presents a wrong one.
fn authorised(config: &ServeConfig, headers: &HeaderMap) -> Option<bool> {
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Some(false);
    };
    let token = config.api_token.as_ref()?;
    let given = given.as_bytes().strip_prefix(b"Bearer ").unwrap_or(b"");
    let expected = token.as_bytes();
    let mut differ = given.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        differ |= (*b ^ given.get(i).copied().unwrap_or(0)) as usize;
    }
    (differ == 0).then_some(true)
}

fn wrong_token() -> Response {
    let mut response = problem(
        StatusCode::UNAUTHORIZED,
        "the API token is not valid; send none for the public answer",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// What every upload passes before its body is read (`/api/verify`, `/matches/byContent`):
/// refuses at once what could not be analysed anyway (a full queue: the client keeps its
/// bandwidth), a client over its concurrent uploads or its rate (the rate counts the uploads
/// a client starts: refusals above cost it nothing), a declared length over `max_body`, or one
/// the temporary disk cannot hold. The slot returned holds the client's place until dropped.
fn admit_upload<'a>(
    state: &'a AppState,
    client: ClientKey,
    headers: &axum::http::HeaderMap,
    max_body: u64,
) -> Result<admission::ClientSlot<'a>, Box<Response>> {
    if state.pending.load(Ordering::SeqCst) >= state.queue_limit() {
        return Err(Box::new(full_queue()));
    }
    let Some(slot) = state.clients.enter(client) else {
        return Err(Box::new(busy(
            Duration::from_secs(RETRY_AFTER_BUSY),
            "too many uploads at once from your address; wait for one to finish",
        )));
    };
    if let Err(wait) = state.clients.check_rate(client) {
        return Err(Box::new(busy(
            wait,
            "too many uploads from your address; wait before sending another",
        )));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared {
        if declared > max_body {
            return Err(Box::new(too_large(state.config.max_upload)));
        }
        if !state.disk.would_fit(declared) {
            return Err(Box::new(disk_full()));
        }
    }
    Ok(slot)
}

/// Only with the whole file here does an upload queue for a worker: refused when the queue is
/// full; the guards hold its place in the queue and then its worker slot.
async fn queue_for_worker(
    state: &AppState,
) -> Result<(Pending<'_>, tokio::sync::SemaphorePermit<'_>), Box<Response>> {
    if state.pending.fetch_add(1, Ordering::SeqCst) >= state.queue_limit() {
        state.pending.fetch_sub(1, Ordering::SeqCst);
        return Err(Box::new(full_queue()));
    }
    let pending = Pending(&state.pending);
    match state.running.acquire().await {
        Ok(permit) => Ok((pending, permit)),
        Err(_) => Err(Box::new(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down",
        ))),
    }
}

async fn verify(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let config = &state.config;
    let evidence = match authorised(config, request.headers()) {
        Some(true) => Evidence::Full,
        Some(false) if config.full_evidence => Evidence::Full,
        Some(false) => Evidence::Summary,
        None => return wrong_token(),
    };
    let max_body = config.max_upload + FORM_OVERHEAD;
    let client = client_of(request.extensions());
    let _slot = match admit_upload(&state, client, request.headers(), max_body) {
        Ok(slot) => slot,
        Err(refused) => return *refused,
    };

    let meter = Meter::new(state.pace(), max_body);
    let (parts, body) = request.into_parts();
    let body = Body::from_stream(meter.wrap(body.into_data_stream()));
    let multipart = match Multipart::from_request(Request::from_parts(parts, body), &()).await {
        Ok(multipart) => multipart,
        Err(rejection) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("send multipart/form-data with a field named \"file\" ({rejection})"),
            )
        }
    };
    let upload = match receive(&state, multipart, &meter).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let _worker = match queue_for_worker(&state).await {
        Ok(guards) => guards,
        Err(refused) => return *refused,
    };
    let (status, mut report) = analyse(config, &upload).await;
    // The report names the file as the uploader did, and no path of this server.
    report["file"] = json!(upload.name);
    let scrub = state
        .scrub
        .clone()
        .path(upload.file.path(), &upload.name)
        .text(&format!("{SCRATCH}/{}", upload.file_name()), &upload.name)
        .text(&format!("./{}", upload.file_name()), &upload.name)
        .text(&upload.file_name(), &upload.name);
    let report = evidence::publish(report, &scrub, evidence);
    drop(upload); // deletes the temp file, gives back its disk
    (status, Json(report)).into_response()
}

fn too_large(max: u64) -> Response {
    problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the file is larger than this server's limit of {max} bytes"),
    )
}

fn disk_full() -> Response {
    busy(
        Duration::from_secs(RETRY_AFTER_BUSY),
        "busy: this server's space for uploads in progress is full; try again shortly",
    )
}

struct Upload<'a> {
    name: String,
    file: tempfile::NamedTempFile,
    /// Declared after `file`: the disk is given back once the file is deleted.
    _disk: DiskUse<'a>,
}

impl Upload<'_> {
    fn file_name(&self) -> String {
        self.file
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Reads the multipart body to the end of its `file` field, under the meter's pace. Fields
/// before it are read and counted (`OTHER_FIELDS_LIMIT` together), never kept.
async fn receive<'a>(
    state: &'a AppState,
    mut multipart: Multipart,
    meter: &Meter,
) -> Result<Upload<'a>, Response> {
    let bad = |m: &str| problem(StatusCode::BAD_REQUEST, m);
    let late = |why: Late| problem(StatusCode::REQUEST_TIMEOUT, &why.message(&state.pace()));
    let broken = |e: axum::extract::multipart::MultipartError, what: &str| {
        if meter.too_big() {
            too_large(state.config.max_upload)
        } else {
            bad(&format!("{what}: {}", e.body_text()))
        }
    };
    let mut other_fields = 0u64;
    loop {
        let mut field = match meter.within(multipart.next_field()).await.map_err(late)? {
            Ok(Some(field)) => field,
            Ok(None) => {
                return Err(bad(
                    "no file: send multipart/form-data with a field named \"file\"",
                ))
            }
            Err(e) => return Err(broken(e, "malformed upload")),
        };
        if field.name() != Some("file") {
            let name: String = field
                .name()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(40)
                .collect();
            loop {
                match meter.within(field.chunk()).await.map_err(late)? {
                    Ok(Some(chunk)) => {
                        other_fields += chunk.len() as u64;
                        if other_fields > OTHER_FIELDS_LIMIT {
                            return Err(problem(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                &format!("the form field \"{name}\" is too large: fields other than \"file\" may hold {OTHER_FIELDS_LIMIT} bytes together"),
                            ));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(broken(e, "upload interrupted")),
                }
            }
            continue;
        }
        let name = sanitise_name(field.file_name().unwrap_or("upload"));
        // The extension tells the C2PA reader the format; keep a safe version of it.
        let ext: String = Path::new(&name)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(|e| format!(".{}", e.to_ascii_lowercase()))
            .unwrap_or_default();
        let mut spool = Spool::start(state, &ext).map_err(|e| *e)?;
        loop {
            match meter.within(field.chunk()).await.map_err(late)? {
                Ok(Some(chunk)) => spool.write(&chunk).await?,
                Ok(None) => break,
                Err(e) => return Err(broken(e, "upload interrupted")),
            }
        }
        return spool.finish(name).await;
    }
}

/// An upload on its way to the disk: a new file in the upload directory, filled under the
/// upload size limit and the temp-disk budget. The one place an upload reaches the disk, for
/// /api/verify's multipart field and /matches/byContent's raw body alike.
pub(crate) struct Spool<'a> {
    file: tempfile::NamedTempFile,
    out: tokio::io::BufWriter<tokio::fs::File>,
    size: u64,
    max: u64,
    disk: DiskUse<'a>,
}

impl<'a> Spool<'a> {
    pub(crate) fn start(state: &'a AppState, ext: &str) -> Result<Spool<'a>, Box<Response>> {
        let disk = state.disk.start();
        let file = tempfile::Builder::new()
            .prefix("hallmark-upload-")
            .suffix(ext)
            .tempfile_in(state.uploads.path())
            .map_err(|_| Box::new(cannot_store()))?;
        let std_file = file.reopen().map_err(|_| Box::new(cannot_store()))?;
        Ok(Spool {
            file,
            // Written in 256 KB pieces: one trip to the blocking pool each, not one per chunk.
            out: tokio::io::BufWriter::with_capacity(
                256 << 10,
                tokio::fs::File::from_std(std_file),
            ),
            size: 0,
            max: state.config.max_upload,
            disk,
        })
    }

    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), Response> {
        self.size += chunk.len() as u64;
        if self.size > self.max {
            return Err(too_large(self.max));
        }
        if !self.disk.grow(chunk.len() as u64) {
            return Err(disk_full());
        }
        self.out.write_all(chunk).await.map_err(|_| cannot_store())
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) async fn finish(mut self, name: String) -> Result<Upload<'a>, Response> {
        self.out.flush().await.map_err(|_| cannot_store())?;
        Ok(Upload {
            name,
            file: self.file,
            _disk: self.disk,
        })
    }
}

fn cannot_store() -> Response {
    problem(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the upload")
}

/// The uploader's file name, reduced to a harmless base name.
fn sanitise_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("upload");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    if clean.trim().is_empty() || clean == "." || clean == ".." {
        "upload".into()
    } else {
        clean
    }
}

async fn analyse(config: &ServeConfig, upload: &Upload<'_>) -> (StatusCode, Value) {
    let error = |message: &str| {
        json!({"schema": "hallmark.verify/2", "verdict": "error", "ai_generated": null,
               "summary": format!("Error: {message}"), "error": message,
               "c2pa": {"present": false}, "media": null, "watermark": null, "coverage": null})
    };
    let Some((program, args)) = config.worker.split_first() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            error("no worker configured"),
        );
    };
    // The worker runs in its scratch directory (or the upload directory, unsandboxed) and is
    // given the file's name only, so that what it says about the file names no directory of
    // this server.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let limits = WorkerLimits {
        // Every core busy for the whole time limit, and a little more: the wall clock below
        // ends an analysis first; this bounds one that escapes it.
        cpu_seconds: config
            .analysis_timeout
            .as_secs()
            .max(1)
            .saturating_mul(threads)
            + 5,
        memory: config.worker_memory,
        // The kernel counts a user's processes and threads together, and all workers share
        // theirs: room for every worker's decoder and analysis threads, not for a fork bomb.
        processes: (config.workers.max(1) as u64).saturating_mul((16 * threads).max(256)),
        ..WorkerLimits::default()
    };
    let command = match worker_command(
        program,
        args,
        upload.file.path(),
        config.sandbox.as_ref(),
        &limits,
    ) {
        Ok(command) => command,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, error("internal error")),
    };
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
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
                Some(report) if report.is_object() => (StatusCode::OK, report),
                // Crashed (signal), ran out of memory, or printed nothing.
                _ => (
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

    /// Uploads in progress sit in a directory no other local user may list or enter.
    #[test]
    fn the_upload_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let mut config = super::ServeConfig::new(vec!["/bin/false".into()]);
        config.temp_dir = Some(parent.path().to_path_buf());
        let state = super::AppState::new(config).unwrap();
        let mode = std::fs::metadata(state.uploads.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn uploaders_names_keep_only_their_base() {
        assert_eq!(super::sanitise_name("../../etc/passwd.jpg"), "passwd.jpg");
        assert_eq!(super::sanitise_name("C:\\Users\\me\\a.mp4"), "a.mp4");
        assert_eq!(super::sanitise_name("dir/.."), "upload");
        assert_eq!(super::sanitise_name("a\u{7}b.mp4"), "ab.mp4");
    }
}
