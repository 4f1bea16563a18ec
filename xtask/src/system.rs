//! System packages the pipeline needs and a fresh machine may lack: `ffmpeg`/`ffprobe` (video
//! decoding and, for fixtures, H.264 encoding) and WordNet 3.0 (`wordnet-base`, for METEOR).
//! Installed with apt when missing, so the README's two commands are the whole set-up.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Where Debian's `wordnet-base` puts WordNet 3.0.
pub const WORDNET_DIR: &str = "/usr/share/wordnet";

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Which of our Debian packages are missing on this machine.
pub fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !on_path("ffmpeg") || !on_path("ffprobe") {
        missing.push("ffmpeg");
    }
    if !Path::new(WORDNET_DIR).join("index.noun").exists() {
        missing.push("wordnet-base");
    }
    missing
}

/// Installs missing packages with apt-get (as root, or through sudo). Does nothing when all
/// are present.
pub fn ensure_packages() -> anyhow::Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!("installing missing system packages: {}", missing.join(" "));
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| -> anyhow::Result<bool> {
        let mut cmd = if is_root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("-n").arg("apt-get");
            c
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        eprintln!("$ {cmd:?}");
        Ok(cmd.status().context("running apt-get")?.success())
    };
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(missing.iter().copied());
    if !apt(&install)? {
        // A fresh image often has no package lists yet.
        if !apt(&["update", "-q"])? || !apt(&install)? {
            bail!(
                "could not install {}; install them by hand (Debian/Ubuntu: apt-get install {})",
                missing.join(" "),
                missing.join(" ")
            );
        }
    }
    let still = missing_packages();
    if !still.is_empty() {
        bail!("still missing after apt-get: {}", still.join(" "));
    }
    Ok(())
}
