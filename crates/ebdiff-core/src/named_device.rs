//! A device together with the backend and float type it was opened with: what benchmark and
//! gradient-check reports print beside their numbers, since a [`Device`] does not name them.

use crate::backend::{BackendKind, Precision};
use burn::tensor::Device;

/// A device and the names of what it runs on.
#[derive(Debug, Clone)]
pub struct NamedDevice {
    pub backend: BackendKind,
    /// The float type the device stores and computes in.
    pub precision: Precision,
    pub device: Device,
}

impl NamedDevice {
    /// [`BackendKind::device_with`]: GPU `index` (`None`: the default device) at `precision`.
    pub fn open(
        backend: BackendKind,
        index: Option<usize>,
        precision: Precision,
    ) -> Result<Self, String> {
        Ok(NamedDevice {
            backend,
            precision,
            device: backend.device_with(index, precision)?,
        })
    }

    /// The CPU backend in f32: always available.
    pub fn cpu() -> Self {
        NamedDevice {
            backend: BackendKind::Flex,
            precision: Precision::F32,
            device: Device::flex(),
        }
    }
}
