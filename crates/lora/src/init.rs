//! How fresh LoRA factors are drawn: PEFT's `init_lora_weights` choices, from the device RNG or
//! from a private seeded stream (`peft/tuners/lora/layer.py::reset_lora_parameters`).

use burn::config::Config;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

/// PEFT's `init_lora_weights` values that need nothing but the layer itself.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LoraInit {
    /// `true` (PEFT's default): A is kaiming-uniform with a = √5, i.e. `U(-1/√in, 1/√in)`, as
    /// `nn.Linear` initialises its weight; B is zero, so the adapted layer starts equal to the base.
    Kaiming,
    /// `"gaussian"`: A ~ `N(0, 1/r)`; B is zero.
    Gaussian,
    /// `false`: both factors keep `nn.Linear`'s default init (A `U(-1/√in, 1/√in)`, B
    /// `U(-1/√r, 1/√r)`), so the adapter changes the output from the start. Meant for tests.
    Random,
}

/// A per-module seed: the same `(seed, path)` gives the same factors whatever order the modules
/// are wrapped in (FNV-1a of the path, mixed with the seed).
pub fn module_seed(seed: u64, path: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    SplitMix64(seed ^ hash).next_u64()
}

/// SplitMix64 (Steele et al.): tiny, fast and good enough for weight init; independent of the
/// device RNG, so a seeded init is the same on every backend.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn sample(&mut self, distribution: Distribution) -> f32 {
        match distribution {
            Distribution::Uniform(low, high) => (low + (high - low) * self.unit()) as f32,
            Distribution::Normal(mean, std) => {
                // Box-Muller; `1 - unit` lies in (0, 1], so the log is finite.
                let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
                let angle = 2.0 * std::f64::consts::PI * self.unit();
                (mean + std * radius * angle.cos()) as f32
            }
            _ => 0.0,
        }
    }
}

/// One factor in burn's layout `[d_input, d_output]`, f32. Seeded draws fill PEFT's layout
/// `[d_output, d_input]` row by row, so a seed names the same values whichever layout reads them.
fn factor(
    distribution: Option<Distribution>,
    [d_input, d_output]: [usize; 2],
    rng: Option<&mut SplitMix64>,
    device: &Device,
) -> Tensor<2> {
    let options = (device, DType::F32);
    match (distribution, rng) {
        (None, _) => Tensor::zeros([d_input, d_output], options),
        (Some(distribution), None) => Tensor::random([d_input, d_output], distribution, options),
        (Some(distribution), Some(rng)) => {
            let peft: Vec<f32> = (0..d_input * d_output)
                .map(|_| rng.sample(distribution))
                .collect();
            let mut burn = vec![0f32; peft.len()];
            for o in 0..d_output {
                for i in 0..d_input {
                    burn[i * d_output + o] = peft[o * d_input + i];
                }
            }
            Tensor::from_data(TensorData::new(burn, [d_input, d_output]), options)
        }
    }
}

impl LoraInit {
    /// Fresh `(lora_A, lora_B)` weights in burn's layout (`[in, r]`, `[r, out]`), f32.
    pub(crate) fn factors(
        self,
        r: usize,
        [d_in, d_out]: [usize; 2],
        seed: Option<u64>,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        let kaiming = |fan_in: usize| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            Distribution::Uniform(-bound, bound)
        };
        let (a, b) = match self {
            LoraInit::Kaiming => (kaiming(d_in), None),
            LoraInit::Gaussian => (Distribution::Normal(0.0, 1.0 / r as f64), None),
            LoraInit::Random => (kaiming(d_in), Some(kaiming(r))),
        };
        let mut rng = seed.map(SplitMix64);
        let a = factor(Some(a), [d_in, r], rng.as_mut(), device);
        let b = factor(b, [r, d_out], rng.as_mut(), device);
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_factors_are_reproducible_and_in_range() {
        let device = Device::flex();
        let (a1, b1) = LoraInit::Random.factors(3, [5, 7], Some(11), &device);
        let (a2, b2) = LoraInit::Random.factors(3, [5, 7], Some(11), &device);
        assert_eq!(a1.to_data(), a2.to_data());
        assert_eq!(b1.to_data(), b2.to_data());
        assert_eq!(a1.dims(), [5, 3]);
        assert_eq!(b1.dims(), [3, 7]);
        let bound_a = 1.0 / 5f32.sqrt();
        let bound_b = 1.0 / 3f32.sqrt();
        let a = a1.into_data().try_to_vec::<f32>().unwrap();
        let b = b1.into_data().try_to_vec::<f32>().unwrap();
        assert!(a.iter().all(|v| v.abs() <= bound_a), "{a:?}");
        assert!(b.iter().all(|v| v.abs() <= bound_b), "{b:?}");
        let (a3, _) = LoraInit::Random.factors(3, [5, 7], Some(12), &device);
        assert_ne!(a3.into_data().try_to_vec::<f32>().unwrap(), a);
    }

    #[test]
    fn default_init_zeroes_b() {
        let device = Device::flex();
        for init in [LoraInit::Kaiming, LoraInit::Gaussian] {
            let (_, b) = init.factors(2, [4, 6], Some(1), &device);
            assert!(
                b.into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .all(|v| *v == 0.0)
            );
        }
    }

    #[test]
    fn module_seeds_differ_by_path() {
        assert_ne!(module_seed(0, "a.q_proj"), module_seed(0, "a.k_proj"));
        assert_eq!(module_seed(5, "a.q_proj"), module_seed(5, "a.q_proj"));
    }
}
