//! The one error type of the image datasets. Every variant names the file, URL or config key it is
//! about, and the ones a user can act on say what to do, because these errors end a training run
//! before it starts and the message is all the user sees.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder the dataset needs does not exist.
    #[error("{} not found: {fix}", .path.display())]
    Missing { path: PathBuf, fix: String },

    /// A file exists but its content is not what the format requires.
    #[error("{}: expected {expected}, found {found}", .path.display())]
    BadFormat {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// A downloaded or cached file does not have the published checksum.
    #[error(
        "{}: {algorithm} checksum mismatch: expected {expected}, got {got} \
         (the partial download was deleted; run the fetch again, or download the file by hand \
         and check its {algorithm})",
        .path.display()
    )]
    Checksum {
        path: PathBuf,
        algorithm: &'static str,
        expected: String,
        got: String,
    },

    /// The server closed the connection before sending the whole file.
    #[error(
        "{}: truncated download: got {got} bytes, expected {expected} \
         (the partial file was deleted; run the fetch again)",
        .path.display()
    )]
    Truncated {
        path: PathBuf,
        got: u64,
        expected: u64,
    },

    /// The HTTP request failed (no connection, timeout, HTTP error status).
    #[error("downloading {url} failed: {reason}; download it by hand and put it at {}", .dest.display())]
    Network {
        url: String,
        dest: PathBuf,
        reason: String,
    },

    /// A dataset cannot be brought to the shape the model needs, or a config value is invalid.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },

    /// Reading or writing a file failed for a reason other than its absence.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn bad_format(
        path: &Path,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        DataError::BadFormat {
            path: path.to_path_buf(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        DataError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Reads a whole file; a missing file becomes [`DataError::Missing`] with `fix`.
pub(crate) fn read_file(path: &Path, fix: &str) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path: path.to_path_buf(),
                fix: fix.to_string(),
            }
        } else {
            DataError::io(path, e)
        }
    })
}
