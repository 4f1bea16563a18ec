//! Validates a DATA_MIXTURE against registry files and prints the report as JSON.
//!
//! ```text
//! cargo run -p registry --example validate_mixture -- REGISTRY.yaml[,MORE.yaml] MIXTURE [MIXTURES.yaml]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use registry::{Mixtures, Registry, RegistryError, parse_mixture, validate};

fn run(args: &[String]) -> Result<String, RegistryError> {
    let files: Vec<PathBuf> = args[0].split(',').map(PathBuf::from).collect();
    let registry = Registry::load_many(&files)?;
    let mixtures = args
        .get(2)
        .map(|p| Mixtures::load(p.as_ref()))
        .transpose()?;
    let items = parse_mixture(&args[1], mixtures.as_ref())?;
    let report = validate(&registry, &items)?;
    Ok(serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: validate_mixture REGISTRY.yaml[,MORE.yaml] MIXTURE [MIXTURES.yaml]");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
