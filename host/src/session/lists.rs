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

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use indexmap::IndexMap;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::names::{Collision, NameKind, Names};

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

/// An object's members as written: read without building their values.
type Members = IndexMap<String, Box<RawValue>>;

/// The merged list of `kind` from `pages` (in configuration order), its items'
/// names exposed and learnt by `names`; items that collide with another server's are
/// left out and reported in `collisions`. `nextCursor` is set while any server has
/// more. Other result members (`_meta`, 2026-07-28 `ttlMs`/`cacheScope`) are merged
/// as the strictest of the servers': the least `ttlMs`, `private` over `public`.
///
/// Items are taken apart only into their members: the name (or URI) is rewritten and
/// every other member (a tool's schemas, most of a list) is copied as the text the
/// server wrote, never parsed into a tree.
pub fn merge(
    kind: ListKind,
    pages: Vec<Page>,
    names: &mut Names,
    collisions: &mut Vec<Collision>,
) -> Box<RawValue> {
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
        // What is left of the result is small: read as values.
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
