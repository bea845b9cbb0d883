//! `--log-format json`: one JSON object per log line, its fields at the top level and
//! named as the spans name them ([`crate::telemetry::trace`]), so that a log pipeline
//! and a trace store agree: `session` is written `mcp.session.id`, `plugin`
//! `interpose.plugin.name`, and so on ([`SPAN_NAMES`]). Text logs keep the short names.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::log_output::Timestamps;

/// A log field's name, as the spans' attribute of the same meaning is named.
pub const SPAN_NAMES: [(&str, &str); 5] = [
    ("session", "mcp.session.id"),
    ("method", "mcp.method.name"),
    ("plugin", "interpose.plugin.name"),
    ("server", "interpose.server.name"),
    ("kind", "interpose.message.kind"),
];

fn field_name(name: &'static str) -> &'static str {
    SPAN_NAMES
        .iter()
        .find(|(log, _)| *log == name)
        .map_or(name, |(_, span)| span)
}

/// Formats an event as one JSON object: `timestamp`, `level`, the fields (`message`
/// among them), `target`.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::with_capacity(27);
        Timestamps.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), metadata.level().as_str().into());
        event.record(&mut Fields(&mut line));
        line.insert("target".into(), metadata.target().into());
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        self.0.insert(field_name(field.name()).to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_the_spans_also_carry_take_the_spans_names() {
        assert_eq!(field_name("session"), "mcp.session.id");
        assert_eq!(field_name("plugin"), "interpose.plugin.name");
        assert_eq!(field_name("message"), "message");
        assert_eq!(field_name("policy"), "policy");
    }
}
