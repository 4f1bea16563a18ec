//! Python's `random` module, bit for bit: MT19937 seeded as `random.seed(n)` does for a
//! non-negative int, and the `getrandbits` / `_randbelow` / `shuffle` / `sample` built on it.
//!
//! Why Python's generator and not PCG or SplitMix: VILA draws both of its data-order
//! decisions from Python's global `random` — `LLaVADataset.__init__` pads each dataset with
//! `random.sample` after `set_seed(seed)` (`llava/dataset_impl/llava.py`,
//! `llava/train/train.py`), and `VILADistributedSampler.__iter__` shuffles with
//! `random.seed(seed + epoch)` + `random.shuffle` (`llava/train/llava_trainer.py`). Writing the
//! generator out (no crate whose stream could change) reproduces VILA's order exactly, which
//! `tests/data_pyrandom.rs` checks against values printed by CPython
//! (`tests/fixtures/data/gen.py`). It is *not* torch's `RandomSampler` stream (a torch
//! `Generator`, Philox/MT on tensors), which VILA's trainer does not use.
//!
//! The algorithms are CPython's `Modules/_randommodule.c` (`init_genrand`, `init_by_array`,
//! `genrand_uint32`, `random_seed`, `getrandbits`) and `Lib/random.py`
//! (`_randbelow_with_getrandbits`, `shuffle`, `sample`), unchanged from 3.9 to 3.13.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A Python `random.Random` instance (Mersenne Twister MT19937).
#[derive(Clone)]
pub struct PyRandom {
    mt: Box<[u32; N]>,
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl PyRandom {
    /// The state after `random.seed(seed)` (CPython `random_seed` for an int: the absolute
    /// value split into 32-bit words, least significant first, fed to `init_by_array`).
    pub fn new(seed: u128) -> Self {
        let mut key = Vec::with_capacity(4);
        let mut rest = seed;
        while rest != 0 {
            key.push(rest as u32);
            rest >>= 32;
        }
        if key.is_empty() {
            key.push(0);
        }
        let mut rng = Self::init_genrand(19_650_218);
        rng.init_by_array(&key);
        rng
    }

    fn init_genrand(s: u32) -> Self {
        let mut mt = Box::new([0u32; N]);
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self { mt, index: N }
    }

    fn init_by_array(&mut self, key: &[u32]) {
        let mt = &mut self.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        self.index = N;
    }

    /// `genrand_uint32`: the next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        let mt = &mut self.mt;
        let mag = |y: u32| if y & 1 == 0 { 0 } else { MATRIX_A };
        for kk in 0..N - M {
            let y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
            mt[kk] = mt[kk + M] ^ (y >> 1) ^ mag(y);
        }
        for kk in N - M..N - 1 {
            let y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
            mt[kk] = mt[kk + M - N] ^ (y >> 1) ^ mag(y);
        }
        let y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
        mt[N - 1] = mt[M - 1] ^ (y >> 1) ^ mag(y);
        self.index = 0;
    }

    /// `random.getrandbits(k)` for `k <= 64`: 32-bit words least significant first, the
    /// last one shifted right to keep its top `k mod 32` bits.
    ///
    /// # Panics
    /// If `k > 64` (a programming error: no caller draws more than a `usize`).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(k <= 64, "getrandbits({k}) exceeds 64 bits");
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - k));
        low | (high << 32)
    }

    /// `random._randbelow(n)` (`_randbelow_with_getrandbits`): rejection sampling on
    /// `n.bit_length()` bits. Returns 0 for `n == 0` without drawing (Python would raise;
    /// no caller passes 0).
    pub fn randbelow(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `random.shuffle(x)`: Fisher–Yates from the end, `j = randbelow(i + 1)`.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i + 1);
            x.swap(i, j);
        }
    }

    /// `random.sample(range(n), k)`, in selection order. Python picks between a pool and a
    /// set of selected indices by comparing `n` with a table size; both branches are kept
    /// because they draw differently.
    ///
    /// # Panics
    /// If `k > n` (Python raises ValueError; callers guarantee `k <= n`).
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population ({k} > {n})");
        let mut setsize = 21usize;
        if k > 5 {
            // `4 ** _ceil(_log(k * 3, 4))`, with Python's float log.
            let exp = ((k as f64 * 3.0).ln() / 4f64.ln()).ceil() as u32;
            setsize = setsize.saturating_add(4usize.saturating_pow(exp));
        }
        let mut result = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow(n - i);
                result.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n);
                while selected.contains(&j) {
                    j = self.randbelow(n);
                }
                selected.insert(j);
                result.push(j);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mt19937_outputs() {
        // CPython: random.seed(42); [random.getrandbits(32) for _ in range(3)]
        let mut r = PyRandom::new(42);
        assert_eq!(
            [r.next_u32(), r.next_u32(), r.next_u32()],
            [2_746_317_213, 478_163_327, 107_420_369]
        );
    }

    #[test]
    fn randbelow_one_is_zero() {
        let mut r = PyRandom::new(1);
        assert!((0..20).all(|_| r.randbelow(1) == 0));
    }
}
