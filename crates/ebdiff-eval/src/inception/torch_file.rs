//! Reads the float32 tensors (and small integer attributes) of a PyTorch file without PyTorch:
//! - TorchScript archives (`torch.jit.save`: a zip with `<root>/data.pkl` and `<root>/data/<key>`),
//! - `torch.save` zips (PyTorch ≥ 1.6; same layout),
//! - legacy `torch.save` files (before 1.6: magic, protocol and system-info pickles, the object
//!   pickle, a pickled list of storage keys, then each storage as an 8-byte count and raw bytes).
//!
//! The pickle is read by [`ebdiff_data::io::pickle::parse_recording`], which executes nothing; a
//! tensor is a recorded `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` call
//! whose storage is a persistent id `('storage', torch.FloatStorage, key, location, numel)`.

use ebdiff_data::io::pickle::{self, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

/// One float32 tensor, C-ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Everything found in a file, by dotted path (`net.layers.conv.weight` for a TorchScript module
/// attribute, the state-dict key for a `torch.save`d dict).
#[derive(Debug, Default)]
pub struct TorchState {
    pub tensors: BTreeMap<String, TorchTensor>,
    /// Integer attributes of TorchScript modules (`stride`, `padding`), as lists.
    pub ints: BTreeMap<String, Vec<i64>>,
}

/// The pickle that opens a legacy `torch.save` file: protocol 2, LONG1 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";

/// Reads `path`. Errors are plain sentences naming what is wrong.
pub fn read_torch_file(path: &Path) -> Result<TorchState, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.starts_with(b"PK") {
        read_zip(&bytes)
    } else if bytes.first() == Some(&0x80) {
        read_legacy(&bytes)
    } else {
        Err(
            "neither a zip archive (TorchScript / torch.save) nor a legacy torch.save pickle"
                .into(),
        )
    }
}

fn read_zip(bytes: &[u8]) -> Result<TorchState, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive: {e}"))?;
    // `<root>/data.pkl` at the top of the archive (TorchScript also has `<root>/code/…` pickles).
    let pkl_name = zip
        .file_names()
        .find(|n| n.matches('/').count() == 1 && n.ends_with("/data.pkl"))
        .map(str::to_string)
        .ok_or("the zip archive has no <root>/data.pkl: not a PyTorch file")?;
    let root = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut read_entry = |name: &str| -> Result<Vec<u8>, String> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| format!("archive entry {name}: {e}"))?;
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out)
            .map_err(|e| format!("archive entry {name} is damaged: {e}"))?;
        Ok(out)
    };
    let pkl = read_entry(&pkl_name)?;
    let value = pickle::parse_recording(&pkl).map_err(|e| format!("{pkl_name}: {e}"))?;
    let mut storages = HashMap::new();
    collect(&value, "", &mut |key| {
        if !storages.contains_key(key) {
            let data = read_entry(&format!("{root}data/{key}"))?;
            storages.insert(key.to_string(), data);
        }
        Ok(())
    })?;
    build_state(&value, &storages)
}

fn read_legacy(bytes: &[u8]) -> Result<TorchState, String> {
    // The magic number is an 80-bit int (LONG1 of 10 bytes): compared as bytes.
    if !bytes.starts_with(LEGACY_MAGIC) {
        return Err("a pickle, but not a torch.save file (no torch magic number)".into());
    }
    let mut pos = LEGACY_MAGIC.len();
    let mut next = |what: &str| -> Result<Value, String> {
        let (v, n) = pickle::parse_recording_prefix(&bytes[pos..])
            .map_err(|e| format!("legacy torch.save file, {what}: {e}"))?;
        pos += n;
        Ok(v)
    };
    next("protocol version")?;
    next("system info")?;
    let value = next("object")?;
    let Value::List(keys) = next("storage keys")? else {
        return Err("legacy torch.save file: the storage key list is missing".into());
    };
    let mut storages = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err("legacy torch.save file: a storage key is not a string".into());
        };
        let count_bytes: [u8; 8] = bytes
            .get(pos..pos + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("file ends before storage {key}"))?;
        let count = u64::from_le_bytes(count_bytes) as usize;
        pos += 8;
        let len = count * 4;
        let data = bytes
            .get(pos..pos + len)
            .ok_or_else(|| format!("file ends inside storage {key} ({count} floats)"))?;
        pos += len;
        storages.insert(key, data.to_vec());
    }
    build_state(&value, &storages)
}

/// Calls `need(key)` for the storage of every tensor below `v`.
fn collect(
    v: &Value,
    path: &str,
    need: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(args) = tensor_call(v) {
        return need(
            storage_ref(&args[0])
                .map_err(|e| format!("{path}: {e}"))?
                .key,
        );
    }
    for child in children(v) {
        collect(child, path, need)?;
    }
    Ok(())
}

fn children(v: &Value) -> Vec<&Value> {
    match v {
        Value::Dict(items) => items.iter().map(|(_, v)| v).collect(),
        Value::List(items) | Value::Tuple(items) => items.iter().collect(),
        Value::Call { args, state, .. } => args.iter().chain(state.as_deref()).collect(),
        _ => Vec::new(),
    }
}

/// The arguments of a tensor rebuild call (unwrapping `_rebuild_parameter`).
fn tensor_call(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Call {
            module, name, args, ..
        } if module == "torch._utils" && name == "_rebuild_tensor_v2" && args.len() >= 4 => {
            Some(args)
        }
        Value::Call {
            module, name, args, ..
        } if module == "torch._utils" && name == "_rebuild_parameter" => {
            args.first().and_then(tensor_call)
        }
        _ => None,
    }
}

struct StorageRef<'a> {
    key: &'a str,
    numel: usize,
}

fn storage_ref(v: &Value) -> Result<StorageRef<'_>, String> {
    let Value::Persistent(pid) = v else {
        return Err("tensor without a storage reference".into());
    };
    let Value::Tuple(items) = pid.as_ref() else {
        return Err("malformed storage reference".into());
    };
    match items.as_slice() {
        [
            Value::Str(tag),
            Value::Global { name, .. },
            Value::Str(key),
            _,
            Value::Int(n),
            ..,
        ] if tag == "storage" => {
            if name != "FloatStorage" {
                return Err(format!("storage of type {name}; only float32 is supported"));
            }
            Ok(StorageRef {
                key,
                numel: *n as usize,
            })
        }
        _ => Err("malformed storage reference".into()),
    }
}

fn ints(v: &Value) -> Option<Vec<i64>> {
    match v {
        // TorchScript writes typed lists as `torch.jit._pickle.build_intlist([...])`.
        Value::Call {
            module, name, args, ..
        } if module == "torch.jit._pickle" && name == "build_intlist" => {
            args.first().and_then(ints)
        }
        Value::Int(i) => Some(vec![*i]),
        Value::List(items) | Value::Tuple(items) if !items.is_empty() => items
            .iter()
            .map(|x| match x {
                Value::Int(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn build_state(value: &Value, storages: &HashMap<String, Vec<u8>>) -> Result<TorchState, String> {
    let mut state = TorchState::default();
    walk(value, "", storages, &mut state)?;
    if state.tensors.is_empty() {
        return Err("no tensors found".into());
    }
    Ok(state)
}

fn walk(
    v: &Value,
    path: &str,
    storages: &HashMap<String, Vec<u8>>,
    out: &mut TorchState,
) -> Result<(), String> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if let Some(args) = tensor_call(v) {
        let t = rebuild(args, storages).map_err(|e| format!("tensor {path}: {e}"))?;
        out.tensors.insert(path.to_string(), t);
        return Ok(());
    }
    let entries = match v {
        Value::Dict(items) => items,
        // A TorchScript module object: its attributes are the BUILD state.
        Value::Call {
            state: Some(state), ..
        } => match state.as_ref() {
            Value::Dict(items) => items,
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    for (k, child) in entries {
        let Value::Str(k) = k else { continue };
        if let Some(list) = ints(child) {
            out.ints.insert(join(k), list);
        } else {
            walk(child, &join(k), storages, out)?;
        }
    }
    Ok(())
}

/// A size or stride tuple (empty for a scalar).
fn dims(v: &Value) -> Option<Vec<usize>> {
    let list = ints(v).or_else(|| matches!(v, Value::Tuple(t) if t.is_empty()).then(Vec::new))?;
    Some(list.into_iter().map(|d| d as usize).collect())
}

/// Materialises `storage[offset + Σ i_d·stride_d]` over the index grid of `size`.
fn rebuild(args: &[Value], storages: &HashMap<String, Vec<u8>>) -> Result<TorchTensor, String> {
    let storage = storage_ref(&args[0])?;
    let bytes = storages
        .get(storage.key)
        .ok_or_else(|| format!("storage {} is missing from the file", storage.key))?;
    if bytes.len() != storage.numel * 4 {
        return Err(format!(
            "storage {} has {} bytes, expected {} floats ({} bytes): the file is damaged",
            storage.key,
            bytes.len(),
            storage.numel,
            storage.numel * 4
        ));
    }
    let Value::Int(offset) = args[1] else {
        return Err("storage offset is not an integer".into());
    };
    let shape = dims(&args[2]).ok_or("size is not a tuple of integers")?;
    let stride = dims(&args[3]).ok_or("stride is not a tuple of integers")?;
    if stride.len() != shape.len() {
        return Err("size and stride differ in length".into());
    }
    let numel: usize = shape.iter().product();
    let mut data = Vec::with_capacity(numel);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let at = offset as usize + index.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
        let b = bytes
            .get(at * 4..at * 4 + 4)
            .ok_or_else(|| format!("element {at} lies outside storage {}", storage.key))?;
        data.push(f32::from_le_bytes(b.try_into().expect("4 bytes")));
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(TorchTensor { shape, data })
}
