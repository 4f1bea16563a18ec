//! The data order against CPython: Python's `random` (MT19937, `shuffle`, `sample`), VILA's
//! padding to the global batch and VILA's `VILADistributedSampler`, all compared with values
//! printed by `tests/fixtures/data/gen.py` (committed beside it as `reference.json`).

use serde_json::Value;
use trainer::data::{BatchGeometry, PyRandom, Sampler, pad_to_global_batch};

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/data/reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn mt19937_matches_cpython_seeding_and_getrandbits() {
    let r = reference();
    for case in r["mt"].as_array().unwrap() {
        let seed: u128 = case["seed"].as_str().unwrap().parse().unwrap();
        let mut rng = PyRandom::new(seed);
        let words: Vec<u64> = (0..8).map(|_| rng.getrandbits(32)).collect();
        let want: Vec<u64> = case["u32"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(words, want, "seed {seed}");
        for w in case["u64"].as_array().unwrap() {
            let want: u64 = w.as_str().unwrap().parse().unwrap();
            assert_eq!(rng.getrandbits(64), want, "seed {seed}");
        }
        for w in case["bits5"].as_array().unwrap() {
            assert_eq!(rng.getrandbits(5), w.as_u64().unwrap(), "seed {seed}");
        }
    }
}

#[test]
fn shuffle_matches_cpython() {
    let r = reference();
    let mut rng = PyRandom::new(r["shuffle"]["seed"].as_u64().unwrap().into());
    for list in r["shuffle"]["lists"].as_array().unwrap() {
        let want = usizes(list);
        let mut got: Vec<usize> = (0..want.len()).collect();
        rng.shuffle(&mut got);
        assert_eq!(got, want);
    }
}

#[test]
fn sample_matches_cpython_both_branches() {
    let r = reference();
    let mut rng = PyRandom::new(r["sample"]["seed"].as_u64().unwrap().into());
    for case in r["sample"]["cases"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let k = case["k"].as_u64().unwrap() as usize;
        assert_eq!(
            rng.sample(n, k),
            usizes(&case["result"]),
            "sample(range({n}), {k})"
        );
    }
}

#[test]
fn padding_matches_llava_dataset() {
    let r = reference();
    for case in r["padding"].as_array().unwrap() {
        let gbs = case["global_batch"].as_u64().unwrap() as usize;
        let mut rng = PyRandom::new(case["seed"].as_u64().unwrap().into());
        let lens = usizes(&case["lens"]);
        for (n, want) in lens.iter().zip(case["padded"].as_array().unwrap()) {
            let got = pad_to_global_batch(*n, gbs, &mut rng);
            assert_eq!(got, usizes(want), "len {n}, global batch {gbs}");
            assert_eq!(got.len() % gbs, 0);
        }
    }
}

#[test]
fn sampler_matches_vila_distributed_sampler_on_every_rank() {
    let r = reference();
    for case in r["sampler"].as_array().unwrap() {
        let lens = usizes(&case["lens"]);
        let get = |k: &str| case[k].as_u64().unwrap() as usize;
        let geometry =
            BatchGeometry::new(get("world_size"), get("per_device"), get("grad_accum")).unwrap();
        let seed = case["seed"].as_u64().unwrap();
        let epoch = case["epoch"].as_u64().unwrap();
        for (rank, want) in case["ranks"].as_array().unwrap().iter().enumerate() {
            let sampler = Sampler::new(&lens, geometry, rank, seed).unwrap();
            assert_eq!(
                sampler.epoch_order(epoch),
                usizes(want),
                "lens {lens:?} {geometry:?} seed {seed} epoch {epoch} rank {rank}"
            );
        }
    }
}
