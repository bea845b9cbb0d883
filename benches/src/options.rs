//! The options both benchmarks take, and the targets they imply.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use serde::Serialize;

use crate::Target;

/// The checkout these binaries were built from; FastMCP's scripts and venv live there.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[derive(clap::Args)]
pub struct SharedOptions {
    /// Rounds per target of the part measured in rounds; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Leave FastMCP's proxy out (no Python venv needed).
    #[arg(long)]
    pub skip_fastmcp: bool,
    /// Print the results as JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Where `interpose`, `echo-backend` and `floor-relay` are (default: beside this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// A Python with FastMCP installed (default: the checkout's .venv-fastmcp).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Another target measured alongside, e.g. a candidate build of interpose. The
    /// command is split on whitespace; `{backend}` stands for the echo backend's path
    /// (and, in http-bench, `{port}` for the port to listen on). Repeatable.
    #[arg(long, value_name = "NAME=COMMAND")]
    pub extra: Vec<String>,
}

/// The binaries a run starts, found in one directory.
pub struct Binaries {
    dir: PathBuf,
}

impl SharedOptions {
    pub fn binaries(&self) -> anyhow::Result<Binaries> {
        Binaries::in_dir(self.bin_dir.as_deref())
    }

    /// FastMCP's proxy running `script` (in `benches/`) with `args`, unless skipped.
    pub fn fastmcp(&self, script: &str, args: Vec<OsString>) -> anyhow::Result<Option<Target>> {
        if self.skip_fastmcp {
            return Ok(None);
        }
        let workspace = Path::new(WORKSPACE);
        let python = self
            .python
            .clone()
            .unwrap_or_else(|| workspace.join(".venv-fastmcp/bin/python"));
        ensure!(
            python.is_file(),
            "{} is missing; run benches/run.sh, or pass --skip-fastmcp",
            python.display()
        );
        let mut command = vec![python.into(), workspace.join("benches").join(script).into()];
        command.extend(args);
        Ok(Some(Target {
            name: "fastmcp".into(),
            command,
        }))
    }

    /// The `--extra` targets, with `{backend}` replaced by `backend`.
    pub fn extra_targets(&self, backend: &OsString) -> anyhow::Result<Vec<Target>> {
        self.extra
            .iter()
            .map(|extra| {
                let (name, command) = extra
                    .split_once('=')
                    .context("--extra wants NAME=COMMAND")?;
                let command = command
                    .split_whitespace()
                    .map(|word| {
                        if word == "{backend}" {
                            backend.clone()
                        } else {
                            word.into()
                        }
                    })
                    .collect();
                Ok(Target {
                    name: name.to_owned(),
                    command,
                })
            })
            .collect()
    }

    /// Prints `report` as JSON or as its Markdown tables.
    pub fn print<R: Serialize>(
        &self,
        report: &R,
        markdown: impl Fn(&R) -> String,
    ) -> anyhow::Result<()> {
        print_report(self.json, report, markdown)
    }
}

/// Prints `report` as JSON if `json`, else as its Markdown tables.
pub fn print_report<R: Serialize>(
    json: bool,
    report: &R,
    markdown: impl Fn(&R) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", markdown(report));
    }
    Ok(())
}

impl Binaries {
    /// The binaries in `dir`, or beside this binary.
    pub fn in_dir(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_owned(),
            None => std::env::current_exe()?
                .parent()
                .context("binary has no directory")?
                .to_owned(),
        };
        Ok(Binaries { dir })
    }

    /// The path of binary `name`, which must exist.
    pub fn get(&self, name: &str) -> anyhow::Result<OsString> {
        let path = self.dir.join(name);
        ensure!(
            path.is_file(),
            "{} is missing; build with `cargo build --release -p interpose -p interpose-bench`",
            path.display()
        );
        Ok(path.into_os_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        shared: SharedOptions,
    }

    #[test]
    fn extra_targets_put_the_backend_in_place() {
        let cli = Cli::parse_from(["x", "--extra", "candidate=/tmp/interpose run -- {backend}"]);
        let targets = cli
            .shared
            .extra_targets(&"/bin/echo-backend".into())
            .unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].name, "candidate");
        assert_eq!(
            targets[0].command,
            ["/tmp/interpose", "run", "--", "/bin/echo-backend"].map(OsString::from)
        );
    }

    #[test]
    fn an_extra_without_a_name_is_refused() {
        let cli = Cli::parse_from(["x", "--extra", "no-equals-sign"]);
        let error = cli.shared.extra_targets(&"b".into()).err().unwrap();
        assert_eq!(error.to_string(), "--extra wants NAME=COMMAND");
    }
}
