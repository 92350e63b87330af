//! Picking the compute device from a name given on the command line or in a config.

use crate::error::{ModelError, Result};
use burn::tensor::Device;

/// Names accepted by [`parse_device`].
pub const DEVICE_NAMES: &str = "cpu, wgpu (feature `wgpu`), cuda[:N] (feature `cuda`)";

/// `cpu` (burn Flex), `wgpu`, `cuda` or `cuda:N`.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        cpu if names_cpu(cpu) => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" | "gpu" | "vulkan" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        #[cfg(feature = "cuda")]
        other if other.starts_with("cuda:") => other[5..]
            .parse::<usize>()
            .map(Device::cuda)
            .map_err(|_| ModelError::InvalidInput(format!("bad CUDA device index in `{other}`"))),
        other => Err(ModelError::InvalidInput(format!(
            "unknown or not compiled-in device `{other}`; this build supports: {DEVICE_NAMES}"
        ))),
    }
}

/// Whether the device name `name` ([`parse_device`]'s) is the CPU's, without opening it (a
/// GPU name need not be compiled in).
pub fn names_cpu(name: &str) -> bool {
    matches!(name.trim().to_ascii_lowercase().as_str(), "cpu" | "flex")
}

/// Whether `device` is the CPU backend (burn Flex), with or without autodiff.
pub fn is_cpu(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}
