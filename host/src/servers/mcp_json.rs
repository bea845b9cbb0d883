//! `mcpServers` files (`interpose run --servers FILE.json`), read as the clients that
//! write them do:
//!
//! - Claude Desktop (`claude_desktop_config.json`), Claude Code (`.mcp.json`), Cursor
//!   (`.cursor/mcp.json`) and FastMCP (`MCPConfig`): a top-level `mcpServers` object;
//! - VS Code (`.vscode/mcp.json`): a top-level `servers` object, entries with `type`, and
//!   comments and trailing commas (the file is JSONC).
//!
//! Keys some client knows but interpose has no use for (`description`, `icon`,
//! `alwaysAllow`, VS Code's `inputs`, ...) are skipped and logged at debug; a key with
//! the wrong type is an error naming the file, the server and the key. Variables are
//! expanded as the clients do (see [`Expander`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Bearer, Entry, EnvLookup, ServerSpec, Transport, check_name, unless_disabled};
use crate::config::ConfigError;
use crate::session::lifecycle::RestartPolicy;
use crate::upstream::{HttpTransport, UpstreamSpec};

/// Reads and checks an `mcpServers` file; relative `cwd`s are relative to its directory.
pub fn load(path: &Path, env: EnvLookup) -> Result<Vec<ServerSpec>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    parse(&text, path, env)
}

/// Parses `mcpServers` file text; `origin` names it in errors and anchors relative
/// paths.
pub fn parse(text: &str, origin: &Path, env: EnvLookup) -> Result<Vec<ServerSpec>, ConfigError> {
    let plain = strip_jsonc(text);
    let root: Value = serde_json::from_str(&plain).map_err(|e| ConfigError::Parse {
        path: origin.to_owned(),
        message: json_error(&e),
    })?;
    let file_error = |message: String| ConfigError::Servers {
        path: origin.to_owned(),
        message,
    };
    let Value::Object(root) = root else {
        return Err(file_error(format!(
            "the file must hold a JSON object with `mcpServers`, found {}",
            kind(&root)
        )));
    };
    let key = match (
        root.contains_key("mcpServers"),
        root.contains_key("servers"),
    ) {
        (true, true) => {
            return Err(file_error(
                "both `mcpServers` and `servers` are given: keep one".into(),
            ));
        }
        (true, false) => "mcpServers",
        (false, true) => "servers",
        (false, false) => {
            return Err(file_error(
                "no `mcpServers` object (nor VS Code's `servers`)".into(),
            ));
        }
    };
    for other in root.keys().filter(|k| *k != key) {
        tracing::debug!(file = %origin.display(), "skipping top-level key `{other}`");
    }
    let Some(Value::Object(entries)) = root.get(key) else {
        let found = root.get(key).map_or("nothing", kind);
        return Err(file_error(format!(
            "`{key}` must be an object, found {found}"
        )));
    };
    if let Some(name) = duplicate_server(&plain, key) {
        return Err(ConfigError::Server {
            path: origin.to_owned(),
            server: name,
            message: "defined twice in the file".into(),
        });
    }
    let workspace = workspace_folder(origin);
    let expander = Expander {
        env,
        workspace: workspace.as_deref(),
    };
    let base = origin.parent().unwrap_or(Path::new("."));
    let mut servers = Vec::new();
    for (name, entry) in entries {
        let server = server(name, entry, &expander, base, origin).map_err(|message| {
            ConfigError::Server {
                path: origin.to_owned(),
                server: name.clone(),
                message,
            }
        })?;
        servers.extend(server);
    }
    Ok(servers)
}

/// One entry of the `mcpServers` object; `None` for a disabled entry left out by
/// [`unless_disabled`]. Wrong types are errors, disabled or not.
fn server(
    name: &str,
    entry: &Value,
    expander: &Expander,
    base: &Path,
    origin: &Path,
) -> Result<Option<ServerSpec>, String> {
    check_name(name)?;
    let Value::Object(keys) = entry else {
        return Err(format!(
            "the entry must be an object, found {}",
            kind(entry)
        ));
    };
    let enabled = !match keys.get("disabled") {
        None => false,
        Some(Value::Bool(disabled)) => *disabled,
        Some(other) => return Err(wrong("disabled", "a boolean", other)),
    };
    let text = |key: &str| -> Result<Option<&str>, String> {
        match keys.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(wrong(key, "a string", other)),
        }
    };
    let mut transport = None;
    for key in ["type", "transport"] {
        let Some(named) = text(key)? else { continue };
        let named = parse_transport(named).ok_or_else(|| {
            format!(
                "`{key}` must be \"stdio\", \"http\", \"streamable-http\" or \"sse\", got \"{named}\""
            )
        })?;
        match transport {
            Some((first, earlier)) if earlier != named => {
                return Err(format!("`{first}` and `{key}` name different transports"));
            }
            _ => transport = Some((key, named)),
        }
    }
    let timeout = match keys.get("timeout") {
        None => None,
        Some(value) => match value.as_u64() {
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => {
                return Err(format!(
                    "`timeout` must be a whole number of milliseconds, at least 1, found {}",
                    shown(value)
                ));
            }
        },
    };
    // interpose's own keys, which clients skip as unknown.
    let start_timeout = match keys.get("start_timeout_ms") {
        None => None,
        Some(value) => match value.as_u64() {
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => {
                return Err(format!(
                    "`start_timeout_ms` must be a whole number of milliseconds, at least 1, found {}",
                    shown(value)
                ));
            }
        },
    };
    let restart = match text("restart")? {
        None => None,
        Some(named) => Some(RestartPolicy::parse(named).ok_or_else(|| {
            format!("`restart` must be \"never\" or \"on-failure\", got \"{named}\"")
        })?),
    };
    let lazy = match keys.get("lazy") {
        None => false,
        Some(Value::Bool(lazy)) => *lazy,
        Some(other) => return Err(wrong("lazy", "a boolean", other)),
    };
    let auth = text("auth")?;
    if auth == Some("oauth") {
        return Err(
            "`auth` = \"oauth\" is not supported: give the token in `headers` or as `auth`".into(),
        );
    }
    if keys.contains_key("envFile") {
        return Err("`envFile` is not supported: put the variables in `env`".into());
    }
    let (command, url, cwd) = (text("command")?, text("url")?, text("cwd")?);
    let args = string_list(keys, "args")?;
    let env = string_map(keys, "env", true)?;
    let headers = string_map(keys, "headers", false)?;
    for key in keys.keys().filter(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        tracing::debug!(file = %origin.display(), server = name, "skipping key `{key}`");
    }

    // The types are right; now the values, variables expanded.
    let expand = |key: &str, text: &str| expander.expand(text).map_err(|e| format!("`{key}`: {e}"));
    let expand_pairs = |key: &str, pairs: Vec<(String, String)>| {
        pairs
            .into_iter()
            .map(|(name, value)| {
                let value = expand(&format!("{key}.{name}"), &value)?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let resolved = || -> Result<UpstreamSpec, String> {
        let bearer = match auth.map(|auth| expand("auth", auth)).transpose()? {
            Some(token) if token.trim().is_empty() => {
                return Err("`auth` must not be empty".into());
            }
            token => token.map(|token| ("auth", Bearer::Token(token))),
        };
        let entry = Entry {
            command: command.map(|c| expand("command", c)).transpose()?,
            args: args
                .map(|args| {
                    (args.iter().enumerate())
                        .map(|(index, arg)| expand(&format!("args[{index}]"), arg))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?,
            env: env.map(|env| expand_pairs("env", env)).transpose()?,
            cwd: cwd
                .map(|cwd| expand("cwd", cwd).map(|cwd| base.join(cwd)))
                .transpose()?,
            url: url.map(|url| expand("url", url)).transpose()?,
            transport,
            headers: headers
                .map(|headers| expand_pairs("headers", headers))
                .transpose()?,
            bearer,
            oauth: None,
        };
        entry.into_upstream(expander.env)
    };
    let Some(upstream) = unless_disabled(resolved(), enabled, origin, name)? else {
        return Ok(None);
    };
    Ok(Some(ServerSpec {
        name: name.to_owned(),
        lazy: super::lazy_command(lazy, matches!(upstream, UpstreamSpec::Command(_)))?,
        upstream,
        timeout,
        start_timeout,
        restart,
        enabled,
        plugins: Vec::new(),
        origin: origin.to_owned(),
    }))
}

/// The first name given twice in the `key` object of `text` (already known to be an
/// object holding one): a JSON reader keeps the last silently, which would hide a
/// server.
fn duplicate_server(text: &str, key: &str) -> Option<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

    /// Reads an object's keys, stopping at the first repeated one.
    struct FirstRepeat(Option<String>);

    impl<'de> Visitor<'de> for &mut FirstRepeat {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if self.0.is_none() && !seen.insert(name.clone()) {
                    self.0 = Some(name);
                }
            }
            Ok(())
        }
    }

    /// The root object: the servers object's keys checked, the rest skipped.
    struct Root<'k> {
        key: &'k str,
        repeat: FirstRepeat,
    }

    impl<'de> Visitor<'de> for &mut Root<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(name) = map.next_key::<String>()? {
                if name == self.key {
                    map.next_value_seed(Seed(&mut self.repeat))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    struct Seed<'a>(&'a mut FirstRepeat);

    impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self.0)
        }
    }

    let mut root = Root {
        key,
        repeat: FirstRepeat(None),
    };
    let mut reader = serde_json::Deserializer::from_str(text);
    reader.deserialize_map(&mut root).ok()?;
    root.repeat.0
}

/// The keys read; any other is skipped.
const KNOWN_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "type",
    "transport",
    "headers",
    "disabled",
    "timeout",
    "auth",
    "start_timeout_ms",
    "restart",
    "lazy",
];

/// The transport names clients write: VS Code and Claude Code `stdio`, `http`, `sse`;
/// FastMCP `streamable-http`; Cline `streamableHttp`.
fn parse_transport(name: &str) -> Option<Transport> {
    Some(match name {
        "stdio" => Transport::Stdio,
        "http" | "streamable-http" | "streamableHttp" => {
            Transport::Http(HttpTransport::StreamableHttp)
        }
        "sse" => Transport::Http(HttpTransport::Sse),
        _ => return None,
    })
}

/// `args`: an array of strings.
fn string_list<'a>(
    keys: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<&'a str>>, String> {
    let Some(value) = keys.get(key) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(wrong(key, "an array of strings", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) => Ok(text.as_str()),
            other => Err(wrong(&format!("{key}[{index}]"), "a string", other)),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// `env` or `headers`: an object of strings. `numbers` accepts numbers as their text,
/// as VS Code does for `env`.
fn string_map(
    keys: &Map<String, Value>,
    key: &str,
    numbers: bool,
) -> Result<Option<Vec<(String, String)>>, String> {
    let Some(value) = keys.get(key) else {
        return Ok(None);
    };
    let Value::Object(pairs) = value else {
        return Err(wrong(key, "an object of strings", value));
    };
    pairs
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) if numbers => number.to_string(),
                other => return Err(wrong(&format!("{key}.{name}"), "a string", other)),
            };
            Ok((name.clone(), text))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

fn wrong(key: &str, expected: &str, found: &Value) -> String {
    format!("`{key}` must be {expected}, found {}", kind(found))
}

/// What a JSON value is, for errors: "a string", "an array", ...
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A scalar as written, anything else by its kind.
fn shown(value: &Value) -> String {
    match value {
        Value::Number(_) | Value::Bool(_) | Value::Null => value.to_string(),
        other => kind(other).to_owned(),
    }
}

/// A JSON error as `LINE:COLUMN: message`, like the TOML errors of `interpose.toml`.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    format!("{}:{}: {message}", e.line(), e.column())
}

/// `text` with JSONC's comments and trailing commas blanked out (replaced by spaces,
/// so that error positions stay right). Plain JSON comes back unchanged.
fn strip_jsonc(text: &str) -> String {
    let mut out: Vec<u8> = text.as_bytes().to_vec();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    // The position of a comma that may turn out to be trailing.
    let mut pending_comma: Option<usize> = None;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match (b, bytes.get(i + 1)) {
            (b'/', Some(b'/')) => {
                let end = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
                continue;
            }
            (b'/', Some(b'*')) => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                blank(&mut out, i, end);
                i = end;
                continue;
            }
            _ => {}
        }
        match b {
            b'"' => {
                in_string = true;
                pending_comma = None;
            }
            b',' => pending_comma = Some(i),
            b'}' | b']' => {
                if let Some(comma) = pending_comma.take() {
                    out[comma] = b' ';
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => pending_comma = None,
        }
        i += 1;
    }
    // Only ASCII bytes were replaced, by ASCII: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// The workspace folder of a `.vscode/mcp.json` or `.cursor/mcp.json`: the directory
/// holding `.vscode` or `.cursor`.
fn workspace_folder(file: &Path) -> Option<PathBuf> {
    let dir = file.parent()?;
    let name = dir.file_name()?.to_str()?;
    matches!(name, ".vscode" | ".cursor")
        .then(|| dir.parent().map(Path::to_path_buf))
        .flatten()
}

/// Expands the variables clients expand in `command`, `args`, `env`, `cwd`, `url`,
/// `headers` (and FastMCP's `auth`):
///
/// - `${env:NAME}`: Cursor and VS Code;
/// - `${NAME}` and `${NAME:-default}`: Claude Code;
/// - `${userHome}`, `${workspaceFolder}`, `${workspaceFolderBasename}`,
///   `${pathSeparator}`, `${/}`: Cursor and VS Code.
///
/// Claude Desktop and FastMCP expand nothing; their files hold no `${`. Anything
/// else in `${...}` (VS Code's `${input:ID}`, which prompts the user) is an error, as
/// is an unset variable without a default: the server would start with the wrong value.
/// Text with no `${`, or no closing `}`, is left as written.
#[derive(Clone, Copy)]
struct Expander<'a> {
    env: EnvLookup<'a>,
    workspace: Option<&'a Path>,
}

impl Expander<'_> {
    fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            out.push_str(&rest[..start]);
            let inner = &rest[start + 2..start + 2 + len];
            out.push_str(&self.variable(inner)?);
            rest = &rest[start + 2 + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn variable(&self, inner: &str) -> Result<String, String> {
        let unset = |name: &str| {
            Err(format!(
                "`${{{inner}}}`: the environment variable `{name}` is not set"
            ))
        };
        let workspace = || {
            self.workspace.ok_or_else(|| {
                format!(
                    "`${{{inner}}}`: the file is not in a `.vscode` or `.cursor` directory, so \
                     there is no workspace folder"
                )
            })
        };
        match inner {
            "/" | "pathSeparator" => return Ok(std::path::MAIN_SEPARATOR.to_string()),
            "userHome" => return (self.env)("HOME").map_or_else(|| unset("HOME"), Ok),
            "workspaceFolder" => return Ok(workspace()?.display().to_string()),
            "workspaceFolderBasename" => {
                let folder = workspace()?;
                let base = folder.file_name().unwrap_or(folder.as_os_str());
                return Ok(base.to_string_lossy().into_owned());
            }
            _ => {}
        }
        if let Some(name) = inner.strip_prefix("env:") {
            return (self.env)(name).map_or_else(|| unset(name), Ok);
        }
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let is_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name {
            return Err(format!(
                "`${{{inner}}}` is filled in by the client that wrote the file; interpose \
                 cannot: use `${{env:NAME}}` or write the value"
            ));
        }
        // As in a shell: `:-` also replaces a variable set to nothing.
        match ((self.env)(name), default) {
            (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
            (Some(value), _) => Ok(value),
            (None, Some(default)) => Ok(default.to_owned()),
            (None, None) => unset(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::tests::{command_of, env_of, http_of};

    /// A sample file of `tests/config/`, as the client's documentation shows it.
    fn sample(relative: &str) -> (PathBuf, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/config")
            .join(relative);
        let text = std::fs::read_to_string(&path).expect("sample file");
        (path, text)
    }

    fn parse_sample(relative: &str, env: &[(&str, &str)]) -> Vec<ServerSpec> {
        let (path, text) = sample(relative);
        parse(&text, &path, &env_of(env)).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    fn names(servers: &[ServerSpec]) -> Vec<&str> {
        servers.iter().map(|s| s.name.as_str()).collect()
    }

    /// Parses `text` as `servers.json` with an empty environment; the error as the user
    /// reads it.
    fn parse_err(text: &str) -> String {
        match parse(text, Path::new("servers.json"), &env_of(&[])) {
            Ok(servers) => panic!("expected an error, got {:?}", names(&servers)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn interpose_lifecycle_keys_are_read_where_clients_skip_them() {
        let text = r#"{"mcpServers": {
            "files": {"command": "npx", "start_timeout_ms": 2500, "restart": "on-failure", "lazy": true},
            "web": {"url": "http://h/mcp"}
        }}"#;
        let servers = parse(text, Path::new("servers.json"), &env_of(&[])).unwrap();
        assert_eq!(servers[0].start_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(servers[0].restart, Some(RestartPolicy::OnFailure));
        assert!(servers[0].lazy);
        assert_eq!(
            (
                servers[1].start_timeout,
                servers[1].restart,
                servers[1].lazy
            ),
            (None, None, false)
        );
        for (text, error) in [
            (
                r#"{"mcpServers": {"files": {"command": "npx", "start_timeout_ms": "2s"}}}"#,
                "servers.json: server `files`: `start_timeout_ms` must be a whole number of \
                 milliseconds, at least 1, found a string",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "restart": "always"}}}"#,
                "servers.json: server `files`: `restart` must be \"never\" or \"on-failure\", \
                 got \"always\"",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "lazy": "yes"}}}"#,
                "servers.json: server `files`: `lazy` must be a boolean, found a string",
            ),
            (
                r#"{"mcpServers": {"web": {"url": "http://h/mcp", "lazy": true}}}"#,
                "servers.json: server `web`: `lazy` applies to a `command` server, not to a \
                 `url` one",
            ),
        ] {
            assert_eq!(parse_err(text), error);
        }
    }

    #[test]
    fn claude_desktop_file_loads() {
        let servers = parse_sample("claude_desktop_config.json", &[]);
        assert_eq!(names(&servers), ["filesystem", "github", "linear"]);
        let filesystem = command_of(&servers[0]);
        assert_eq!(filesystem.program, "npx");
        assert_eq!(
            filesystem.args,
            [
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/Users/username/Desktop",
                "/Users/username/Downloads"
            ]
        );
        assert_eq!(filesystem.cwd, None);
        assert_eq!(
            command_of(&servers[1]).env,
            [(
                "GITHUB_PERSONAL_ACCESS_TOKEN".to_owned(),
                "<YOUR_TOKEN>".to_owned()
            )]
        );
        // A remote server reached through mcp-remote is a command like any other.
        assert_eq!(
            command_of(&servers[2]).args[2],
            "https://mcp.linear.app/sse"
        );
        assert!(servers.iter().all(|s| s.enabled && s.timeout.is_none()));
    }

    #[test]
    fn claude_code_file_expands_variables_with_defaults() {
        let servers = parse_sample(
            "claude_code.mcp.json",
            &[("API_KEY", "k-123"), ("AIRTABLE_API_KEY", "air")],
        );
        assert_eq!(names(&servers), ["airtable", "api-server", "asana"]);
        assert_eq!(
            command_of(&servers[0]).env,
            [("AIRTABLE_API_KEY".to_owned(), "air".to_owned())]
        );
        let (kind, api) = http_of(&servers[1]);
        assert_eq!(kind, "streamable-http");
        assert_eq!(api.url.as_str(), "https://api.example.com/mcp");
        assert_eq!(api.headers["authorization"], "Bearer k-123");
        let (kind, asana) = http_of(&servers[2]);
        assert_eq!(
            (kind, asana.url.as_str()),
            ("sse", "https://mcp.asana.com/sse")
        );

        // A set variable wins over the default.
        let servers = parse_sample(
            "claude_code.mcp.json",
            &[
                ("API_KEY", "k"),
                ("AIRTABLE_API_KEY", "a"),
                ("API_BASE_URL", "http://127.0.0.1:9"),
            ],
        );
        assert_eq!(
            http_of(&servers[1]).1.url.as_str(),
            "http://127.0.0.1:9/mcp"
        );
    }

    #[test]
    fn cursor_file_expands_env_home_and_workspace() {
        let servers = parse_sample(
            "cursor/.cursor/mcp.json",
            &[
                ("API_KEY", "a1"),
                ("HOME", "/home/u"),
                ("CONTEXT7_API_KEY", "c7"),
            ],
        );
        assert_eq!(
            names(&servers),
            ["context7", "legacy", "local-tools", "playwright"]
        );
        let (kind, context7) = http_of(&servers[0]);
        assert_eq!(kind, "streamable-http");
        assert_eq!(context7.headers["context7_api_key"], "c7");
        let (kind, legacy) = http_of(&servers[1]);
        assert_eq!(
            (kind, legacy.url.as_str()),
            ("sse", "http://localhost:3000/sse")
        );
        assert!(!servers[1].enabled);
        let local = command_of(&servers[2]);
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/config/cursor");
        assert_eq!(
            local.args,
            [format!("{}/tools/mcp_server.py", workspace.display())]
        );
        assert_eq!(
            local.env,
            [
                ("API_KEY".to_owned(), "a1".to_owned()),
                ("CACHE_DIR".to_owned(), "/home/u/.cache/mcp".to_owned())
            ]
        );
        assert_eq!(
            command_of(&servers[3]).args,
            ["-y", "@playwright/mcp@latest"]
        );
    }

    #[test]
    fn vscode_file_with_comments_and_trailing_commas_loads() {
        let servers = parse_sample("vscode/.vscode/mcp.json", &[("PERPLEXITY_API_KEY", "p")]);
        assert_eq!(names(&servers), ["Perplexity", "fetch", "github"]);
        assert_eq!(
            command_of(&servers[0]).env,
            [("PERPLEXITY_API_KEY".to_owned(), "p".to_owned())]
        );
        assert_eq!(command_of(&servers[1]).program, "uvx");
        let (kind, github) = http_of(&servers[2]);
        assert_eq!(
            (kind, github.url.as_str()),
            ("streamable-http", "https://api.githubcopilot.com/mcp/")
        );
    }

    #[test]
    fn fastmcp_file_loads_transport_auth_timeout_and_cwd() {
        let servers = parse_sample("fastmcp.json", &[]);
        assert_eq!(names(&servers), ["events", "my-server", "weather"]);
        let (kind, events) = http_of(&servers[0]);
        // FastMCP's rule: a path ending in /sse (or /sse/) is legacy SSE.
        assert_eq!(
            (kind, events.url.as_str()),
            ("sse", "https://events.example.com/sse/")
        );
        let mine = command_of(&servers[1]);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/config");
        assert_eq!(mine.cwd, Some(dir.join("servers/my-server")));
        assert_eq!(servers[1].timeout, Some(Duration::from_millis(30_000)));
        let (kind, weather) = http_of(&servers[2]);
        assert_eq!(kind, "streamable-http");
        assert_eq!(weather.headers["x-region"], "eu");
        assert_eq!(weather.headers["authorization"], "Bearer weather-token");
        assert!(weather.headers["authorization"].is_sensitive());
    }

    #[test]
    fn wrong_types_name_the_file_server_and_key() {
        let cases = [
            (
                r#"{"mcpServers": {"files": {"command": "npx", "args": "-y"}}}"#,
                "servers.json: server `files`: `args` must be an array of strings, found a string",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "args": ["-y", 3]}}}"#,
                "servers.json: server `files`: `args[1]` must be a string, found a number",
            ),
            (
                r#"{"mcpServers": {"files": {"command": ["npx"]}}}"#,
                "servers.json: server `files`: `command` must be a string, found an array",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "env": ["A=1"]}}}"#,
                "servers.json: server `files`: `env` must be an object of strings, found an array",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "env": {"A": true}}}}"#,
                "servers.json: server `files`: `env.A` must be a string, found a boolean",
            ),
            (
                r#"{"mcpServers": {"web": {"url": "http://x/mcp", "headers": {"X-Key": 1}}}}"#,
                "servers.json: server `web`: `headers.X-Key` must be a string, found a number",
            ),
            (
                r#"{"mcpServers": {"web": {"url": "http://x/mcp", "headers": "X-Key: 1"}}}"#,
                "servers.json: server `web`: `headers` must be an object of strings, found a string",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "disabled": "yes"}}}"#,
                "servers.json: server `files`: `disabled` must be a boolean, found a string",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "timeout": "30s"}}}"#,
                "servers.json: server `files`: `timeout` must be a whole number of milliseconds, \
                 at least 1, found a string",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "timeout": 1.5}}}"#,
                "servers.json: server `files`: `timeout` must be a whole number of milliseconds, \
                 at least 1, found 1.5",
            ),
            (
                r#"{"mcpServers": {"files": {"command": "npx", "timeout": 0}}}"#,
                "servers.json: server `files`: `timeout` must be a whole number of milliseconds, \
                 at least 1, found 0",
            ),
            (
                r#"{"mcpServers": {"web": {"url": 8080}}}"#,
                "servers.json: server `web`: `url` must be a string, found a number",
            ),
            (
                r#"{"mcpServers": {"web": {"url": "http://x/mcp", "type": 1}}}"#,
                "servers.json: server `web`: `type` must be a string, found a number",
            ),
            (
                r#"{"mcpServers": {"files": "npx -y server"}}"#,
                "servers.json: server `files`: the entry must be an object, found a string",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_err(text), expected, "for {text}");
        }
    }

    #[test]
    fn inconsistent_entries_are_explained() {
        let cases = [
            (
                r#"{"mcpServers": {"x": {"description": "nothing to run"}}}"#,
                "servers.json: server `x`: needs `command` (a local server) or `url` (a remote one)",
            ),
            (
                r#"{"mcpServers": {"x": {"command": "npx", "url": "http://h/mcp"}}}"#,
                "servers.json: server `x`: give either `command` or `url`, not both",
            ),
            (
                r#"{"mcpServers": {"x": {"url": "http://h/mcp", "args": ["a"]}}}"#,
                "servers.json: server `x`: `args` applies to a `command` server, not to a `url` one",
            ),
            (
                r#"{"mcpServers": {"x": {"command": "npx", "headers": {"A": "b"}}}}"#,
                "servers.json: server `x`: `headers` applies to a `url` server, not to a `command` one",
            ),
            (
                r#"{"mcpServers": {"x": {"command": "npx", "type": "http"}}}"#,
                "servers.json: server `x`: `type` names an HTTP transport, but the server has a \
                 `command` and no `url`",
            ),
            (
                r#"{"mcpServers": {"x": {"url": "http://h/mcp", "type": "stdio"}}}"#,
                "servers.json: server `x`: `type` is \"stdio\", but the server has a `url` and no \
                 `command`",
            ),
            (
                r#"{"mcpServers": {"x": {"url": "http://h/mcp", "type": "websocket"}}}"#,
                "servers.json: server `x`: `type` must be \"stdio\", \"http\", \"streamable-http\" \
                 or \"sse\", got \"websocket\"",
            ),
            (
                r#"{"mcpServers": {"x": {"url": "http://h/mcp", "type": "http", "transport": "sse"}}}"#,
                "servers.json: server `x`: `type` and `transport` name different transports",
            ),
            (
                r#"{"mcpServers": {"x": {"url": "ftp://h/mcp"}}}"#,
                "servers.json: server `x`: `url` must be an http:// or https:// URL, got `ftp://h/mcp`",
            ),
            (
                r#"{"mcpServers": {"x": {"url": "http://h/mcp", "headers": {"Bad Name": "v"}}}}"#,
                "servers.json: server `x`: `headers`: invalid header name `Bad Name`",
            ),
            (
                r#"{"mcpServers": {"x": {"command": ""}}}"#,
                "servers.json: server `x`: `command` must not be empty",
            ),
            (
                r#"{"mcpServers": {"x": {"url": "http://h/mcp", "auth": "oauth"}}}"#,
                "servers.json: server `x`: `auth` = \"oauth\" is not supported: give the token in \
                 `headers` or as `auth`",
            ),
            (
                r#"{"mcpServers": {"x": {"command": "npx", "envFile": ".env"}}}"#,
                "servers.json: server `x`: `envFile` is not supported: put the variables in `env`",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_err(text), expected, "for {text}");
        }
    }

    #[test]
    fn malformed_files_are_explained() {
        let cases = [
            (
                "{\"mcpServers\": {\n  \"x\": {\"command\": \"npx\"\n}",
                "servers.json:3:1: EOF while parsing an object",
            ),
            (
                r#"["npx"]"#,
                "servers.json: the file must hold a JSON object with `mcpServers`, found an array",
            ),
            (
                r#"{"mcp_servers": {}}"#,
                "servers.json: no `mcpServers` object (nor VS Code's `servers`)",
            ),
            (
                r#"{"mcpServers": []}"#,
                "servers.json: `mcpServers` must be an object, found an array",
            ),
            (
                r#"{"mcpServers": {}, "servers": {}}"#,
                "servers.json: both `mcpServers` and `servers` are given: keep one",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_err(text), expected, "for {text}");
        }
    }

    #[test]
    fn a_server_defined_twice_in_a_file_is_named() {
        assert_eq!(
            parse_err(
                r#"{"mcpServers": {"files": {"command": "npx"}, "web": {"url": "http://h/mcp"},
                    "files": {"command": "uvx"}}, "other": {"files": 1, "files": 2}}"#
            ),
            "servers.json: server `files`: defined twice in the file"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(
            parse_err(r#"{"mcpServers": {"my server": {"command": "npx"}}}"#),
            "servers.json: server `my server`: the name may only hold ASCII letters, digits, `_` \
             and `-` (it prefixes tool names)"
        );
        assert_eq!(
            parse_err(r#"{"mcpServers": {"": {"command": "npx"}}}"#),
            "servers.json: server ``: a server name must not be empty"
        );
        let long = "s".repeat(33);
        assert_eq!(
            parse_err(&format!(
                r#"{{"mcpServers": {{"{long}": {{"command": "npx"}}}}}}"#
            )),
            format!(
                "servers.json: server `{long}`: the name is longer than 32 characters (it \
                 prefixes tool names)"
            )
        );
    }

    #[test]
    fn variables_clients_fill_in_are_refused_or_required() {
        assert_eq!(
            parse_err(
                r#"{"servers": {"p": {"type": "stdio", "command": "npx", "env": {"K": "${input:key}"}}}}"#
            ),
            "servers.json: server `p`: `env.K`: `${input:key}` is filled in by the client that \
             wrote the file; interpose cannot: use `${env:NAME}` or write the value"
        );
        assert_eq!(
            parse_err(
                r#"{"mcpServers": {"w": {"url": "http://h/mcp", "headers": {"Authorization": "Bearer ${env:TOKEN}"}}}}"#
            ),
            "servers.json: server `w`: `headers.Authorization`: `${env:TOKEN}`: the environment \
             variable `TOKEN` is not set"
        );
        assert_eq!(
            parse_err(r#"{"mcpServers": {"c": {"command": "${TOOL}/bin/server"}}}"#),
            "servers.json: server `c`: `command`: `${TOOL}`: the environment variable `TOOL` is \
             not set"
        );
        assert_eq!(
            parse_err(
                r#"{"mcpServers": {"c": {"command": "npx", "args": ["${workspaceFolder}/s.py"]}}}"#
            ),
            "servers.json: server `c`: `args[0]`: `${workspaceFolder}`: the file is not in a \
             `.vscode` or `.cursor` directory, so there is no workspace folder"
        );
    }

    #[test]
    fn a_disabled_server_that_cannot_be_resolved_is_left_out() {
        let servers = parse(
            r#"{"mcpServers": {
                "w": {"url": "${env:BASE}/mcp", "disabled": true},
                "p": {"command": "npx", "env": {"K": "${input:key}"}, "disabled": true},
                "c": {"command": "npx", "disabled": true}}}"#,
            Path::new("servers.json"),
            &env_of(&[]),
        )
        .unwrap();
        assert_eq!(names(&servers), ["c"]);
        assert!(!servers[0].enabled);
        // Wrong types are errors all the same.
        assert_eq!(
            parse_err(r#"{"mcpServers": {"w": {"url": ["http://h/mcp"], "disabled": true}}}"#),
            "servers.json: server `w`: `url` must be a string, found an array"
        );
    }

    #[test]
    fn text_without_variables_is_left_alone() {
        let servers = parse(
            r#"{"mcpServers": {"c": {"command": "sh", "args": ["-c", "echo $HOME ${unclosed", "{}"]}}}"#,
            Path::new("servers.json"),
            &env_of(&[]),
        )
        .unwrap();
        assert_eq!(
            command_of(&servers[0]).args,
            ["-c", "echo $HOME ${unclosed", "{}"]
        );
    }

    #[test]
    fn jsonc_stripping_keeps_strings_and_positions() {
        let text =
            "{\"a\": \"// not a comment, /* nor this */\", // gone\n \"b\": [1, 2,], /* x */ }";
        let plain = strip_jsonc(text);
        assert_eq!(plain.len(), text.len());
        let value: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(value["a"], "// not a comment, /* nor this */");
        assert_eq!(value["b"], serde_json::json!([1, 2]));
        // Escaped quotes do not end a string.
        assert_eq!(strip_jsonc(r#"{"a": "x\" // y"}"#), r#"{"a": "x\" // y"}"#);
    }
}
