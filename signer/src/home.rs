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
}

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

    /// The manifest store sealing records into and `verify` recovers from.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join(hallmark_store::STORE_FILE)
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
