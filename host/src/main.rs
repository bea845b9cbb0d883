//! The `interpose` command line.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use interpose::framing::DEFAULT_MAX_MESSAGE_BYTES;
use interpose::intercept::PassAll;
use interpose::run::{RunOptions, run};
use interpose::transport::child::CommandSpec;

/// An MCP proxy whose every forwarded message runs through sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "interpose", version, about, propagate_version = true)]
struct Cli {
    /// More logging (-v debug, -vv trace). RUST_LOG overrides. Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Proxy a backend MCP server to a client.
    ///
    /// Example: interpose run -- npx -y @modelcontextprotocol/server-everything
    Run(RunArgs),
    /// Run a scripted session against the built-in demo backend, printing every message.
    Demo(DemoArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Where clients connect. Only `stdio` for now.
    #[arg(long, default_value = "stdio", value_parser = ["stdio"])]
    listen: String,
    /// Largest message accepted from either side, in bytes; larger ones get an error.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    max_message_bytes: usize,
    /// Extra environment variable for the backend (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// The backend's name in logs and plugin messages (default: the program's name).
    #[arg(long)]
    name: Option<String>,
    /// The backend: a command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "BACKEND"
    )]
    backend: Vec<String>,
}

#[derive(Args)]
struct DemoArgs {
    /// Keep serving the demo backend (through the proxy) on stdio instead of running
    /// the scripted session, so a real client can connect.
    #[arg(long)]
    serve: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "interpose=info,warn",
        1 => "interpose=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => {
            let mut backend = args.backend.into_iter();
            let program = backend.next().expect("clap requires a backend");
            run(RunOptions {
                backend: CommandSpec {
                    program,
                    args: backend.collect(),
                    env: args.env,
                },
                name: args.name,
                max_message_bytes: args.max_message_bytes,
                interceptor: Arc::new(PassAll),
            })
            .await
        }
        Command::Demo(args) if args.serve => interpose::demo::serve_stdio().await,
        Command::Demo(_) => interpose::demo::run_scripted().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interpose: {e:#}");
            ExitCode::FAILURE
        }
    }
}
