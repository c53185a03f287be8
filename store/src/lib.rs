//! Durable credentials: the manifest store. Sealing records each clip's signed C2PA
//! manifest store, its soft bindings (the watermark's clip id) and a perceptual
//! [`Fingerprint`] of its content in an embedded SQLite database. When a platform strips the
//! manifest, the watermark still carries the clip id; the verifier looks it up here and
//! recovers the manifest — but only for content whose fingerprint matches, so a mark copied
//! onto other footage cannot borrow someone else's credentials.
//!
//! The same store answers the C2PA soft-binding resolution API (`hallmark serve`).

mod fingerprint;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

pub use fingerprint::{
    ContentMatch, Fingerprint, Fingerprinter, Similarity, AUDIO_DIFFERENT, AUDIO_MATCH, AUDIO_RATE,
    VIDEO_DIFFERENT, VIDEO_MATCH, VIDEO_RATE,
};

/// File name of the store in hallmark's home directory.
pub const STORE_FILE: &str = "manifests.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("manifest store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
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

/// The store. Cheap to open; one connection per thread.
pub struct ManifestStore {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS manifests (
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
);
";

impl ManifestStore {
    /// Opens the store at `path` for writing, creating it if needed.
    pub fn open(path: &Path) -> Result<ManifestStore, StoreError> {
        let store = Self::connect(path, OpenFlags::default())?;
        store
            .conn
            // WAL: a verifier (or `hallmark serve`) reading while a seal writes never waits.
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| store.conn.execute_batch(SCHEMA))
            .map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// Opens an existing store read-only; `Ok(None)` if there is none at `path`.
    pub fn open_existing(path: &Path) -> Result<Option<ManifestStore>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let store = Self::connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A file that is not a hallmark store fails here, with its name, not on first use.
        store
            .conn
            .query_row("SELECT count(*) FROM manifests", [], |_| Ok(()))
            .map_err(|e| store.err(e))?;
        Ok(Some(store))
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<ManifestStore, StoreError> {
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite)?;
        Ok(ManifestStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records a sealed clip (replacing an earlier record of the same manifest id).
    pub fn insert(&mut self, record: &StoredManifest) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sqlite)?;
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
                record.fingerprint.to_bytes(),
                record.sealed_at
            ],
        )
        .map_err(sqlite)?;
        for (alg, value) in &record.bindings {
            tx.execute(
                "INSERT OR IGNORE INTO bindings (alg, value, manifest_id) VALUES (?1, ?2, ?3)",
                params![alg, value, record.manifest_id],
            )
            .map_err(sqlite)?;
        }
        tx.commit().map_err(sqlite)
    }

    /// Manifest ids whose soft binding `alg` has `value` (newest first).
    pub fn find_by_binding(&self, alg: &str, value: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT b.manifest_id FROM bindings b JOIN manifests m USING (manifest_id)
                 WHERE b.alg = ?1 AND b.value = ?2 ORDER BY m.sealed_at DESC",
            )
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(params![alg, value], |row| row.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// The newest record for a watermark clip id (16 hex digits, any case).
    pub fn find_by_clip_id(&self, clip_id: &str) -> Result<Option<StoredManifest>, StoreError> {
        let id: Option<String> = self
            .conn
            .query_row(
                "SELECT manifest_id FROM manifests WHERE clip_id = ?1 ORDER BY sealed_at DESC LIMIT 1",
                params![clip_id.to_ascii_lowercase()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match id {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    pub fn get(&self, manifest_id: &str) -> Result<Option<StoredManifest>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT clip_id, format, manifest, fingerprint, sealed_at FROM manifests WHERE manifest_id = ?1",
                params![manifest_id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, Vec<u8>>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((clip_id, format, manifest, fingerprint, sealed_at)) = row else {
            return Ok(None);
        };
        let fingerprint =
            Fingerprint::from_bytes(&fingerprint).ok_or_else(|| StoreError::Invalid {
                path: self.path.clone(),
                message: format!("the fingerprint of {manifest_id} is corrupt"),
            })?;
        let mut stmt = self
            .conn
            .prepare("SELECT alg, value FROM bindings WHERE manifest_id = ?1 ORDER BY alg")
            .map_err(|e| self.err(e))?;
        let bindings = stmt
            .query_map(params![manifest_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<(String, String)>, _>>())
            .map_err(|e| self.err(e))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, clip: &str, sealed_at: &str) -> StoredManifest {
        StoredManifest {
            manifest_id: id.into(),
            clip_id: clip.into(),
            bindings: vec![
                ("org.hallmark.watermark.audio.1".into(), clip.into()),
                ("org.hallmark.watermark.video.1".into(), clip.into()),
            ],
            format: "video/mp4".into(),
            manifest: vec![1, 2, 3, id.len() as u8],
            fingerprint: Fingerprint {
                video: vec![None, Some([3; 256])],
                audio: vec![-20.0, -21.5],
            },
            sealed_at: sealed_at.into(),
        }
    }

    #[test]
    fn records_round_trip_and_resolve_by_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        assert!(ManifestStore::open_existing(&path).unwrap().is_none());
        let mut store = ManifestStore::open(&path).unwrap();
        let a = record("urn:c2pa:a", "00000000000000aa", "2026-11-25T10:00:00Z");
        let b = record("urn:c2pa:b", "00000000000000aa", "2026-11-25T11:00:00Z");
        store.insert(&a).unwrap();
        store.insert(&b).unwrap();
        store.insert(&a).unwrap(); // idempotent
        drop(store);

        let store = ManifestStore::open_existing(&path).unwrap().unwrap();
        assert_eq!(store.get("urn:c2pa:a").unwrap(), Some(a));
        assert_eq!(store.get("urn:c2pa:none").unwrap(), None);
        assert_eq!(
            store
                .find_by_binding("org.hallmark.watermark.video.1", "00000000000000aa")
                .unwrap(),
            vec!["urn:c2pa:b".to_string(), "urn:c2pa:a".to_string()]
        );
        assert!(store
            .find_by_binding("org.hallmark.watermark.video.1", "00000000000000ab")
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .find_by_clip_id("00000000000000AA")
                .unwrap()
                .unwrap()
                .manifest_id,
            "urn:c2pa:b"
        );
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
