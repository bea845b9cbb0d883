//! The manifest's method and kind filter, checked without entering Wasm: a plugin
//! that did not ask for a message costs a few comparisons.

use crate::jsonrpc::Kind;

/// Which messages a plugin wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// One bit per [`Kind`].
    kinds: u8,
    methods: Methods,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Methods {
    All,
    Listed {
        exact: Box<[Box<str>]>,
        /// `resources/*` is kept as `resources/`.
        prefixes: Box<[Box<str>]>,
    },
}

fn bit(kind: Kind) -> u8 {
    match kind {
        Kind::Request => 1,
        Kind::Response => 2,
        Kind::Error => 4,
        Kind::Notification => 8,
    }
}

impl Filter {
    /// From the manifest's lists: exact names, `prefix*` globs, `*`; an empty list
    /// means all.
    pub fn new(methods: &[String], kinds: &[Kind]) -> Self {
        let kinds = if kinds.is_empty() {
            0b1111
        } else {
            kinds.iter().fold(0, |bits, &k| bits | bit(k))
        };
        let methods = if methods.is_empty() || methods.iter().any(|m| m == "*") {
            Methods::All
        } else {
            let (globs, exact): (Vec<&String>, Vec<&String>) =
                methods.iter().partition(|m| m.ends_with('*'));
            Methods::Listed {
                exact: exact.into_iter().map(|m| m.as_str().into()).collect(),
                prefixes: globs
                    .into_iter()
                    .map(|m| m.trim_end_matches('*').into())
                    .collect(),
            }
        };
        Filter { kinds, methods }
    }

    /// Whether the plugin wants a message of `kind` for `method`.
    #[inline]
    pub fn matches(&self, kind: Kind, method: &str) -> bool {
        if self.kinds & bit(kind) == 0 {
            return false;
        }
        match &self.methods {
            Methods::All => true,
            Methods::Listed { exact, prefixes } => {
                exact.iter().any(|m| &**m == method)
                    || prefixes.iter().any(|p| method.starts_with(&**p))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_lists_match_everything() {
        let f = Filter::new(&[], &[]);
        assert!(f.matches(Kind::Notification, "anything"));
    }

    #[test]
    fn exact_and_prefix_methods() {
        let f = Filter::new(&strings(&["tools/call", "resources/*"]), &[]);
        assert!(f.matches(Kind::Request, "tools/call"));
        assert!(!f.matches(Kind::Request, "tools/list"));
        assert!(f.matches(Kind::Response, "resources/read"));
        assert!(!f.matches(Kind::Request, "resourcesX"));
        assert!(Filter::new(&strings(&["x", "*"]), &[]).matches(Kind::Request, "y"));
    }

    #[test]
    fn kinds_restrict() {
        let f = Filter::new(&[], &[Kind::Request, Kind::Error]);
        assert!(f.matches(Kind::Request, "a"));
        assert!(f.matches(Kind::Error, "a"));
        assert!(!f.matches(Kind::Response, "a"));
        assert!(!f.matches(Kind::Notification, "a"));
    }
}
