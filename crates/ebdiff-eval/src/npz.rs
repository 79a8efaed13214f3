//! FID statistics files: `.npz` archives with arrays `mu` (D) and `sigma` (D × D), the format
//! pytorch-fid, clean-fid and NVlabs/edm read and write.
//!
//! An `.npz` is a zip of `.npy` files named after the keys. `.npy` (format 1.0) is the magic
//! `\x93NUMPY`, version bytes 1 0, a little-endian u16 header length, a Python dict literal
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (D,), }` padded with spaces and a final
//! newline so that the data starts at a multiple of 64 bytes, then the raw C-order data.
//! Files are written uncompressed like `np.savez`; reading also takes `np.savez_compressed`
//! output, format 2.0/3.0 headers and float32 arrays (pytorch-fid and clean-fid store `mu` as
//! float32 because they average float32 features; `np.cov` makes `sigma` float64).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use zip::write::FileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

const MAGIC: &[u8] = b"\x93NUMPY";

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
    #[error(
        "{}: no array `{key}` (found: {found:?}); FID statistics need `mu` and `sigma`, as written \
         by np.savez(path, mu=mu, sigma=sigma)",
        path.display()
    )]
    MissingKey {
        path: PathBuf,
        key: String,
        found: Vec<String>,
    },
    #[error("{}: array `{key}`: {problem}", path.display())]
    BadArray {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// A numeric array from an `.npy`, widened to f64, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Writes `mu` (length D) and row-major `sigma` (D × D) as float64 arrays `mu` and `sigma`, the
/// layout `np.load(path)['mu']` / `['sigma']` expects. The archive is written next to `path`
/// and renamed into place, so an interrupted run never leaves a truncated statistics file.
pub fn save_stats_npz(path: &Path, mu: &[f64], sigma: &[f64]) -> Result<(), NpzError> {
    save_stats_npz_with_features(path, mu, sigma, None)
}

/// [`save_stats_npz`] plus, optionally, the row-major `[n, D]` float32 features themselves as
/// array `features` (what KID and precision/recall need; FID tools ignore extra keys).
pub fn save_stats_npz_with_features(
    path: &Path,
    mu: &[f64],
    sigma: &[f64],
    features: Option<&[f32]>,
) -> Result<(), NpzError> {
    let dim = mu.len();
    if dim == 0 || sigma.len() != dim * dim {
        return Err(NpzError::BadArray {
            path: path.to_path_buf(),
            key: "sigma".into(),
            problem: format!(
                "{} entries for a {dim}-dimensional mean; pass a non-empty mu and the full \
                 row-major {dim}×{dim} covariance",
                sigma.len()
            ),
        });
    }
    let mut arrays = vec![
        (
            "mu",
            npy_bytes(&[dim], "<f8", mu.iter().map(|v| v.to_le_bytes())),
        ),
        (
            "sigma",
            npy_bytes(&[dim, dim], "<f8", sigma.iter().map(|v| v.to_le_bytes())),
        ),
    ];
    if let Some(f) = features {
        arrays.push(("features", features_npy(path, f, dim)?));
    }
    write_npz(path, arrays)
}

/// Only the row-major `[n, dim]` float32 `features` (the shards of `cargo xtask eval`).
pub fn save_features_npz(path: &Path, features: &[f32], dim: usize) -> Result<(), NpzError> {
    write_npz(path, vec![("features", features_npy(path, features, dim)?)])
}

fn features_npy(path: &Path, f: &[f32], dim: usize) -> Result<Vec<u8>, NpzError> {
    if dim == 0 || f.len() % dim != 0 {
        return Err(NpzError::BadArray {
            path: path.to_path_buf(),
            key: "features".into(),
            problem: format!("{} values are not rows of {dim}", f.len()),
        });
    }
    let shape = [f.len() / dim, dim];
    Ok(npy_bytes(&shape, "<f4", f.iter().map(|v| v.to_le_bytes())))
}

/// Writes `.npy` arrays as an uncompressed `.npz` next to `path`, then renames it into place, so
/// an interrupted run never leaves a truncated file.
fn write_npz(path: &Path, arrays: Vec<(&str, Vec<u8>)>) -> Result<(), NpzError> {
    let io = |source| NpzError::Io {
        path: path.to_path_buf(),
        source,
    };
    let zip_error = |source| NpzError::Zip {
        path: path.to_path_buf(),
        source,
    };
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

/// Reads `mu` and `sigma` from an FID statistics `.npz`: returns (mu, row-major sigma, D).
///
/// Accepts float64 or float32 arrays; refuses missing keys, Fortran-ordered or non-numeric
/// arrays, and shapes other than `mu: (D,)`, `sigma: (D, D)`.
pub fn load_stats_npz(path: &Path) -> Result<(Vec<f64>, Vec<f64>, usize), NpzError> {
    // Only `mu` and `sigma` are parsed: other members (of any dtype) are ignored.
    let (mut arrays, found) = read_arrays(path, |key| key == "mu" || key == "sigma")?;
    let mut take = |key: &str| {
        arrays.remove(key).ok_or_else(|| NpzError::MissingKey {
            path: path.to_path_buf(),
            key: key.into(),
            found: found.clone(),
        })
    };
    let (mu, sigma) = (take("mu")?, take("sigma")?);
    let bad = |key: &str, problem: String| NpzError::BadArray {
        path: path.to_path_buf(),
        key: key.into(),
        problem,
    };
    let [dim] = mu.shape[..] else {
        return Err(bad(
            "mu",
            format!("shape {:?}, expected a vector (D,)", mu.shape),
        ));
    };
    if sigma.shape != [dim, dim] {
        return Err(bad(
            "sigma",
            format!(
                "shape {:?}, expected ({dim}, {dim}) to match mu of length {dim}",
                sigma.shape
            ),
        ));
    }
    Ok((mu.data, sigma.data, dim))
}

/// Every array of an `.npz`, by key (the member name without `.npy`).
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, NpyArray>, NpzError> {
    read_arrays(path, |_| true).map(|(arrays, _)| arrays)
}

/// The arrays whose keys pass `wanted`, and the keys of all `.npy` members.
pub(crate) fn read_arrays(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<(BTreeMap<String, NpyArray>, Vec<String>), NpzError> {
    let io = |source| NpzError::Io {
        path: path.to_path_buf(),
        source,
    };
    let zip_error = |source| NpzError::Zip {
        path: path.to_path_buf(),
        source,
    };
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
    Ok((arrays, keys))
}

/// `.npy` format 1.0 bytes of a little-endian float64 C-order array.
#[cfg(test)]
fn npy_f64_bytes(shape: &[usize], values: &[f64]) -> Vec<u8> {
    npy_bytes(shape, "<f8", values.iter().map(|v| v.to_le_bytes()))
}

/// `.npy` format 1.0 bytes of a C-order array of type `descr` from its little-endian elements.
fn npy_bytes<const N: usize>(
    shape: &[usize],
    descr: &str,
    values: impl ExactSizeIterator<Item = [u8; N]>,
) -> Vec<u8> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' ≡ 0 (mod 64)
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');

    let mut out = Vec::with_capacity(10 + header.len() + N * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v);
    }
    out
}

/// Parses an `.npy` holding little-endian float64 or float32 in C order.
fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy array (missing \\x93NUMPY magic)".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        major => return Err(format!("unsupported .npy format version {major}")),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 .npy header")?;

    let descr = header_value(header, "descr")?;
    let item_size = match descr {
        "'<f8'" => 8,
        "'<f4'" => 4,
        other => {
            return Err(format!(
                "dtype {other}, expected float64 '<f8' or float32 '<f4'; save with \
                 arr.astype(np.float64)"
            ));
        }
    };
    match header_value(header, "fortran_order")? {
        "False" => {}
        "True" => {
            return Err("stored in Fortran order; save np.ascontiguousarray(arr) instead".into());
        }
        other => return Err(format!("unreadable fortran_order {other}")),
    }
    let shape = parse_shape(header_value(header, "shape")?)?;

    let count: usize = shape.iter().product();
    let data = &bytes[data_start..];
    if data.len() != count * item_size {
        return Err(format!(
            "{} data bytes for shape {shape:?} of {item_size}-byte values (expected {}); the \
             file is truncated or corrupt",
            data.len(),
            count * item_size
        ));
    }
    let data = if item_size == 8 {
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")))
            .collect()
    } else {
        data.chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("chunk of 4"))))
            .collect()
    };
    Ok(NpyArray { shape, data })
}

/// The raw text of `'key': value` in the header dict, up to the next top-level comma or `}`.
fn header_value<'h>(header: &'h str, key: &str) -> Result<&'h str, String> {
    let tag = format!("'{key}':");
    let start = header
        .find(&tag)
        .ok_or_else(|| format!("the .npy header has no '{key}': {header:?}"))?
        + tag.len();
    let rest = header[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(|| format!("unterminated '{key}' in the .npy header: {header:?}"))?;
    Ok(rest[..end].trim())
}

/// `(3,)`, `(3, 4)` or `()` as a list of dimensions.
fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("unreadable shape {text}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("unreadable shape {text}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_numpy_v1_and_64_byte_aligned() {
        let bytes = npy_f64_bytes(&[3], &[1.0, 2.0, 3.0]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"));
        assert!(header.ends_with(" \n"));
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert_eq!(
            &bytes[10 + header_len..10 + header_len + 8],
            &1.0f64.to_le_bytes()
        );
    }

    #[test]
    fn two_dimensional_shape_round_trips() {
        let values: Vec<f64> = (0..6).map(|i| i as f64 * 0.5 - 1.0).collect();
        let bytes = npy_f64_bytes(&[2, 3], &values);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert!(
            std::str::from_utf8(&bytes[10..10 + header_len])
                .unwrap()
                .contains("'shape': (2, 3), }")
        );
        assert_eq!(
            parse_npy(&bytes).unwrap(),
            NpyArray {
                shape: vec![2, 3],
                data: values
            }
        );
    }

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("()").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_shape("(2048,)").unwrap(), vec![2048]);
        assert_eq!(parse_shape("(3, 4)").unwrap(), vec![3, 4]);
        assert!(parse_shape("(3, x)").is_err());
    }

    #[test]
    fn unsupported_dtypes_and_truncation_are_refused() {
        let mut bytes = npy_f64_bytes(&[2], &[1.0, 2.0]);
        let text_at = bytes.windows(4).position(|w| w == b"<f8'").unwrap();
        bytes[text_at..text_at + 3].copy_from_slice(b">f8");
        assert!(parse_npy(&bytes).unwrap_err().contains("dtype '>f8'"));

        let mut bytes = npy_f64_bytes(&[2], &[1.0, 2.0]);
        bytes.pop();
        assert!(parse_npy(&bytes).unwrap_err().contains("truncated"));
    }
}
