//! One list from several servers' lists: `tools/list`, `prompts/list`,
//! `resources/list` and `resources/templates/list` fanned out by a gateway and merged
//! into one result, with every name exposed as [`Names`] says and a cursor that holds
//! each server's own.
//!
//! The merged cursor is opaque to the client: `ip1.` and base64url of the JSON list of
//! `[server, cursor]` pairs still to fetch (`null`: that server's first page), so a
//! backend's pagination survives the merge and a server whose list is done is not
//! asked again. A cursor that does not decode, or names a server that does not exist,
//! is the client's error (-32602), as a server's own bad cursor is.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

use super::names::{Collision, NameKind, Names};
use crate::wire::jsonrpc::Payload;

const CURSOR_VERSION: &str = "ip1.";

/// Which list, and where its items keep the name a client calls them by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    /// For a list method, its kind.
    pub fn of_method(method: &str) -> Option<ListKind> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }

    /// The result member that holds the items.
    fn items(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The item member that names it.
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }

    fn name_kind(self) -> NameKind {
        match self {
            ListKind::Tools => NameKind::Tool,
            ListKind::Prompts => NameKind::Prompt,
            ListKind::Resources => NameKind::Resource,
            ListKind::ResourceTemplates => NameKind::ResourceTemplate,
        }
    }
}

/// The servers (by their place in the configuration) still to ask for a list, each
/// with its own cursor (`None`: its first page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedCursor {
    pub pages: Vec<(usize, Option<String>)>,
}

/// A client's cursor that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: {0}")]
pub struct InvalidCursor(&'static str);

impl MergedCursor {
    /// The first page of every server in `servers`.
    pub fn start(servers: impl IntoIterator<Item = usize>) -> Self {
        MergedCursor {
            pages: servers.into_iter().map(|server| (server, None)).collect(),
        }
    }

    /// The opaque text a client gets as `nextCursor`.
    pub fn encode(&self) -> String {
        let pairs: Vec<(usize, Option<&str>)> = self
            .pages
            .iter()
            .map(|(server, cursor)| (*server, cursor.as_deref()))
            .collect();
        let json = serde_json::to_vec(&pairs).expect("pairs serialize");
        format!("{CURSOR_VERSION}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// A client's cursor, for a gateway of `servers` servers.
    pub fn decode(text: &str, servers: usize) -> Result<Self, InvalidCursor> {
        let encoded = text
            .strip_prefix(CURSOR_VERSION)
            .ok_or(InvalidCursor("not a cursor this gateway gave out"))?;
        let json = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| InvalidCursor("not base64url"))?;
        let pages: Vec<(usize, Option<String>)> =
            serde_json::from_slice(&json).map_err(|_| InvalidCursor("not a list of pages"))?;
        if pages.is_empty() || pages.iter().any(|(server, _)| *server >= servers) {
            return Err(InvalidCursor("names a server this gateway does not have"));
        }
        Ok(MergedCursor { pages })
    }
}

/// One server's answer to its part of a list.
pub struct Page {
    pub server: usize,
    /// Its `result`, as the server wrote it.
    pub result: Box<RawValue>,
}

/// The merged list of `kind` from `pages` (in configuration order), its items'
/// names exposed and learnt by `names`; items that collide with another server's are
/// left out and reported in `collisions`. `nextCursor` is set while any server has
/// more. Other result members (`_meta`, 2026-07-28 `ttlMs`/`cacheScope`) are merged
/// as the strictest of the servers': the least `ttlMs`, `private` over `public`.
///
/// Each page is read in one pass that borrows every item member's text from the
/// server's result ([`Listed`]); the merged list is then written in one go, each
/// member copied as the server wrote it and only the name (or URI) rewritten. No
/// item is built as a tree, and no member is copied on the way.
pub fn merge(
    kind: ListKind,
    pages: Vec<Page>,
    names: &mut Names,
    collisions: &mut Vec<Collision>,
) -> Box<RawValue> {
    let mut listed = Vec::with_capacity(pages.len());
    let mut next = Vec::new();
    let mut merged = Map::new();
    for page in &pages {
        let Some(page_items) = Listed::read(kind, page.result.get()) else {
            continue;
        };
        let exposed = names.learn(
            kind.name_kind(),
            page.server,
            page_items.items.iter().map(|item| &*item.name),
            collisions,
        );
        if kind == ListKind::Tools {
            // Tool names label the operation metric: given from here, the merged
            // list is not read again for them.
            let tools = exposed.iter().flatten().map(String::as_str);
            crate::telemetry::metrics().learn_tool_names(tools);
        }
        // What is left of the result is small: read as values.
        let rest: Map<String, Value> = page_items
            .rest
            .iter()
            .filter_map(|(key, raw)| Some((key.to_string(), serde_json::from_str(raw.get()).ok()?)))
            .collect();
        let rest = Value::Object(rest);
        if let Some(cursor) = rest["nextCursor"].as_str() {
            next.push((page.server, Some(cursor.to_owned())));
        }
        merge_cache_hints(&mut merged, &rest);
        listed.push((page_items, exposed));
    }
    let next_cursor = (!next.is_empty()).then(|| MergedCursor { pages: next }.encode());
    to_raw(&MergedList {
        kind,
        hints: &merged,
        listed: &listed,
        next_cursor: next_cursor.as_deref(),
    })
}

/// The last merged list of each kind, written again when the same pages come back.
/// A merge is a function of its pages and of the names table, so the same pages (by a
/// 128-bit hash of each result's text) under the same [`Names::version`] make the same
/// list, byte for byte, with the same collisions. Only a merge that left the table as
/// it found it is kept (the first merge of new lists changes the table; merging the
/// same lists again does not), so writing it again leaves the table as merging would.
/// At most one per kind: another page of that kind replaces it.
#[derive(Debug, Default)]
pub struct MergedLists {
    last: Vec<Memo>,
}

#[derive(Debug)]
struct Memo {
    kind: ListKind,
    /// Each page's server and a hash of its result, in page order.
    pages: Vec<(usize, u128)>,
    names_version: u64,
    /// Shared with the answers it was sent in: a hit copies none of it.
    merged: Payload,
    collisions: Vec<Collision>,
}

impl MergedLists {
    /// [`merge`], or the list it wrote last time for the same pages.
    pub fn merge(
        &mut self,
        kind: ListKind,
        pages: Vec<Page>,
        names: &mut Names,
        collisions: &mut Vec<Collision>,
    ) -> Payload {
        let hashes: Vec<(usize, u128)> = pages
            .iter()
            .map(|page| (page.server, xxh3_128(page.result.get().as_bytes())))
            .collect();
        let version = names.version();
        let same = |memo: &&Memo| {
            memo.kind == kind && memo.names_version == version && memo.pages == hashes
        };
        if let Some(memo) = self.last.iter().find(same) {
            collisions.extend(memo.collisions.iter().cloned());
            return memo.merged.clone();
        }
        let mut found = Vec::new();
        let merged = Payload::from(merge(kind, pages, names, &mut found));
        self.last.retain(|memo| memo.kind != kind);
        if names.version() == version {
            self.last.push(Memo {
                kind,
                pages: hashes,
                names_version: version,
                merged: merged.clone(),
                collisions: found.clone(),
            });
        }
        collisions.extend(found);
        merged
    }
}

/// A string as JSON text holds it: borrowed from that text unless it had escapes.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// One server's page, read in one pass over its result: each item's members (key and
/// value text, borrowed from the result), the item's own name, and the result's other
/// members.
#[derive(Default)]
struct Listed<'a> {
    /// Every item's members, item after item; [`ListedItem::members`] indexes it.
    members: Vec<(Text<'a>, &'a RawValue)>,
    items: Vec<ListedItem<'a>>,
    /// The result's members other than the items.
    rest: Vec<(Text<'a>, &'a RawValue)>,
    /// The items' value, when the pass keeps it rather than reading it.
    items_text: Option<&'a RawValue>,
}

struct ListedItem<'a> {
    members: Range<usize>,
    /// Which of them names the item (`None`: none does; the name is added).
    key_member: Option<usize>,
    /// Its name or URI (empty when missing or not a string).
    name: Cow<'a, str>,
}

impl<'a> Listed<'a> {
    /// `result`'s items and other members, or `None` when it is not an object. Items
    /// that are not an array of objects count as none (the other members still do).
    fn read(kind: ListKind, result: &'a str) -> Option<Self> {
        let mut listed = Listed::default();
        let seed = ResultSeed {
            kind,
            listed: &mut listed,
            read_items: true,
        };
        if seed
            .deserialize(&mut serde_json::Deserializer::from_str(result))
            .is_ok()
        {
            return Some(listed);
        }
        // Something is malformed: the result without its items, then the items alone,
        // so that bad items do not cost the rest.
        let mut listed = Listed::default();
        let seed = ResultSeed {
            kind,
            listed: &mut listed,
            read_items: false,
        };
        seed.deserialize(&mut serde_json::Deserializer::from_str(result))
            .ok()?;
        if let Some(items) = listed.items_text.take() {
            let seed = ItemsSeed {
                kind,
                listed: &mut listed,
            };
            if seed
                .deserialize(&mut serde_json::Deserializer::from_str(items.get()))
                .is_err()
            {
                listed.members.clear();
                listed.items.clear();
            }
        }
        Some(listed)
    }
}

/// Reads a list result's members into a [`Listed`]; its items, when `read_items`.
struct ResultSeed<'s, 'a> {
    kind: ListKind,
    listed: &'s mut Listed<'a>,
    read_items: bool,
}

impl<'de> DeserializeSeed<'de> for ResultSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list result")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if *key != *self.kind.items() {
                self.listed.rest.push((key, map.next_value()?));
            } else if self.read_items {
                // A repeated member counts as its last, as in a JSON object read
                // into a map.
                self.listed.members.clear();
                self.listed.items.clear();
                map.next_value_seed(ItemsSeed {
                    kind: self.kind,
                    listed: self.listed,
                })?;
            } else {
                self.listed.items_text = Some(map.next_value()?);
            }
        }
        Ok(())
    }
}

/// Reads the array of items into a [`Listed`].
struct ItemsSeed<'s, 'a> {
    kind: ListKind,
    listed: &'s mut Listed<'a>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ItemSeed {
                kind: self.kind,
                listed: &mut *self.listed,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// Reads one item's members into a [`Listed`].
struct ItemSeed<'s, 'a> {
    kind: ListKind,
    listed: &'s mut Listed<'a>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let members = &mut self.listed.members;
        let start = members.len();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let value: &RawValue = map.next_value()?;
            // A repeated member keeps its first place and takes its last value, as
            // in a JSON object read into an ordered map.
            match members[start..].iter_mut().find(|(seen, _)| **seen == *key) {
                Some(seen) => seen.1 = value,
                None => members.push((key, value)),
            }
        }
        let key_member = (start..members.len()).find(|&i| *members[i].0 == *self.kind.key());
        let name = key_member
            .and_then(|i| {
                let value: &'de RawValue = members[i].1;
                serde_json::from_str::<Text<'de>>(value.get()).ok()
            })
            .map_or(Cow::Borrowed(""), |name| name.0);
        self.listed.items.push(ListedItem {
            members: start..members.len(),
            key_member,
            name,
        });
        Ok(())
    }
}

/// The merged result, written as today's clients read it: the merged cache hints,
/// the kept items of every page, and the merged cursor.
struct MergedList<'m, 'a> {
    kind: ListKind,
    hints: &'m Map<String, Value>,
    listed: &'m [(Listed<'a>, Vec<Option<String>>)],
    next_cursor: Option<&'m str>,
}

impl Serialize for MergedList<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.hints {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry(self.kind.items(), &KeptItems(self))?;
        if let Some(cursor) = self.next_cursor {
            map.serialize_entry("nextCursor", cursor)?;
        }
        map.end()
    }
}

/// Every page's items that kept a name, in page order.
struct KeptItems<'l, 'm, 'a>(&'l MergedList<'m, 'a>);

impl Serialize for KeptItems<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let key = self.0.kind.key();
        let kept = self.0.listed.iter().flat_map(|(listed, exposed)| {
            listed
                .items
                .iter()
                .zip(exposed)
                .filter_map(move |(item, exposed)| {
                    Some(ExposedItem {
                        members: &listed.members[item.members.clone()],
                        key_member: item.key_member.map(|i| i - item.members.start),
                        key,
                        exposed: exposed.as_deref()?,
                    })
                })
        });
        serializer.collect_seq(kept)
    }
}

/// One item, its members as the server wrote them but its name (added if it had none)
/// the exposed one.
struct ExposedItem<'i, 'a> {
    members: &'i [(Text<'a>, &'a RawValue)],
    key_member: Option<usize>,
    key: &'static str,
    exposed: &'i str,
}

impl Serialize for ExposedItem<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (index, (key, value)) in self.members.iter().enumerate() {
            if Some(index) == self.key_member {
                map.serialize_entry(&**key, self.exposed)?;
            } else {
                map.serialize_entry(&**key, value)?;
            }
        }
        if self.key_member.is_none() {
            map.serialize_entry(self.key, self.exposed)?;
        }
        map.end()
    }
}

fn to_raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("JSON values and raw JSON serialize")
}

/// The strictest of the servers' 2026-07-28 cache hints, and the first `resultType`:
/// `result`'s merged into `merged`.
pub(super) fn merge_cache_hints(merged: &mut Map<String, Value>, result: &Value) {
    if let Some(ttl) = result["ttlMs"].as_u64() {
        let least = merged
            .get("ttlMs")
            .and_then(Value::as_u64)
            .map_or(ttl, |seen| seen.min(ttl));
        merged.insert("ttlMs".to_owned(), least.into());
    }
    if let Some(scope) = result["cacheScope"].as_str() {
        let private = scope == "private"
            || merged.get("cacheScope").and_then(Value::as_str) == Some("private");
        let scope = if private { "private" } else { scope };
        merged.insert("cacheScope".to_owned(), scope.into());
    }
    if let Some(result_type) = result.get("resultType") {
        merged
            .entry("resultType")
            .or_insert_with(|| result_type.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::session::names::PrefixMode;

    /// The merged list, read back as a value to compare.
    fn merge(
        kind: ListKind,
        pages: Vec<Page>,
        names: &mut Names,
        collisions: &mut Vec<Collision>,
    ) -> Value {
        let merged = super::merge(kind, pages, names, collisions);
        serde_json::from_str(merged.get()).expect("the merged list is JSON")
    }

    /// The merge as it was before it read pages in one pass (each item split into
    /// owned members, then written back): the oracle the one-pass merge must match
    /// byte for byte.
    fn merge_by_members(
        kind: ListKind,
        pages: Vec<Page>,
        names: &mut Names,
        collisions: &mut Vec<Collision>,
    ) -> Box<RawValue> {
        type Members = indexmap::IndexMap<String, Box<RawValue>>;
        let mut items: Vec<Members> = Vec::new();
        let mut next = Vec::new();
        let mut merged = Map::new();
        for page in pages {
            let Ok(mut members) = serde_json::from_str::<Members>(page.result.get()) else {
                continue;
            };
            let listed: Vec<Members> = members
                .shift_remove(kind.items())
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or_default();
            let keys: Vec<String> = listed
                .iter()
                .map(|item| {
                    item.get(kind.key())
                        .and_then(|raw| serde_json::from_str(raw.get()).ok())
                        .unwrap_or_default()
                })
                .collect();
            let exposed = names.learn(
                kind.name_kind(),
                page.server,
                keys.iter().map(String::as_str),
                collisions,
            );
            for (mut item, exposed) in listed.into_iter().zip(exposed) {
                let Some(exposed) = exposed else { continue };
                item.insert(kind.key().to_owned(), to_raw(&exposed));
                items.push(item);
            }
            let rest: Map<String, Value> = members
                .into_iter()
                .filter_map(|(key, raw)| Some((key, serde_json::from_str(raw.get()).ok()?)))
                .collect();
            let rest = Value::Object(rest);
            if let Some(cursor) = rest["nextCursor"].as_str() {
                next.push((page.server, Some(cursor.to_owned())));
            }
            merge_cache_hints(&mut merged, &rest);
        }
        let mut out: Members = merged.iter().map(|(k, v)| (k.clone(), to_raw(v))).collect();
        out.insert(kind.items().to_owned(), to_raw(&items));
        if !next.is_empty() {
            let cursor = MergedCursor { pages: next }.encode();
            out.insert("nextCursor".to_owned(), to_raw(&cursor));
        }
        to_raw(&out)
    }

    fn pages(results: &[&str]) -> Vec<Page> {
        results
            .iter()
            .enumerate()
            .map(|(server, result)| Page {
                server,
                result: RawValue::from_string((*result).to_owned()).expect("fixture is JSON"),
            })
            .collect()
    }

    /// Results as servers write them, well and badly: pretty-printed and compact,
    /// escaped keys and names, repeated members, items without a name or with one
    /// that is not a string, items that are not objects, a repeated items member,
    /// cursors and cache hints.
    const FIXTURES: &[&[&str]] = &[
        &[
            r#"{"tools":[{"name":"read","inputSchema":{"type":"object"}},{"name":"write","description":"W"}],"nextCursor":"c1","ttlMs":500}"#,
            "{ \"tools\" : [ { \"name\" : \"fetch\" , \"inputSchema\" : { \"type\" : \"object\" } } ,\n {\"title\": \"T\", \"name\": \"search\"} ], \"_meta\": {\"x\": 1}, \"cacheScope\": \"private\" }",
            r#"{"tools":[{"na\u006de":"esc\"aped","d\u00e9sc":"\u00e9\n","x":[1, 2 ,3]},{"name":"naïve/tool.x"}]}"#,
        ],
        &[
            r#"{"tools":[{"name":"a","name":"b","x":1,"x":2},{"description":"no name"},{"name":7},{}]}"#,
            r#"{"tools":[{"name":"a"},5],"nextCursor":"c2","resultType":"complete"}"#,
            r#"{"tools":{"name":"not an array"},"ttlMs":10}"#,
        ],
        &[
            r#"{"tools":[5],"tools":[{"name":"last"}]}"#,
            r#"{"tools":[{"name":"first"}],"tools":[1]}"#,
            r#"[1,2]"#,
        ],
        &[
            r#"{"tools":[{"name":"same"},{"name":"same"}]}"#,
            r#"{"tools":[{"name":"same"}],"nextCursor":7}"#,
            r#"{"nextCursor":"only-a-cursor"}"#,
        ],
    ];

    #[test]
    fn the_one_pass_merge_writes_what_the_member_by_member_merge_wrote() {
        let servers = || vec!["files".to_owned(), "web".to_owned(), "my.db".to_owned()];
        for mode in [PrefixMode::WhenSeveral, PrefixMode::Never] {
            for (kind, items, key) in [
                (ListKind::Tools, "tools", "name"),
                (ListKind::Prompts, "prompts", "name"),
                (ListKind::Resources, "resources", "uri"),
                (
                    ListKind::ResourceTemplates,
                    "resourceTemplates",
                    "uriTemplate",
                ),
            ] {
                for fixture in FIXTURES {
                    let results: Vec<String> = fixture
                        .iter()
                        .map(|r| r.replace("tools", items).replace("name", key))
                        .collect();
                    let results: Vec<&str> = results.iter().map(String::as_str).collect();
                    let (mut names, mut oracle_names) =
                        (Names::new(servers(), mode), Names::new(servers(), mode));
                    let (mut collisions, mut oracle_collisions) = (Vec::new(), Vec::new());
                    let merged = super::merge(kind, pages(&results), &mut names, &mut collisions);
                    let oracle = merge_by_members(
                        kind,
                        pages(&results),
                        &mut oracle_names,
                        &mut oracle_collisions,
                    );
                    assert_eq!(merged.get(), oracle.get(), "{kind:?} {mode:?} {results:?}");
                    assert_eq!(collisions, oracle_collisions, "{kind:?} {results:?}");
                    let listed: Value = serde_json::from_str(merged.get()).unwrap();
                    for item in listed[items].as_array().unwrap() {
                        let exposed = item[key].as_str().unwrap();
                        assert_eq!(
                            names.resolve(kind.name_kind(), exposed),
                            oracle_names.resolve(kind.name_kind(), exposed),
                            "{exposed}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_list_merged_again_from_the_memo_is_what_merging_would_write() {
        let servers = || vec!["files".to_owned(), "web".to_owned(), "my.db".to_owned()];
        for mode in [PrefixMode::WhenSeveral, PrefixMode::Never] {
            let (mut names, mut oracle_names) =
                (Names::new(servers(), mode), Names::new(servers(), mode));
            let mut lists = MergedLists::default();
            // Each fixture three times (the third from the memo), a fixture with one
            // server's part missing, and back: the lists, the collisions and the table
            // stay what merging every time makes of them.
            let mut sequence: Vec<Vec<&str>> = Vec::new();
            for fixture in FIXTURES {
                sequence.extend([fixture.to_vec(), fixture.to_vec(), fixture.to_vec()]);
                sequence.push(fixture[1..].to_vec());
                sequence.extend([fixture.to_vec(), fixture.to_vec(), fixture.to_vec()]);
            }
            for (step, results) in sequence.iter().enumerate() {
                let (mut collisions, mut oracle_collisions) = (Vec::new(), Vec::new());
                let merged =
                    lists.merge(ListKind::Tools, pages(results), &mut names, &mut collisions);
                let oracle = merge_by_members(
                    ListKind::Tools,
                    pages(results),
                    &mut oracle_names,
                    &mut oracle_collisions,
                );
                assert_eq!(
                    merged.get(),
                    oracle.get(),
                    "{mode:?} step {step}: {results:?}"
                );
                assert_eq!(collisions, oracle_collisions, "{mode:?} step {step}");
                let listed: Value = serde_json::from_str(merged.get()).unwrap();
                for item in listed["tools"].as_array().unwrap() {
                    let exposed = item["name"].as_str().unwrap();
                    assert_eq!(
                        names.resolve(NameKind::Tool, exposed),
                        oracle_names.resolve(NameKind::Tool, exposed),
                    );
                }
            }
            // Merging a list twice left it in the memo; another kind has its own.
            assert_eq!(lists.last.len(), 1);
            lists.merge(
                ListKind::Prompts,
                pages(&[r#"{"prompts":[]}"#]),
                &mut names,
                &mut Vec::new(),
            );
            lists.merge(
                ListKind::Prompts,
                pages(&[r#"{"prompts":[]}"#]),
                &mut names,
                &mut Vec::new(),
            );
            assert_eq!(lists.last.len(), 2);
        }
    }

    #[test]
    fn a_page_is_read_borrowing_its_members_text() {
        let result = r#"{"tools":[{"name":"read","inputSchema":{"type": "object"}},{"title":"t"}],"nextCursor":"n"}"#;
        let listed = Listed::read(ListKind::Tools, result).expect("an object");
        let names: Vec<&str> = listed.items.iter().map(|item| &*item.name).collect();
        assert_eq!(names, ["read", ""]);
        assert!(matches!(listed.items[0].name, Cow::Borrowed(_)));
        assert_eq!(listed.items[0].key_member, Some(0));
        assert_eq!(listed.items[1].key_member, None);
        let (key, schema) = &listed.members[1];
        assert!(matches!(key.0, Cow::Borrowed("inputSchema")));
        assert_eq!(schema.get(), r#"{"type": "object"}"#);
        assert_eq!(listed.rest.len(), 1);
        assert_eq!(&*listed.rest[0].0, "nextCursor");
        assert!(Listed::read(ListKind::Tools, "[]").is_none());
    }

    fn two_servers() -> Names {
        Names::new(vec!["files".into(), "web".into()], PrefixMode::WhenSeveral)
    }

    #[test]
    fn tools_of_two_servers_merge_with_prefixes_and_keep_every_other_field() {
        let files = json!({"tools": [{"name": "read", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}]});
        let web = json!({"tools": [{"name": "fetch", "title": "Fetch", "inputSchema": {}}]});
        let mut names = two_servers();
        let merged = merge(
            ListKind::Tools,
            vec![
                Page {
                    server: 0,
                    result: to_raw(&files),
                },
                Page {
                    server: 1,
                    result: to_raw(&web),
                },
            ],
            &mut names,
            &mut Vec::new(),
        );
        assert_eq!(
            merged,
            json!({"tools": [
                {"name": "files_read", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}},
                {"name": "web_fetch", "title": "Fetch", "inputSchema": {}}
            ]})
        );
        let origin = names.resolve(NameKind::Tool, "web_fetch").unwrap();
        assert_eq!((origin.server, origin.name.as_str()), (1, "fetch"));
    }

    #[test]
    fn resources_and_templates_get_their_server_in_the_uri() {
        let files =
            json!({"resourceTemplates": [{"uriTemplate": "file:///{path}", "name": "file"}]});
        let merged = merge(
            ListKind::ResourceTemplates,
            vec![Page {
                server: 0,
                result: to_raw(&files),
            }],
            &mut two_servers(),
            &mut Vec::new(),
        );
        assert_eq!(
            merged["resourceTemplates"][0]["uriTemplate"],
            "files+file:///{path}"
        );
        assert_eq!(
            merged["resourceTemplates"][0]["name"], "file",
            "only the URI names it"
        );
    }

    #[test]
    fn each_servers_cursor_survives_in_one_opaque_cursor() {
        let files = json!({"tools": [], "nextCursor": "f-2"});
        let web = json!({"tools": []});
        let merged = merge(
            ListKind::Tools,
            vec![
                Page {
                    server: 0,
                    result: to_raw(&files),
                },
                Page {
                    server: 1,
                    result: to_raw(&web),
                },
            ],
            &mut two_servers(),
            &mut Vec::new(),
        );
        let cursor = merged["nextCursor"].as_str().expect("files has more");
        assert!(cursor.starts_with("ip1."), "{cursor}");
        let decoded = MergedCursor::decode(cursor, 2).unwrap();
        assert_eq!(decoded.pages, [(0, Some("f-2".to_owned()))], "web is done");
        assert_eq!(
            MergedCursor::decode(&MergedCursor::start([0, 1]).encode(), 2).unwrap(),
            MergedCursor::start([0, 1])
        );
        let last = merge(
            ListKind::Tools,
            vec![Page {
                server: 0,
                result: to_raw(&json!({"tools": []})),
            }],
            &mut two_servers(),
            &mut Vec::new(),
        );
        assert!(last.get("nextCursor").is_none());
    }

    #[test]
    fn a_cursor_the_gateway_did_not_give_is_refused() {
        assert!(MergedCursor::decode("f-2", 2).is_err());
        assert!(MergedCursor::decode("ip1.!!!", 2).is_err());
        let foreign = MergedCursor {
            pages: vec![(5, None)],
        };
        assert_eq!(
            MergedCursor::decode(&foreign.encode(), 2),
            Err(InvalidCursor("names a server this gateway does not have"))
        );
        let empty = format!("ip1.{}", URL_SAFE_NO_PAD.encode("[]"));
        assert!(MergedCursor::decode(&empty, 2).is_err());
    }

    #[test]
    fn colliding_names_are_left_out_and_reported() {
        let mut names = Names::new(vec!["a".into(), "b".into()], PrefixMode::Never);
        let a = json!({"prompts": [{"name": "greet"}]});
        let b = json!({"prompts": [{"name": "greet"}, {"name": "bye"}]});
        let mut collisions = Vec::new();
        let merged = merge(
            ListKind::Prompts,
            vec![
                Page {
                    server: 0,
                    result: to_raw(&a),
                },
                Page {
                    server: 1,
                    result: to_raw(&b),
                },
            ],
            &mut names,
            &mut collisions,
        );
        assert_eq!(
            merged,
            json!({"prompts": [{"name": "greet"}, {"name": "bye"}]})
        );
        assert_eq!(collisions.len(), 1);
        assert_eq!((collisions[0].kept, collisions[0].left_out), (0, 1));
    }

    #[test]
    fn cache_hints_merge_to_the_strictest() {
        let a =
            json!({"tools": [], "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"});
        let b =
            json!({"tools": [], "resultType": "complete", "ttlMs": 5000, "cacheScope": "private"});
        let merged = merge(
            ListKind::Tools,
            vec![
                Page {
                    server: 0,
                    result: to_raw(&a),
                },
                Page {
                    server: 1,
                    result: to_raw(&b),
                },
            ],
            &mut two_servers(),
            &mut Vec::new(),
        );
        assert_eq!(merged["ttlMs"], 5000);
        assert_eq!(merged["cacheScope"], "private");
        assert_eq!(merged["resultType"], "complete");
    }
}
