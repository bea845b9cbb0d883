//! The policy: configuration, and the decisions about one tool.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::glob;

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
    /// Denied; the text says by which rule.
    Denied(String),
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
        let globs = config.allow.iter().chain(&config.deny).chain(&config.hide);
        if globs
            .chain(config.pin_arguments.keys())
            .chain(config.strip_arguments.keys())
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
    pub fn access(&self, exposed: &str, backend: &str) -> Access {
        let matches =
            |pattern: &String| glob::matches(pattern, exposed) || glob::matches(pattern, backend);
        if self.hide.iter().any(matches) {
            return Access::Hidden;
        }
        if let Some(pattern) = self.deny.iter().find(|p| matches(p)) {
            return Access::Denied(format!("matches deny pattern `{pattern}`"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(matches) {
            return Access::Denied("matches no allow pattern".into());
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
