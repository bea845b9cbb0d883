//! The `interpose` command line.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use interpose::cli::{Listen, TransportArgs, parse_listen};
use interpose::log_output::{BatchedLog, Fields, Timestamps, flush_stderr};
use interpose::run::{RunOptions, run};
use interpose::wire::framing::DEFAULT_MAX_MESSAGE_BYTES;

mod plugin_dev;

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
    Run(Box<RunArgs>),
    /// Run a scripted session against the built-in demo backend, printing every message.
    Demo(DemoArgs),
    /// Create and build plugins in Rust, Python or JavaScript.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a plugin project, with a test, from the language's template.
    ///
    /// Example: interpose plugin new no-deletes --lang python
    New(NewArgs),
    /// Build a plugin project into a WebAssembly component and print the component's path.
    ///
    /// The language is told by the project's files: Cargo.toml (Rust), plugin.py (Python),
    /// package.json (JavaScript). The Python and JavaScript toolchains are installed into
    /// $INTERPOSE_TOOLS_DIR (default ~/.cache/interpose-tools) the first time.
    Build(BuildArgs),
}

#[derive(Args)]
struct NewArgs {
    /// The plugin's name: lowercase letters, digits and dashes (e.g. no-deletes).
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: plugin_dev::Lang,
    /// Where to create the project's directory, NAME.
    #[arg(long, default_value = ".", value_name = "PARENT")]
    dir: std::path::PathBuf,
}

#[derive(Args)]
struct BuildArgs {
    /// The plugin project's directory.
    #[arg(default_value = ".")]
    path: std::path::PathBuf,
    /// Where to write the component (default: cargo's target directory for Rust,
    /// PATH/target/<dir name>.wasm for Python and JavaScript).
    #[arg(short, long, value_name = "OUT.wasm")]
    output: Option<std::path::PathBuf>,
    /// The language, when the project's files do not tell it.
    #[arg(long, value_enum)]
    lang: Option<plugin_dev::Lang>,
    /// Rebuild a JavaScript plugin even when its inputs did not change.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    transport: TransportArgs,
    /// Largest message accepted from either side, in bytes; larger ones get an error.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    max_message_bytes: usize,
    /// Extra environment variable for the backend (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// The backend's name in logs and plugin messages (default: the program's name).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    plugins: PluginArgs,
    /// The backend: a command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "BACKEND"
    )]
    backend: Vec<String>,
}

/// Which Wasm plugins every message walks through.
#[derive(Args)]
struct PluginArgs {
    /// A plugin (`.wasm` component) with default settings (repeatable; the chain
    /// follows flag order, after the plugins of --config).
    #[arg(long = "plugin", value_name = "FILE.wasm")]
    plugin: Vec<std::path::PathBuf>,
    /// A configuration file (interpose.toml): plugins with their settings, grants and
    /// limits. See docs/config.md.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

impl PluginArgs {
    async fn interceptor(
        &self,
        max_message_bytes: usize,
    ) -> anyhow::Result<interpose::session::intercept::SharedInterceptor> {
        Ok(interpose::plugin::interceptor_from_args(
            self.config.as_deref(),
            &self.plugin,
            max_message_bytes,
        )
        .await?)
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Keep serving the demo backend (through the proxy) on stdio instead of running
    /// the scripted session, so a real client can connect.
    #[arg(long)]
    serve: bool,
    /// Run the scripted session without the demo plugins (audit-log, tool-policy,
    /// redact), through the bare relay.
    #[arg(long, conflicts_with = "serve")]
    no_plugins: bool,
    /// With --serve: where clients connect, `stdio` or `http://127.0.0.1:PORT`.
    #[arg(
        long,
        default_value = "stdio",
        value_name = "stdio|http://HOST:PORT",
        requires = "serve"
    )]
    listen: String,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

/// Logs to stderr in batches (see `log_output`).
fn init_logging(verbose: u8, quiet: bool) {
    let default = match verbose {
        // The scripted demo prints its own trace on stdout; keep stderr for problems.
        0 if quiet => "warn",
        0 => "interpose=info,warn",
        1 => "interpose=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(Fields)
        .with_timer(Timestamps)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match BatchedLog::stderr() {
        Ok(log) => subscriber.with_writer(log).init(),
        Err(e) => {
            subscriber.with_writer(std::io::stderr).init();
            tracing::warn!("cannot start the log flusher thread ({e}); writing each line at once");
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Plugin development runs tools one after the other: no async runtime, no logs.
    let command = match cli.command {
        Command::Plugin(command) => return exit_code(plugin_command(command)),
        command => command,
    };
    let scripted_demo = matches!(&command, Command::Demo(args) if !args.serve);
    init_logging(cli.verbose, scripted_demo);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("interpose: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On a worker thread, not the main thread `block_on` runs on: every message would
    // otherwise hop between the two.
    let code = runtime.block_on(async {
        tokio::spawn(execute(command)).await.unwrap_or_else(|e| {
            flush_stderr();
            eprintln!("interpose: {e}");
            ExitCode::FAILURE
        })
    });
    // A read of our stdin may still be waiting on a blocking thread that nothing can
    // interrupt (the client keeps stdin open after the backend died): do not wait for it.
    runtime.shutdown_background();
    flush_stderr();
    code
}

async fn execute(command: Command) -> ExitCode {
    let result = match command {
        Command::Run(args) => run_proxy(*args).await,
        Command::Demo(args) if args.serve => serve_demo(&args.listen).await,
        Command::Demo(args) => interpose::demo::run_scripted(!args.no_plugins).await,
        Command::Plugin(command) => plugin_command(command),
    };
    exit_code(result)
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            flush_stderr();
            eprintln!("interpose: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn plugin_command(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New(args) => new_plugin(args),
        PluginCommand::Build(args) => {
            let built = plugin_dev::build(&plugin_dev::BuildOptions {
                dir: args.path,
                output: args.output,
                lang: args.lang,
                force: args.force,
            })?;
            println!("{}", built.display());
            Ok(())
        }
    }
}

fn new_plugin(args: NewArgs) -> anyhow::Result<()> {
    let lang = args.lang;
    let dir = plugin_dev::new(&plugin_dev::NewOptions {
        name: args.name,
        lang,
        parent: args.dir,
    })?;
    let test = match lang {
        plugin_dev::Lang::Rust => "cargo test",
        plugin_dev::Lang::Python => "python3 -m pytest tests",
        plugin_dev::Lang::Js => "npm install && npm test    # npm install only links the SDK",
    };
    println!("created the {lang} plugin {}", dir.display());
    println!("  cd {}", dir.display());
    println!("  {test}");
    println!("  interpose plugin build .");
    Ok(())
}

async fn run_proxy(args: RunArgs) -> anyhow::Result<()> {
    let interceptor = args.plugins.interceptor(args.max_message_bytes).await?;
    let listen = args.transport.listen()?;
    let backend = args.transport.upstream(args.backend, args.env)?;
    run(RunOptions {
        backend,
        listen,
        name: args.name,
        max_message_bytes: args.max_message_bytes,
        interceptor,
    })
    .await
}

async fn serve_demo(listen: &str) -> anyhow::Result<()> {
    match parse_listen(listen)? {
        Listen::Stdio => interpose::demo::serve_stdio().await,
        Listen::Http(config) => interpose::demo::serve_http(config).await,
    }
}
