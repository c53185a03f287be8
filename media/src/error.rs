//! The crate's single error type.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;

/// Everything that can go wrong while reading or writing media.
///
/// Every variant renders a complete, human-readable message on its own
/// (`to_string()` is enough; there is no nested `source()` to walk).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file could not be opened as media at all (missing, empty, not a
    /// format FFmpeg understands, truncated beyond repair, ...).
    #[error("could not read media {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },

    /// The file is of a format hallmark does not open (a playlist, a concat list, an image
    /// sequence pattern, …: formats that may make FFmpeg read other files), or asks for a
    /// protocol other than a local file. Nothing past its first bytes was read.
    #[error("could not read media {}: format {format} is not accepted: {reason}", path.display())]
    Refused {
        path: PathBuf,
        format: String,
        reason: String,
    },

    /// The container opened but holds no audio or video stream we can use.
    #[error("could not read media {}: no audio or video stream", path.display())]
    NoStream { path: PathBuf },

    /// Demuxing or decoding failed part-way through the file.
    #[error("could not decode {}: {what}: {reason}", path.display())]
    Decode {
        path: PathBuf,
        what: String,
        reason: String,
    },

    /// Encoding or muxing failed.
    #[error("could not write {}: {what}: {reason}", path.display())]
    Encode {
        path: PathBuf,
        what: String,
        reason: String,
    },

    /// The requested output format / codec combination is not possible.
    #[error("unsupported output for {}: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },

    /// A caller-supplied value (frame, chunk, settings) is inconsistent.
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: &'static str, reason: String },

    /// Plain file-system error.
    #[error("{what} {}: {error}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        error: std::io::Error,
    },
}

impl MediaError {
    pub(crate) fn unreadable(path: &Path, reason: impl Into<String>) -> Self {
        MediaError::Unreadable {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn decode(path: &Path, what: impl Into<String>, err: ffmpeg::Error) -> Self {
        MediaError::Decode {
            path: path.to_path_buf(),
            what: what.into(),
            reason: err.to_string(),
        }
    }

    pub(crate) fn decode_msg(
        path: &Path,
        what: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        MediaError::Decode {
            path: path.to_path_buf(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn encode(path: &Path, what: impl Into<String>, err: ffmpeg::Error) -> Self {
        MediaError::Encode {
            path: path.to_path_buf(),
            what: what.into(),
            reason: err.to_string(),
        }
    }

    pub(crate) fn encode_msg(
        path: &Path,
        what: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        MediaError::Encode {
            path: path.to_path_buf(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(path: &Path, reason: impl Into<String>) -> Self {
        MediaError::Unsupported {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        MediaError::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &Path, what: &'static str, error: std::io::Error) -> Self {
        MediaError::Io {
            path: path.to_path_buf(),
            what,
            error,
        }
    }
}
