//! Keys, certificates and the sealing pipeline: every clip hallmark writes leaves here
//! watermarked, encoded and signed with a C2PA manifest (Ed25519).

mod fsutil;
pub mod home;
pub mod keys;
pub mod seal;

use std::path::{Path, PathBuf};

pub use fsutil::write_atomic;
pub use home::{Config, Home, VerifierHomeReport, WatermarkKeyEntry, PRIVATE_SIGNING_KEYS};
pub use keys::{
    ensure_identity, ensure_watermark_key, keygen, load_identity, Identity, KeyFiles,
    SigningIdentity,
};
pub use seal::{
    seal, seal_file, FrameSource, Origin, Seal, SealOptions, SealProgress, StageTimings,
    AUDIO_WATERMARK_ALG, TRAINED_ALGORITHMIC_MEDIA, WATERMARK_ALG,
};

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Media(#[from] hallmark_media::MediaError),
    #[error("C2PA signing failed: {0}")]
    C2pa(String),
    #[error("keys already exist ({}); pass --force to replace them (files signed with the old keys stay valid but their root must stay trusted)", .0.display())]
    KeysExist(PathBuf),
    #[error("{0}")]
    Keys(String),
    #[error("{0}")]
    Home(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("interrupted; no output was written")]
    Interrupted,
    #[error("{0}; no output was written")]
    Store(#[from] hallmark_store::StoreError),
    #[error("time-stamp authority {url}: {reason}; no output was written (a seal asked to be time-stamped is never written without its time stamp)")]
    Timestamp { url: String, reason: String },
    #[error("{0}; no output was written")]
    Refused(String),
}

impl SignerError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SignerError {
        SignerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
