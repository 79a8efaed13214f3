//! numpy `.npz` archives: a zip of [`npy`](super::npy) members named `<key>.npy`.
//!
//! Written uncompressed like `np.savez`, through a temporary file renamed into place (an
//! interrupted run never leaves a truncated archive); read from `np.savez` and
//! `np.savez_compressed` output alike.

use super::npy::{NpyArray, parse_npy};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use zip::write::FileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Why an `.npz` could not be written or read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: not a readable .npz (zip) archive: {source}; write it with np.savez or \
         np.savez_compressed",
        path.display()
    )]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    /// `expected` says what the file should hold and how to write it.
    #[error("{}: no array `{key}` (found: {found:?}); {expected}", path.display())]
    MissingKey {
        path: PathBuf,
        key: String,
        found: Vec<String>,
        expected: String,
    },
    #[error("{}: array `{key}`: {problem}", path.display())]
    BadArray {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// The arrays read from one `.npz`, with the keys of all its members (read or not), so that a
/// missing or malformed array is reported with the file and what it does hold.
#[derive(Debug, Clone)]
pub struct Npz {
    pub path: PathBuf,
    pub arrays: BTreeMap<String, NpyArray>,
    /// Keys of every `.npy` member, in archive order.
    pub keys: Vec<String>,
}

impl Npz {
    /// Removes and returns array `key`; when absent, the error lists the keys found and ends
    /// with `expected` (what the file should hold and how to write it).
    pub fn take(&mut self, key: &str, expected: &str) -> Result<NpyArray, NpzError> {
        self.arrays.remove(key).ok_or_else(|| NpzError::MissingKey {
            path: self.path.clone(),
            key: key.into(),
            found: self.keys.clone(),
            expected: expected.into(),
        })
    }

    /// An error about array `key` of this file.
    pub fn bad_array(&self, key: &str, problem: String) -> NpzError {
        NpzError::BadArray {
            path: self.path.clone(),
            key: key.into(),
            problem,
        }
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> NpzError + Copy + '_ {
    move |source| NpzError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn zip_error(path: &Path) -> impl Fn(zip::result::ZipError) -> NpzError + Copy + '_ {
    move |source| NpzError::Zip {
        path: path.to_path_buf(),
        source,
    }
}

/// Every array of an `.npz`, by key (the member name without `.npy`).
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, NpyArray>, NpzError> {
    read_npz_keys(path, |_| true).map(|npz| npz.arrays)
}

/// The arrays whose keys pass `wanted` (the others, of any dtype, are not parsed).
pub fn read_npz_keys(path: &Path, wanted: impl Fn(&str) -> bool) -> Result<Npz, NpzError> {
    let (io, zip_error) = (io_error(path), zip_error(path));
    let file = File::open(path).map_err(io)?;
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(zip_error)?;
    let mut arrays = BTreeMap::new();
    let mut keys = Vec::new();
    for index in 0..archive.len() {
        let mut member = archive.by_index(index).map_err(zip_error)?;
        let Some(key) = member.name().strip_suffix(".npy").map(str::to_owned) else {
            continue;
        };
        keys.push(key.clone());
        if !wanted(&key) {
            continue;
        }
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member.read_to_end(&mut bytes).map_err(io)?;
        let array = parse_npy(&bytes).map_err(|problem| NpzError::BadArray {
            path: path.to_path_buf(),
            key: key.clone(),
            problem,
        })?;
        arrays.insert(key, array);
    }
    Ok(Npz {
        path: path.to_path_buf(),
        arrays,
        keys,
    })
}

/// Writes `(key, .npy bytes)` members (see [`super::npy::npy_f32_bytes`]) as an uncompressed
/// `.npz` next to `path`, then renames it into place.
pub fn write_npz(path: &Path, arrays: Vec<(&str, Vec<u8>)>) -> Result<(), NpzError> {
    let (io, zip_error) = (io_error(path), zip_error(path));
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);

    let mut archive = ZipWriter::new(BufWriter::new(File::create(&partial).map_err(io)?));
    let options = FileOptions::default().compression_method(CompressionMethod::Stored);
    for (key, bytes) in arrays {
        archive
            .start_file(format!("{key}.npy"), options)
            .map_err(zip_error)?;
        archive.write_all(&bytes).map_err(io)?;
    }
    let mut file = archive.finish().map_err(zip_error)?;
    file.flush().map_err(io)?;
    drop(file);
    std::fs::rename(&partial, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::super::npy::{npy_f32_bytes, npy_f64_bytes};
    use super::*;

    #[test]
    fn members_round_trip_and_missing_keys_name_what_was_found() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.npz");
        write_npz(
            &path,
            vec![
                ("x", npy_f64_bytes(&[2], &[0.5, -1.0])),
                ("y", npy_f32_bytes(&[1, 3], &[1.0, 2.0, 3.0])),
            ],
        )
        .unwrap();
        let all = read_npz(&path).unwrap();
        assert_eq!(all["x"].data, [0.5, -1.0]);
        assert_eq!(
            (all["y"].shape.clone(), all["y"].to_f32()),
            (vec![1, 3], vec![1.0, 2.0, 3.0])
        );

        let mut only_x = read_npz_keys(&path, |k| k == "x").unwrap();
        assert_eq!(only_x.keys, ["x", "y"]);
        assert!(!only_x.arrays.contains_key("y"));
        let err = only_x
            .take("z", "write z with np.savez(path, z=z)")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("a.npz") && msg.contains("`z`") && msg.contains("[\"x\", \"y\"]"),
            "{msg}"
        );
        assert!(msg.ends_with("write z with np.savez(path, z=z)"), "{msg}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.npz"]);
    }
}
