//! Devices by name (`cpu`, `cuda`, `cuda:N`) and the CUDA runtime's kernel-cache policy.
//!
//! Why a policy: on the H200 the first call of each new operation stream cost minutes of host
//! time (docs/gpu.md, 2026-11-29). cubecl compiles every kernel with NVRTC on first use and, by
//! default, keeps the compiled binaries only in memory: `[compilation] cache` is off unless a
//! `cubecl.toml` turns it on (cubecl-runtime 0.11.3 `config/compilation.rs`). With it on, a
//! second process finds the kernels in the environment database (by default
//! `<workspace>/target/environment/`, else the user cache directory; cubecl-environment
//! `persistence/root.rs`). A `cubecl.toml` / `burn.toml` of the user's, found from the current
//! directory upwards, is left to cubecl untouched.

use burn::tensor::Device;

/// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse(name: &str) -> Result<Device, String> {
    if name == "cpu" {
        return Ok(Device::flex());
    }
    let index = match name {
        "cuda" => Some(0),
        _ => name
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok()),
    };
    match index {
        Some(i) => cuda(i),
        None => Err(format!("expected `cpu` or `cuda:N`, got {name:?}")),
    }
}

/// CUDA device `index`, with compiled kernels persisted across processes (see the module docs).
///
/// # Errors
///
/// No NVIDIA driver library, a driver that fails to initialise, or no device `index`: burn
/// would panic in its device thread on first use instead.
#[cfg(feature = "cuda")]
pub fn cuda(index: usize) -> Result<Device, String> {
    check_device(index)?;
    configure_kernel_cache();
    Ok(Device::cuda(index))
}

/// Library names of the NVIDIA driver API, as cudarc searches them first on each system.
#[cfg(feature = "cuda")]
const DRIVER_LIBRARIES: [&str; 3] = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"];

#[cfg(feature = "cuda")]
fn check_device(index: usize) -> Result<(), String> {
    #[allow(unsafe_code)]
    // SAFETY: loading the driver library runs its initialisers, which is what cudarc does next
    // when burn first touches the device; the handle is dropped right away.
    let present = DRIVER_LIBRARIES
        .iter()
        .any(|name| unsafe { libloading::Library::new(*name) }.is_ok());
    if !present {
        return Err(format!(
            "no NVIDIA driver library ({}) could be loaded: is a driver installed, and is its \
             folder on LD_LIBRARY_PATH?",
            DRIVER_LIBRARIES.join(", ")
        ));
    }
    use cudarc::driver::result;
    result::init().map_err(|e| format!("the CUDA driver did not initialise: {e}"))?;
    let count = result::device::get_count()
        .map_err(|e| format!("the CUDA driver did not count its devices: {e}"))?;
    if index >= count.max(0) as usize {
        return Err(format!(
            "there is no CUDA device {index}; this machine has {count}"
        ));
    }
    Ok(())
}

/// Without the `cuda` feature there is no CUDA device.
#[cfg(not(feature = "cuda"))]
pub fn cuda(index: usize) -> Result<Device, String> {
    Err(format!(
        "cuda:{index} needs a build with the `cuda` feature; this one supports only `cpu`"
    ))
}

/// Turns on cubecl's persistent kernel cache unless the user configured cubecl themselves (a
/// `cubecl.toml` with `[compilation] cache = false` turns it off again).
#[cfg(feature = "cuda")]
fn configure_kernel_cache() {
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    if user_config_exists() {
        return;
    }
    // cubecl's own `CUBECL_*` environment overrides still apply, as they would without us.
    let mut config = CubeClRuntimeConfig::default().override_from_env();
    config.compilation.cache = true;
    // `false` when cubecl's configuration was already read or set: that one stays.
    let _ = CubeClRuntimeConfig::try_set(config);
}

/// Whether cubecl would find a configuration file of its own (its names and search order:
/// cubecl-environment `config/mod.rs`, `from_current_dir`).
#[cfg(feature = "cuda")]
fn user_config_exists() -> bool {
    let Ok(mut dir) = std::env::current_dir() else {
        return false;
    };
    loop {
        let names = ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"];
        if names.iter().any(|n| dir.join(n).is_file()) {
            return true;
        }
        if !dir.pop() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_or_fail_clearly() {
        assert!(parse("cpu").is_ok());
        for bad in ["gpu", "cuda:x", "cuda:-1", ""] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("expected `cpu` or `cuda:N`"), "{bad}: {err}");
        }
        #[cfg(not(feature = "cuda"))]
        assert!(parse("cuda:1").unwrap_err().contains("`cuda` feature"));
    }
}
