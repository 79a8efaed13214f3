//! Run-time backend choice. Every crate takes a `burn::tensor::Device`; this module is the one
//! place that turns `--backend flex|wgpu|cuda` into a device, so all backends share one code path.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// The compute backends ebdiff can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (rayon + SIMD). Always compiled in.
    #[default]
    Flex,
    /// WebGPU (Vulkan/Metal/DX12) GPUs. Needs the `wgpu` cargo feature.
    Wgpu,
    /// NVIDIA CUDA. Needs the `cuda` cargo feature (its build downloads an LLVM bundle).
    Cuda,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Wgpu, BackendKind::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this binary was compiled with support for the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => true,
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The (non-autodiff) device for this backend, or an error that says how to enable it.
    pub fn device(self) -> Result<Device, String> {
        self.device_at(None)
    }

    /// The device with this index among the machine's GPUs (one rank per GPU); `None` is the
    /// default device. The CPU backend has one device and ignores the index.
    pub fn device_at(self, index: Option<usize>) -> Result<Device, String> {
        let _ = index; // unused when no GPU backend is compiled in
        match self {
            BackendKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(Device::wgpu(match index {
                Some(i) => burn::tensor::DeviceKind::DiscreteGpu(i),
                None => burn::tensor::DeviceKind::DefaultDevice,
            })),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(Device::cuda(index.unwrap_or(0))),
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "backend `{}` is not compiled into this binary; rebuild with `--features {}` \
                 (e.g. `cargo run --release -p xtask --features {} -- ...`)",
                other.name(),
                other.name(),
                other.name()
            )),
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "flex" | "cpu" => Ok(BackendKind::Flex),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            _ => Err(format!("unknown backend `{s}`; allowed: flex, wgpu, cuda")),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
