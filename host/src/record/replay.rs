//! `interpose replay`: runs a recording's messages, as received, through a plugin
//! chain with no client and no server, and prints the demo's table of verdicts with
//! what each rewrite changed. Against a golden file (`--expect`), it fails on any
//! difference in verdicts or payloads; `--update` writes the golden file.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::format::{Line, LineDirection, VerdictName};
use crate::demo::plugins::trace_steps;
use crate::demo::trace::Tracer;
use crate::session::intercept::{Direction, Intercepted, Interceptor, Verdict};
use crate::wire::jsonrpc::{Kind, Payload};

/// What `interpose replay` was asked to do.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The recording (JSONL).
    pub recording: PathBuf,
    /// Plugins after those of `config`, in order.
    pub plugins: Vec<PathBuf>,
    /// A configuration file whose plugins make the chain.
    pub config: Option<PathBuf>,
    /// A golden file of outcomes to compare with.
    pub expect: Option<PathBuf>,
    /// Write the golden file instead of comparing with it.
    pub update: bool,
    /// Print only the summary and differences, not the table.
    pub quiet: bool,
    pub max_message_bytes: usize,
}

/// Replays a recording as `options` say. An error when the replay differs from the
/// golden file.
pub async fn replay(options: &ReplayOptions) -> anyhow::Result<()> {
    let plugins = crate::config::plugin_list(options.config.as_deref(), &options.plugins)?;
    if plugins.is_empty() {
        bail!("no plugins to replay through: give --plugin FILE.wasm or --config FILE");
    }
    let chain = crate::plugin::load_chain(plugins, options.max_message_bytes).await?;
    let steps = Arc::new(Mutex::new(Vec::new()));
    trace_steps(&chain, steps.clone());
    let wants_request = chain.wants_request_payload();
    let tracer = Tracer::new(chain, steps);

    let file = std::fs::File::open(&options.recording)
        .with_context(|| format!("cannot open the recording {}", options.recording.display()))?;
    if !options.quiet {
        Tracer::print_header();
    }
    let started = Instant::now();
    let mut requests = Requests::default();
    let mut outcomes = Vec::new();
    for (index, text) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let text = text.with_context(|| format!("cannot read {}", options.recording.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let named = || options.recording.display().to_string();
        let line = Line::parse(&text, number).with_context(named)?;
        let outcome = replay_line(
            &tracer,
            &line,
            number,
            &mut requests,
            wants_request,
            options.quiet,
        )
        .await
        .with_context(named)?;
        outcomes.push(outcome);
    }
    let elapsed = started.elapsed();
    if !options.quiet {
        println!();
        tracer.print_totals();
    }
    println!(
        "replayed {} message(s) from {} in {:.3} s ({:.0} messages per second)",
        outcomes.len(),
        options.recording.display(),
        elapsed.as_secs_f64(),
        outcomes.len() as f64 / elapsed.as_secs_f64().max(1e-9),
    );
    let Some(golden) = &options.expect else {
        return Ok(());
    };
    if options.update {
        write_golden(golden, &outcomes)?;
        println!(
            "wrote {} outcome(s) to {}",
            outcomes.len(),
            golden.display()
        );
        return Ok(());
    }
    let expected = read_golden(golden)?;
    let differences = compare(&expected, &outcomes);
    if differences.is_empty() {
        println!(
            "the replay matches {} ({} outcomes)",
            golden.display(),
            outcomes.len()
        );
        return Ok(());
    }
    println!();
    for difference in &differences {
        println!("{difference}");
    }
    bail!(
        "the replay differs from {} in {} of {} message(s) (see above; --update rewrites it)",
        golden.display(),
        differences.len(),
        outcomes.len().max(expected.len())
    )
}

/// Requests replayed so far, per session, server, direction and id, until their
/// answer comes: what an answer's plugins may ask for, and whether the chain answered
/// the request itself (then the recorded answer never happens).
#[derive(Default)]
struct Requests {
    waiting: HashMap<(String, String, LineDirection, String), Waiting>,
}

struct Waiting {
    /// The request's params as the replayed chain forwarded them, when wanted.
    params: Option<Payload>,
    answered_by_chain: bool,
}

fn request_key(
    line: &Line,
    direction: LineDirection,
) -> Option<(String, String, LineDirection, String)> {
    let id = line.id.as_deref()?;
    Some((
        line.session.clone(),
        line.server.clone(),
        direction,
        id.get().to_owned(),
    ))
}

/// Replays one line and returns its outcome, as the golden file holds it.
async fn replay_line(
    tracer: &Tracer,
    line: &Line,
    number: usize,
    requests: &mut Requests,
    wants_request: bool,
    quiet: bool,
) -> anyhow::Result<Value> {
    let kind = Kind::from(line.kind);
    let direction = Direction::from(line.direction);
    let parts = line.received(number)?;
    let mut outcome = json!({
        "line": number,
        "session": line.session,
        "server": line.server,
        "direction": line.direction,
        "kind": line.kind,
        "method": line.method,
        "id": line.id,
    });
    let answering = match kind {
        Kind::Response | Kind::Error => request_key(line, direction.reversed().into())
            .and_then(|key| requests.waiting.remove(&key)),
        _ => None,
    };
    if answering.as_ref().is_some_and(|w| w.answered_by_chain) {
        outcome["verdict"] = json!("not reached");
        if !quiet {
            println!(
                "{:>9}  {:<3} {:<13} {:<32} {:>4} {:>9}  not reached: the chain answered its request",
                "",
                direction.arrow(),
                kind.as_str(),
                line.method,
                line.id.as_deref().map_or("", RawValue::get),
                "",
            );
        }
        return Ok(outcome);
    }
    let msg = Intercepted {
        direction,
        kind,
        method: &line.method,
        id: line.id.as_deref(),
        payload: parts.payload(),
        error: parts.error.as_ref(),
        request_payload: answering.as_ref().and_then(|w| w.params.as_ref()),
        elapsed: None,
        session: &line.session,
        shared_session: false,
        server: &line.server,
        trace: None,
        principal: None,
    };
    let verdict = tracer.intercept(msg).await;
    let plugins = tracer.row(&msg, &verdict, !quiet);
    outcome["verdict"] = json!(VerdictName::from(&verdict));
    outcome["plugins"] = json!(plugins);
    let before = || -> Value {
        match (&parts.error, parts.payload()) {
            (Some(error), _) => json!(error),
            (None, Some(payload)) => serde_json::from_str(payload.get()).unwrap_or(Value::Null),
            (None, None) => Value::Null,
        }
    };
    match &verdict {
        Verdict::Pass => {}
        Verdict::Rewrite(payload) | Verdict::Respond(payload) => {
            let after: Value = serde_json::from_str(payload.get()).unwrap_or(Value::Null);
            if !quiet {
                if matches!(verdict, Verdict::Respond(_)) && kind == Kind::Request {
                    println!("{:>13}answer: {}", "", compact(&after));
                } else {
                    for change in changes(&before(), &after) {
                        println!("{:>13}{change}", "");
                    }
                }
            }
            outcome["payload"] = after;
        }
        Verdict::Reject(error) => outcome["error"] = json!(error),
    }
    if kind == Kind::Request
        && let Some(key) = request_key(line, line.direction)
    {
        let answered_by_chain = matches!(verdict, Verdict::Respond(_) | Verdict::Reject(_));
        // What the chain forwarded is what a response's plugins would see as the request.
        let params = match &verdict {
            _ if !wants_request || answered_by_chain => None,
            Verdict::Rewrite(params) => Some(params.clone()),
            _ => msg.payload.cloned(),
        };
        requests.waiting.insert(
            key,
            Waiting {
                params,
                answered_by_chain,
            },
        );
    }
    Ok(outcome)
}

fn write_golden(path: &Path, outcomes: &[Value]) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for outcome in outcomes {
        serde_json::to_writer(&mut out, outcome)?;
        out.push(b'\n');
    }
    let mut file = std::fs::File::create(path)
        .with_context(|| format!("cannot write the golden file {}", path.display()))?;
    file.write_all(&out)
        .with_context(|| format!("cannot write the golden file {}", path.display()))
}

fn read_golden(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the golden file {} (make it with --update)",
            path.display()
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", path.display(), index + 1))
        })
        .collect()
}

/// One message whose outcome is not the golden file's.
#[derive(Debug)]
pub struct Difference {
    /// From 1, in replay order.
    pub message: usize,
    pub expected: Option<Value>,
    pub actual: Option<Value>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = self.actual.as_ref().or(self.expected.as_ref());
        let name = named.map(describe).unwrap_or_default();
        write!(f, "message {} ({name}):", self.message)?;
        match (&self.expected, &self.actual) {
            (Some(expected), Some(actual)) => {
                for change in changes(expected, actual) {
                    write!(f, "\n  {change}")?;
                }
                Ok(())
            }
            (Some(_), None) => write!(f, " in the golden file, not replayed"),
            (None, Some(_)) => write!(f, " replayed, not in the golden file"),
            (None, None) => Ok(()),
        }
    }
}

/// `line 12: session stdio, -> request tools/call id 3`
fn describe(outcome: &Value) -> String {
    let text = |key: &str| outcome[key].as_str().unwrap_or("?").to_owned();
    let arrow = match outcome["direction"].as_str() {
        Some("to-client") => "<-",
        _ => "->",
    };
    let id = match &outcome["id"] {
        Value::Null => String::new(),
        id => format!(" id {id}"),
    };
    format!(
        "recording line {}: session {}, {arrow} {} {}{id}",
        outcome["line"],
        text("session"),
        text("kind"),
        text("method"),
    )
}

/// The outcomes that differ, in order.
pub fn compare(expected: &[Value], actual: &[Value]) -> Vec<Difference> {
    (0..expected.len().max(actual.len()))
        .filter_map(|i| {
            let (e, a) = (expected.get(i), actual.get(i));
            (e != a).then(|| Difference {
                message: i + 1,
                expected: e.cloned(),
                actual: a.cloned(),
            })
        })
        .collect()
}

/// One change between two JSON values, at a JSON pointer.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Added {
        path: String,
        value: Value,
    },
    Removed {
        path: String,
        value: Value,
    },
    Replaced {
        path: String,
        before: Value,
        after: Value,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = |path: &str| {
            if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            }
        };
        match self {
            Change::Added { path, value } => write!(f, "+ {}: {}", root(path), compact(value)),
            Change::Removed { path, value } => write!(f, "- {}: {}", root(path), compact(value)),
            Change::Replaced {
                path,
                before,
                after,
            } => write!(
                f,
                "~ {}: {} -> {}",
                root(path),
                compact(before),
                compact(after)
            ),
        }
    }
}

/// What changed from `before` to `after`: the JSON patch between them (RFC 6902),
/// with the old value of each path it removes or replaces.
pub fn changes(before: &Value, after: &Value) -> Vec<Change> {
    use json_patch::PatchOperation;
    let old = |path: &str| before.pointer(path).cloned().unwrap_or(Value::Null);
    json_patch::diff(before, after)
        .0
        .into_iter()
        .filter_map(|operation| match operation {
            PatchOperation::Add(op) => Some(Change::Added {
                path: op.path.to_string(),
                value: op.value,
            }),
            PatchOperation::Remove(op) => Some(Change::Removed {
                value: old(op.path.as_str()),
                path: op.path.to_string(),
            }),
            PatchOperation::Replace(op) => Some(Change::Replaced {
                before: old(op.path.as_str()),
                path: op.path.to_string(),
                after: op.value,
            }),
            // `diff` makes only the three above.
            PatchOperation::Move(_) | PatchOperation::Copy(_) | PatchOperation::Test(_) => None,
        })
        .collect()
}

/// A value on one line, cut to a readable length.
fn compact(value: &Value) -> String {
    const MAX: usize = 120;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_path_with_its_old_and_new_value() {
        let before = json!({"content": [{"type": "text", "text": "key sk-123"}], "gone": 1});
        let after = json!({"content": [{"type": "text", "text": "key [REDACTED]"}], "new": [1]});
        let lines: Vec<String> = changes(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                r#"~ /content/0/text: "key sk-123" -> "key [REDACTED]""#,
                "+ /new: [1]",
                "- /gone: 1",
            ]
        );
        assert!(changes(&before, &before).is_empty());
        assert_eq!(
            changes(&json!(1), &json!("x"))[0].to_string(),
            r#"~ /: 1 -> "x""#
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long = json!("x".repeat(500));
        let shown = compact(&long);
        assert_eq!(shown.chars().count(), 121);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn a_difference_names_the_message_and_what_changed() {
        let golden = json!({"line": 4, "session": "stdio", "direction": "to-server",
            "kind": "request", "method": "tools/call", "id": 3, "verdict": "pass",
            "plugins": ["tool-policy pass"]});
        let mut now = golden.clone();
        now["verdict"] = json!("reject");
        now["plugins"] = json!(["tool-policy reject"]);
        now["error"] = json!({"code": -32001, "message": "denied"});
        let same = json!({"line": 1});
        let differences = compare(&[same.clone(), golden], &[same, now]);
        assert_eq!(differences.len(), 1);
        assert_eq!(
            differences[0].to_string(),
            "message 2 (recording line 4: session stdio, -> request tools/call id 3):\n  \
             + /error: {\"code\":-32001,\"message\":\"denied\"}\n  \
             ~ /plugins/0: \"tool-policy pass\" -> \"tool-policy reject\"\n  \
             ~ /verdict: \"pass\" -> \"reject\""
        );
        let extra = compare(&[], &[json!({"line": 9, "kind": "notification"})]);
        assert!(
            extra[0]
                .to_string()
                .ends_with("replayed, not in the golden file")
        );
    }
}
