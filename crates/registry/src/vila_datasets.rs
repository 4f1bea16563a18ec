//! Resolving a `VILA_DATASETS` value to registry files.
//!
//! `llava/data/builder.py::register_datasets` splits the variable on `,`; for each name
//! `load_dataset_yaml` appends `.yaml` unless present, then uses
//! `llava/data/registry/datasets/<name>.yaml` in the VILA checkout if it exists, else the
//! name as a user path (`~` expanded). The unset default is `"default"`. The resulting
//! files go to [`crate::Registry::load_many`] in the same order.

use std::path::{Path, PathBuf};

use crate::error::RegistryError;

/// Resolves `spec` (e.g. `"default,/data/my_datasets.yaml"`) against `repo_datasets_dir`
/// (a VILA checkout's `llava/data/registry/datasets`).
pub fn resolve_vila_datasets(
    spec: &str,
    repo_datasets_dir: &Path,
) -> Result<Vec<PathBuf>, RegistryError> {
    spec.split(',')
        .map(|name| {
            let fname = if name.ends_with(".yaml") {
                name.to_string()
            } else {
                format!("{name}.yaml")
            };
            let repo_path = repo_datasets_dir.join(&fname);
            if repo_path.exists() {
                return Ok(repo_path);
            }
            let user_path = expand_user(&fname);
            if user_path.exists() {
                return Ok(user_path);
            }
            Err(RegistryError::RegistryFileNotFound {
                name: name.to_string(),
                repo_path,
                user_path,
            })
        })
        .collect()
}

/// `os.path.expanduser` for the `~` and `~/...` forms.
fn expand_user(path: &str) -> PathBuf {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return PathBuf::from(path);
    };
    if path == "~" {
        home
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}
