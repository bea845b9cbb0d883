//! The policy: configuration, and the decisions about one tool.

use std::collections::BTreeMap;

use interpose_plugin::Principal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use interpose_plugin::glob;

/// The plugin's configuration. Every list of tool names takes globs (`*`, `?`)
/// and matches a tool by its exposed name or by its backend name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// When not empty, only matching tools are allowed.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Matching tools are denied, even when `allow` matches them too.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Matching tools are removed from `tools/list`, and calls to them fail as
    /// calls to an unknown tool.
    #[serde(default)]
    pub hide: Vec<String>,
    /// Whether denied tools are removed from `tools/list` too (default true).
    #[serde(default = "yes")]
    pub hide_denied: bool,
    /// Exposed name -> backend name.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Tool glob -> arguments forced to these values.
    #[serde(default)]
    pub pin_arguments: BTreeMap<String, Map<String, Value>>,
    /// Tool glob -> argument names removed before forwarding.
    #[serde(default)]
    pub strip_arguments: BTreeMap<String, Vec<String>>,
    /// Who may call which tools: every rule that matches a tool must hold for the
    /// session's principal.
    #[serde(default)]
    pub require: Vec<Rule>,
}

/// Matching tools are allowed only to an authenticated principal (OAuth, `[auth]`)
/// that has every one of `scopes` and, when `subjects` is not empty, is one of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Tool globs.
    pub tools: Vec<String>,
    /// Scopes the principal must all have.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When not empty, the subjects (`sub`) allowed.
    #[serde(default)]
    pub subjects: Vec<String>,
}

impl Rule {
    /// Why `principal` may not call what this rule covers, or `None` when it may.
    /// Says what the rule asks for, never what the token holds beyond it.
    fn refuses(&self, principal: Option<&Principal>) -> Option<Denial> {
        let Some(principal) = principal else {
            let mut required = Map::new();
            if !self.scopes.is_empty() {
                required.insert("scopes".into(), json!(self.scopes));
            }
            if !self.subjects.is_empty() {
                required.insert("subjects".into(), json!(self.subjects));
            }
            return Some(Denial {
                why: "requires an authenticated principal".into(),
                required: Some(Value::Object(required)),
            });
        };
        if !self.subjects.is_empty() && !self.subjects.contains(&principal.subject) {
            return Some(Denial {
                why: format!("is reserved for {}", listed("subject", &self.subjects)),
                required: Some(json!({ "subjects": self.subjects })),
            });
        }
        let missing: Vec<&String> = self
            .scopes
            .iter()
            .filter(|scope| !principal.has_scope(scope))
            .collect();
        if !missing.is_empty() {
            return Some(Denial {
                why: format!("requires {}", listed("scope", &missing)),
                required: Some(json!({ "scopes": missing })),
            });
        }
        None
    }
}

/// `scope `a`` or `scopes `a`, `b``.
fn listed<S: AsRef<str>>(what: &str, names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{what}{plural} {}", quoted.join(", "))
}

fn yes() -> bool {
    true
}

/// Whether a client may see and call a tool.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// Listed in `hide`: the tool does not exist for the client.
    Hidden,
    Denied(Denial),
}

/// Why a tool is denied.
#[derive(Debug, PartialEq, Eq)]
pub struct Denial {
    /// By which rule, as the end of a sentence: "it {why}".
    pub why: String,
    /// For a `require` rule: what it requires that the principal lacks.
    pub required: Option<Value>,
}

impl Denial {
    fn because(why: impl Into<String>) -> Self {
        Denial {
            why: why.into(),
            required: None,
        }
    }
}

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    allow: Vec<String>,
    deny: Vec<String>,
    hide: Vec<String>,
    hide_denied: bool,
    /// Exposed name -> backend name.
    to_backend: BTreeMap<String, String>,
    /// Backend name -> exposed name.
    to_exposed: BTreeMap<String, String>,
    pin: BTreeMap<String, Map<String, Value>>,
    strip: BTreeMap<String, Vec<String>>,
    require: Vec<Rule>,
}

impl Policy {
    pub fn new(config: Config) -> Result<Policy, String> {
        let mut to_exposed = BTreeMap::new();
        for (exposed, backend) in &config.rename {
            if exposed.is_empty() || backend.is_empty() {
                return Err("invalid config: `rename` has an empty tool name".into());
            }
            if let Some(other) = to_exposed.insert(backend.clone(), exposed.clone()) {
                return Err(format!(
                    "invalid config: `rename` maps both `{other}` and `{exposed}` to the backend tool `{backend}`"
                ));
            }
        }
        if config.require.iter().any(|rule| rule.tools.is_empty()) {
            return Err("invalid config: a `require` rule names no tools".into());
        }
        let globs = config.allow.iter().chain(&config.deny).chain(&config.hide);
        if globs
            .chain(config.pin_arguments.keys())
            .chain(config.strip_arguments.keys())
            .chain(config.require.iter().flat_map(|rule| &rule.tools))
            .any(String::is_empty)
        {
            return Err("invalid config: an empty tool pattern".into());
        }
        Ok(Policy {
            allow: config.allow,
            deny: config.deny,
            hide: config.hide,
            hide_denied: config.hide_denied,
            to_backend: config.rename,
            to_exposed,
            pin: config.pin_arguments,
            strip: config.strip_arguments,
            require: config.require,
        })
    }

    /// Whether the policy can change anything at all.
    pub fn is_noop(&self) -> bool {
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.hide.is_empty()
            && self.to_backend.is_empty()
            && self.pin.is_empty()
            && self.strip.is_empty()
            && self.require.is_empty()
    }

    /// The backend tool a client's name refers to; `None` when the name is
    /// not exposed (it is a renamed tool's backend name).
    pub fn backend_name<'a>(&'a self, exposed: &'a str) -> Option<&'a str> {
        match self.to_backend.get(exposed) {
            Some(backend) => Some(backend),
            None if self.to_exposed.contains_key(exposed) => None,
            None => Some(exposed),
        }
    }

    /// The name a backend tool is shown under; `None` when another tool took
    /// its name through `rename`.
    pub fn exposed_name<'a>(&'a self, backend: &'a str) -> Option<&'a str> {
        match self.to_exposed.get(backend) {
            Some(exposed) => Some(exposed),
            None if self.to_backend.contains_key(backend) => None,
            None => Some(backend),
        }
    }

    /// What the client may do with the tool `exposed` (backend name `backend`).
    /// `principal` is asked for only when a `require` rule covers the tool.
    pub fn access<'p>(
        &self,
        exposed: &str,
        backend: &str,
        principal: impl FnOnce() -> Option<&'p Principal>,
    ) -> Access {
        let matches =
            |pattern: &String| glob::matches(pattern, exposed) || glob::matches(pattern, backend);
        if self.hide.iter().any(matches) {
            return Access::Hidden;
        }
        if let Some(pattern) = self.deny.iter().find(|p| matches(p)) {
            return Access::Denied(Denial::because(format!("matches deny pattern `{pattern}`")));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(matches) {
            return Access::Denied(Denial::because("matches no allow pattern"));
        }
        let mut rules = self
            .require
            .iter()
            .filter(|rule| rule.tools.iter().any(matches))
            .peekable();
        if rules.peek().is_some() {
            let principal = principal();
            if let Some(denial) = rules.find_map(|rule| rule.refuses(principal)) {
                return Access::Denied(denial);
            }
        }
        Access::Allowed
    }

    /// Whether `tools/list` shows a tool with this access.
    pub fn listed(&self, access: &Access) -> bool {
        match access {
            Access::Allowed => true,
            Access::Hidden => false,
            Access::Denied(_) => !self.hide_denied,
        }
    }

    /// The pinned arguments for a tool, from every matching pattern, in the
    /// patterns' sorted order (a later one wins on the same argument).
    pub fn pinned<'a>(
        &'a self,
        exposed: &'a str,
        backend: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.pin
            .iter()
            .filter(move |(pattern, _)| {
                glob::matches(pattern, exposed) || glob::matches(pattern, backend)
            })
            .flat_map(|(_, arguments)| arguments.iter())
    }

    /// The stripped argument names for a tool, from every matching pattern.
    pub fn stripped<'a>(
        &'a self,
        exposed: &'a str,
        backend: &'a str,
    ) -> impl Iterator<Item = &'a String> {
        self.strip
            .iter()
            .filter(move |(pattern, _)| {
                glob::matches(pattern, exposed) || glob::matches(pattern, backend)
            })
            .flat_map(|(_, names)| names.iter())
    }
}
