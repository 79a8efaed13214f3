//! Any Burn module's parameters as named tensors, and back. A tensor's name is its module path
//! (`backbone.blocks.0.lin1.weight`): struct fields and list indices, without the variant names of
//! enums, the way PyTorch's `state_dict` names a module tree. Loading is strict: every parameter
//! must be in the file with its exact shape, and the file may hold nothing else; otherwise the
//! error lists every missing, unexpected and mismatched tensor, naming the file.

use crate::safetensors::{RawTensor, SafeTensors, SafetensorsError};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Tracks the module path through `enter_module` / `exit_module`.
#[derive(Default)]
struct PathTracker(Vec<String>);

impl PathTracker {
    fn enter(&mut self, name: &str, container: &str) {
        // Enum variants are a choice of type, not a level of the tree: dropping them keeps names
        // stable when a config switches backbone and matches PyTorch's naming.
        self.0.push(if container.starts_with("Enum:") {
            String::new()
        } else {
            name.to_string()
        });
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self) -> String {
        self.0
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Walks a module's float parameters with their paths (Burn calls `enter_module` for the
/// parameter's own field too, so the path at a parameter is already complete), collecting ids
/// and, when `values` is set, the values as f32.
struct Collect {
    path: PathTracker,
    values: bool,
    tensors: BTreeMap<String, RawTensor>,
    ids: BTreeMap<String, ParamId>,
}

impl Collect {
    fn walk<M: Module>(module: &M, values: bool) -> Collect {
        let mut c = Collect {
            path: PathTracker::default(),
            values,
            tensors: BTreeMap::new(),
            ids: BTreeMap::new(),
        };
        module.visit(&mut c);
        c
    }
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.path.enter(name, container);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.name();
        let previous = self.ids.insert(name.clone(), param.id);
        assert!(previous.is_none(), "two parameters named `{name}`");
        if self.values {
            let t = param.val();
            let shape = t.shape().dims::<D>().to_vec();
            let values: Vec<f32> = t
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("float parameters convert to f32");
            self.tensors.insert(name, RawTensor::f32(shape, &values));
        }
    }
}

/// The module's parameters by name, as f32.
pub fn named_tensors<M: Module>(module: &M) -> BTreeMap<String, RawTensor> {
    Collect::walk(module, true).tensors
}

/// The module's parameter ids by name (optimizer state is keyed by id). Reads no values.
pub fn param_ids<M: Module>(module: &M) -> BTreeMap<String, ParamId> {
    Collect::walk(module, false).ids
}

/// What did not fit when loading named tensors into a module.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mismatches {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    /// (name, the module's shape, the file's shape)
    pub shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Integer tensors where a float parameter is expected.
    pub dtypes: Vec<String>,
}

impl Mismatches {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shapes.is_empty()
            && self.dtypes.is_empty()
    }
}

impl fmt::Display for Mismatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, want, got) in &self.shapes {
            writeln!(f, "  shape of `{name}`: module {want:?}, file {got:?}")?;
        }
        for name in &self.dtypes {
            writeln!(f, "  `{name}` holds integers, the module wants floats")?;
        }
        for name in &self.missing {
            writeln!(f, "  missing from the file: `{name}`")?;
        }
        for name in &self.unexpected {
            writeln!(f, "  not in the module: `{name}`")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub enum WeightsError {
    File(SafetensorsError),
    Mismatch {
        path: PathBuf,
        found: Mismatches,
    },
    /// A Burn `.bpk` record (runs from before safetensors) that does not load.
    Legacy {
        path: PathBuf,
        problem: String,
    },
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::File(e) => write!(f, "{e}"),
            WeightsError::Mismatch { path, found } => write!(
                f,
                "{} does not fit the configured model:\n{found}Check that the config (model \
                 section) is the one these weights were trained with.",
                path.display()
            ),
            WeightsError::Legacy { path, problem } => write!(
                f,
                "{} does not fit the configured model: {problem}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for WeightsError {}

impl From<SafetensorsError> for WeightsError {
    fn from(e: SafetensorsError) -> Self {
        WeightsError::File(e)
    }
}

/// Replaces every parameter with the tensor of the same name. Parameters keep their ids and, on
/// an autodiff device, require gradients. Builds new values without reading the old ones, so a
/// lazily initialized module (`Config::init`) draws no random numbers.
struct Load<'a> {
    path: PathTracker,
    tensors: &'a BTreeMap<String, RawTensor>,
    found: Mismatches,
    used: BTreeSet<String>,
}

impl ModuleMapper for Load<'_> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.path.enter(name, container);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.name();
        let want = param.lazy_shape().dims::<D>().to_vec();
        let Some(raw) = self.tensors.get(&name) else {
            self.found.missing.push(name);
            return param;
        };
        self.used.insert(name.clone());
        if raw.shape != want {
            self.found.shapes.push((name, want, raw.shape.clone()));
            return param;
        }
        let Some(values) = raw.to_f32() else {
            self.found.dtypes.push(name);
            return param;
        };
        let device: Device = param.lazy_device();
        let data = TensorData::new(values, want);
        let mut tensor = Tensor::<D>::from_data(data, &device);
        // Weights are stored in f32; a device set to half precision (`--dtype`) computes in it.
        let dtype = device.settings().float_dtype;
        if tensor.dtype() != dtype.into() {
            tensor = tensor.cast(dtype);
        }
        if device.is_autodiff() {
            tensor = tensor.require_grad();
        }
        Param::initialized(param.id, tensor)
    }
}

/// `module` with its parameters taken from `tensors` (from `path`, named in errors).
pub fn load_named<M: Module>(
    module: M,
    tensors: &BTreeMap<String, RawTensor>,
    path: &Path,
) -> Result<M, WeightsError> {
    let mut load = Load {
        path: PathTracker::default(),
        tensors,
        found: Mismatches::default(),
        used: BTreeSet::new(),
    };
    let module = module.map(&mut load);
    let mut found = load.found;
    found.unexpected = tensors
        .keys()
        .filter(|k| !load.used.contains(*k))
        .cloned()
        .collect();
    if found.is_empty() {
        Ok(module)
    } else {
        Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            found,
        })
    }
}

/// Writes the module's parameters (f32, named by module path) and `metadata` to `path`.
pub fn save_module<M: Module>(
    module: &M,
    path: &Path,
    metadata: BTreeMap<String, String>,
) -> Result<(), SafetensorsError> {
    SafeTensors {
        tensors: named_tensors(module),
        metadata,
    }
    .write(path)
}

/// Loads `path` into `module` strictly (see [`load_named`]).
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M, WeightsError> {
    let file = SafeTensors::read(path)?;
    load_named(module, &file.tensors, path)
}

/// Where a run keeps the weights named `stem`: `stem.safetensors`, or for runs written before
/// ebdiff switched to safetensors, `stem.bpk` (Burn's own record, still read, never written).
pub fn weights_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.safetensors"), format!("{stem}.bpk")]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.exists())
}

/// Loads the weights `stem` of `dir` (see [`weights_file`]) into `module`.
pub fn load_weights<M: Module>(module: M, dir: &Path, stem: &str) -> Result<M, WeightsError> {
    let Some(path) = weights_file(dir, stem) else {
        let path = dir.join(format!("{stem}.safetensors"));
        return Err(WeightsError::File(SafetensorsError::Io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file (nor a .bpk)"),
        )));
    };
    if path.extension().is_some_and(|e| e == "bpk") {
        return module
            .try_load_file(&path)
            .map_err(|e| WeightsError::Legacy {
                path,
                problem: format!("{e:?}"),
            });
    }
    load_module(module, &path)
}
