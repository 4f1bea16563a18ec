//! Compile-only placeholder for `cubecl-llvm` 0.11.3.
//!
//! Why it exists: `cubecl-cuda` 0.11.3 depends on `cubecl-llvm` unconditionally, and the real
//! crate's build script (through `tracel-llvm-bundler`) downloads a prebuilt LLVM. That fails on
//! offline hosts, on clusters, and in this project's CI. We compile kernels with NVRTC instead
//! (cubecl's `cuda-cpp` feature, which makes `CudaBackend::Cpp` the default), so nothing here is
//! ever asked to compile a kernel. If `cuda-cpp` ever drops out of the feature set, every kernel
//! fails loudly with the message in [`PlironCompiler::compile`] rather than silently using a
//! different code path.
//!
//! The surface mirrors exactly what `cubecl-cuda-0.11.3/src/{compiler.rs, runtime.rs,
//! compute/context.rs}` name. Re-check it on every cubecl bump (cubecl is pinned `=0.11.3`).

use core::ffi::c_char;
use core::fmt;

use cubecl_core::ir::DeviceProperties;
use cubecl_core::ir::nvidia::SmArch;
use cubecl_runtime::compiler::{CompilationError, Compiler};
use cubecl_runtime::kernel::{BufferIOAttr, KernelDefinition};

pub mod target {
    /// The LLVM target a pliron compiler lowers to.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum LlvmTarget {
        /// NVIDIA PTX.
        Nvptx,
        /// AMD GCN.
        Amdgpu,
    }
}

pub use target::LlvmTarget;

pub mod nvptx {
    pub mod ptx_version {
        use core::fmt;

        /// A PTX ISA version, e.g. `ptx90` for 9.0.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct PtxVersion(pub u32);

        impl PtxVersion {
            /// The newest PTX ISA a CUDA driver of this version loads (driver version as the
            /// CUDA API reports it, e.g. 13000 for 13.0). Table from NVIDIA's PTX ISA release
            /// notes; only used here to name cache namespaces.
            pub fn for_driver(driver: i32) -> Option<Self> {
                let table: [(i32, u32); 10] = [
                    (13000, 90),
                    (12090, 88),
                    (12080, 87),
                    (12060, 85),
                    (12040, 84),
                    (12030, 83),
                    (12020, 82),
                    (12010, 81),
                    (12000, 80),
                    (11080, 78),
                ];
                table
                    .iter()
                    .find(|(min_driver, _)| driver >= *min_driver)
                    .map(|(_, ptx)| PtxVersion(*ptx))
            }
        }

        impl fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ptx{}", self.0)
            }
        }
    }
}

pub mod shared {
    pub mod lowered_features {
        use cubecl_core::ir::DeviceProperties;

        /// The GPU family whose feature set the LLVM path can lower.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            /// NVIDIA.
            Nvptx,
            /// AMD.
            Amdgpu,
        }

        /// Upstream removes features the LLVM lowering cannot emit. cubecl-cuda calls this only
        /// when the LLVM backend is the default, which it never is here (`cuda-cpp` is on), so
        /// it leaves the properties untouched.
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
    }
}

/// A lowered PTX module. Never produced by this placeholder.
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX text.
    pub ptx: Vec<c_char>,
    /// Dynamic shared memory the kernel needs, in bytes.
    pub shared_memory_size: usize,
    /// The LLVM IR, for debug printing.
    pub ir: String,
    /// What the kernel does with each buffer binding.
    pub io: Vec<BufferIOAttr>,
    /// The kernel's entry point.
    pub entrypoint: String,
}

/// What a pliron compile produces.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    /// PTX for NVIDIA GPUs.
    NvptxCode(NvptxModule),
    /// Nothing: this placeholder cannot compile.
    Unavailable,
}

impl fmt::Display for PlironArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlironArtifact::NvptxCode(module) => f.write_str(&module.ir),
            PlironArtifact::Unavailable => f.write_str("<cubecl-llvm placeholder: no artifact>"),
        }
    }
}

/// Options cubecl-cuda fills in for the LLVM path.
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// Target architecture string (cubecl-cuda leaves it `None`).
    pub arch: Option<String>,
    /// The device's SM architecture.
    pub sm_arch: Option<SmArch>,
    /// The PTX version to emit.
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    /// Whether launch parameters are passed as grid constants.
    pub grid_constants: bool,
}

/// The LLVM-path compiler. Every compile fails with an explanation.
#[derive(Clone, Debug)]
pub struct PlironCompiler {
    /// The target to lower to.
    pub target: LlvmTarget,
}

impl Compiler for PlironCompiler {
    type Representation = PlironArtifact;
    type CompilationOptions = PlironOptions;

    fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &Self::CompilationOptions,
    ) -> Result<Self::Representation, CompilationError> {
        Err(CompilationError::Generic {
            reason: "cubecl-llvm is a compile-only placeholder in this workspace (no LLVM is \
                     downloaded); enable cubecl's `cuda-cpp` feature so kernels go through NVRTC"
                .to_string(),
            backtrace: cubecl_core::environment::backtrace::BackTrace::capture(),
        })
    }

    fn buffer_io(_repr: &Self::Representation) -> Option<Vec<BufferIOAttr>> {
        None
    }

    fn extension(&self) -> &'static str {
        "ll"
    }

    fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}

// Keep the import used even if a future cubecl stops naming it through this crate.
#[allow(dead_code)]
fn _uses(_: &DeviceProperties) {}
