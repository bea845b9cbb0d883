//! Finds the strings to redact in a payload's raw JSON text and splices the
//! redacted ones back in, leaving every other byte as it was.
//!
//! Building a `serde_json::Value` tree for a 100 KiB result costs far more than
//! scanning its text, and re-serializing the tree would reorder keys. The scanner
//! walks the text once, follows a small path spec to the strings that matter,
//! decodes only those, and re-encodes only the ones that changed, so the output
//! stays valid JSON: a rule sees decoded text and can never eat a quote or
//! half an escape sequence.

use std::borrow::Cow;
use std::fmt;

use crate::rules::Rules;

/// Which strings of a payload to redact.
#[derive(Debug)]
pub enum Spec {
    /// Every string value in this subtree (object keys are left alone).
    All,
    /// In this object, the members named here, each with its own spec.
    Object(&'static [(&'static str, Spec)]),
    /// Every element of this array, with this spec.
    Array(&'static Spec),
}

const EMBEDDED_RESOURCE: Spec = Spec::Object(&[("text", Spec::All)]);
const CONTENT_BLOCK: Spec = Spec::Object(&[("text", Spec::All), ("resource", EMBEDDED_RESOURCE)]);

/// `tools/call` result: text blocks, embedded resources, structured content.
pub const TOOL_RESULT: Spec = Spec::Object(&[
    ("content", Spec::Array(&CONTENT_BLOCK)),
    ("structuredContent", Spec::All),
]);

/// `resources/read` result: the text of each part.
pub const RESOURCE_RESULT: Spec = Spec::Object(&[("contents", Spec::Array(&EMBEDDED_RESOURCE))]);

/// `prompts/get` result: the text (or embedded resource) of each message.
pub const PROMPT_RESULT: Spec = Spec::Object(&[(
    "messages",
    Spec::Array(&Spec::Object(&[("content", CONTENT_BLOCK)])),
)]);

/// Why a payload could not be scanned.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Not JSON where JSON was expected, at this byte offset.
    Malformed(usize),
    /// A string that does not decode (a lone surrogate escape), at this offset.
    Undecodable(usize),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Malformed(at) => write!(f, "malformed JSON at byte {at}"),
            ScanError::Undecodable(at) => write!(f, "a string at byte {at} does not decode"),
        }
    }
}

/// What [`redact`] changed.
#[derive(Debug)]
pub struct Redacted {
    /// The new payload.
    pub payload: String,
    /// How many strings changed.
    pub strings: usize,
    /// The indexes of the rules that matched.
    pub rules: Vec<usize>,
}

/// The redacted payload; `None` when nothing matched.
pub fn redact(raw: &str, spec: &Spec, rules: &Rules) -> Result<Option<Redacted>, ScanError> {
    let mut scanner = Scanner {
        raw,
        bytes: raw.as_bytes(),
        pos: 0,
        rules,
        edits: Vec::new(),
        hits: Vec::new(),
    };
    scanner.value(Some(spec))?;
    scanner.whitespace();
    if scanner.pos != raw.len() {
        return Err(ScanError::Malformed(scanner.pos));
    }
    if scanner.edits.is_empty() {
        return Ok(None);
    }
    let grown: usize = scanner.edits.iter().map(|edit| edit.text.len()).sum();
    let mut out = String::with_capacity(raw.len() + grown);
    let mut copied = 0;
    for edit in &scanner.edits {
        out.push_str(&raw[copied..edit.start]);
        out.push_str(&edit.text);
        copied = edit.end;
    }
    out.push_str(&raw[copied..]);
    Ok(Some(Redacted {
        payload: out,
        strings: scanner.edits.len(),
        rules: scanner.hits,
    }))
}

/// Replace `raw[start..end]` (a whole string token, quotes included) by `text`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

struct Scanner<'a> {
    raw: &'a str,
    bytes: &'a [u8],
    pos: usize,
    rules: &'a Rules,
    edits: Vec<Edit>,
    hits: Vec<usize>,
}

impl<'a> Scanner<'a> {
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Result<u8, ScanError> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or(ScanError::Malformed(self.pos))
    }

    fn next(&mut self) -> Result<u8, ScanError> {
        let byte = self.peek()?;
        self.pos += 1;
        Ok(byte)
    }

    fn value(&mut self, spec: Option<&Spec>) -> Result<(), ScanError> {
        self.whitespace();
        match (spec, self.peek()?) {
            (Some(Spec::Object(members)), b'{') => self.object(members),
            (Some(Spec::Array(element)), b'[') => self.array(element),
            (Some(Spec::All), _) => self.walk(true),
            _ => self.walk(false),
        }
    }

    fn object(&mut self, members: &[(&str, Spec)]) -> Result<(), ScanError> {
        self.pos += 1;
        self.whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.whitespace();
            let key = self.key()?;
            self.whitespace();
            if self.next()? != b':' {
                return Err(ScanError::Malformed(self.pos - 1));
            }
            let spec = members
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, spec)| spec);
            self.value(spec)?;
            self.whitespace();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(()),
                _ => return Err(ScanError::Malformed(self.pos - 1)),
            }
        }
    }

    fn array(&mut self, element: &Spec) -> Result<(), ScanError> {
        self.pos += 1;
        self.whitespace();
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(Some(element))?;
            self.whitespace();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(()),
                _ => return Err(ScanError::Malformed(self.pos - 1)),
            }
        }
    }

    /// Skips one value, redacting its string values when `redact`. Iterative,
    /// so deep nesting cannot exhaust the stack.
    fn walk(&mut self, redact: bool) -> Result<(), ScanError> {
        let mut depth = 0usize;
        loop {
            self.whitespace();
            match self.peek()? {
                b'{' | b'[' => {
                    self.pos += 1;
                    depth += 1;
                    continue;
                }
                b',' | b':' if depth > 0 => {
                    self.pos += 1;
                    continue;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1).ok_or(ScanError::Malformed(self.pos))?;
                    self.pos += 1;
                }
                b'"' => {
                    let start = self.pos;
                    let (end, escaped) = self.string_end(start)?;
                    self.pos = end;
                    if redact {
                        self.whitespace();
                        let is_key = self.bytes.get(self.pos) == Some(&b':');
                        if !is_key {
                            self.redact_string(start, end, escaped)?;
                        }
                    }
                }
                _ => self.scalar()?,
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    fn scalar(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        while let Some(byte) = self.bytes.get(self.pos) {
            if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            Err(ScanError::Malformed(start))
        } else {
            Ok(())
        }
    }

    /// The offset just past the string token opening at `start`, and whether it
    /// holds escapes.
    fn string_end(&self, start: usize) -> Result<(usize, bool), ScanError> {
        if self.bytes.get(start) != Some(&b'"') {
            return Err(ScanError::Malformed(start));
        }
        let mut at = start + 1;
        let mut escaped = false;
        loop {
            let rest = self.bytes.get(at..).unwrap_or_default();
            match memchr::memchr2(b'"', b'\\', rest) {
                Some(offset) if rest[offset] == b'"' => return Ok((at + offset + 1, escaped)),
                Some(offset) => {
                    escaped = true;
                    at += offset + 2;
                }
                None => return Err(ScanError::Malformed(start)),
            }
        }
    }

    fn decode(&self, start: usize, end: usize, escaped: bool) -> Result<Cow<'a, str>, ScanError> {
        let token = self
            .raw
            .get(start..end)
            .ok_or(ScanError::Malformed(start))?;
        if escaped {
            serde_json::from_str::<String>(token)
                .map(Cow::Owned)
                .map_err(|_| ScanError::Undecodable(start))
        } else {
            Ok(Cow::Borrowed(&token[1..token.len() - 1]))
        }
    }

    fn key(&mut self) -> Result<Cow<'a, str>, ScanError> {
        let start = self.pos;
        let (end, escaped) = self.string_end(start)?;
        self.pos = end;
        self.decode(start, end, escaped)
    }

    fn redact_string(&mut self, start: usize, end: usize, escaped: bool) -> Result<(), ScanError> {
        let text = self.decode(start, end, escaped)?;
        if let Some(redacted) = self.rules.redact(&text, &mut self.hits) {
            let text =
                serde_json::to_string(&redacted).map_err(|_| ScanError::Undecodable(start))?;
            self.edits.push(Edit { start, end, text });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::rules::Config;

    fn rules() -> Rules {
        let config: Config = interpose_plugin::parse_config(
            r#"{"defaults": ["email"], "rules": [{"name": "word", "pattern": "secret", "replacement": "\"\\"}]}"#,
        )
        .unwrap();
        Rules::new(&config).unwrap()
    }

    fn run(raw: &str, spec: &Spec) -> Option<Value> {
        let redacted = redact(raw, spec, &rules()).unwrap()?;
        Some(serde_json::from_str(&redacted.payload).expect("output is JSON"))
    }

    #[test]
    fn tool_result_text_embedded_resource_and_structured_content_are_redacted() {
        let raw = r#"{"content": [
                {"type": "text", "text": "mail bob@example.com"},
                {"type": "image", "data": "bob@example.com", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "file:///bob@example.com", "text": "bob@example.com"}}
            ],
            "structuredContent": {"owner": {"email": "bob@example.com"}, "bob@example.com": [1, "bob@example.com", true, null]},
            "_meta": {"note": "bob@example.com"}}"#;
        let out = run(raw, &TOOL_RESULT).unwrap();
        assert_eq!(
            out,
            json!({"content": [
                {"type": "text", "text": "mail [REDACTED:email]"},
                {"type": "image", "data": "bob@example.com", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "file:///bob@example.com", "text": "[REDACTED:email]"}}
            ],
            "structuredContent": {"owner": {"email": "[REDACTED:email]"}, "bob@example.com": [1, "[REDACTED:email]", true, null]},
            "_meta": {"note": "bob@example.com"}})
        );
    }

    #[test]
    fn untouched_bytes_are_kept_exactly() {
        let raw = "{ \"z\":1, \"content\" : [ {\"text\":\"a secret\" ,\"type\":\"text\"} ] }";
        let redacted = redact(raw, &TOOL_RESULT, &rules()).unwrap().unwrap();
        assert_eq!((redacted.strings, redacted.rules), (1, vec![0]));
        assert_eq!(
            redacted.payload,
            "{ \"z\":1, \"content\" : [ {\"text\":\"a \\\"\\\\\" ,\"type\":\"text\"} ] }"
        );
    }

    #[test]
    fn escapes_are_decoded_before_matching_and_re_encoded_after() {
        // `\n` before the address: on raw text an email pattern would start at
        // the `n` and the replacement would leave a dangling backslash.
        let raw =
            r#"{"content":[{"type":"text","text":"line\nbob@example.com\t\u0073ecret \"q\""}]}"#;
        let out = run(raw, &TOOL_RESULT).unwrap();
        assert_eq!(
            out["content"][0]["text"],
            "line\n[REDACTED:email]\t\"\\ \"q\""
        );
    }

    #[test]
    fn resource_and_prompt_results() {
        let raw =
            r#"{"contents":[{"uri":"a","text":"bob@example.com"},{"uri":"b","blob":"Ym9i"}]}"#;
        assert_eq!(
            run(raw, &RESOURCE_RESULT).unwrap(),
            json!({"contents":[{"uri":"a","text":"[REDACTED:email]"},{"uri":"b","blob":"Ym9i"}]})
        );
        let raw = r#"{"description":"bob@example.com","messages":[{"role":"user","content":{"type":"text","text":"hi bob@example.com"}}]}"#;
        assert_eq!(
            run(raw, &PROMPT_RESULT).unwrap(),
            json!({"description":"bob@example.com","messages":[{"role":"user","content":{"type":"text","text":"hi [REDACTED:email]"}}]})
        );
    }

    #[test]
    fn nothing_to_redact_gives_none() {
        assert_eq!(
            run(
                r#"{"content":[{"type":"text","text":"clean"}],"isError":false}"#,
                &TOOL_RESULT
            ),
            None
        );
        assert_eq!(
            run(r#"[1,2,{"a":"bob@example.com"}]"#, &TOOL_RESULT),
            None,
            "not an object: left alone"
        );
    }

    #[test]
    fn deep_nesting_is_walked_without_recursion() {
        let depth = 100_000;
        let raw = format!(
            r#"{{"structuredContent":{}"bob@example.com"{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let redacted = redact(&raw, &TOOL_RESULT, &rules()).unwrap().unwrap();
        assert_eq!(redacted.strings, 1);
        assert!(redacted.payload.contains("\"[REDACTED:email]\""));
    }

    #[test]
    fn malformed_and_undecodable_input_is_an_error() {
        assert_eq!(
            redact(r#"{"content": [}"#, &TOOL_RESULT, &rules()).unwrap_err(),
            ScanError::Malformed(13)
        );
        assert_eq!(
            redact(r#"{"content": "abc"#, &TOOL_RESULT, &rules()).unwrap_err(),
            ScanError::Malformed(12)
        );
        let lone_surrogate = r#"{"content":[{"text":"\ud800 bob@example.com"}]}"#;
        assert_eq!(
            redact(lone_surrogate, &TOOL_RESULT, &rules()).unwrap_err(),
            ScanError::Undecodable(20)
        );
    }
}
