//! Optimizer state (Adam's moments and step counts) as safetensors, named by the parameter's
//! module path: `backbone.blocks.0.lin1.weight/moment_1`. Burn keys this state by random
//! parameter ids and serializes it only as burnpack; the ids change from one process to the next,
//! so a file keyed by them could be neither compared by hash nor read outside Burn. This module
//! converts both ways through Burn's own burnpack record, so it follows whatever the optimizer
//! stores without knowing its fields.
//!
//! Scalars (ranks, step counters) go to the metadata as `scalar:{path}/{field}` → JSON, the group
//! paths Burn keeps as `group:{path}`.

use burn::module::{Module, ParamId};
use burn::optim::ModuleOptimizer;
use burn_pack::{Bytes, DType, Reader, Scalar, Writer};
use ebdiff_core::module_weights::param_ids;
use ebdiff_core::safetensors::{Dtype, RawTensor, SafeTensors};
use std::collections::BTreeMap;

fn to_dtype(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I64 => Dtype::I64,
        DType::U64 => Dtype::U64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        _ => return None,
    })
}

fn from_dtype(d: Dtype) -> DType {
    match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::U64 => DType::U64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
    }
}

/// `optim`'s state for the parameters of `module`, as named tensors and metadata.
pub fn optim_to_safetensors<M: Module>(
    optim: &ModuleOptimizer,
    module: &M,
) -> Result<SafeTensors, String> {
    let paths: BTreeMap<u64, String> = param_ids(module)
        .into_iter()
        .map(|(path, id)| (id.val(), path))
        .collect();
    let rename = |key: &str| -> Result<String, String> {
        let (id, field) = key.split_once('.').unwrap_or((key, ""));
        let path = id
            .parse::<u64>()
            .ok()
            .and_then(|id| paths.get(&id))
            .ok_or_else(|| {
                format!("optimizer state `{key}` belongs to no parameter of the model")
            })?;
        Ok(if field.is_empty() {
            path.clone()
        } else {
            format!("{path}/{field}")
        })
    };
    let bytes = optim
        .into_bytes()
        .map_err(|e| format!("cannot serialize the optimizer state: {e:?}"))?;
    let reader = Reader::from_bytes(bytes).map_err(|e| format!("{e:?}"))?;
    let mut out = SafeTensors::default();
    for (key, value) in reader.scalars() {
        let json = serde_json::to_string(value).expect("scalars serialize");
        out.metadata
            .insert(format!("scalar:{}", rename(key)?), json);
    }
    for (key, value) in reader.metadata() {
        out.metadata
            .insert(format!("group:{}", rename(key)?), value.clone());
    }
    for t in reader.into_tensors().map_err(|e| format!("{e:?}"))? {
        let (name, dtype, shape, _, bytes) = t.into_parts().map_err(|e| format!("{e:?}"))?;
        let dtype = to_dtype(dtype)
            .ok_or_else(|| format!("optimizer state `{name}` has dtype {dtype:?}"))?;
        out.tensors.insert(
            rename(&name)?,
            RawTensor {
                dtype,
                shape: shape.to_vec(),
                bytes: bytes.to_vec(),
            },
        );
    }
    Ok(out)
}

/// `optim` with the state read from `file`, for the parameters of `module` (matched by path).
pub fn optim_from_safetensors<M: Module>(
    optim: ModuleOptimizer,
    module: &M,
    file: &SafeTensors,
) -> Result<ModuleOptimizer, String> {
    let ids: BTreeMap<String, ParamId> = param_ids(module);
    let rekey = |name: &str| -> Result<(u64, String), String> {
        let (path, field) = name.split_once('/').unwrap_or((name, ""));
        let id = ids
            .get(path)
            .ok_or_else(|| format!("optimizer state for `{path}`, which the model does not have"))?
            .val();
        Ok((
            id,
            if field.is_empty() {
                id.to_string()
            } else {
                format!("{id}.{field}")
            },
        ))
    };
    let mut tensors = Vec::new();
    for (name, t) in &file.tensors {
        let (id, key) = rekey(name)?;
        tensors.push(burn_pack::Tensor::new(
            key,
            from_dtype(t.dtype),
            t.shape.clone(),
            Some(id),
            Bytes::from_bytes_vec(t.bytes.clone()),
        ));
    }
    let mut writer = Writer::new(tensors);
    for (key, value) in &file.metadata {
        if let Some(name) = key.strip_prefix("scalar:") {
            let scalar: Scalar = serde_json::from_str(value)
                .map_err(|e| format!("metadata `{key}` = {value:?} is not a scalar: {e}"))?;
            writer = writer.with_scalar(&rekey(name)?.1, scalar);
        } else if let Some(name) = key.strip_prefix("group:") {
            writer = writer.with_metadata(&rekey(name)?.1, value);
        }
    }
    let bytes = writer.into_bytes().map_err(|e| format!("{e:?}"))?;
    optim
        .from_bytes(bytes)
        .map_err(|e| format!("the optimizer refused the state: {e:?}"))
}
