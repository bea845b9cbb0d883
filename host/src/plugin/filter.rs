//! The manifest's interests, checked without entering Wasm: a plugin that did not
//! ask for a message costs a few comparisons.

use std::fmt;

use crate::wire::jsonrpc::Kind;

/// Messages of some kinds with some methods, as a manifest lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interest {
    /// Empty means every kind.
    pub kinds: Vec<Kind>,
    /// Exact names, `prefix*` globs, `*`; empty means every method.
    pub methods: Vec<String>,
}

impl fmt::Display for Interest {
    /// `request tools/call`, `request|response tools/*`, `* *`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
        let kinds = if kinds.is_empty() {
            "*".to_string()
        } else {
            kinds.join("|")
        };
        let methods = if self.methods.is_empty() {
            "*".to_string()
        } else {
            self.methods.join(",")
        };
        write!(f, "{kinds} {methods}")
    }
}

/// Which messages a plugin wants: for each kind, which methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Indexed by [`index`].
    by_kind: [Methods; 4],
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Methods {
    None,
    All,
    Listed {
        exact: Box<[Box<str>]>,
        /// `resources/*` is kept as `resources/`.
        prefixes: Box<[Box<str>]>,
    },
}

const KINDS: [Kind; 4] = [
    Kind::Request,
    Kind::Response,
    Kind::Error,
    Kind::Notification,
];

fn index(kind: Kind) -> usize {
    match kind {
        Kind::Request => 0,
        Kind::Response => 1,
        Kind::Error => 2,
        Kind::Notification => 3,
    }
}

impl Filter {
    /// The union of `interests`; no interests at all means every message.
    pub fn new(interests: &[Interest]) -> Self {
        if interests.is_empty() {
            return Filter {
                by_kind: [const { Methods::All }; 4],
            };
        }
        let by_kind = KINDS.map(|kind| {
            let taking = interests
                .iter()
                .filter(|i| i.kinds.is_empty() || i.kinds.contains(&kind));
            let mut names: Vec<&str> = Vec::new();
            for interest in taking {
                if interest.methods.is_empty() || interest.methods.iter().any(|m| m == "*") {
                    return Methods::All;
                }
                names.extend(interest.methods.iter().map(String::as_str));
            }
            // Every interest taking this kind named methods, so none did if none are named.
            if names.is_empty() {
                return Methods::None;
            }
            let (globs, exact): (Vec<&str>, Vec<&str>) =
                names.into_iter().partition(|m| m.ends_with('*'));
            Methods::Listed {
                exact: exact.into_iter().map(Into::into).collect(),
                prefixes: globs
                    .into_iter()
                    .map(|m| m.trim_end_matches('*').into())
                    .collect(),
            }
        });
        Filter { by_kind }
    }

    /// Whether the plugin wants a message of `kind` for `method`.
    #[inline]
    pub fn matches(&self, kind: Kind, method: &str) -> bool {
        match &self.by_kind[index(kind)] {
            Methods::None => false,
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

    fn interest(kinds: &[Kind], methods: &[&str]) -> Interest {
        Interest {
            kinds: kinds.to_vec(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn no_interests_or_empty_lists_match_everything() {
        assert!(Filter::new(&[]).matches(Kind::Notification, "anything"));
        let f = Filter::new(&[interest(&[], &[])]);
        assert!(f.matches(Kind::Error, "anything"));
    }

    #[test]
    fn exact_and_prefix_methods() {
        let f = Filter::new(&[interest(&[], &["tools/call", "resources/*"])]);
        assert!(f.matches(Kind::Request, "tools/call"));
        assert!(!f.matches(Kind::Request, "tools/list"));
        assert!(f.matches(Kind::Response, "resources/read"));
        assert!(!f.matches(Kind::Request, "resourcesX"));
        assert!(Filter::new(&[interest(&[], &["x", "*"])]).matches(Kind::Request, "y"));
    }

    #[test]
    fn kinds_restrict() {
        let f = Filter::new(&[interest(&[Kind::Request, Kind::Error], &[])]);
        assert!(f.matches(Kind::Request, "a"));
        assert!(f.matches(Kind::Error, "a"));
        assert!(!f.matches(Kind::Response, "a"));
        assert!(!f.matches(Kind::Notification, "a"));
    }

    #[test]
    fn interests_combine_per_kind() {
        // tool-policy: checks calls, rewrites lists; never sees call results.
        let f = Filter::new(&[
            interest(&[Kind::Request], &["tools/call"]),
            interest(&[Kind::Response], &["tools/list"]),
            interest(&[Kind::Request, Kind::Notification], &["notifications/*"]),
        ]);
        assert!(f.matches(Kind::Request, "tools/call"));
        assert!(f.matches(Kind::Response, "tools/list"));
        assert!(!f.matches(Kind::Response, "tools/call"));
        assert!(!f.matches(Kind::Request, "tools/list"));
        assert!(!f.matches(Kind::Error, "tools/call"));
        assert!(f.matches(Kind::Notification, "notifications/progress"));
        assert!(f.matches(Kind::Request, "notifications/x"));
    }

    #[test]
    fn interests_read_as_text() {
        assert_eq!(
            interest(&[Kind::Request, Kind::Error], &["tools/*"]).to_string(),
            "request|error tools/*"
        );
        assert_eq!(interest(&[], &[]).to_string(), "* *");
    }
}
