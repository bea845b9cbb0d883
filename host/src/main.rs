//! The `interpose` command line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use interpose::cli::{Listen, TransportArgs, parse_listen};
use interpose::log_output::{BatchedLog, Fields, Timestamps, flush_stderr};
use interpose::run::{RunOptions, run};
use interpose::session::BackendSettings;
use interpose::session::gateway::GatewayOptions;
use interpose::session::lifecycle::RestartPolicy;
use interpose::wire::framing::DEFAULT_MAX_MESSAGE_BYTES;

mod plugin_dev;

/// An MCP proxy whose every forwarded message runs through sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "interpose", version, about, propagate_version = true)]
struct Cli {
    /// More logging (-v debug, -vv trace). RUST_LOG overrides. Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// How log lines are written: `text` for people, `json` (one object per line, its
    /// fields at the top level) for log pipelines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
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
    /// Check a configuration without serving: read it, load and initialise every
    /// plugin (global and per server), check the servers; exit non-zero with the error.
    ///
    /// Example: interpose check --config interpose.toml --servers servers.json
    Check(CheckArgs),
    /// Run a recording (`interpose run --record`) through plugins with no client and no
    /// server: print each message's verdicts and what each rewrite changed, and compare
    /// them with a golden file (--expect), exiting non-zero on a difference.
    ///
    /// Example: interpose replay session.jsonl --plugin redact.wasm --expect golden.jsonl
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// The recording, as `interpose run --record` writes it (see docs/record.md).
    #[arg(value_name = "FILE.jsonl")]
    recording: std::path::PathBuf,
    #[command(flatten)]
    plugins: PluginArgs,
    /// Compare the verdicts and rewritten payloads with this golden file; any
    /// difference is printed and makes the exit status non-zero.
    #[arg(long, value_name = "GOLDEN.jsonl")]
    expect: Option<std::path::PathBuf>,
    /// Write the golden file (--expect) from this replay instead of comparing.
    #[arg(long, requires = "expect")]
    update: bool,
    /// Print only differences and the summary, not the table of messages.
    #[arg(short, long)]
    quiet: bool,
    /// Largest message the plugins are set up for, as `interpose run` takes it.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    max_message_bytes: usize,
}

/// `interpose run --record`: what to record, and how.
#[derive(Args)]
struct RecordArgs {
    /// Append every message crossing the proxy, both ways, with its verdict, to this
    /// JSONL file (created readable by its owner only). It holds raw traffic: see
    /// docs/record.md.
    #[arg(long, value_name = "FILE.jsonl")]
    record: Option<std::path::PathBuf>,
    /// A plugin run over what --record writes (e.g. redact.wasm): its rewrites are what
    /// gets recorded. It never changes the traffic itself.
    #[arg(long, value_name = "PLUGIN.wasm", requires = "record")]
    record_redact: Option<std::path::PathBuf>,
}

impl RecordArgs {
    /// Serves as `options` say, recording when --record asks.
    async fn run(self, mut options: RunOptions) -> anyhow::Result<()> {
        let Some(path) = self.record else {
            return run(options).await;
        };
        let recording = interpose::record::Recording::start(
            &path,
            self.record_redact.as_deref(),
            options.max_message_bytes,
            options.interceptor.clone(),
        )
        .await?;
        options.interceptor = recording.interceptor();
        let result = run(options).await;
        recording.finish().await;
        result
    }
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    plugins: PluginArgs,
    /// An `mcpServers` file to check, as `interpose run --servers` reads it.
    #[arg(long, value_name = "FILE.json")]
    servers: Option<std::path::PathBuf>,
    /// Largest message the plugins are set up for, as `interpose run` takes it.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    max_message_bytes: usize,
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
    /// Push a plugin to an OCI registry as a Wasm OCI artifact (one `application/wasm`
    /// layer, as `wkg` and Spin push components); prints the manifest's digest. Its
    /// signature, FILE.wasm.minisig, goes along in the manifest when it is there.
    ///
    /// Example: interpose plugin push redact.wasm ghcr.io/acme/redact:1.0
    Push(PushArgs),
    /// Pull a plugin from an OCI registry into the local cache, checking every digest;
    /// prints the reference pinned to its digest and the cached file. A tag is
    /// resolved again each time this runs (a proxy uses what was pulled last).
    ///
    /// Example: interpose plugin pull ghcr.io/acme/redact:1.0
    Pull(PullArgs),
    /// Show what a plugin is and asks for: name, version, WIT version, interests,
    /// declared capabilities, size, sha256, signature.
    ///
    /// Example: interpose plugin inspect redact.wasm --key acme.pub
    Inspect(InspectArgs),
    /// Make a minisign key pair for signing plugins: PREFIX.key (secret) and PREFIX.pub.
    ///
    /// Example: interpose plugin keygen acme
    Keygen(KeygenArgs),
    /// Sign a plugin: writes FILE.wasm.minisig (minisign format).
    ///
    /// Example: interpose plugin sign redact.wasm --key acme.key
    Sign(SignArgs),
    /// Check a plugin's signature (FILE.wasm.minisig) against trusted public keys, as
    /// `require_signature` does at load; exits non-zero with the reason.
    ///
    /// Example: interpose plugin verify redact.wasm --key acme.pub
    Verify(VerifyArgs),
}

#[derive(Args)]
struct PushArgs {
    /// The component to push.
    #[arg(value_name = "FILE.wasm")]
    file: std::path::PathBuf,
    /// Where to: REGISTRY/NAME:TAG (`oci://` in front is accepted).
    #[arg(value_name = "REF")]
    reference: String,
}

#[derive(Args)]
struct PullArgs {
    /// What to pull: REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:DIGEST.
    #[arg(value_name = "REF")]
    reference: String,
}

#[derive(Args)]
struct InspectArgs {
    /// The plugin component: a file, or `oci://REGISTRY/NAME:TAG` (from the cache,
    /// pulled first if it is not there, with the signature that came with it).
    #[arg(value_name = "FILE.wasm|oci://REF")]
    file: std::path::PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// A trusted public key to check the signature with: a minisign .pub file or the
    /// key inline (repeatable).
    #[arg(long = "key", value_name = "PUB")]
    keys: Vec<String>,
}

#[derive(Args)]
struct KeygenArgs {
    /// Where to write the keys: PREFIX.key and PREFIX.pub.
    prefix: std::path::PathBuf,
}

#[derive(Args)]
struct SignArgs {
    /// The plugin component.
    file: std::path::PathBuf,
    /// The secret key, from `interpose plugin keygen` (for a key made by the minisign
    /// tool, sign with `minisign -S`: interpose accepts its signatures).
    #[arg(long, value_name = "SECRET")]
    key: std::path::PathBuf,
}

#[derive(Args)]
struct VerifyArgs {
    /// The plugin component.
    file: std::path::PathBuf,
    /// A trusted public key: a minisign .pub file or the key inline (repeatable).
    #[arg(long = "key", value_name = "PUB", required = true)]
    keys: Vec<String>,
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
    #[command(flatten)]
    record: RecordArgs,
    /// Export OpenTelemetry traces to this OTLP/HTTP collector (a base URL, as
    /// OTEL_EXPORTER_OTLP_ENDPOINT, which also turns traces on; spans go to
    /// URL/v1/traces). See docs/operations.md.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Seconds a server's `initialize` may take before clients are answered without
    /// it (it joins when it answers); a server's `start_timeout_ms` overrides it.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", value_parser = parse_seconds)]
    start_timeout: f64,
    /// Start a backend that dies again, after 0.5 s, then 1 s, 2 s, ... up to 30 s:
    /// `never` or `on-failure`; a server's `restart` overrides it.
    #[arg(long, default_value = "never", value_name = "POLICY", value_parser = parse_restart)]
    restart: RestartPolicy,
    /// The servers to serve, from an `mcpServers` file as Claude Desktop, Cursor, VS
    /// Code or FastMCP write it (instead of a BACKEND). See docs/config.md ("Servers").
    #[arg(long, value_name = "FILE.json")]
    servers: Option<std::path::PathBuf>,
    /// When tool and prompt names and resource URIs carry their server's name:
    /// `when-several` (default), `always` or `never` (overrides `[gateway] prefix`).
    #[arg(long, value_name = "MODE")]
    prefix: Option<interpose::session::names::PrefixMode>,
    /// The backend: a command and its arguments, or a URL.
    #[arg(
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
    /// Run the gateway demo instead: two built-in servers behind one endpoint, a call to
    /// each, one of them brought down and restarted.
    #[arg(long, conflicts_with_all = ["serve", "no_plugins"])]
    gateway: bool,
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

/// A positive number of seconds (fractions allowed), at most a day.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 86_400.0 => Ok(seconds),
        _ => Err(format!(
            "expected a number of seconds above 0, at most 86400, got `{text}`"
        )),
    }
}

fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    RestartPolicy::parse(text)
        .ok_or_else(|| format!("expected `never` or `on-failure`, got `{text}`"))
}

/// Logs to stderr in batches (see `log_output`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    let default = match verbose {
        // The scripted demo prints its own trace on stdout; keep stderr for problems.
        0 if quiet => "warn",
        0 => "interpose=info,warn",
        1 => "interpose=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let batched = BatchedLog::stderr();
    let text = || {
        tracing_subscriber::fmt()
            .with_env_filter(filter.clone())
            .fmt_fields(Fields)
            .with_timer(Timestamps)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    };
    let json = || {
        tracing_subscriber::fmt()
            .event_format(interpose::log_json::JsonLines)
            .with_env_filter(filter.clone())
    };
    match (format, batched) {
        (LogFormat::Text, Ok(log)) => text().with_writer(log).init(),
        (LogFormat::Json, Ok(log)) => json().with_writer(log).init(),
        (LogFormat::Text, Err(e)) => {
            text().with_writer(std::io::stderr).init();
            tracing::warn!("cannot start the log flusher thread ({e}); writing each line at once");
        }
        (LogFormat::Json, Err(e)) => {
            json().with_writer(std::io::stderr).init();
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
    // The scripted demo, `check` and `replay` print their own result; logs only say
    // problems.
    let quiet = matches!(&command, Command::Demo(args) if !args.serve)
        || matches!(&command, Command::Check(_) | Command::Replay(_));
    init_logging(cli.verbose, quiet, cli.log_format);
    // Before the async runtime: the exporter's blocking HTTP client must not be made
    // inside it. Dropped last, it exports the spans left.
    let _traces = match &command {
        Command::Run(args) => {
            match interpose::telemetry::trace::init(args.otlp_endpoint.as_deref()) {
                Ok(guard) => guard,
                Err(e) => {
                    flush_stderr();
                    eprintln!("interpose: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    let runtime = match runtime_for(&command) {
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

/// The async runtime for `command`. A stdio client is one session, whose relay,
/// pipes and plugin calls wait on each other: on one worker thread they take turns
/// instead of handing each message between cores, which costs a quarter to a third
/// less CPU per message and answers more of them (`benches/README.md`, "One worker
/// for a stdio session"). An HTTP listener serves sessions side by side and gets a
/// worker per core. `TOKIO_WORKER_THREADS` overrides both.
fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let one_session = matches!(command, Command::Run(args)
        if matches!(parse_listen(&args.transport.listen), Ok(Listen::Stdio)));
    if one_session && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    builder.build()
}

async fn execute(command: Command) -> ExitCode {
    let result = match command {
        Command::Run(args) => run_proxy(*args).await,
        Command::Demo(args) if args.serve => serve_demo(&args.listen).await,
        Command::Demo(args) if args.gateway => interpose::demo::run_gateway().await,
        Command::Demo(args) => interpose::demo::run_scripted(!args.no_plugins).await,
        Command::Plugin(command) => plugin_command(command),
        Command::Check(args) => check(args).await,
        Command::Replay(args) => replay(args).await,
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
        PluginCommand::Push(args) => registry_command(async move {
            use interpose::plugin::oci;
            let reference = oci::PluginRef::parse(&args.reference)?;
            let wasm = std::fs::read(&args.file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
            let signature = plugin_dev::trust::signature_to_push(&args.file)?;
            let digest = oci::push(wasm, signature, &reference).await?;
            println!("{digest}");
            Ok(())
        }),
        PluginCommand::Pull(args) => registry_command(async move {
            use interpose::plugin::oci;
            let reference = oci::PluginRef::parse(&args.reference)?;
            let pulled = oci::pull(&oci::OciCache::open_default()?, &reference).await?;
            println!("{}@{}", reference.name(), pulled.manifest);
            println!("{}", pulled.path.display());
            plugin_dev::trust::report_pulled_signature(&pulled.signature)?;
            Ok(())
        }),
        PluginCommand::Inspect(args) => {
            plugin_dev::trust::inspect(&args.file, &args.keys, args.json)
        }
        PluginCommand::Keygen(args) => plugin_dev::trust::keygen(&args.prefix),
        PluginCommand::Sign(args) => plugin_dev::trust::sign(&args.file, &args.key),
        PluginCommand::Verify(args) => plugin_dev::trust::verify(&args.file, &args.keys),
    }
}

/// Runs a command that talks to a registry, on a runtime of its own.
fn registry_command(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(command)
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
    let servers =
        interpose::servers::load(args.plugins.config.as_deref(), args.servers.as_deref())?;
    if servers.is_empty() && args.servers.is_none() {
        return run_backend(args).await;
    }
    if !args.backend.is_empty() {
        bail!(
            "give either a backend after `--` or servers (--servers FILE.json, [servers] in \
             --config), not both"
        );
    }
    if args.transport.names_backend_settings() || !args.env.is_empty() || args.name.is_some() {
        bail!(
            "--upstream, --header, --bearer-token-env, --oauth-*, --env and --name apply to a backend \
             given after `--`; a server takes its settings from its own entry"
        );
    }
    let servers = interpose::servers::enabled(servers)?;
    let gateway = gateway_options(&args)?;
    let config = args.plugins.config.as_deref();
    let global = interpose::config::plugin_list(config, &args.plugins.plugin)?;
    let store = interpose::config::store_config(config)?;
    let chains = interpose::plugin::load_chains(
        global,
        server_plugins(&servers),
        args.max_message_bytes,
        &store,
    )
    .await?;
    let start_timeout = Duration::from_secs_f64(args.start_timeout);
    let listen = listen(&args)?;
    let backends = servers
        .into_iter()
        .zip(chains.servers)
        .map(|(server, chain)| BackendSettings {
            timeout: server.timeout,
            start_timeout: server.start_timeout.unwrap_or(start_timeout),
            restart: server.restart.unwrap_or(args.restart),
            lazy: server.lazy,
            chain,
            ..BackendSettings::new(server.name, server.upstream)
        })
        .collect();
    args.record
        .run(RunOptions {
            backends,
            listen,
            admin: args.transport.admin()?,
            max_message_bytes: args.max_message_bytes,
            interceptor: chains.global,
            gateway,
        })
        .await
}

/// How the gateway shows its servers: `[gateway]` of `--config`, then `--prefix`.
fn gateway_options(args: &RunArgs) -> anyhow::Result<GatewayOptions> {
    let file = match args.plugins.config.as_deref() {
        Some(path) => interpose::config::Config::load(path)?.gateway,
        None => Default::default(),
    };
    Ok(file.options(args.prefix))
}

/// `[auth]` of `--config`: OAuth access tokens on the HTTP listener.
/// The listener the flags describe, with the config file's `[auth]` and `[replicas]`.
fn listen(args: &RunArgs) -> anyhow::Result<interpose::cli::Listen> {
    let file = match args.plugins.config.as_deref() {
        Some(path) => interpose::config::Config::load(path)?,
        None => interpose::config::Config::default(),
    };
    let mut listen = args.transport.listen_with_auth(file.auth.as_ref())?;
    if let Some(replicas) = &file.replicas {
        let interpose::cli::Listen::Http(config) = &mut listen else {
            anyhow::bail!(
                "[replicas] applies to an HTTP listener (--listen http://HOST:PORT): a stdio client has its own interpose"
            );
        };
        let replicas = interpose::downstream::http_server::Replicas::from_config(replicas)?;
        config.replicas = Some(std::sync::Arc::new(replicas));
    }
    Ok(listen)
}

/// Each server's own plugins, for its chain. In a gateway they are named after their
/// server (`SERVER/NAME`), as the same plugin often serves several servers; a lone
/// server's keep their names, as in the one-backend proxy.
fn server_plugins(
    servers: &[interpose::servers::ServerSpec],
) -> Vec<(String, Vec<interpose::config::PluginConfig>)> {
    let gateway = servers.len() > 1;
    servers
        .iter()
        .map(|server| {
            let plugins = server
                .plugins
                .iter()
                .map(|plugin| interpose::config::PluginConfig {
                    server: gateway.then(|| server.name.clone()),
                    ..plugin.clone()
                })
                .collect();
            (server.name.clone(), plugins)
        })
        .collect()
}

/// `interpose check`: everything `interpose run` would load, loaded, nothing served.
async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let config = args.plugins.config.as_deref();
    let global = interpose::config::plugin_list(config, &args.plugins.plugin)?;
    let global_count = global.len();
    let servers = interpose::servers::load(config, args.servers.as_deref())?;
    let enabled = if servers.is_empty() {
        Vec::new()
    } else {
        interpose::servers::enabled(servers)?
    };
    let own_count: usize = enabled.iter().map(|s| s.plugins.len()).sum();
    // Loaded as `interpose run` loads them, each chain on its own pools.
    let store = interpose::config::store_config(config)?;
    interpose::plugin::load_chains(
        global,
        server_plugins(&enabled),
        args.max_message_bytes,
        &store,
    )
    .await?;
    println!(
        "ok: {global_count} plugin(s), {} server(s) with {own_count} plugin(s) of their own",
        enabled.len()
    );
    Ok(())
}

/// `interpose replay`: a recording through the plugins of the command line.
async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    interpose::record::replay::replay(&interpose::record::replay::ReplayOptions {
        recording: args.recording,
        plugins: args.plugins.plugin,
        config: args.plugins.config,
        expect: args.expect,
        update: args.update,
        quiet: args.quiet,
        max_message_bytes: args.max_message_bytes,
    })
    .await
}

/// `interpose run -- BACKEND...`: the backend the command line names.
async fn run_backend(args: RunArgs) -> anyhow::Result<()> {
    if args.backend.is_empty() {
        bail!(
            "no backend: give a command or URL after `--`, or servers with --servers \
             FILE.json or [servers] in --config"
        );
    }
    let interceptor = args.plugins.interceptor(args.max_message_bytes).await?;
    let listen = listen(&args)?;
    let gateway = gateway_options(&args)?;
    let admin = args.transport.admin()?;
    let backend = args.transport.upstream(args.backend, args.env)?;
    let name = args.name.unwrap_or_else(|| backend.name());
    args.record
        .run(RunOptions {
            backends: vec![BackendSettings {
                start_timeout: Duration::from_secs_f64(args.start_timeout),
                restart: args.restart,
                ..BackendSettings::new(name, backend)
            }],
            listen,
            admin,
            max_message_bytes: args.max_message_bytes,
            interceptor,
            gateway,
        })
        .await
}

async fn serve_demo(listen: &str) -> anyhow::Result<()> {
    match parse_listen(listen)? {
        Listen::Stdio => interpose::demo::serve_stdio().await,
        Listen::Http(config) => interpose::demo::serve_http(config).await,
    }
}
