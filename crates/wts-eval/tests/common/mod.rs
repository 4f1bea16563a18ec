//! Shared helpers for the integration tests: fixture paths and one WordNet per binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use wts_eval::{DEFAULT_WORDNET_DIR, WordNet};

pub const TOL: f64 = 1e-4;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// WordNet from `wordnet-base` (CI installs it with apt).
pub fn wordnet() -> &'static WordNet {
    static WN: OnceLock<WordNet> = OnceLock::new();
    WN.get_or_init(
        || match WordNet::open(std::path::Path::new(DEFAULT_WORDNET_DIR)) {
            Ok(wn) => wn,
            Err(e) => panic!("{e}"),
        },
    )
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= TOL,
        "{what}: got {actual}, reference {expected}"
    );
}
