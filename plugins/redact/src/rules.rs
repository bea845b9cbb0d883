//! Redaction rules: the built-in ones, the user's, and the raw-text pre-check.

use std::fmt;

use regex::{Match, Regex, RegexSet};
use regex_syntax::hir::{Class, Hir, HirKind};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Extra rules, applied before the built-in ones, in order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Which built-in rules to apply: `true` (all, the default), `false`
    /// (none) or a list of their names.
    #[serde(default)]
    pub defaults: Defaults,
}

/// One user rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Shown in the default replacement, `[REDACTED:<name>]`.
    pub name: String,
    /// A regular expression (Rust `regex` syntax), matched against the
    /// decoded text of each string.
    pub pattern: String,
    /// What a match becomes; `$1` / `${name}` insert capture groups, `$$` is a
    /// dollar sign. Default `[REDACTED:<name>]`.
    #[serde(default)]
    pub replacement: Option<String>,
}

/// `defaults`: a boolean or a list of built-in rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defaults {
    /// All built-in rules, or none.
    All(bool),
    /// These built-in rules.
    Only(Vec<String>),
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults::All(true)
    }
}

impl<'de> Deserialize<'de> for Defaults {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DefaultsVisitor;

        impl<'de> Visitor<'de> for DefaultsVisitor {
            type Value = Defaults;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or a list of built-in rule names")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Defaults, E> {
                Ok(Defaults::All(value))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Defaults, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(Defaults::Only(names))
            }
        }

        deserializer.deserialize_any(DefaultsVisitor)
    }
}

/// Extra checks on a match beyond the pattern (a card number's checksum).
type Validator = fn(haystack: &str, found: &Match) -> bool;

/// A built-in rule.
struct Builtin {
    name: &'static str,
    /// Matched against decoded string contents.
    pattern: &'static str,
    /// A necessary condition for `pattern` to match a string, checked on the
    /// raw JSON text: it matches no character that JSON escapes and uses no
    /// assertion, so whatever `pattern` finds in a decoded string, this finds
    /// in the raw text.
    raw_filter: &'static str,
    validator: Option<Validator>,
}

/// The built-in rules, in the order they apply.
const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "private-key",
        // A whole PEM block; without its END line (a truncated block), the
        // header and the base64 body after it.
        pattern: r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)",
        raw_filter: r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----",
        validator: None,
    },
    Builtin {
        name: "aws-access-key",
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
        raw_filter: r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
        validator: None,
    },
    Builtin {
        name: "bearer-token",
        pattern: r"(?i-u:\b)(?i)bearer\s+[A-Za-z0-9\-._~+/]{20,}=*",
        raw_filter: r"(?i)bearer",
        validator: None,
    },
    Builtin {
        name: "api-key",
        // OpenAI / Anthropic style `sk-...` keys and GitHub tokens.
        pattern: r"(?-u:\b)(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
        raw_filter: r"sk-[A-Za-z0-9_-]{20}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40}",
        validator: None,
    },
    Builtin {
        name: "email",
        pattern: r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        raw_filter: r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]",
        validator: None,
    },
    Builtin {
        name: "card-number",
        // 13 to 19 digits, optionally grouped by single spaces or dashes,
        // starting like a Visa, Mastercard, Amex, Discover, JCB or Diners card.
        pattern: r"(?-u:\b)[2-6][0-9](?:[ -]?[0-9]){11,17}(?-u:\b)",
        raw_filter: r"[2-6][0-9](?:[ -]?[0-9]){11,17}",
        validator: Some(card_number_valid),
    },
];

/// The names of the built-in rules.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|rule| rule.name)
}

/// What a match is replaced with.
#[derive(Debug)]
enum Replacement {
    /// Inserted as is.
    Literal(String),
    /// May name capture groups (`$1`, `${name}`).
    Template(String),
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    name: String,
    regex: Regex,
    replacement: Replacement,
    validator: Option<Validator>,
}

/// All rules of one plugin instance, and the pre-check over raw JSON text.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    /// Which rules match a decoded string, found in one pass, so that only
    /// those run their own (slower) search-and-replace.
    set: RegexSet,
    /// The raw-text pre-check; `None` when some rule cannot be checked on raw
    /// JSON text (see [`escape_safe`]), so every message is scanned.
    raw_filter: Option<Regex>,
}

impl Rules {
    /// Compiles the user's rules and the chosen built-ins.
    pub fn new(config: &Config) -> Result<Rules, String> {
        let builtins: Vec<&Builtin> = match &config.defaults {
            Defaults::All(true) => BUILTINS.iter().collect(),
            Defaults::All(false) => Vec::new(),
            Defaults::Only(names) => {
                let mut chosen = Vec::new();
                for name in names {
                    let Some(builtin) = BUILTINS.iter().find(|b| b.name == name) else {
                        return Err(format!(
                            "invalid config: `defaults` names an unknown rule `{name}`; the built-in rules are: {}",
                            builtin_names().collect::<Vec<_>>().join(", ")
                        ));
                    };
                    chosen.push(builtin);
                }
                BUILTINS
                    .iter()
                    .filter(|b| chosen.iter().any(|c| c.name == b.name))
                    .collect()
            }
        };

        let mut rules = Vec::new();
        let mut raw_filters = Vec::new();
        let mut filterable = true;
        for user in &config.rules {
            if user.name.is_empty() {
                return Err("invalid config: a rule has an empty `name`".into());
            }
            let rule_error =
                |detail: String| format!("invalid config: rule `{}`: {detail}", user.name);
            let hir = regex_syntax::Parser::new()
                .parse(&user.pattern)
                .map_err(|err| rule_error(format!("invalid pattern: {err}")))?;
            if hir.properties().minimum_len() == Some(0) {
                return Err(rule_error("the pattern matches the empty string".into()));
            }
            let regex = Regex::new(&user.pattern)
                .map_err(|err| rule_error(format!("invalid pattern: {err}")))?;
            if escape_safe(&hir) {
                raw_filters.push(user.pattern.clone());
            } else {
                filterable = false;
            }
            let replacement = match &user.replacement {
                Some(text) if text.contains('$') => Replacement::Template(text.clone()),
                Some(text) => Replacement::Literal(text.clone()),
                None => Replacement::Literal(format!("[REDACTED:{}]", user.name)),
            };
            rules.push(Rule {
                name: user.name.clone(),
                regex,
                replacement,
                validator: None,
            });
        }
        for builtin in builtins {
            let regex = Regex::new(builtin.pattern)
                .map_err(|err| format!("built-in rule {}: {err}", builtin.name))?;
            raw_filters.push(builtin.raw_filter.to_owned());
            rules.push(Rule {
                name: builtin.name.to_owned(),
                regex,
                replacement: Replacement::Literal(format!("[REDACTED:{}]", builtin.name)),
                validator: builtin.validator,
            });
        }

        let set = RegexSet::new(rules.iter().map(|rule| rule.regex.as_str())).map_err(|err| {
            format!("invalid config: the rules do not combine into one pattern set: {err}")
        })?;
        let raw_filter = if filterable && !raw_filters.is_empty() {
            Some(alternation(raw_filters.iter().map(String::as_str))?)
        } else {
            None
        };
        Ok(Rules {
            rules,
            set,
            raw_filter,
        })
    }

    /// The names of the rules with these indexes (see [`Rules::redact`]).
    pub fn names(&self, indexes: &[usize]) -> Vec<&str> {
        indexes
            .iter()
            .filter_map(|&i| self.rules.get(i))
            .map(|rule| rule.name.as_str())
            .collect()
    }

    /// Whether the raw JSON text of a payload may hold something to redact.
    /// `false` means it certainly does not.
    pub fn may_match_raw(&self, raw: &str) -> bool {
        match &self.raw_filter {
            // A `\u` escape can spell any character, so the raw text is not
            // the decoded text even for escape-safe patterns.
            Some(filter) if !has_unicode_escape(raw) => filter.is_match(raw),
            _ => !self.rules.is_empty(),
        }
    }

    /// Redacts one decoded string; `None` when nothing matched. Adds the
    /// indexes of the rules that matched to `hits`. Rules apply in order, each
    /// to the previous one's output, and only those that match `text` itself.
    pub fn redact(&self, text: &str, hits: &mut Vec<usize>) -> Option<String> {
        let matching = self.set.matches(text);
        if !matching.matched_any() {
            return None;
        }
        let mut current: Option<String> = None;
        for index in matching.iter() {
            let rule = &self.rules[index];
            let haystack = current.as_deref().unwrap_or(text);
            if let Some(replaced) = rule.apply(haystack) {
                current = Some(replaced);
                if !hits.contains(&index) {
                    hits.push(index);
                }
            }
        }
        current
    }
}

impl Rule {
    fn apply(&self, haystack: &str) -> Option<String> {
        let mut out = String::new();
        let mut copied = 0;
        let mut changed = false;
        match &self.replacement {
            Replacement::Literal(text) => {
                for found in self.regex.find_iter(haystack) {
                    if self.validator.is_some_and(|valid| !valid(haystack, &found)) {
                        continue;
                    }
                    out.push_str(&haystack[copied..found.start()]);
                    out.push_str(text);
                    copied = found.end();
                    changed = true;
                }
            }
            Replacement::Template(template) => {
                for caps in self.regex.captures_iter(haystack) {
                    let Some(found) = caps.get(0) else { continue };
                    if self.validator.is_some_and(|valid| !valid(haystack, &found)) {
                        continue;
                    }
                    out.push_str(&haystack[copied..found.start()]);
                    caps.expand(template, &mut out);
                    copied = found.end();
                    changed = true;
                }
            }
        }
        if !changed {
            return None;
        }
        out.push_str(&haystack[copied..]);
        Some(out)
    }
}

fn alternation<'a>(patterns: impl Iterator<Item = &'a str>) -> Result<Regex, String> {
    let joined = patterns
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&joined)
        .map_err(|err| format!("invalid config: the rules do not combine into one pattern: {err}"))
}

/// Whether a pattern can be checked on raw JSON text: whatever it matches in a
/// decoded string, it also matches, unchanged, in the string's raw text. True
/// when it can match none of the characters JSON escapes (`"`, `\`, `/`, control
/// characters) and has no assertion (`^`, `$`, `\b`: an escape sequence next to
/// a match changes what they see).
pub fn escape_safe(hir: &Hir) -> bool {
    fn escapable(c: u32) -> bool {
        c < 0x20 || c == u32::from(b'"') || c == u32::from(b'\\') || c == u32::from(b'/')
    }
    match hir.kind() {
        HirKind::Empty => true,
        HirKind::Literal(literal) => match std::str::from_utf8(&literal.0) {
            Ok(text) => !text.chars().any(|c| escapable(u32::from(c))),
            Err(_) => false,
        },
        HirKind::Class(Class::Unicode(class)) => class.ranges().iter().all(|range| {
            let (start, end) = (u32::from(range.start()), u32::from(range.end()));
            !(start..=end.min(0x7f)).any(escapable)
        }),
        HirKind::Class(Class::Bytes(class)) => class.ranges().iter().all(|range| {
            !(range.start()..=range.end()).any(|b| escapable(u32::from(b)) || b >= 0x80)
        }),
        HirKind::Look(_) => false,
        HirKind::Repetition(repetition) => escape_safe(&repetition.sub),
        HirKind::Capture(capture) => escape_safe(&capture.sub),
        HirKind::Concat(items) | HirKind::Alternation(items) => items.iter().all(escape_safe),
    }
}

/// A card number: 13 to 19 digits passing the Luhn check, not part of a longer
/// number (`12.4111...`, `4111...,5`).
fn card_number_valid(haystack: &str, found: &Match) -> bool {
    let before = haystack[..found.start()].chars().next_back();
    if before.is_some_and(|c| c.is_ascii_digit() || c == '.' || c == ',') {
        return false;
    }
    let mut after = haystack[found.end()..].chars();
    if matches!(after.next(), Some('.' | ',')) && after.next().is_some_and(|c| c.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = found
        .as_str()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    (13..=19).contains(&digits.len()) && luhn(&digits)
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `raw` JSON text holds a `\u` escape. Backslashes are rare in most
/// payloads, so looking for them with `memchr` first is far cheaper than a
/// substring search (which, in Wasm, has no SIMD to lean on).
fn has_unicode_escape(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    memchr::memchr_iter(b'\\', bytes).any(|at| bytes.get(at + 1) == Some(&b'u'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(config: &str) -> Rules {
        Rules::new(&interpose_plugin::parse_config(config).unwrap()).unwrap()
    }

    fn safe(pattern: &str) -> bool {
        escape_safe(&regex_syntax::Parser::new().parse(pattern).unwrap())
    }

    #[test]
    fn builtin_raw_filters_are_escape_safe() {
        for builtin in BUILTINS {
            assert!(safe(builtin.raw_filter), "{}", builtin.name);
        }
    }

    #[test]
    fn escape_safety_of_user_patterns() {
        assert!(safe(r"secret-[0-9a-f]{32}"));
        assert!(safe(r"(?i)password=[A-Za-z0-9]+"));
        assert!(safe(r"Müller"));
        assert!(!safe(r"password:\s*\S+"), "\\s matches a newline");
        assert!(!safe(r"a.b"), ". matches a quote");
        assert!(!safe(r"\bword\b"), "assertions");
        assert!(!safe(r"https://x"), "a slash may be escaped");
        assert!(!safe(r"[^,]+"));
    }

    #[test]
    fn luhn_accepts_test_card_numbers_and_rejects_others() {
        let digits = |s: &str| s.chars().filter_map(|c| c.to_digit(10)).collect::<Vec<_>>();
        assert!(luhn(&digits("4111111111111111")));
        assert!(luhn(&digits("378282246310005")));
        assert!(luhn(&digits("5555555555554444")));
        assert!(!luhn(&digits("4111111111111112")));
    }

    #[test]
    fn each_builtin_redacts_its_example_and_nothing_else() {
        let all = rules("{}");
        let cases = [
            (
                "key AKIAIOSFODNN7EXAMPLE here",
                "key [REDACTED:aws-access-key] here",
            ),
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
                "Authorization: [REDACTED:bearer-token]",
            ),
            (
                "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuv1234",
                "OPENAI_API_KEY=[REDACTED:api-key]",
            ),
            (
                "token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
                "token [REDACTED:api-key]",
            ),
            (
                "mail alice.smith+tag@example.co.uk now",
                "mail [REDACTED:email] now",
            ),
            ("card 4111 1111 1111 1111.", "card [REDACTED:card-number]."),
            ("card 4111-1111-1111-1111", "card [REDACTED:card-number]"),
            (
                "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA==\n-----END RSA PRIVATE KEY-----\ny",
                "x\n[REDACTED:private-key]\ny",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN",
                "[REDACTED:private-key]",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                all.redact(input, &mut Vec::new()).as_deref(),
                Some(expected),
                "{input}"
            );
        }
        for clean in [
            "the bearer of bad news",
            "order 4111111111111112 (bad checksum)",
            "timestamp 1700000000000123",
            "pi 3.4111111111111111",
            "risk-assessment-framework-version-two",
            "plain text with no secrets @ all",
        ] {
            assert_eq!(all.redact(clean, &mut Vec::new()), None, "{clean}");
        }
    }

    #[test]
    fn user_rules_come_first_and_expand_captures() {
        let rules = rules(
            r#"{"defaults": ["email"], "rules": [
                {"name": "ticket", "pattern": "TICKET-(\\d+)", "replacement": "TICKET-#$1#"},
                {"name": "codename", "pattern": "(?i)project\\s+falcon"}
            ]}"#,
        );
        let mut hits = Vec::new();
        assert_eq!(
            rules
                .redact("TICKET-42 by bob@example.com on Project Falcon", &mut hits)
                .as_deref(),
            Some("TICKET-#42# by [REDACTED:email] on [REDACTED:codename]")
        );
        assert_eq!(rules.names(&hits), ["ticket", "codename", "email"]);
        assert_eq!(
            rules.redact("key AKIAIOSFODNN7EXAMPLE", &mut hits),
            None,
            "aws rule not chosen"
        );
    }

    #[test]
    fn raw_filter_is_dropped_for_patterns_it_cannot_check() {
        let filtered = rules(r#"{"rules": [{"name": "n", "pattern": "secret[0-9]+"}]}"#);
        assert!(filtered.raw_filter.is_some());
        assert!(!filtered.may_match_raw(r#"{"text": "nothing here"}"#));
        assert!(filtered.may_match_raw(r#"{"text": "secret42"}"#));
        assert!(
            filtered.may_match_raw(r#"{"text": "\u0073ecret42"}"#),
            "\\u escapes force a scan"
        );

        let unfiltered = rules(r#"{"rules": [{"name": "n", "pattern": "secret:\\s+\\S+"}]}"#);
        assert!(unfiltered.raw_filter.is_none());
        assert!(unfiltered.may_match_raw(r#"{"text": "nothing here"}"#));
    }

    #[test]
    fn config_errors_name_the_problem() {
        let err = |config: &str| {
            Rules::new(&interpose_plugin::parse_config(config).unwrap()).unwrap_err()
        };
        assert_eq!(
            err(r#"{"defaults": ["emails"]}"#),
            "invalid config: `defaults` names an unknown rule `emails`; the built-in rules are: \
             private-key, aws-access-key, bearer-token, api-key, email, card-number"
        );
        assert_eq!(
            err(r#"{"rules": [{"name": "x", "pattern": "a*"}]}"#),
            "invalid config: rule `x`: the pattern matches the empty string"
        );
        assert!(
            err(r#"{"rules": [{"name": "x", "pattern": "("}]}"#)
                .starts_with("invalid config: rule `x`: invalid pattern:")
        );
        let bad_type =
            interpose_plugin::parse_config::<Config>(r#"{"defaults": "yes"}"#).unwrap_err();
        assert!(
            bad_type.contains("expected true, false, or a list of built-in rule names"),
            "{bad_type}"
        );
    }
}
