//! numpy `.npy` arrays: the one writer and reader of the format.
//!
//! `.npy` (format 1.0) is the magic `\x93NUMPY`, version bytes 1 0, a little-endian u16 header
//! length, a Python dict literal `{'descr': '<f8', 'fortran_order': False, 'shape': (D,), }`
//! padded with spaces and a final newline so that the data starts at a multiple of 64 bytes, then
//! the raw C-order data. Written: little-endian float32 (`<f4`), float64 (`<f8`) and bytes (`|u1`,
//! image pixels), format 1.0, byte for byte what `np.save` writes. Read: the same three types in
//! C order, format 1.0, 2.0 or 3.0 headers.

use std::path::{Path, PathBuf};

/// The first six bytes of every `.npy`.
pub const MAGIC: &[u8] = b"\x93NUMPY";

/// Why an `.npy` file could not be written or read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    Bad { path: PathBuf, problem: String },
}

/// A numeric array from an `.npy`, widened to f64, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl NpyArray {
    /// The values as f32 (exact for arrays stored as float32).
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// `.npy` bytes of a little-endian float32 C-order array of `shape`.
///
/// # Panics
/// If `values` does not hold exactly the product of `shape` elements (a caller bug; files
/// written from user input go through [`write_npy_f32`], which checks).
pub fn npy_f32_bytes(shape: &[usize], values: &[f32]) -> Vec<u8> {
    check_len(shape, values.len()).expect("values match the shape");
    npy_bytes(shape, "<f4", values.iter().map(|v| v.to_le_bytes()))
}

/// `.npy` bytes of a little-endian float64 C-order array of `shape`.
///
/// # Panics
/// If `values` does not hold exactly the product of `shape` elements.
pub fn npy_f64_bytes(shape: &[usize], values: &[f64]) -> Vec<u8> {
    check_len(shape, values.len()).expect("values match the shape");
    npy_bytes(shape, "<f8", values.iter().map(|v| v.to_le_bytes()))
}

/// `.npy` bytes of a uint8 C-order array of `shape` (e.g. image pixels).
///
/// # Panics
/// If `values` does not hold exactly the product of `shape` elements.
pub fn npy_u8_bytes(shape: &[usize], values: &[u8]) -> Vec<u8> {
    check_len(shape, values.len()).expect("values match the shape");
    npy_bytes(shape, "|u1", values.iter().map(|v| [*v]))
}

/// Writes `data` as a uint8 `.npy` of shape `shape`.
pub fn write_npy_u8(path: &Path, data: &[u8], shape: &[usize]) -> Result<(), NpyError> {
    check_len(shape, data.len()).map_err(|problem| NpyError::Bad {
        path: path.to_path_buf(),
        problem,
    })?;
    std::fs::write(path, npy_u8_bytes(shape, data)).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn check_len(shape: &[usize], len: usize) -> Result<(), String> {
    let expected: usize = shape.iter().product();
    if expected == len {
        Ok(())
    } else {
        Err(format!(
            "{len} values do not fill shape {shape:?} ({expected} values); pass the array's \
             full shape"
        ))
    }
}

/// Writes `data` as a little-endian float32 `.npy` of shape `shape` (what `np.load` reads back).
pub fn write_npy_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<(), NpyError> {
    check_len(shape, data.len()).map_err(|problem| NpyError::Bad {
        path: path.to_path_buf(),
        problem,
    })?;
    std::fs::write(path, npy_f32_bytes(shape, data)).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a float32, float64 or uint8 `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(&bytes).map_err(|problem| NpyError::Bad {
        path: path.to_path_buf(),
        problem,
    })
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

/// Parses an `.npy` holding little-endian float64 or float32 in C order. The message says what
/// is wrong and how to save the array instead.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
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
        "'|u1'" => 1,
        other => {
            return Err(format!(
                "dtype {other}, expected float64 '<f8', float32 '<f4' or uint8 '|u1'; save with \
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
    let data = match item_size {
        8 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")))
            .collect(),
        4 => data
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("chunk of 4"))))
            .collect(),
        _ => data.iter().map(|&b| f64::from(b)).collect(),
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
    fn float32_file_is_what_np_save_writes() {
        // np.save(f, np.array([[1, 2, 3], [4, 5, 6]], dtype='<f4')): 128 bytes, the header padded
        // to 118 bytes (10 + 118 = 128) and the six values.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.npy");
        let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        write_npy_f32(&path, &values, &[2, 3]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut expected = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        expected.extend(format!("{dict:<117}\n").bytes());
        for v in values {
            expected.extend(v.to_le_bytes());
        }
        assert_eq!(bytes, expected);
        let back = read_npy(&path).unwrap();
        assert_eq!(back.shape, [2, 3]);
        assert_eq!(back.to_f32(), values);
    }

    #[test]
    fn writing_refuses_values_that_do_not_fill_the_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("short.npy");
        let err = write_npy_f32(&path, &[1.0, 2.0, 3.0], &[2, 2]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("short.npy") && msg.contains("3 values") && msg.contains("[2, 2]"),
            "{msg}"
        );
        assert!(!path.exists());
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

    #[test]
    fn uint8_arrays_round_trip() {
        let bytes = npy_u8_bytes(&[2, 3], &[0, 1, 127, 128, 254, 255]);
        assert_eq!(
            bytes.len() % 64,
            6,
            "header aligned to 64, then 6 data bytes"
        );
        assert!(
            std::str::from_utf8(&bytes[10..bytes.len() - 6])
                .unwrap()
                .contains("'|u1'")
        );
        let a = parse_npy(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![0.0, 1.0, 127.0, 128.0, 254.0, 255.0]);
    }
}
