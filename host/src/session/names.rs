//! How a gateway names what several servers offer through one endpoint, and finds the
//! server again from the name a client uses.
//!
//! Tools and prompts are exposed as `PREFIX` + `_` + name, resources and resource
//! templates as `PREFIX` + `+` + URI (a URI with a scheme stays a valid URI: `files+
//! file:///a` has the scheme `files+file`), as agentgateway writes them. A server's
//! prefix is its configured name, made fit for tool names ([`tool_prefix`]) and for
//! URI schemes ([`uri_prefix`]). Names are
//! learnt from the list results that pass through ([`Names::learn`]), so a client's
//! call is routed by the table, not by guessing where a server's name ends; a name not
//! seen yet is split at the longest server name that prefixes it.
//!
//! Clients refuse tool names longer than 64 characters or outside `[A-Za-z0-9_-]`
//! (Claude's and OpenAI's APIs): a prefixed name longer than 64 is cut to 55 and ends in
//! `-` and 8 hex digits of a hash of the whole name, the same every time. Two servers'
//! names that meet in one exposed name are a collision: the first server (in
//! configuration order) keeps it, the other's is left out of the list and reported.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// The longest tool or prompt name clients accept.
pub const MAX_NAME_LEN: usize = 64;
/// Between a server's name and a tool's or prompt's.
pub const NAME_SEPARATOR: char = '_';
/// Between a server's name and a resource URI.
pub const URI_SEPARATOR: char = '+';

/// When names carry their server's name: `prefix` in `[gateway]`, `--prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum PrefixMode {
    Always,
    /// Only when more than one server is configured: one server keeps its names.
    #[default]
    WhenSeveral,
    /// Never: a name two servers share is a collision.
    Never,
}

impl std::str::FromStr for PrefixMode {
    type Err = String;

    fn from_str(mode: &str) -> Result<Self, String> {
        match mode {
            "always" => Ok(PrefixMode::Always),
            "when-several" => Ok(PrefixMode::WhenSeveral),
            "never" => Ok(PrefixMode::Never),
            other => Err(format!(
                "unknown prefix mode `{other}`: expected `always`, `when-several` or `never`"
            )),
        }
    }
}

impl TryFrom<String> for PrefixMode {
    type Error = String;

    fn try_from(mode: String) -> Result<Self, String> {
        mode.parse()
    }
}

/// What kind of name: tools and prompts are named, resources have URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    Tool,
    Prompt,
    Resource,
    ResourceTemplate,
}

/// Where an exposed name leads: a server (by its place in the configuration) and the
/// name or URI that server knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub server: usize,
    pub name: String,
}

/// A name two servers would expose alike; the first keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kind: NameKind,
    pub exposed: String,
    pub kept: usize,
    pub left_out: usize,
}

/// The servers' prefixes and what has been exposed of them, for one session.
#[derive(Debug, Clone)]
pub struct Names {
    servers: Vec<Prefixes>,
    prefixed: bool,
    exposed: HashMap<(NameKind, String), Origin>,
    /// Counts the changes to `exposed`: two merges of the same lists under one version
    /// write the same (see [`super::lists::MergedLists`]).
    version: u64,
}

/// One server's prefixes: for tool and prompt names, and for URIs.
#[derive(Debug, Clone)]
struct Prefixes {
    name: String,
    uri: String,
}

impl Names {
    /// `servers`: their names as configured, in configuration order. Their prefixes
    /// must differ (see [`tool_prefix`], [`uri_prefix`]); the configuration checks.
    pub fn new(servers: Vec<String>, mode: PrefixMode) -> Self {
        let servers: Vec<Prefixes> = servers
            .iter()
            .map(|name| Prefixes {
                name: tool_prefix(name),
                uri: uri_prefix(name),
            })
            .collect();
        let prefixed = match mode {
            PrefixMode::Always => true,
            PrefixMode::WhenSeveral => servers.len() > 1,
            PrefixMode::Never => false,
        };
        Names {
            servers,
            prefixed,
            exposed: HashMap::new(),
            version: 0,
        }
    }

    /// The name a client sees for `name` of `server`.
    pub fn expose(&self, kind: NameKind, server: usize, name: &str) -> String {
        if !self.prefixed {
            return name.to_owned();
        }
        let prefixes = &self.servers[server];
        match kind {
            NameKind::Tool => shorten(tool_safe(format!(
                "{}{NAME_SEPARATOR}{name}",
                prefixes.name
            ))),
            NameKind::Prompt => shorten(format!("{}{NAME_SEPARATOR}{name}", prefixes.name)),
            NameKind::Resource | NameKind::ResourceTemplate => {
                format!("{}{URI_SEPARATOR}{name}", prefixes.uri)
            }
        }
    }

    /// Records what `server` listed and returns, for each of its names in order, the
    /// exposed name, or `None` when another server already holds it (reported in the
    /// collisions). Called again for a server, it replaces what that server had; the
    /// [`Names::version`] moves only if that changed the table.
    pub fn learn<'a>(
        &mut self,
        kind: NameKind,
        server: usize,
        names: impl IntoIterator<Item = &'a str>,
        collisions: &mut Vec<Collision>,
    ) -> Vec<Option<String>> {
        let before: HashMap<String, Origin> = self
            .exposed
            .extract_if(|(k, _), origin| *k == kind && origin.server == server)
            .map(|((_, exposed), origin)| (exposed, origin))
            .collect();
        // Whether every name learnt is one the server had, with the same exposed name.
        let mut same = true;
        let mut learnt = 0;
        let exposed = names
            .into_iter()
            .map(|name| {
                let exposed = self.expose(kind, server, name);
                let key = (kind, exposed);
                match self.exposed.get(&key) {
                    // The same server's earlier name in this list also counts: two
                    // names made tool-safe can meet.
                    Some(holder) if holder.server != server || holder.name != name => {
                        collisions.push(Collision {
                            kind,
                            exposed: key.1,
                            kept: holder.server,
                            left_out: server,
                        });
                        None
                    }
                    Some(_) => Some(key.1),
                    None => {
                        same &= before.get(&key.1).is_some_and(|had| had.name == name);
                        learnt += 1;
                        let exposed = key.1.clone();
                        let origin = Origin {
                            server,
                            name: name.to_owned(),
                        };
                        self.exposed.insert(key, origin);
                        Some(exposed)
                    }
                }
            })
            .collect();
        if !same || learnt != before.len() {
            self.version += 1;
        }
        exposed
    }

    /// Moves whenever what has been exposed changes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Forgets what `server` offered (it went away).
    pub fn forget(&mut self, server: usize) {
        let had = self.exposed.len();
        self.exposed.retain(|_, origin| origin.server != server);
        if self.exposed.len() != had {
            self.version += 1;
        }
    }

    /// The server and its own name for a name a client used: from what was listed,
    /// else by the longest server name that prefixes it (a name seen before any list).
    /// Without prefixes and with one server, everything is that server's.
    pub fn resolve(&self, kind: NameKind, exposed: &str) -> Option<Origin> {
        if let Some(origin) = self.exposed.get(&(kind, exposed.to_owned())) {
            return Some(origin.clone());
        }
        if !self.prefixed {
            return (self.servers.len() == 1).then(|| Origin {
                server: 0,
                name: exposed.to_owned(),
            });
        }
        self.servers
            .iter()
            .enumerate()
            .filter_map(|(index, prefixes)| {
                let (prefix, separator) = match kind {
                    NameKind::Tool | NameKind::Prompt => (&prefixes.name, NAME_SEPARATOR),
                    NameKind::Resource | NameKind::ResourceTemplate => {
                        (&prefixes.uri, URI_SEPARATOR)
                    }
                };
                let rest = exposed.strip_prefix(prefix.as_str())?;
                let name = rest.strip_prefix(separator)?;
                Some((prefix.len(), index, name))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, server, name)| Origin {
                server,
                name: name.to_owned(),
            })
    }
}

/// The most of a tool name a server's prefix may take, so the tool keeps room.
pub const MAX_PREFIX_LEN: usize = 32;

/// The prefix a server's tools and prompts get: its name, with any character clients
/// refuse in a tool name (outside `[A-Za-z0-9_-]`) as `-`, cut at [`MAX_PREFIX_LEN`].
pub fn tool_prefix(name: &str) -> String {
    let mut prefix: String = name
        .chars()
        .map(|c| if fits_tool_name(c) { c } else { '-' })
        .collect();
    if prefix.is_empty() {
        prefix.push('s');
    }
    prefix.truncate(MAX_PREFIX_LEN);
    prefix
}

/// The prefix a server's resource URIs get, which with `+` makes a URI scheme: its
/// name with every character a scheme cannot hold (outside `[A-Za-z0-9-]`) as `-`,
/// an `s` in front of one that does not start with a letter, cut at
/// [`MAX_PREFIX_LEN`]. Two servers whose prefixes are equal cannot be told apart: the
/// configuration refuses that.
pub fn uri_prefix(name: &str) -> String {
    let mut prefix: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !prefix.starts_with(|c: char| c.is_ascii_alphabetic()) {
        prefix.insert(0, 's');
    }
    prefix.truncate(MAX_PREFIX_LEN);
    prefix
}

/// A prefixed name within [`MAX_NAME_LEN`]: longer ones are cut and end in a hash of
/// the whole, so two long names that share their start stay apart.
/// A prefixed tool name with each character that model APIs refuse in a tool name
/// (outside `[A-Za-z0-9_-]`; MCP allows `.` and `/`) as `_`. The server is still called
/// by its own name: the gateway keeps the mapping from the list. Two names that become
/// one are a collision, reported as any other.
fn tool_safe(mut name: String) -> String {
    if !name.chars().all(fits_tool_name) {
        name = name
            .chars()
            .map(|c| if fits_tool_name(c) { c } else { '_' })
            .collect();
    }
    name
}

/// Whether model APIs accept `c` in a tool name (`^[a-zA-Z0-9_-]{1,64}$`).
fn fits_tool_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn shorten(name: String) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let hash = Sha256::digest(name.as_bytes());
    let mut cut = MAX_NAME_LEN - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{}", &name[..cut], &hex::encode(hash)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(servers: &[&str], mode: PrefixMode) -> Names {
        Names::new(servers.iter().map(|s| s.to_string()).collect(), mode)
    }

    #[test]
    fn one_server_keeps_its_names_unless_asked() {
        let one = names(&["files"], PrefixMode::WhenSeveral);
        assert_eq!(one.expose(NameKind::Tool, 0, "read"), "read");
        assert_eq!(
            one.resolve(NameKind::Tool, "read"),
            Some(Origin {
                server: 0,
                name: "read".into()
            })
        );
        let always = names(&["files"], PrefixMode::Always);
        assert_eq!(always.expose(NameKind::Tool, 0, "read"), "files_read");
    }

    #[test]
    fn several_servers_prefix_tools_prompts_and_uris() {
        let n = names(&["files", "web"], PrefixMode::WhenSeveral);
        assert_eq!(n.expose(NameKind::Tool, 1, "fetch"), "web_fetch");
        assert_eq!(n.expose(NameKind::Prompt, 0, "summary"), "files_summary");
        assert_eq!(
            n.expose(NameKind::Resource, 0, "file:///a b.txt"),
            "files+file:///a b.txt"
        );
        assert_eq!(
            n.expose(NameKind::ResourceTemplate, 1, "https://x/{id}"),
            "web+https://x/{id}"
        );
        assert_eq!(
            n.resolve(NameKind::Resource, "files+file:///a b.txt"),
            Some(Origin {
                server: 0,
                name: "file:///a b.txt".into()
            })
        );
    }

    #[test]
    fn unseen_names_go_to_the_longest_server_name_that_prefixes_them() {
        let n = names(&["a", "a-b"], PrefixMode::Always);
        assert_eq!(
            n.resolve(NameKind::Tool, "a-b_x"),
            Some(Origin {
                server: 1,
                name: "x".into()
            })
        );
        assert_eq!(
            n.resolve(NameKind::Tool, "a_b_x"),
            Some(Origin {
                server: 0,
                name: "b_x".into()
            })
        );
        assert_eq!(n.resolve(NameKind::Tool, "other_x"), None);
        assert_eq!(n.resolve(NameKind::Tool, "a"), None);
    }

    #[test]
    fn learnt_names_route_and_collisions_are_reported_never_silent() {
        let mut n = names(&["one", "two"], PrefixMode::Never);
        let mut collisions = Vec::new();
        let first = n.learn(NameKind::Tool, 0, ["search", "read"], &mut collisions);
        assert_eq!(first, [Some("search".into()), Some("read".into())]);
        let second = n.learn(NameKind::Tool, 1, ["search", "write"], &mut collisions);
        assert_eq!(second, [None, Some("write".into())]);
        assert_eq!(
            collisions,
            [Collision {
                kind: NameKind::Tool,
                exposed: "search".into(),
                kept: 0,
                left_out: 1
            }]
        );
        let route = |name| n.resolve(NameKind::Tool, name).map(|o| o.server);
        assert_eq!(route("search"), Some(0));
        assert_eq!(route("write"), Some(1));
        assert_eq!(route("unknown"), None, "two servers, no prefix: no guess");

        // A server that lists again replaces what it had; one that goes away leaves.
        n.learn(NameKind::Tool, 1, ["write2"], &mut collisions);
        assert_eq!(n.resolve(NameKind::Tool, "write").map(|o| o.server), None);
        n.forget(0);
        assert_eq!(n.resolve(NameKind::Tool, "search"), None);
    }

    #[test]
    fn the_version_moves_only_when_what_is_exposed_changes() {
        let mut n = names(&["one", "two"], PrefixMode::Never);
        let mut collisions = Vec::new();
        n.learn(NameKind::Tool, 0, ["search", "read"], &mut collisions);
        n.learn(NameKind::Tool, 1, ["search", "write"], &mut collisions);
        let learnt = n.version();
        // The same lists again, duplicates and the collision included: no change.
        n.learn(
            NameKind::Tool,
            0,
            ["search", "read", "read"],
            &mut collisions,
        );
        n.learn(NameKind::Tool, 1, ["search", "write"], &mut collisions);
        n.learn(NameKind::Prompt, 1, [], &mut collisions);
        n.forget(5);
        assert_eq!(n.version(), learnt);
        let changes: [&dyn Fn(&mut Names); 4] = [
            &|n| drop(n.learn(NameKind::Tool, 1, [], &mut Vec::new())),
            &|n| {
                drop(n.learn(
                    NameKind::Tool,
                    1,
                    ["search", "write", "new"],
                    &mut Vec::new(),
                ))
            },
            &|n| drop(n.learn(NameKind::Prompt, 1, ["write"], &mut Vec::new())),
            &|n| n.forget(0),
        ];
        for change in changes {
            let version = n.version();
            change(&mut n);
            assert!(n.version() > version);
        }
    }

    #[test]
    fn tool_names_clients_refuse_are_made_safe_and_still_route_to_the_servers_own() {
        let mut n = names(&["files", "web"], PrefixMode::WhenSeveral);
        assert_eq!(n.expose(NameKind::Tool, 0, "read.file"), "files_read_file");
        assert_eq!(n.expose(NameKind::Tool, 1, "search/web"), "web_search_web");
        assert_eq!(n.expose(NameKind::Tool, 1, "naïve"), "web_na_ve");
        // Prompts are not tool names: only cut, never rewritten.
        assert_eq!(
            n.expose(NameKind::Prompt, 0, "read.file"),
            "files_read.file"
        );
        let mut collisions = Vec::new();
        let exposed = n.learn(
            NameKind::Tool,
            0,
            ["read.file", "read_file"],
            &mut collisions,
        );
        assert_eq!(exposed, [Some("files_read_file".to_owned()), None]);
        assert_eq!((collisions[0].kept, collisions[0].left_out), (0, 0));
        let origin = n.resolve(NameKind::Tool, "files_read_file").unwrap();
        assert_eq!((origin.server, origin.name.as_str()), (0, "read.file"));
    }

    #[test]
    fn long_names_are_cut_the_same_way_every_time_and_stay_apart() {
        let n = names(&["server"], PrefixMode::Always);
        let long_a = format!("{}_a", "x".repeat(70));
        let long_b = format!("{}_b", "x".repeat(70));
        let a = n.expose(NameKind::Tool, 0, &long_a);
        let b = n.expose(NameKind::Tool, 0, &long_b);
        assert_eq!(a.len(), MAX_NAME_LEN);
        assert_eq!(b.len(), MAX_NAME_LEN);
        assert_ne!(a, b);
        assert_eq!(a, n.expose(NameKind::Tool, 0, &long_a), "deterministic");
        let mut learnt = n.clone();
        learnt.learn(NameKind::Tool, 0, [long_a.as_str()], &mut Vec::new());
        assert_eq!(learnt.resolve(NameKind::Tool, &a).unwrap().name, long_a);
        // A name of 64 characters exactly is left alone.
        let fits = "y".repeat(MAX_NAME_LEN - "server_".len());
        assert_eq!(n.expose(NameKind::Tool, 0, &fits), format!("server_{fits}"));
    }

    #[test]
    fn prefixes_fit_tool_names_and_uri_schemes_whatever_the_server_is_called() {
        let cases = [
            ("files", "files"),
            ("brave-search", "brave-search"),
            ("my_db", "my-db"),
            ("my.db", "my-db"),
            ("a+b", "a-b"),
            ("1files", "s1files"),
            ("ümlaut", "s-mlaut"),
            ("", "s"),
        ];
        for (name, prefix) in cases {
            assert_eq!(uri_prefix(name), prefix, "{name}");
        }
        assert_eq!(uri_prefix(&"x".repeat(40)).len(), MAX_PREFIX_LEN);
        assert_eq!(tool_prefix("my_db"), "my_db");
        assert_eq!(tool_prefix("my.db"), "my-db");
        let n = names(&["my_db"], PrefixMode::Always);
        assert_eq!(n.expose(NameKind::Tool, 0, "query"), "my_db_query");
        assert_eq!(
            n.expose(NameKind::Resource, 0, "file:///a"),
            "my-db+file:///a"
        );
        assert_eq!(
            n.resolve(NameKind::Tool, "my_db_query").unwrap().name,
            "query"
        );
    }
}
