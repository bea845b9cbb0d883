//! `gateway-bench`: what interpose's gateway (several servers behind one endpoint,
//! `interpose run --servers FILE.json`) costs, against its one-backend mode and the
//! servers alone, on the three figures issue #13 sets targets for: a routed
//! `tools/call`, a merged `tools/list`, and the start with ten stdio servers (time to
//! `initialize` and the gateway's own memory). Each is one interleaved series, so the
//! machine's mood affects every target alike.

mod memory;
mod report;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use serde_json::{Value, json};

use interpose_bench::Target;
use interpose_bench::cpu::ThreadTimes;
use interpose_bench::machine::Conditions;
use interpose_bench::options::{Binaries, print_report};
use interpose_bench::session::{self, Session, Timed};
use memory::Resident;
use report::{ListCpu, Memory, Report, Series, gateway, one_backend, server};

/// Measures interpose's gateway against its one-backend mode and the servers alone,
/// and prints Markdown tables with the verdicts against issue #13's targets.
#[derive(Parser)]
#[command(name = "gateway-bench")]
struct Cli {
    /// Sequential routed `tools/call`s measured per target.
    #[arg(long, default_value_t = 3000)]
    calls: usize,
    /// Unmeasured calls per target before measuring.
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// `tools/list`s measured per target (after a tenth as many unmeasured).
    #[arg(long, default_value_t = 500)]
    lists: usize,
    /// Tools each server lists in the `tools/list` part.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u16).range(1..))]
    tools: u16,
    /// Servers behind the gateway in the `tools/list` part. Issue #13's target is for
    /// three; fewer show what the merge costs where every server has a core of its
    /// own (on two cores, three servers wait for each other).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=26))]
    list_servers: u8,
    /// Starts measured per target in the start-up part, interleaved.
    #[arg(long, default_value_t = 30)]
    starts: usize,
    /// Stdio servers behind the gateway in the start-up part.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(2..=26))]
    start_servers: u8,
    /// The interpose binary measured (default: beside this binary, as
    /// target/release/interpose is beside target/release/gateway-bench).
    #[arg(long)]
    interpose: Option<PathBuf>,
    /// Another interpose binary measured alongside in every part, e.g. a candidate
    /// build: `--candidate base=/tmp/interpose-base`. Repeatable.
    #[arg(long, value_name = "NAME=PATH")]
    candidate: Vec<String>,
    /// Where `echo-backend` is, and `interpose` unless `--interpose` says (default:
    /// beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Print the results as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// An interpose binary under test, and the name its rows carry.
struct Build {
    name: String,
    path: OsString,
}

/// The servers behind the gateway in the call part (its echo is `a_echo`).
const THREE_SERVERS: [&str; 3] = ["a", "b", "c"];

/// The first `count` servers' names: `a`, `b`, `c`, ...
fn server_names(count: u8) -> Vec<String> {
    ('a'..='z')
        .take(usize::from(count))
        .map(String::from)
        .collect()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ensure!(
        cli.calls > 0 && cli.lists > 0 && cli.starts > 0,
        "--calls, --lists and --starts must be positive"
    );
    let bin = Binaries::in_dir(cli.bin_dir.as_deref())?;
    let backend = bin.get("echo-backend")?;
    let builds = builds(&cli, &bin)?;
    // The mcpServers files the gateways read; removed when the run ends.
    let files = tempfile::tempdir()?;
    let conditions = Conditions::start();

    let routed_call = routed_calls(&cli, &backend, &builds, files.path())?;
    let MergedLists {
        read: merged_list,
        last_byte: merged_list_last_byte,
        cpu: merged_list_cpu,
    } = merged_lists(&cli, &backend, &builds, files.path())?;
    let (start_up, gateway_memory) = start_ups(&cli, &backend, &builds, files.path())?;

    let names: Vec<&str> = builds.iter().map(|b| b.name.as_str()).collect();
    let report = Report {
        conditions: conditions.finish(),
        calls: cli.calls,
        warmup: cli.warmup,
        lists: cli.lists,
        tools_per_server: cli.tools,
        list_servers: cli.list_servers,
        starts: cli.starts,
        start_servers: cli.start_servers,
        criteria: report::criteria(
            &names,
            &routed_call,
            &merged_list,
            &start_up,
            &gateway_memory,
        ),
        routed_call,
        merged_list,
        merged_list_last_byte,
        merged_list_cpu,
        start_up,
        gateway_memory,
    };
    print_report(cli.json, &report, Report::markdown)
}

/// The interpose binary measured, then the candidates.
fn builds(cli: &Cli, bin: &Binaries) -> anyhow::Result<Vec<Build>> {
    let path = match &cli.interpose {
        Some(path) => {
            ensure!(
                path.is_file(),
                "--interpose: {} is not a file",
                path.display()
            );
            path.clone().into_os_string()
        }
        None => bin.get("interpose")?,
    };
    let mut builds = vec![Build {
        name: "interpose".into(),
        path,
    }];
    for spec in &cli.candidate {
        let candidate = parse_candidate(spec)?;
        ensure!(
            builds.iter().all(|b| b.name != candidate.name),
            "--candidate {}: that name is taken",
            candidate.name
        );
        builds.push(candidate);
    }
    Ok(builds)
}

fn parse_candidate(spec: &str) -> anyhow::Result<Build> {
    let (name, path) = spec
        .split_once('=')
        .filter(|(name, path)| !name.is_empty() && !path.is_empty())
        .context("--candidate wants NAME=PATH")?;
    ensure!(
        Path::new(path).is_file(),
        "--candidate {name}: {path} is not a file"
    );
    Ok(Build {
        name: name.to_owned(),
        path: path.into(),
    })
}

/// a. `tools/call` of `a_echo` through a gateway of three echo-backends, against
/// `echo` through `interpose run -- echo-backend` and against echo-backend alone.
fn routed_calls(
    cli: &Cli,
    backend: &OsString,
    builds: &[Build],
    dir: &Path,
) -> anyhow::Result<Vec<Series>> {
    let file = write_servers(dir, "call.json", &THREE_SERVERS, backend, &[])?;
    let mut targets = vec![(direct(report::DIRECT, backend, &[]), "echo")];
    for build in builds {
        let one = Target {
            name: one_backend(&build.name),
            command: vec![
                build.path.clone(),
                "run".into(),
                "--".into(),
                backend.clone(),
            ],
        };
        targets.push((one, "echo"));
        targets.push((gateway_target(build, &file), "a_echo"));
    }
    let mut sessions = start_sessions(&targets)?;
    // Every call carries the same 1 KiB of printable text, as in proxy-bench.
    let text: String = ('a'..='z').cycle().take(1024).collect();
    eprintln!("gateway-bench: {} warm-up calls per target", cli.warmup);
    session::interleaved(&mut sessions, cli.warmup, |s| s.timed_echo(&text))?;
    eprintln!(
        "gateway-bench: {} routed calls per target, interleaved",
        cli.calls
    );
    let samples = session::interleaved(&mut sessions, cli.calls, |s| s.timed_echo(&text))?;
    Ok(summaries(&targets, samples))
}

/// The list part's figures.
struct MergedLists {
    /// Each target's lists, timed to the answer read ([`Timed::read`]): the verdict's.
    read: Vec<Series>,
    /// The same lists, timed to the answer's last byte ([`Timed::last_byte`]).
    last_byte: Vec<Series>,
    /// Each gateway's own CPU time per merged list.
    cpu: Vec<ListCpu>,
}

/// b. `tools/list` through a gateway of `--list-servers` echo-backends (three by
/// default) listing `--tools` tools each, against each such server alone.
fn merged_lists(
    cli: &Cli,
    backend: &OsString,
    builds: &[Build],
    dir: &Path,
) -> anyhow::Result<MergedLists> {
    let tools = usize::from(cli.tools);
    let args = ["--tools".to_owned(), tools.to_string()];
    let names = server_names(cli.list_servers);
    let file = write_servers(dir, "list.json", &names, backend, &args)?;
    let mut targets = Vec::new();
    for name in &names {
        targets.push((direct(&server(name), backend, &args), "echo"));
    }
    for build in builds {
        targets.push((gateway_target(build, &file), "a_echo"));
    }
    let mut sessions = start_sessions(&targets)?;
    for (session, (target, _)) in sessions.iter_mut().zip(&targets) {
        let expected = if target.name.starts_with(report::SERVER) {
            tools
        } else {
            tools * names.len()
        };
        check_one_page(session, expected)?;
    }
    let warmup = cli.lists.div_ceil(10);
    eprintln!("gateway-bench: {warmup} warm-up lists per target");
    session::interleaved(&mut sessions, warmup, Session::timed_list)?;
    eprintln!(
        "gateway-bench: {} lists of {tools} tools per server per target, interleaved",
        cli.lists
    );
    // A gateway's CPU time is its own: between its lists it waits, unscheduled.
    let cpu_before = sessions
        .iter()
        .map(|s| ThreadTimes::of(s.pid()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let samples = session::interleaved(&mut sessions, cli.lists, Session::timed_list)?;
    let mut cpu = Vec::new();
    for ((session, before), (target, _)) in sessions.iter().zip(cpu_before).zip(&targets) {
        let used = ThreadTimes::of(session.pid())?.since(&before);
        cpu.push(ListCpu::new(&target.name, used, cli.lists));
    }
    let times = |of: fn(&Timed) -> Duration| {
        let samples = samples.iter().map(|s| s.iter().map(of).collect()).collect();
        summaries(&targets, samples)
    };
    Ok(MergedLists {
        read: times(|t| t.read),
        last_byte: times(|t| t.last_byte),
        cpu,
    })
}

/// c. From spawning the gateway of `--start-servers` echo-backends to its
/// `initialize` answer, against from spawning as many echo-backends to the last of
/// their answers; and the gateway's own memory after `initialize` and `tools/list`.
fn start_ups(
    cli: &Cli,
    backend: &OsString,
    builds: &[Build],
    dir: &Path,
) -> anyhow::Result<(Vec<Series>, Vec<Memory>)> {
    let names = server_names(cli.start_servers);
    let file = write_servers(dir, "start.json", &names, backend, &[])?;
    let alone = direct(report::SERVERS_ALONE, backend, &[]);
    let gateways: Vec<Target> = builds.iter().map(|b| gateway_target(b, &file)).collect();
    let mut samples = vec![Vec::with_capacity(cli.starts); 1 + builds.len()];
    let mut resident = vec![Resident::default(); builds.len()];
    for round in 1..=cli.starts {
        if round == 1 || round % 10 == 0 {
            eprintln!("gateway-bench: start {round}/{}", cli.starts);
        }
        samples[0].push(start_alone(&alone, names.len())?);
        for (i, target) in gateways.iter().enumerate() {
            let (elapsed, now) = start_gateway(target, names.len())?;
            samples[i + 1].push(elapsed);
            resident[i] = resident[i].max(now);
        }
    }
    let series = std::iter::once(&alone)
        .chain(&gateways)
        .zip(samples)
        .map(|(target, mut samples)| Series::new(&target.name, &mut samples))
        .collect();
    let memory = gateways
        .iter()
        .zip(resident)
        .map(|(target, resident)| Memory::new(&target.name, resident))
        .collect();
    Ok((series, memory))
}

/// Spawns `count` copies of `server` at once, sending each `initialize` as it
/// starts, and times them to the last answer: the slowest server's start.
fn start_alone(server: &Target, count: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut pending = Vec::with_capacity(count);
    for _ in 0..count {
        let mut session = Session::spawn(server)?;
        let id = session.send_initialize()?;
        pending.push((session, id));
    }
    for (session, id) in &mut pending {
        session.result_of(*id, "initialize")?;
    }
    Ok(start.elapsed())
}

/// Spawns the gateway and times it to its `initialize` answer; then checks it lists
/// one echo per server and reads its resident memory (its servers not included).
fn start_gateway(target: &Target, servers: usize) -> anyhow::Result<(Duration, Resident)> {
    let start = Instant::now();
    let mut gateway = Session::spawn(target)?;
    let result: anyhow::Result<_> = (|| {
        let id = gateway.send_initialize()?;
        gateway.result_of(id, "initialize")?;
        let elapsed = start.elapsed();
        gateway.initialized()?;
        check_one_page(&mut gateway, servers)?;
        Ok((elapsed, Resident::of(gateway.pid())?))
    })();
    result.with_context(|| {
        format!(
            "{}: its stderr is in {}",
            target.name,
            gateway.log().display()
        )
    })
}

/// Fails unless `tools/list` gives `expected` tools in one page: the timings are of
/// one page each.
fn check_one_page(session: &mut Session, expected: usize) -> anyhow::Result<()> {
    let list = session.request("tools/list", json!({}))?;
    let tools = list["tools"].as_array().map_or(0, Vec::len);
    ensure!(
        tools == expected && list.get("nextCursor").is_none(),
        "{}: tools/list gave {tools} tools{}, expected {expected} in one page",
        session.name,
        if list.get("nextCursor").is_some() {
            " and a next page"
        } else {
            ""
        }
    );
    Ok(())
}

/// `echo-backend ARGS` started by the benchmark itself.
fn direct(name: &str, backend: &OsString, args: &[String]) -> Target {
    let mut command = vec![backend.clone()];
    command.extend(args.iter().map(OsString::from));
    Target {
        name: name.to_owned(),
        command,
    }
}

/// `interpose run --servers FILE` of `build`.
fn gateway_target(build: &Build, file: &Path) -> Target {
    Target {
        name: gateway(&build.name),
        command: vec![
            build.path.clone(),
            "run".into(),
            "--servers".into(),
            file.into(),
        ],
    }
}

/// Starts every target and completes its handshake, checking it lists its tool.
fn start_sessions(targets: &[(Target, &str)]) -> anyhow::Result<Vec<Session>> {
    targets
        .iter()
        .map(|(target, tool)| {
            eprintln!("gateway-bench: starting {}", target.name);
            Session::start(target, tool)
        })
        .collect()
}

fn summaries(targets: &[(Target, &str)], samples: Vec<Vec<Duration>>) -> Vec<Series> {
    targets
        .iter()
        .zip(samples)
        .map(|((target, _), mut samples)| Series::new(&target.name, &mut samples))
        .collect()
}

/// Writes `dir/file`, an `mcpServers` file that runs `backend ARGS` under each name.
fn write_servers<S: AsRef<str>>(
    dir: &Path,
    file: &str,
    names: &[S],
    backend: &OsString,
    args: &[String],
) -> anyhow::Result<PathBuf> {
    // The gateway resolves a relative command against its own directory, not ours.
    let backend = std::fs::canonicalize(backend)?;
    let backend = backend
        .to_str()
        .context("echo-backend's path is not UTF-8, which a JSON file cannot hold")?;
    let path = dir.join(file);
    std::fs::write(&path, servers_json(names, backend, args).to_string())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `{"mcpServers": {NAME: {"command": COMMAND, "args": ARGS}, ...}}`, as desktop
/// clients write it.
fn servers_json<S: AsRef<str>>(names: &[S], command: &str, args: &[String]) -> Value {
    let servers: serde_json::Map<String, Value> = names
        .iter()
        .map(|name| {
            let server = json!({ "command": command, "args": args });
            (name.as_ref().to_owned(), server)
        })
        .collect();
    json!({ "mcpServers": servers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_file_names_each_server_with_the_same_command() {
        let file = servers_json(
            &["a", "b"],
            "/bin/echo-backend",
            &["--tools".into(), "120".into()],
        );
        assert_eq!(
            file,
            json!({ "mcpServers": {
                "a": { "command": "/bin/echo-backend", "args": ["--tools", "120"] },
                "b": { "command": "/bin/echo-backend", "args": ["--tools", "120"] },
            }})
        );
    }

    #[test]
    fn a_candidate_is_a_name_and_an_existing_file() {
        let exe = std::env::current_exe().unwrap();
        let spec = format!("base={}", exe.display());
        let build = parse_candidate(&spec).unwrap();
        assert_eq!(build.name, "base");
        assert_eq!(build.path, exe.into_os_string());
        for bad in ["no-equals-sign", "=/bin/sh", "base="] {
            let error = parse_candidate(bad).err().unwrap();
            assert_eq!(error.to_string(), "--candidate wants NAME=PATH", "{bad}");
        }
        let error = parse_candidate("base=/no/such/file").err().unwrap();
        assert_eq!(
            error.to_string(),
            "--candidate base: /no/such/file is not a file"
        );
    }
}
