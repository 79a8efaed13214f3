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
    /// WebGPU (Vulkan/Metal/DX12) GPUs, shaders compiled to WGSL. Needs the `wgpu` cargo feature.
    Wgpu,
    /// GPUs through Vulkan with shaders compiled to SPIR-V, which has the tensor-core
    /// (cooperative-matrix) kernels WGSL lacks. Needs the `vulkan` cargo feature.
    Vulkan,
    /// NVIDIA CUDA. Needs the `cuda` cargo feature (its build downloads an LLVM bundle).
    Cuda,
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Flex,
        BackendKind::Wgpu,
        BackendKind::Vulkan,
        BackendKind::Cuda,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Vulkan => "vulkan",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this binary was compiled with support for the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => true,
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Vulkan => cfg!(feature = "vulkan"),
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
            #[cfg(feature = "vulkan")]
            BackendKind::Vulkan => Ok(Device::vulkan(match index {
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

impl BackendKind {
    /// [`Self::device_at`] with its floats stored and computed at `precision`, or an error when
    /// the device cannot. Burn fixes a device's dtypes at its first tensor; a second call with
    /// the same precision returns the configured device. Anything but f32 is meant for GPU
    /// tensor cores: flex runs f16/bf16 (half the memory) but 2–3× slower than f32.
    pub fn device_with(self, index: Option<usize>, precision: Precision) -> Result<Device, String> {
        let device = self.configured(index, precision)?;
        self.probe_once(index, &device)?;
        Ok(device)
    }

    /// [`Self::probe`] the first time a process asks for this device. The probe swaps the
    /// process-wide panic hook, so probes are serialized: two threads swapping it at once could
    /// leave the probe's silent hook installed for good.
    fn probe_once(self, index: Option<usize>, device: &Device) -> Result<(), String> {
        static STARTED: std::sync::Mutex<Vec<(BackendKind, Option<usize>)>> =
            std::sync::Mutex::new(Vec::new());
        let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        if !started.contains(&(self, index)) {
            self.probe(device)?;
            started.push((self, index));
        }
        Ok(())
    }

    fn configured(self, index: Option<usize>, precision: Precision) -> Result<Device, String> {
        let mut device = self.device_at(index)?;
        if precision == Precision::F32 {
            return Ok(device);
        }
        let dtype = precision.float_dtype();
        if device.settings().float_dtype == dtype {
            return Ok(device); // configured by an earlier call of this process
        }
        if !device.supports_dtype(dtype) {
            // A device that cannot start supports nothing: say that instead.
            self.probe_once(index, &device)?;
            return Err(format!(
                "the {self} device does not support {precision} (Burn's `supports_dtype`); try \
                 --dtype flex32 (f32 storage, f16 matmul inputs) or f32"
            ));
        }
        device
            .configure(burn::tensor::DeviceConfig::default().float_dtype(dtype))
            .map_err(|e| format!("cannot set the {self} device's floats to {precision}: {e:?}"))?;
        Ok(device)
    }

    /// A GPU device that cannot start (no adapter, no driver, no Vulkan loader) makes Burn panic
    /// in its device thread at the first tensor, and the caller then dies on a closed channel.
    /// This runs that first tensor here and turns the failure into an error that says why.
    fn probe(self, device: &Device) -> Result<(), String> {
        if self == BackendKind::Flex {
            return Ok(());
        }
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = messages.clone();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(text);
        }));
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            burn::tensor::Tensor::<1>::zeros([1], device).into_data()
        }));
        std::panic::set_hook(hook);
        if first.is_ok() {
            return Ok(());
        }
        let messages = messages.lock().unwrap_or_else(|e| e.into_inner());
        let why = messages
            .iter()
            .find(|m| !m.contains("RecvError"))
            .or(messages.first())
            .map(String::as_str)
            .unwrap_or("the device thread panicked");
        Err(format!(
            "the {self} device did not start: {why}. Check that the machine has a GPU and its \
             driver (for vulkan/wgpu also the Vulkan loader libvulkan.so.1 and the vendor's ICD; \
             `vulkaninfo --summary` lists adapters); `--backend flex` runs on the CPU"
        ))
    }
}

/// Makes glibc keep freed tensor buffers for reuse instead of returning them to the kernel.
/// By default glibc serves every allocation above 128 KiB–32 MiB (an adaptive threshold) with
/// a fresh `mmap` and unmaps it on free, so each CPU tensor op of that size page-faults and
/// zeroes its output's pages again: 14 % of a 2-D MLP's E + ∇ₓE at batch 1000 went to page
/// faults. With a 32 MiB threshold (and heap trimming above 256 MiB of free space) the same
/// evaluation ran 1.34× faster (21.4 → 15.9 ms). Call it once at start-up; the binary does.
/// A no-op off Linux/glibc.
pub fn tune_cpu_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // allocates (start of main) and takes effect for later allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// The float type a device stores and computes in (`--dtype`). The DSM loss and the EMA
/// weights stay in f32 (or f64) whatever this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// For gradient checks (tight finite differences) and reference runs; flex.
    F64,
    /// f32 storage, f16 inputs to matrix multiplies and convolutions (tensor cores on Vulkan,
    /// where f32 has no TF32 path).
    Flex32,
    F16,
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
            Precision::Flex32 => "flex32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn float_dtype(self) -> burn::tensor::FloatDType {
        use burn::tensor::FloatDType;
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F64 => FloatDType::F64,
            Precision::Flex32 => FloatDType::Flex32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Precision::F32),
            "f64" | "float64" => Ok(Precision::F64),
            "flex32" => Ok(Precision::Flex32),
            "f16" | "float16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(format!(
                "unknown dtype `{s}`; allowed: f32, f64, flex32, f16, bf16"
            )),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "flex" | "cpu" => Ok(BackendKind::Flex),
            "wgpu" => Ok(BackendKind::Wgpu),
            "vulkan" => Ok(BackendKind::Vulkan),
            "cuda" => Ok(BackendKind::Cuda),
            _ => Err(format!(
                "unknown backend `{s}`; allowed: flex, wgpu, vulkan, cuda"
            )),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
