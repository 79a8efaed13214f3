//! Strict TOML loading: unknown keys and bad values are errors that name the key path.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{origin}: TOML syntax error: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: at `{key}`: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// A semantic error found after parsing (e.g. a value out of range).
    pub fn invalid(
        origin: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            origin: origin.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Parses TOML text into `T`. `origin` names the source (a path) in error messages.
pub fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.message().to_string();
        if key == "." || key.is_empty() {
            ConfigError::Syntax {
                origin: origin.to_string(),
                message: inner.to_string(),
            }
        } else {
            ConfigError::Invalid {
                origin: origin.to_string(),
                key,
                message,
            }
        }
    })
}

/// Reads and parses a TOML config file.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Io {
        path: path.to_path_buf(),
        reason,
    })?;
    parse_toml(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        kind: Kind,
    }
    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Linear,
        Cosine,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        inner: Inner,
    }

    #[test]
    fn unknown_key_names_the_path() {
        let err =
            parse_toml::<Outer>("[inner]\nkind = \"linear\"\nwidth = 3\n", "t.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("inner"), "{msg}");
        assert!(msg.contains("width"), "{msg}");
        assert!(msg.contains("kind"), "expected fields listed: {msg}");
    }

    #[test]
    fn bad_enum_value_lists_allowed_values() {
        let err = parse_toml::<Outer>("[inner]\nkind = \"quadratic\"\n", "t.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("inner.kind"), "{msg}");
        assert!(msg.contains("linear") && msg.contains("cosine"), "{msg}");
    }
}
