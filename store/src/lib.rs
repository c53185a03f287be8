//! Durable credentials: the manifest store. Sealing records each clip's signed C2PA
//! manifest store, its soft bindings (the watermark's clip id) and a perceptual
//! [`Fingerprint`] of its content. When a platform strips the manifest, the watermark still
//! carries the clip id; the verifier looks it up here and recovers the manifest — but only
//! for content whose fingerprint matches, so a mark copied onto other footage cannot borrow
//! someone else's credentials.
//!
//! Two backends, one schema and one behaviour: an embedded SQLite file (the default, one
//! machine) and PostgreSQL (`postgres://…` or `postgresql://…` where a path is expected),
//! which several sealing hosts and `hallmark serve` replicas share. Each applies the same
//! numbered migrations when opened for writing.
//!
//! The same store answers the C2PA soft-binding resolution API (`hallmark serve`),
//! by binding and by content ([`ManifestStore::find_by_content`]).

mod fingerprint;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

pub use fingerprint::{
    ContentMatch, Fingerprint, Fingerprinter, Similarity, AUDIO_DIFFERENT, AUDIO_MATCH, AUDIO_RATE,
    VIDEO_DIFFERENT, VIDEO_MATCH, VIDEO_RATE,
};

/// File name of the store in hallmark's home directory.
pub const STORE_FILE: &str = "manifests.sqlite";

/// The schema version this build writes (see `MIGRATIONS`).
pub const SCHEMA_VERSION: i64 = 4;

/// What a content search ([`ManifestStore::find_by_content`]) calls the same content: stricter
/// than [`VIDEO_MATCH`] / [`AUDIO_MATCH`], which judge the one clip a watermark names. A search
/// has no mark to narrow it and meets a million candidates: at 1,000,000 stored clips
/// (scripts/bench-store) two synthetic 2 s clips scored 0.76 and 0.75 against a copy of Big
/// Buck Bunny, while the watermark benchmark's 25 attacks keep the picture ≥ 0.987 and the
/// sound ≥ 0.879 (README of this crate).
pub const SEARCH_VIDEO_MATCH: f64 = 0.95;
pub const SEARCH_AUDIO_MATCH: f64 = 0.85;

/// Candidates of a content search that get the full comparison, at most.
const CONTENT_CANDIDATES: i64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("manifest store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("manifest store {store}: {source}")]
    Postgres {
        /// The URL without its password.
        store: String,
        #[source]
        source: postgres::Error,
    },
    #[error("manifest store {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One sealed clip, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredManifest {
    /// The active manifest's label (`urn:c2pa:…`): the id of the soft-binding API.
    pub manifest_id: String,
    /// The watermark's clip id, 16 hex digits.
    pub clip_id: String,
    /// `(alg, value)` of each soft binding the manifest declares.
    pub bindings: Vec<(String, String)>,
    /// Media type of the sealed asset (`video/mp4`…).
    pub format: String,
    /// The signed C2PA manifest store (JUMBF), exactly as embedded in the sealed file.
    pub manifest: Vec<u8>,
    pub fingerprint: Fingerprint,
    /// RFC 3339 time of sealing.
    pub sealed_at: String,
}

/// A stored clip whose content matches an upload ([`ManifestStore::find_by_content`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ContentMatchFound {
    pub manifest_id: String,
    pub similarity: Similarity,
    /// The measured similarity as 0–100: the lowest score of the media compared.
    pub score: u8,
}

/// Whether `location` names a PostgreSQL store (`postgres://…`, `postgresql://…`) rather
/// than a SQLite file.
pub fn is_url(location: &Path) -> bool {
    location
        .to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// `location` fit to print: a URL loses its password.
pub fn display_location(location: &Path) -> String {
    let text = location.to_string_lossy();
    if !is_url(location) {
        return text.into_owned();
    }
    // postgres://user:password@host/… → postgres://user:***@host/…
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &text[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &text[..scheme + 3],
                    &userinfo[..colon],
                    &text[at..]
                ),
                None => text.into_owned(),
            }
        }
        _ => text.into_owned(),
    }
}

/// The unix socket files a PostgreSQL URL connects through (`DIR/.s.PGSQL.PORT`; none for a
/// file store, or a URL of TCP hosts only): what a sandbox without network must show its
/// worker — the socket alone, not its directory (which may hold more).
pub fn socket_paths(location: &Path) -> Vec<PathBuf> {
    if !is_url(location) {
        return Vec::new();
    }
    let Some(config) = location
        .to_str()
        .and_then(|s| s.parse::<postgres::Config>().ok())
    else {
        return Vec::new();
    };
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .filter_map(|(i, host)| match host {
            postgres::config::Host::Unix(dir) => {
                // One port for all hosts, or one per host; 5432 when none is given.
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                Some(dir.join(format!(".s.PGSQL.{port}")))
            }
            _ => None,
        })
        .collect()
}

enum Backend {
    Sqlite(Connection),
    /// A mutex, not a `RefCell`: the client needs `&mut` for every query, and the store is
    /// handed between threads (serve's blocking pool).
    Postgres(Mutex<postgres::Client>),
}

/// The store. Cheap to open; one connection per thread.
pub struct ManifestStore {
    backend: Backend,
    path: PathBuf,
}

/// The schema, one migration per version; version N is `MIGRATIONS[N - 1]`. SQLite keeps
/// its version in `PRAGMA user_version`, PostgreSQL in `hallmark_schema`. Version 1 is the
/// first release's schema (`IF NOT EXISTS`: a store made before versions were counted
/// has it already); version 2 adds the content index and version 3 the sound's keys to it,
/// each filled from the stored fingerprints ([`backfilled_keys`]); version 4 makes the
/// index by key cover the clip (`(key, seq)`), so a probe's votes are counted from the
/// index alone: at a million clips with sound (`scripts/bench-store`) the vote for 30 s of
/// sound (3,692 keys, 38,218 rows) read 16,000 table pages more, 178 → 43 ms.
const SQLITE_MIGRATIONS: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS manifests (
        manifest_id TEXT PRIMARY KEY,
        clip_id TEXT NOT NULL,
        format TEXT NOT NULL,
        manifest BLOB NOT NULL,
        fingerprint BLOB NOT NULL,
        sealed_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS manifests_by_clip ON manifests (clip_id);
    CREATE TABLE IF NOT EXISTS bindings (
        alg TEXT NOT NULL,
        value TEXT NOT NULL,
        manifest_id TEXT NOT NULL REFERENCES manifests (manifest_id),
        PRIMARY KEY (alg, value, manifest_id)
    );",
    // `seq` is the manifest's rowid: keys are many per clip, and an integer keeps them small.
    "CREATE TABLE content_keys (key INTEGER NOT NULL, seq INTEGER NOT NULL);
    CREATE INDEX content_keys_by_key ON content_keys (key);
    CREATE INDEX content_keys_by_seq ON content_keys (seq);",
    // The sound's keys: new rows in the same table, from the stored fingerprints.
    "",
    COVERING_KEY_INDEX,
];

/// Migration 4, both backends (a store migrated from version 1 never had the old index).
const COVERING_KEY_INDEX: &str = "CREATE INDEX content_keys_by_key_seq ON content_keys (key, seq);
    DROP INDEX IF EXISTS content_keys_by_key;";

const POSTGRES_MIGRATIONS: [&str; 4] = [
    "CREATE TABLE manifests (
        manifest_id TEXT PRIMARY KEY,
        clip_id TEXT NOT NULL,
        format TEXT NOT NULL,
        manifest BYTEA NOT NULL,
        fingerprint BYTEA NOT NULL,
        sealed_at TEXT NOT NULL
    );
    CREATE INDEX manifests_by_clip ON manifests (clip_id);
    CREATE TABLE bindings (
        alg TEXT NOT NULL,
        value TEXT NOT NULL,
        manifest_id TEXT NOT NULL REFERENCES manifests (manifest_id) ON DELETE CASCADE,
        PRIMARY KEY (alg, value, manifest_id)
    );",
    "ALTER TABLE manifests ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE;
    CREATE TABLE content_keys (key BIGINT NOT NULL, seq BIGINT NOT NULL);
    CREATE INDEX content_keys_by_key ON content_keys (key);
    CREATE INDEX content_keys_by_seq ON content_keys (seq);",
    "",
    COVERING_KEY_INDEX,
];

/// The content keys a migration to version `to` adds for each stored fingerprint: version 2
/// the picture's, version 3 the sound's (a store made before version 3 found clips by their
/// picture only).
fn backfilled_keys(to: i64) -> Option<fn(&Fingerprint) -> Vec<i64>> {
    match to {
        2 => Some(Fingerprint::picture_keys),
        3 => Some(Fingerprint::sound_keys),
        _ => None,
    }
}

/// How long a SQLite call waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Serialises migrations of one PostgreSQL database among hosts opening it at once
/// (`pg_advisory_xact_lock`): an arbitrary constant, "hallmark" in ASCII.
const MIGRATION_LOCK: i64 = 0x68616c6c6d61726b;

impl ManifestStore {
    /// Opens the store at `location` (a SQLite file, or a PostgreSQL URL) for writing,
    /// creating it and bringing its schema up to date if needed.
    pub fn open(location: &Path) -> Result<ManifestStore, StoreError> {
        if is_url(location) {
            let mut store = Self::connect_postgres(location)?;
            store.migrate_postgres()?;
            return Ok(store);
        }
        let store = Self::connect(location, OpenFlags::default())?;
        store.use_wal()?;
        store.migrate_sqlite()?;
        Ok(store)
    }

    /// Opens an existing store read-only; `Ok(None)` if there is none at `location` (no
    /// file; a PostgreSQL database where nothing was sealed yet).
    pub fn open_existing(location: &Path) -> Result<Option<ManifestStore>, StoreError> {
        if is_url(location) {
            let store = Self::connect_postgres(location)?;
            let exists: bool = store
                .pg(|c| c.query_one("SELECT to_regclass('manifests') IS NOT NULL", &[]))?
                .get(0);
            return Ok(exists.then_some(store));
        }
        if !location.exists() {
            return Ok(None);
        }
        let store = Self::connect(
            location,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A file that is not a hallmark store fails here, with its name, not on first use.
        store
            .sqlite()
            .query_row("SELECT count(*) FROM manifests", [], |_| Ok(()))
            .map_err(|e| store.err(e))?;
        Ok(Some(store))
    }

    /// WAL: a verifier (or `hallmark serve`) reading while a seal writes never waits.
    /// Switching a new file to WAL takes an exclusive lock without calling the busy handler,
    /// so sealers opening one new store at once would fail with "database is locked": retry
    /// for as long as the busy timeout would have waited.
    fn use_wal(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            match self.sqlite().pragma_update(None, "journal_mode", "WAL") {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                done => return done.map_err(|e| self.err(e)),
            }
        }
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<ManifestStore, StoreError> {
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        Ok(ManifestStore {
            backend: Backend::Sqlite(conn),
            path: path.to_path_buf(),
        })
    }

    fn connect_postgres(url: &Path) -> Result<ManifestStore, StoreError> {
        let shown = display_location(url);
        let text = url.to_str().unwrap_or_default();
        let mut config: postgres::Config = text.parse().map_err(|source| StoreError::Postgres {
            store: shown.clone(),
            source,
        })?;
        if config.get_connect_timeout().is_none() {
            // A store that does not answer fails the command, it does not hang it.
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("hallmark");
        }
        let mut client =
            config
                .connect(postgres::NoTls)
                .map_err(|source| StoreError::Postgres {
                    store: shown.clone(),
                    source,
                })?;
        // The store's queries are short lookups, but the planner overestimates a probe's
        // rows (its keys' popularity is skewed) and would compile them: at a million clips,
        // JIT took 405 of the 410 ms of a 30 s sound's vote. Servers without JIT (before
        // PostgreSQL 11) refuse the setting; nothing to turn off there.
        let _ = client.batch_execute("SET jit = off");
        Ok(ManifestStore {
            backend: Backend::Postgres(Mutex::new(client)),
            path: url.to_path_buf(),
        })
    }

    /// The store's location: a file path, or the URL it was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which backend holds the store: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    fn sqlite(&self) -> &Connection {
        match &self.backend {
            Backend::Sqlite(conn) => conn,
            Backend::Postgres(_) => unreachable!("a SQLite call on a PostgreSQL store"),
        }
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn pg_err(&self, source: postgres::Error) -> StoreError {
        StoreError::Postgres {
            store: display_location(&self.path),
            source,
        }
    }

    /// Runs `f` with the PostgreSQL client.
    fn pg<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let Backend::Postgres(client) = &self.backend else {
            unreachable!("a PostgreSQL call on a SQLite store")
        };
        let mut client = client.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut client).map_err(|e| self.pg_err(e))
    }

    fn corrupt(&self, manifest_id: &str) -> StoreError {
        StoreError::Invalid {
            path: PathBuf::from(display_location(&self.path)),
            message: format!("the fingerprint of {manifest_id} is corrupt"),
        }
    }

    fn migrate_sqlite(&self) -> Result<(), StoreError> {
        let conn = self.sqlite();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(self.newer(version));
        }
        for (i, migration) in SQLITE_MIGRATIONS.iter().enumerate() {
            let to = i as i64 + 1;
            if version >= to {
                continue;
            }
            // One transaction per step (IMMEDIATE: two sealing processes do not race).
            let run = || -> rusqlite::Result<()> {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                let now: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                if now < to {
                    if !migration.is_empty() {
                        conn.execute_batch(migration)?;
                    }
                    if let Some(keys_of) = backfilled_keys(to) {
                        let prints = {
                            let mut stmt =
                                conn.prepare("SELECT rowid, fingerprint FROM manifests")?;
                            let rows = stmt
                                .query_map([], |r| {
                                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                                })?
                                .collect::<Result<Vec<_>, _>>()?;
                            rows
                        };
                        for (seq, bytes) in prints {
                            let keys = Fingerprint::from_bytes(&bytes)
                                .map(|p| keys_of(&p))
                                .unwrap_or_default();
                            insert_keys_sqlite(conn, seq, &keys)?;
                        }
                    }
                    conn.pragma_update(None, "user_version", to)?;
                }
                conn.execute_batch("COMMIT")
            };
            if let Err(e) = run() {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(self.err(e));
            }
        }
        Ok(())
    }

    fn migrate_postgres(&mut self) -> Result<(), StoreError> {
        let newer = |v| self.newer(v);
        let found = self.pg(|c| {
            let mut tx = c.transaction()?;
            // Hosts opening a new database at once: one migrates, the others wait for it.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS hallmark_schema (
                    version BIGINT PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )?;
            let version: i64 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM hallmark_schema", &[])?
                .get(0);
            if version > SCHEMA_VERSION {
                return Ok(Some(version));
            }
            for (i, migration) in POSTGRES_MIGRATIONS.iter().enumerate() {
                let to = i as i64 + 1;
                if version >= to {
                    continue;
                }
                if !migration.is_empty() {
                    tx.batch_execute(migration)?;
                }
                if let Some(keys_of) = backfilled_keys(to) {
                    let rows = tx.query("SELECT seq, fingerprint FROM manifests", &[])?;
                    for row in rows {
                        let keys = Fingerprint::from_bytes(row.get(1))
                            .map(|p| keys_of(&p))
                            .unwrap_or_default();
                        insert_keys_postgres(&mut tx, row.get(0), &keys)?;
                    }
                }
                tx.execute("INSERT INTO hallmark_schema (version) VALUES ($1)", &[&to])?;
            }
            tx.commit()?;
            Ok(None)
        })?;
        match found {
            Some(version) => Err(newer(version)),
            None => Ok(()),
        }
    }

    fn newer(&self, version: i64) -> StoreError {
        StoreError::Invalid {
            path: PathBuf::from(display_location(&self.path)),
            message: format!(
                "its schema is version {version}, newer than this hallmark's ({SCHEMA_VERSION}): update hallmark"
            ),
        }
    }

    /// Records a sealed clip (replacing an earlier record of the same manifest id).
    pub fn insert(&mut self, record: &StoredManifest) -> Result<(), StoreError> {
        let print = record.fingerprint.to_bytes();
        let keys = record.fingerprint.content_keys();
        if let Backend::Postgres(_) = self.backend {
            return self.pg(|c| {
                let mut tx = c.transaction()?;
                tx.execute(
                    "DELETE FROM content_keys WHERE seq IN
                     (SELECT seq FROM manifests WHERE manifest_id = $1)",
                    &[&record.manifest_id],
                )?;
                tx.execute(
                    "DELETE FROM bindings WHERE manifest_id = $1",
                    &[&record.manifest_id],
                )?;
                let seq: i64 = tx
                    .query_one(
                        "INSERT INTO manifests (manifest_id, clip_id, format, manifest, fingerprint, sealed_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (manifest_id) DO UPDATE SET clip_id = EXCLUDED.clip_id,
                           format = EXCLUDED.format, manifest = EXCLUDED.manifest,
                           fingerprint = EXCLUDED.fingerprint, sealed_at = EXCLUDED.sealed_at
                         RETURNING seq",
                        &[
                            &record.manifest_id,
                            &record.clip_id,
                            &record.format,
                            &record.manifest,
                            &print,
                            &record.sealed_at,
                        ],
                    )?
                    .get(0);
                for (alg, value) in &record.bindings {
                    tx.execute(
                        "INSERT INTO bindings (alg, value, manifest_id) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                        &[alg, value, &record.manifest_id],
                    )?;
                }
                insert_keys_postgres(&mut tx, seq, &keys)?;
                tx.commit()
            });
        }
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let Backend::Sqlite(conn) = &mut self.backend else {
            unreachable!()
        };
        let tx = conn.transaction().map_err(sqlite)?;
        tx.execute(
            "DELETE FROM content_keys WHERE seq IN
             (SELECT rowid FROM manifests WHERE manifest_id = ?1)",
            params![record.manifest_id],
        )
        .map_err(sqlite)?;
        tx.execute(
            "DELETE FROM bindings WHERE manifest_id = ?1",
            params![record.manifest_id],
        )
        .map_err(sqlite)?;
        tx.execute(
            "INSERT OR REPLACE INTO manifests (manifest_id, clip_id, format, manifest, fingerprint, sealed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                record.manifest_id,
                record.clip_id,
                record.format,
                record.manifest,
                print,
                record.sealed_at
            ],
        )
        .map_err(sqlite)?;
        let seq = tx.last_insert_rowid();
        for (alg, value) in &record.bindings {
            tx.execute(
                "INSERT OR IGNORE INTO bindings (alg, value, manifest_id) VALUES (?1, ?2, ?3)",
                params![alg, value, record.manifest_id],
            )
            .map_err(sqlite)?;
        }
        insert_keys_sqlite(&tx, seq, &keys).map_err(sqlite)?;
        tx.commit().map_err(sqlite)
    }

    /// Manifest ids whose soft binding `alg` has `value` (newest first), at most `limit`.
    pub fn find_by_binding_limited(
        &self,
        alg: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        if let Backend::Postgres(_) = self.backend {
            let rows = self.pg(|c| {
                c.query(
                    "SELECT b.manifest_id FROM bindings b JOIN manifests m USING (manifest_id)
                     WHERE b.alg = $1 AND b.value = $2 ORDER BY m.sealed_at DESC LIMIT $3",
                    &[&alg, &value, &limit],
                )
            })?;
            return Ok(rows.iter().map(|r| r.get(0)).collect());
        }
        let mut stmt = self
            .sqlite()
            .prepare(
                "SELECT b.manifest_id FROM bindings b JOIN manifests m USING (manifest_id)
                 WHERE b.alg = ?1 AND b.value = ?2 ORDER BY m.sealed_at DESC LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(params![alg, value, limit], |row| row.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Manifest ids whose soft binding `alg` has `value` (newest first).
    pub fn find_by_binding(&self, alg: &str, value: &str) -> Result<Vec<String>, StoreError> {
        self.find_by_binding_limited(alg, value, usize::MAX)
    }

    /// The watermark clip ids of the newest `limit` records (newest first, each once): the
    /// clips a proven mark whose payload did not decode may be read against when no clip
    /// with the upload's content agrees (`hallmark-detector`'s `recover`).
    pub fn recent_clip_ids(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        if let Backend::Postgres(_) = self.backend {
            let rows = self.pg(|c| {
                c.query(
                    "SELECT clip_id FROM manifests GROUP BY clip_id
                     ORDER BY max(sealed_at) DESC, clip_id LIMIT $1",
                    &[&limit],
                )
            })?;
            return Ok(rows.iter().map(|r| r.get(0)).collect());
        }
        let mut stmt = self
            .sqlite()
            .prepare(
                "SELECT clip_id FROM manifests GROUP BY clip_id
                 ORDER BY max(sealed_at) DESC, clip_id LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(params![limit], |row| row.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// The newest record for a watermark clip id (16 hex digits, any case).
    pub fn find_by_clip_id(&self, clip_id: &str) -> Result<Option<StoredManifest>, StoreError> {
        let clip_id = clip_id.to_ascii_lowercase();
        let id: Option<String> = if let Backend::Postgres(_) = self.backend {
            self.pg(|c| {
                c.query_opt(
                    "SELECT manifest_id FROM manifests WHERE clip_id = $1
                     ORDER BY sealed_at DESC LIMIT 1",
                    &[&clip_id],
                )
            })?
            .map(|r| r.get(0))
        } else {
            self.sqlite()
                .query_row(
                    "SELECT manifest_id FROM manifests WHERE clip_id = ?1 ORDER BY sealed_at DESC LIMIT 1",
                    params![clip_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?
        };
        match id {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    pub fn get(&self, manifest_id: &str) -> Result<Option<StoredManifest>, StoreError> {
        type Row = (String, String, Vec<u8>, Vec<u8>, String);
        let (row, bindings): (Option<Row>, Vec<(String, String)>) = if let Backend::Postgres(_) =
            self.backend
        {
            self.pg(|c| {
                let row = c
                    .query_opt(
                        "SELECT clip_id, format, manifest, fingerprint, sealed_at
                             FROM manifests WHERE manifest_id = $1",
                        &[&manifest_id],
                    )?
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)));
                let bindings = c
                    .query(
                        "SELECT alg, value FROM bindings WHERE manifest_id = $1 ORDER BY alg",
                        &[&manifest_id],
                    )?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                Ok((row, bindings))
            })?
        } else {
            let conn = self.sqlite();
            let row = conn
                    .query_row(
                        "SELECT clip_id, format, manifest, fingerprint, sealed_at FROM manifests WHERE manifest_id = ?1",
                        params![manifest_id],
                        |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                        },
                    )
                    .optional()
                    .map_err(|e| self.err(e))?;
            let mut stmt = conn
                .prepare("SELECT alg, value FROM bindings WHERE manifest_id = ?1 ORDER BY alg")
                .map_err(|e| self.err(e))?;
            let bindings = stmt
                .query_map(params![manifest_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(|rows| rows.collect::<Result<Vec<(String, String)>, _>>())
                .map_err(|e| self.err(e))?;
            (row, bindings)
        };
        let Some((clip_id, format, manifest, fingerprint, sealed_at)) = row else {
            return Ok(None);
        };
        let fingerprint =
            Fingerprint::from_bytes(&fingerprint).ok_or_else(|| self.corrupt(manifest_id))?;
        Ok(Some(StoredManifest {
            manifest_id: manifest_id.to_owned(),
            clip_id,
            bindings,
            format,
            manifest,
            fingerprint,
            sealed_at,
        }))
    }

    /// The stored clips whose content is `upload`'s, best first, at most `max_results`.
    /// Found without comparing `upload` with every stored fingerprint: the clips sharing
    /// the most content keys with it ([`Fingerprint::probe_keys`], picture and sound; an
    /// index lookup) are the candidates, and only they get the full comparison; a candidate
    /// counts when the comparison says `Same` and every compared medium reaches
    /// [`SEARCH_VIDEO_MATCH`] / [`SEARCH_AUDIO_MATCH`].
    pub fn find_by_content(
        &self,
        upload: &Fingerprint,
        max_results: usize,
    ) -> Result<Vec<ContentMatchFound>, StoreError> {
        self.find_content(upload, max_results, SEARCH_VIDEO_MATCH, SEARCH_AUDIO_MATCH)
    }

    /// As [`find_by_content`](Self::find_by_content), every clip the comparison calls the
    /// same content (each compared medium at least [`VIDEO_MATCH`] / [`AUDIO_MATCH`]): the
    /// candidates for a watermark's clip id, where the mark's own test (which counts every
    /// candidate) decides, not the content. A voice with other speech mixed 3 dB under it
    /// scores ≈ 0.78 against the sealed voice: the same content, under the search's 0.85.
    pub fn find_same_content(
        &self,
        upload: &Fingerprint,
        max_results: usize,
    ) -> Result<Vec<ContentMatchFound>, StoreError> {
        self.find_content(upload, max_results, VIDEO_MATCH, AUDIO_MATCH)
    }

    fn find_content(
        &self,
        upload: &Fingerprint,
        max_results: usize,
        video_min: f64,
        audio_min: f64,
    ) -> Result<Vec<ContentMatchFound>, StoreError> {
        let keys = upload.probe_keys();
        if keys.is_empty() || max_results == 0 {
            return Ok(Vec::new());
        }
        let candidates: Vec<(String, Vec<u8>)> = if let Backend::Postgres(_) = self.backend {
            self.pg(|c| {
                let rows = c.query(
                    "SELECT m.manifest_id, m.fingerprint FROM manifests m JOIN
                       (SELECT seq, count(*) AS votes FROM content_keys WHERE key = ANY($1)
                        GROUP BY seq ORDER BY votes DESC, seq DESC LIMIT $2) v USING (seq)
                     ORDER BY v.votes DESC, m.seq DESC",
                    &[&keys, &CONTENT_CANDIDATES],
                )?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })?
        } else {
            // A store of schema 1 opened read-only (nothing has sealed into it since this
            // version): it has no content index yet, and finds nothing by content.
            let version: i64 = self
                .sqlite()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if version < 2 {
                return Ok(Vec::new());
            }
            let list = keys
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            // The keys are integers we made: inlined, not bound (one statement of any length).
            let sql = format!(
                "SELECT m.manifest_id, m.fingerprint FROM manifests m JOIN
                   (SELECT seq, count(*) AS votes FROM content_keys WHERE key IN ({list})
                    GROUP BY seq ORDER BY votes DESC, seq DESC LIMIT {CONTENT_CANDIDATES}) v
                   ON m.rowid = v.seq
                 ORDER BY v.votes DESC, m.rowid DESC"
            );
            let mut stmt = self.sqlite().prepare(&sql).map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.err(e))?;
            rows
        };
        let mut found = Vec::new();
        for (manifest_id, bytes) in candidates {
            let print =
                Fingerprint::from_bytes(&bytes).ok_or_else(|| self.corrupt(&manifest_id))?;
            let similarity = print.compare(upload);
            let strong = |score: Option<f64>, min: f64| score.is_none_or(|s| s >= min);
            if similarity.decision() != ContentMatch::Same
                || !strong(similarity.video, video_min)
                || !strong(similarity.audio, audio_min)
            {
                continue;
            }
            let score = [similarity.video, similarity.audio]
                .into_iter()
                .flatten()
                .fold(1.0f64, f64::min);
            found.push(ContentMatchFound {
                manifest_id,
                similarity,
                score: (score * 100.0).round().clamp(0.0, 100.0) as u8,
            });
        }
        found.sort_by_key(|m| std::cmp::Reverse(m.score));
        found.truncate(max_results);
        Ok(found)
    }
}

/// The fingerprint of a media file's first `seconds` (picture and sound), decoded with
/// hallmark's narrow FFmpeg (only the accepted formats, local files only). For untrusted
/// files, call it where a crash or a hang costs nothing (`hallmark serve` does in its
/// sandboxed worker).
pub fn fingerprint_file(path: &Path, seconds: f64) -> Result<Fingerprint, String> {
    use hallmark_media::{Decoder, MediaFrame, PixelLayout};
    hallmark_media::init();
    let mut decoder = Decoder::open(path, PixelLayout::Yuv420p).map_err(|e| e.to_string())?;
    let mut print = Fingerprinter::new();
    while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
        if frame.pts_s() > seconds {
            break;
        }
        match frame {
            MediaFrame::Video(v) => print.add_frame(&v),
            MediaFrame::Audio(a) => print.add_audio(&a),
        }
    }
    Ok(print.finish())
}

fn insert_keys_sqlite(conn: &Connection, seq: i64, keys: &[i64]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("INSERT INTO content_keys (key, seq) VALUES (?1, ?2)")?;
    for key in keys {
        stmt.execute(params![key, seq])?;
    }
    Ok(())
}

fn insert_keys_postgres(
    tx: &mut postgres::Transaction<'_>,
    seq: i64,
    keys: &[i64],
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO content_keys (key, seq) SELECT unnest($1::bigint[]), $2",
        &[&keys, &seq],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_name_the_socket_files_of_a_url() {
        assert_eq!(
            socket_paths(Path::new("postgresql://u@%2Frun%2Fpostgresql/db")),
            [PathBuf::from("/run/postgresql/.s.PGSQL.5432")]
        );
        assert_eq!(
            socket_paths(Path::new("postgres:///db?host=/tmp/s&port=6000")),
            [PathBuf::from("/tmp/s/.s.PGSQL.6000")]
        );
        assert!(socket_paths(Path::new("postgres://u@db.example/db")).is_empty());
        assert!(socket_paths(Path::new("/srv/manifests.sqlite")).is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_store_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.sqlite");
        std::fs::write(&path, b"this is not a database, just text").unwrap();
        let err = ManifestStore::open_existing(&path).err().expect("error");
        assert!(err.to_string().contains("junk.sqlite"), "{err}");
    }
}
