//! The command-line side: `--config FILE` and one `--<parameter> VALUE` flag per parameter, as
//! a clap [`clap::Args`] that a binary flattens into its own parser:
//!
//! ```ignore
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     params: trainer::config::ParameterArgs,
//!     #[arg(long)]
//!     dry_run: bool,
//! }
//! ```
//!
//! Values stay text here; [`super::TrainConfig::resolve`] parses them, so a bad value's error
//! names the flag it came from. Boolean flags take an optional value: `--lora-enable` means
//! `--lora-enable true`.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};

use super::fields::{FIELDS, Kind};

/// `--config FILE` plus the parameters given on the command line, as `(name, value)` pairs
/// (snake_case names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterArgs {
    /// YAML or JSON file of parameters (`--config`).
    pub config: Option<PathBuf>,
    /// `(snake_case name, text value)` for every parameter flag given.
    pub overrides: Vec<(String, String)>,
}

const CONFIG_ID: &str = "config";

impl FromArgMatches for ParameterArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ParameterArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>(CONFIG_ID) {
            self.config = Some(path.clone());
        }
        for field in FIELDS {
            if let Some(value) = matches.get_one::<String>(field.name) {
                self.overrides.retain(|(name, _)| name != field.name);
                self.overrides.push((field.name.to_string(), value.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for ParameterArgs {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = cmd.arg(
            Arg::new(CONFIG_ID)
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .action(ArgAction::Set)
                .help("YAML or JSON file of parameters (snake_case keys); flags and environment override it"),
        );
        for field in FIELDS {
            let mut arg = Arg::new(field.name)
                .long(field.flag)
                .value_name(field.kind.value_name())
                .action(ArgAction::Set)
                .help(field.help);
            if field.kind == Kind::Bool {
                arg = arg.num_args(0..=1).default_missing_value("true");
            }
            if let Some(var) = field.env {
                arg = arg.long_help(format!("{} (environment: {var})", field.help));
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args;

    fn parse(argv: &[&str]) -> Result<ParameterArgs, clap::Error> {
        let cmd = ParameterArgs::augment_args(Command::new("trainer"));
        let matches = cmd.try_get_matches_from(argv)?;
        ParameterArgs::from_arg_matches(&matches)
    }

    #[test]
    fn flags_become_overrides() {
        let args = parse(&[
            "trainer",
            "--config",
            "team.yaml",
            "--lora-r",
            "16",
            "--learning-rate=1e-4",
            "--lora-enable",
            "--tune-vision-tower",
            "false",
        ])
        .unwrap();
        assert_eq!(args.config, Some(PathBuf::from("team.yaml")));
        let mut got = args.overrides.clone();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("learning_rate".to_string(), "1e-4".to_string()),
                ("lora_enable".to_string(), "true".to_string()),
                ("lora_r".to_string(), "16".to_string()),
                ("tune_vision_tower".to_string(), "false".to_string()),
            ]
        );
    }

    #[test]
    fn unknown_flags_are_clap_errors() {
        let err = parse(&["trainer", "--lora-rank", "16"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
