//! The safetensors file format (Hugging Face; read by PyTorch, JAX, diffusers, k-diffusion), written
//! deterministically: tensors in name order, metadata in key order, no timestamps or random ids, so
//! identical weights give identical bytes and a file's sha256 identifies its weights.
//!
//! Layout: an 8-byte little-endian header length N, N bytes of JSON (space-padded to a multiple of
//! 8), then the tensors' little-endian bytes back to back. Reading checks every offset, size and
//! dtype and names the file and the tensor when something does not fit.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Element types ebdiff writes (f32 weights, f64 statistics, i64/u64 counters, f16/bf16
/// optimizer state of a `--dtype f16|bf16` run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    I64,
    U64,
    F16,
    BF16,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "F32" => Dtype::F32,
            "F64" => Dtype::F64,
            "I64" => Dtype::I64,
            "U64" => Dtype::U64,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            _ => return None,
        })
    }
}

/// One tensor: its element type, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> Self {
        RawTensor {
            dtype: Dtype::F32,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as f32 (f64 tensors are narrowed, f16/bf16 widened); `None` for integers.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self.dtype {
            Dtype::F32 => Some(
                self.bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect(),
            ),
            Dtype::F64 => Some(
                self.bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
            ),
            Dtype::F16 => Some(
                self.bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => Some(
                self.bytes
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::I64 | Dtype::U64 => None,
        }
    }
}

/// A whole file: tensors by name and the free-form string metadata (`__metadata__`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafeTensors {
    pub tensors: BTreeMap<String, RawTensor>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug)]
pub enum SafetensorsError {
    Io(PathBuf, std::io::Error),
    /// The file is not a well-formed safetensors file.
    Malformed {
        path: PathBuf,
        problem: String,
    },
    /// One tensor's entry is inconsistent (dtype, shape, offsets).
    BadTensor {
        path: PathBuf,
        tensor: String,
        problem: String,
    },
}

impl fmt::Display for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SafetensorsError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            SafetensorsError::Malformed { path, problem } => {
                write!(
                    f,
                    "{} is not a valid safetensors file: {problem}",
                    path.display()
                )
            }
            SafetensorsError::BadTensor {
                path,
                tensor,
                problem,
            } => write!(f, "{}: tensor `{tensor}`: {problem}", path.display()),
        }
    }
}

impl std::error::Error for SafetensorsError {}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

impl SafeTensors {
    /// The file's bytes. Deterministic: the same tensors and metadata give the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // The header is written by hand so that key order is fixed (serde_json's map would be,
        // too, but the format's reference writer orders by dtype first; name order is simpler to
        // reproduce from any language).
        let mut header = String::from("{");
        if !self.metadata.is_empty() {
            header.push_str("\"__metadata__\":{");
            let fields: Vec<String> = self
                .metadata
                .iter()
                .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
                .collect();
            header.push_str(&fields.join(","));
            header.push('}');
        }
        let mut offset = 0usize;
        for (i, (name, t)) in self.tensors.iter().enumerate() {
            if i > 0 || !self.metadata.is_empty() {
                header.push(',');
            }
            let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            header.push_str(&format!(
                "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                json_string(name),
                t.dtype.name(),
                shape.join(","),
                offset,
                offset + t.bytes.len()
            ));
            offset += t.bytes.len();
        }
        header.push('}');
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let mut out = Vec::with_capacity(8 + header.len() + offset);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for t in self.tensors.values() {
            out.extend_from_slice(&t.bytes);
        }
        out
    }

    /// Writes the file through a temporary name and a rename, so a crash never leaves half a file.
    pub fn write(&self, path: &Path) -> Result<(), SafetensorsError> {
        let io = |e| SafetensorsError::Io(path.to_path_buf(), e);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, self.to_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn read(path: &Path) -> Result<SafeTensors, SafetensorsError> {
        let bytes = std::fs::read(path).map_err(|e| SafetensorsError::Io(path.to_path_buf(), e))?;
        SafeTensors::parse(&bytes, path)
    }

    /// Parses a file's bytes; `path` only names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<SafeTensors, SafetensorsError> {
        let malformed = |problem: String| SafetensorsError::Malformed {
            path: path.to_path_buf(),
            problem,
        };
        if bytes.len() < 8 {
            return Err(malformed(format!(
                "{} bytes, shorter than the header length",
                bytes.len()
            )));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        if n > bytes.len() - 8 {
            return Err(malformed(format!(
                "header of {n} bytes but the file has {} after the length (truncated?)",
                bytes.len() - 8
            )));
        }
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..8 + n])
                .map_err(|e| malformed(format!("header is not a JSON object: {e}")))?;
        let data = &bytes[8 + n..];
        let mut out = SafeTensors::default();
        let mut spans = Vec::new();
        for (name, entry) in header {
            if name == "__metadata__" {
                let map = entry
                    .as_object()
                    .ok_or_else(|| malformed("__metadata__ is not an object".into()))?;
                for (k, v) in map {
                    let v = v
                        .as_str()
                        .ok_or_else(|| malformed(format!("metadata `{k}` is not a string")))?;
                    out.metadata.insert(k.clone(), v.to_string());
                }
                continue;
            }
            let bad = |problem: String| SafetensorsError::BadTensor {
                path: path.to_path_buf(),
                tensor: name.clone(),
                problem,
            };
            let dtype_name = entry["dtype"].as_str().unwrap_or("(missing)");
            let dtype = Dtype::parse(dtype_name).ok_or_else(|| {
                bad(format!(
                    "dtype {dtype_name}; ebdiff reads F32, F64, I64 and U64"
                ))
            })?;
            let shape: Vec<usize> = entry["shape"]
                .as_array()
                .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
                .ok_or_else(|| bad("shape is not a list of sizes".into()))?;
            let offsets: Vec<usize> = entry["data_offsets"]
                .as_array()
                .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
                .filter(|o: &Vec<usize>| o.len() == 2 && o[0] <= o[1])
                .ok_or_else(|| bad("data_offsets is not [begin, end]".into()))?;
            let (begin, end) = (offsets[0], offsets[1]);
            let expected = shape.iter().product::<usize>() * dtype.size();
            if end - begin != expected {
                return Err(bad(format!(
                    "{} bytes for shape {shape:?} of {dtype_name}, which needs {expected}",
                    end - begin
                )));
            }
            if end > data.len() {
                return Err(bad(format!(
                    "ends at byte {end} of a {}-byte data section (truncated file?)",
                    data.len()
                )));
            }
            spans.push((begin, end, name.clone()));
            out.tensors.insert(
                name,
                RawTensor {
                    dtype,
                    shape,
                    bytes: data[begin..end].to_vec(),
                },
            );
        }
        spans.sort();
        for pair in spans.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(SafetensorsError::BadTensor {
                    path: path.to_path_buf(),
                    tensor: pair[1].2.clone(),
                    problem: format!("its bytes overlap those of `{}`", pair[0].2),
                });
            }
        }
        let used = spans.last().map_or(0, |s| s.1);
        if used != data.len() {
            return Err(malformed(format!(
                "{} bytes of tensor data but the tensors cover {used} (trailing or missing bytes)",
                data.len()
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SafeTensors {
        let mut st = SafeTensors::default();
        st.tensors.insert(
            "b.weight".into(),
            RawTensor::f32(vec![2, 3], &[1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]),
        );
        st.tensors
            .insert("a.bias".into(), RawTensor::f32(vec![3], &[0.5, 0.25, -1.0]));
        st.metadata.insert("step".into(), "12".into());
        st.metadata.insert("format".into(), "ebdiff".into());
        st
    }

    #[test]
    fn round_trip_is_exact_and_bytes_are_deterministic() {
        let st = sample();
        let bytes = st.to_bytes();
        assert_eq!(bytes, sample().to_bytes());
        let back = SafeTensors::parse(&bytes, Path::new("x.safetensors")).unwrap();
        assert_eq!(back, st);
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header % 8, 0, "header padded to a multiple of 8");
    }

    /// The layout written by hand equals what the format's specification prescribes, byte for
    /// byte: the header of a one-tensor file, written out here independently.
    #[test]
    fn half_precision_tensors_round_trip_and_widen_exactly() {
        // 1.0, −2.5, 65504 (f16 max) and 0.5, −3.0 in bf16, as IEEE bit patterns.
        let mut st = SafeTensors::default();
        let f16 = [0x3c00u16, 0xc100, 0x7bff];
        let bf16 = [0x3f00u16, 0xc040];
        let raw = |dtype, v: &[u16]| RawTensor {
            dtype,
            shape: vec![v.len()],
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        st.tensors.insert("m".into(), raw(Dtype::F16, &f16));
        st.tensors.insert("v".into(), raw(Dtype::BF16, &bf16));
        let bytes = st.to_bytes();
        let back = SafeTensors::parse(&bytes, Path::new("half.safetensors")).unwrap();
        assert_eq!(back, st);
        assert!(String::from_utf8_lossy(&bytes).contains("\"dtype\":\"BF16\""));
        assert_eq!(back.tensors["m"].to_f32().unwrap(), [1.0, -2.5, 65504.0]);
        assert_eq!(back.tensors["v"].to_f32().unwrap(), [0.5, -3.0]);
    }

    #[test]
    fn header_layout_follows_the_specification() {
        let mut st = SafeTensors::default();
        st.tensors
            .insert("w".into(), RawTensor::f32(vec![2], &[1.0, 2.0]));
        let bytes = st.to_bytes();
        let header = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let padded = format!("{header:<width$}", width = header.len().div_ceil(8) * 8);
        assert_eq!(&bytes[..8], &(padded.len() as u64).to_le_bytes());
        assert_eq!(&bytes[8..8 + padded.len()], padded.as_bytes());
        assert_eq!(&bytes[8 + padded.len()..], &[0, 0, 128, 63, 0, 0, 0, 64]);
    }

    #[test]
    fn damaged_files_are_refused_naming_the_tensor() {
        let bytes = sample().to_bytes();
        let p = Path::new("run/ema.safetensors");
        let truncated = SafeTensors::parse(&bytes[..bytes.len() - 4], p).unwrap_err();
        let msg = truncated.to_string();
        assert!(
            msg.contains("run/ema.safetensors") && msg.contains("b.weight"),
            "{msg}"
        );
        // A shape edited in the header no longer matches the tensor's byte count.
        let mut edited = bytes.clone();
        let at = edited.windows(5).position(|w| w == b"[2,3]").unwrap();
        edited[at + 1] = b'3';
        let msg = SafeTensors::parse(&edited, p).unwrap_err().to_string();
        assert!(msg.contains("b.weight") && msg.contains("[3, 3]"), "{msg}");
        let msg = SafeTensors::parse(&bytes[..6], p).unwrap_err().to_string();
        assert!(msg.contains("not a valid safetensors file"), "{msg}");
    }
}
