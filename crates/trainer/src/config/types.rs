//! Small value types of the configuration: devices, dtype, image aspect-ratio mode.

use std::fmt;

use serde::{Serialize, Serializer};

/// One training device, as written on the command line (`cpu`, `cuda:0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceSpec {
    /// The CPU (burn's `flex` backend).
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "cpu" => Some(DeviceSpec::Cpu),
            "cuda" => Some(DeviceSpec::Cuda(0)),
            other => {
                let ordinal = other.strip_prefix("cuda:")?;
                if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                ordinal.parse().ok().map(DeviceSpec::Cuda)
            }
        }
    }

    /// Parses a comma-separated list (`cuda:0,cuda:1`); `None` if any item is not a device or
    /// the list is empty.
    pub fn parse_list(text: &str) -> Option<Vec<Self>> {
        let devices: Option<Vec<_>> = text.split(',').map(Self::parse).collect();
        devices.filter(|d| !d.is_empty())
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Writes a device list the way it is parsed: `cuda:0,cuda:1`.
pub fn device_list_string(devices: &[DeviceSpec]) -> String {
    devices
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn serialize_devices<S: Serializer>(
    devices: &[DeviceSpec],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&device_list_string(devices))
}

/// Compute dtype of the frozen model (HF `--bf16` / `--fp16`; adapters stay f32 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit float (HF's default: neither `bf16` nor `fp16`).
    F32,
    /// bfloat16 (VILA's `--bf16 True`; the team's setting).
    Bf16,
    /// float16.
    F16,
}

impl Dtype {
    /// Parses `f32|fp32|float32`, `bf16|bfloat16`, `f16|fp16|float16`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Some(Dtype::F32),
            "bf16" | "bfloat16" => Some(Dtype::Bf16),
            "f16" | "fp16" | "float16" => Some(Dtype::F16),
            _ => None,
        }
    }

    /// The burn dtype.
    pub fn to_burn(self) -> burn::tensor::DType {
        match self {
            Dtype::F32 => burn::tensor::DType::F32,
            Dtype::Bf16 => burn::tensor::DType::BF16,
            Dtype::F16 => burn::tensor::DType::F16,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        })
    }
}

/// VILA's `image_aspect_ratio` (`llava/train/args.py` DataArguments; default `resize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageAspectRatio {
    /// Resize to the tower's square input (VILA's default).
    Resize,
    /// Pad to square with the mean colour, then resize.
    Pad,
    /// NVILA's dynamic tiling (`sft.sh` passes `dynamic`).
    Dynamic,
    /// Dynamic tiling with S2 multi-scale features.
    DynamicS2,
}

impl ImageAspectRatio {
    /// Parses `resize`, `pad`, `dynamic`, `dynamic_s2`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "resize" => Some(ImageAspectRatio::Resize),
            "pad" => Some(ImageAspectRatio::Pad),
            "dynamic" => Some(ImageAspectRatio::Dynamic),
            "dynamic_s2" => Some(ImageAspectRatio::DynamicS2),
            _ => None,
        }
    }
}

impl fmt::Display for ImageAspectRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageAspectRatio::Resize => "resize",
            ImageAspectRatio::Pad => "pad",
            ImageAspectRatio::Dynamic => "dynamic",
            ImageAspectRatio::DynamicS2 => "dynamic_s2",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!(DeviceSpec::parse_list("cpu"), Some(vec![DeviceSpec::Cpu]));
        assert_eq!(
            DeviceSpec::parse_list("cuda:0, cuda:1"),
            Some(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)])
        );
        assert_eq!(
            DeviceSpec::parse_list("cuda"),
            Some(vec![DeviceSpec::Cuda(0)])
        );
        for bad in ["", "gpu", "cuda:", "cuda:x", "cpu,", "cuda:-1"] {
            assert_eq!(DeviceSpec::parse_list(bad), None, "{bad}");
        }
        assert_eq!(
            device_list_string(&[DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]),
            "cuda:0,cuda:1"
        );
    }
}
