//! The hallmark home directory: keys, config and (later) the manifest store.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SignerError;

/// Where hallmark keeps its keys and configuration for one user or service.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

/// `config.toml` in the home directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// PEM files (absolute, or relative to the home dir) whose certificates the verifier trusts.
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
    /// Watermark keys of other hallmark signers whose marks `verify` looks for, besides this
    /// home's own `keys/watermark.key`: a key file's path (absolute, or relative to the home
    /// dir), or `{ path = "...", organisation = "Studio" }` to name who holds it (reports
    /// show the name beside the key's 64-bit id).
    #[serde(default)]
    pub watermark_keys: Vec<WatermarkKeyEntry>,
    /// RFC 3161 time-stamp authority every `seal` and `generate` asks for a trusted time
    /// (`--tsa URL` overrides it). A seal asked to be time-stamped fails rather than go
    /// without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_url: Option<String>,
    /// The manifest store (absolute, or relative to the home dir) instead of the home's
    /// `manifests.sqlite`: a verifier home (`hallmark verifier-home`) names the signing
    /// home's store here. A `postgres://…` URL names a PostgreSQL store that several hosts
    /// share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
}

/// What [`Home::make_verifier_home`] put in the verifier home.
#[derive(Debug, Clone, Default)]
pub struct VerifierHomeReport {
    /// Each trust anchor: where it came from, where it went.
    pub trust_anchors: Vec<(PathBuf, PathBuf)>,
    /// Each watermark key: where it came from, where it went, who holds it.
    pub watermark_keys: Vec<(PathBuf, PathBuf, Option<String>)>,
    /// The store the verifier home's config names (`None`: none).
    pub store: Option<PathBuf>,
    pub config: PathBuf,
}

/// The private signing keys a home may hold: anyone who can read one can sign manifests
/// that verify as this home's.
pub const PRIVATE_SIGNING_KEYS: [&str; 2] = ["signer.key", "root-ca.key"];

/// One entry of `watermark_keys` in `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum WatermarkKeyEntry {
    /// A key file.
    Path(PathBuf),
    /// A key file and the organisation that holds it.
    Named {
        path: PathBuf,
        organisation: Option<String>,
    },
}

impl WatermarkKeyEntry {
    pub fn path(&self) -> &Path {
        match self {
            WatermarkKeyEntry::Path(p) | WatermarkKeyEntry::Named { path: p, .. } => p,
        }
    }

    pub fn organisation(&self) -> Option<&str> {
        match self {
            WatermarkKeyEntry::Path(_) => None,
            WatermarkKeyEntry::Named { organisation, .. } => organisation.as_deref(),
        }
    }
}

impl Home {
    /// `explicit` (from `--home` / `HALLMARK_HOME`) or the platform data dir.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Home, SignerError> {
        let dir = match explicit {
            Some(dir) => dir,
            None => dirs::data_dir()
                .map(|d| d.join("hallmark"))
                .ok_or_else(|| {
                    SignerError::Home(
                        "no data directory is known for this user; pass --home DIR or set HALLMARK_HOME"
                            .into(),
                    )
                })?,
        };
        Ok(Home { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    /// The manifest store sealing records into and `verify` recovers from: the config's
    /// `store`, else `manifests.sqlite` in the home (a config that cannot be read counts as
    /// naming none; every command that reads the config reports it).
    pub fn store_path(&self) -> PathBuf {
        match self.config().ok().and_then(|c| c.store) {
            // A PostgreSQL URL (`postgres://…`) is a location, not a path under the home.
            Some(store) if hallmark_store::is_url(&store) => store,
            Some(store) => self.resolve_path(&store),
            None => self.dir.join(hallmark_store::STORE_FILE),
        }
    }

    /// The private signing keys present in this home (`keys/signer.key`, `keys/root-ca.key`).
    pub fn private_signing_keys(&self) -> Vec<PathBuf> {
        PRIVATE_SIGNING_KEYS
            .iter()
            .map(|name| self.keys_dir().join(name))
            .filter(|path| path.symlink_metadata().is_ok())
            .collect()
    }

    /// Makes a *verifier home* in `out` (which must not exist, or be an empty directory):
    /// copies of this home's trust anchors (`trust/`) and, unless `watermark_keys` is false,
    /// of every watermark key verify looks for (`watermark-keys/`, each with its
    /// organisation), and a `config.toml` naming them and the store (`store`, or this home's).
    /// No private signing key goes there. The watermark keys are secret (whoever holds one
    /// can forge that mark): the copies are mode 0600, and the directory 0700.
    pub fn make_verifier_home(
        &self,
        out: &Path,
        store: Option<PathBuf>,
        watermark_keys: bool,
    ) -> Result<VerifierHomeReport, SignerError> {
        let config = self.config()?;
        // Read everything first: a broken signing home leaves no half-made verifier home.
        let mut anchors = Vec::new();
        for p in &config.trust_anchors {
            let from = self.resolve_path(p);
            let pem = fs::read(&from).map_err(|e| SignerError::io(&from, e))?;
            anchors.push((from, pem));
        }
        let mut keys = Vec::new();
        if watermark_keys {
            let own = self.keys_dir().join(crate::keys::WATERMARK_KEY);
            let mut sources: Vec<(PathBuf, Option<String>)> = Vec::new();
            if own.exists() {
                sources.push((own, crate::keys::own_organisation(self)));
            }
            for entry in &config.watermark_keys {
                sources.push((
                    self.resolve_path(entry.path()),
                    entry.organisation().map(str::to_owned),
                ));
            }
            for (from, organisation) in sources {
                crate::keys::read_watermark_key(&from)?; // a key, not any file
                let bytes = fs::read(&from).map_err(|e| SignerError::io(&from, e))?;
                keys.push((from, bytes, organisation));
            }
        }
        let store = store.unwrap_or_else(|| self.store_path());
        let store = if hallmark_store::is_url(&store) {
            store
        } else {
            std::path::absolute(&store).map_err(|e| SignerError::io(&store, e))?
        };

        match fs::read_dir(out) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(SignerError::Home(format!(
                        "{} already exists and is not empty; nothing was written (choose a new directory)",
                        out.display()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(out).map_err(|e| SignerError::io(out, e))?
            }
            Err(e) => return Err(SignerError::io(out, e)),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(out, fs::Permissions::from_mode(0o700))
                .map_err(|e| SignerError::io(out, e))?;
        }
        let verifier = Home {
            dir: out.to_path_buf(),
        };
        let mut report = VerifierHomeReport::default();
        let mut new_config = Config {
            store: Some(store.clone()),
            ..Config::default()
        };
        let unique = |dir: &str, from: &Path, i: usize, ext: &str| {
            let stem = from
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| {
                    s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                })
                .unwrap_or("file");
            PathBuf::from(dir).join(format!("{i:02}-{stem}.{ext}"))
        };
        if !anchors.is_empty() {
            let dir = out.join("trust");
            fs::create_dir_all(&dir).map_err(|e| SignerError::io(&dir, e))?;
        }
        for (i, (from, pem)) in anchors.into_iter().enumerate() {
            let rel = unique("trust", &from, i + 1, "pem");
            crate::fsutil::write_atomic(&out.join(&rel), &pem, 0o644)?;
            report.trust_anchors.push((from, out.join(&rel)));
            new_config.trust_anchors.push(rel);
        }
        if !keys.is_empty() {
            let dir = out.join("watermark-keys");
            fs::create_dir_all(&dir).map_err(|e| SignerError::io(&dir, e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| SignerError::io(&dir, e))?;
            }
        }
        for (i, (from, bytes, organisation)) in keys.into_iter().enumerate() {
            let rel = unique("watermark-keys", &from, i + 1, "key");
            crate::fsutil::write_atomic(&out.join(&rel), &bytes, 0o600)?;
            report
                .watermark_keys
                .push((from, out.join(&rel), organisation.clone()));
            new_config.watermark_keys.push(WatermarkKeyEntry::Named {
                path: rel,
                organisation,
            });
        }
        verifier.save_config(&new_config)?;
        report.store = Some(store);
        report.config = verifier.config_path();
        Ok(report)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// Creates the home directory (and `keys/`, mode 0700) if missing.
    pub fn ensure(&self) -> Result<(), SignerError> {
        let keys = self.keys_dir();
        fs::create_dir_all(&keys).map_err(|e| SignerError::io(&keys, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&keys, fs::Permissions::from_mode(0o700))
                .map_err(|e| SignerError::io(&keys, e))?;
        }
        Ok(())
    }

    /// The config, or the default one when the file does not exist yet.
    pub fn config(&self) -> Result<Config, SignerError> {
        let path = self.config_path();
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| SignerError::Home(format!("{}: invalid config: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(SignerError::io(&path, e)),
        }
    }

    pub fn save_config(&self, config: &Config) -> Result<(), SignerError> {
        let path = self.config_path();
        let text = toml::to_string_pretty(config)
            .map_err(|e| SignerError::Home(format!("cannot write config: {e}")))?;
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
    }

    fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// Every watermark key `verify` should look for: this home's own (if it has one; verifying
    /// never creates keys) and those listed in the config.
    pub fn watermark_keys(&self) -> Result<Vec<hallmark_watermark::WatermarkKey>, SignerError> {
        Ok(self
            .named_watermark_keys()?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// [`Home::watermark_keys`], each with the organisation that holds it: this home's own
    /// key is held by the organisation of its signing certificate; a configured key by the
    /// `organisation` its entry names.
    pub fn named_watermark_keys(
        &self,
    ) -> Result<Vec<(hallmark_watermark::WatermarkKey, Option<String>)>, SignerError> {
        let own = self.keys_dir().join(crate::keys::WATERMARK_KEY);
        let mut out = Vec::new();
        if own.exists() {
            out.push((
                crate::keys::read_watermark_key(&own)?,
                crate::keys::own_organisation(self),
            ));
        }
        for entry in self.config()?.watermark_keys {
            let key = crate::keys::read_watermark_key(&self.resolve_path(entry.path()))?;
            out.push((key, entry.organisation().map(str::to_owned)));
        }
        Ok(out)
    }

    /// Concatenated PEM text of every trust anchor in the config. A listed file that is
    /// missing is an error: silently trusting less than configured hides mistakes.
    pub fn trust_anchor_pems(&self) -> Result<Vec<String>, SignerError> {
        let config = self.config()?;
        config
            .trust_anchors
            .iter()
            .map(|p| {
                let path = if p.is_absolute() {
                    p.clone()
                } else {
                    self.dir.join(p)
                };
                fs::read_to_string(&path).map_err(|e| SignerError::io(&path, e))
            })
            .collect()
    }
}
