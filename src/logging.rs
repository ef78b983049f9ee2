//! Logs as the Functions host wants them: one JSON object per line, informational lines on
//! stdout (the host records them as Information) and warnings and errors on stderr (Error).
//!
//! Nothing logged carries tokens, keys or the subject's personal data: only ids, statuses
//! and timings are ever passed to `tracing` by this crate.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::ConfigError;

/// Applies unless `RUST_LOG` says otherwise.
const DEFAULT_FILTER: &str = "info";
/// Libraries whose info lines are per-request chatter or Rust debug text (`azure_identity`
/// logs its client id as `Some(ClientId("…"))` at info): kept at warn unless `RUST_LOG`
/// names them.
const QUIET_CRATES: &[&str] = &["azure_core", "azure_identity", "hyper", "reqwest"];

/// The log filter from `RUST_LOG`, validated like every other setting.
pub fn filter(value: Option<String>) -> Result<EnvFilter, ConfigError> {
    let text = value
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    let invalid = |allowed: &str| ConfigError {
        setting: "RUST_LOG",
        value: format!("{text:?}"),
        allowed: allowed.into(),
    };
    // A bare word is a target at trace level to tracing, so `warning` or `verbose` would
    // silence everything else without a word: refused unless it is a level.
    if let Some(word) = text.split(',').map(str::trim).find(|d| {
        !d.is_empty()
            && !d.contains(['=', '[', ':'])
            && d.parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
    }) {
        return Err(invalid(&format!(
            "{word:?} is not a level (trace, debug, info, warn, error, off); name a target as target=level"
        )));
    }
    let mut directives = text.clone();
    for quiet in QUIET_CRATES.iter().filter(|c| !text.contains(*c)) {
        directives.push(',');
        directives.push_str(quiet);
        directives.push_str("=warn");
    }
    EnvFilter::try_new(&directives)
        .map_err(|_| invalid("a tracing filter such as info, warn or info,resume_gateway=debug"))
}

/// How log lines are written: `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for the Functions host and Application Insights.
    Json,
    /// One readable line per event, for a person at a terminal.
    Text,
}

impl LogFormat {
    /// `LOG_FORMAT`, or, unset, `text` when stdout is a terminal and `json` otherwise (the
    /// host reads a pipe).
    pub fn from_setting(
        value: Option<String>,
        stdout_is_terminal: bool,
    ) -> Result<Self, ConfigError> {
        match value.as_deref().map(str::trim) {
            None | Some("") if stdout_is_terminal => Ok(Self::Text),
            None | Some("") => Ok(Self::Json),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(Self::Text),
            Some(v) => Err(ConfigError {
                setting: "LOG_FORMAT",
                value: format!("{v:?}"),
                allowed: "json, text".into(),
            }),
        }
    }
}

/// Lines queued for stdout before a request has to wait for the writer (back-pressure, never loss).
const QUEUED_LINES: usize = 16 * 1024;
/// One write to stdout carries at most about this much.
const BATCH_BYTES: usize = 64 * 1024;
/// After a write, lines are gathered this long before the next: at most this late, and
/// at most one wake-up of the writer and of the host's reader per period.
const GATHER: Duration = Duration::from_millis(2);
/// How long the exit waits for queued lines to be written.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Installs the logger for the process. Keep the guard until exit: dropping it writes out
/// every queued line.
#[must_use = "keep the guard until exit, or the last log lines may be lost"]
pub fn init(filter: EnvFilter, format: LogFormat, filter_text: &str) -> LogGuard {
    let guard = match format {
        LogFormat::Json => {
            let (stdout, guard) = BatchedStdout::start();
            let writer = std::io::stderr.with_max_level(Level::WARN).or_else(stdout);
            // Only fails if a logger is already installed, which then stays.
            let _ = tracing::subscriber::set_global_default(json_lines(filter, writer));
            guard
        }
        LogFormat::Text => {
            // Written at once, line by line: at a terminal, warnings on stderr then appear
            // between the info lines they came between.
            let writer = std::io::stderr
                .with_max_level(Level::WARN)
                .or_else(std::io::stdout);
            let _ = tracing::subscriber::set_global_default(text_lines(filter, writer));
            LogGuard(None)
        }
    };
    if !gateway_enabled() && filter_text.trim() != "off" {
        let warn = || {
            tracing::warn!(
                rust_log = filter_text,
                "RUST_LOG enables none of the gateway's own logs (target resume_gateway): requests will be served without a word; add info or resume_gateway=info"
            );
        };
        let always = || EnvFilter::new("warn");
        match format {
            LogFormat::Json => {
                tracing::subscriber::with_default(json_lines(always(), std::io::stderr), warn);
            }
            LogFormat::Text => {
                tracing::subscriber::with_default(text_lines(always(), std::io::stderr), warn);
            }
        }
    }
    guard
}

/// Whether the installed filter lets any of the gateway's errors through (levels are
/// thresholds: a target that shows nothing at error shows nothing at all).
fn gateway_enabled() -> bool {
    tracing::enabled!(target: "resume_gateway::http::routes", Level::ERROR)
        || tracing::enabled!(target: "resume_gateway::http", Level::ERROR)
        || tracing::enabled!(target: "resume_gateway::resume", Level::ERROR)
}

/// The gateway's logger, writing JSON lines to `writer`.
fn json_lines<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::default())
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// The gateway's logger for people, writing [`TextLines`] to `writer`.
fn text_lines<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .fmt_fields(TextFields::default())
        .event_format(TextLines)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// `2026-11-29T08:51:50.421Z INFO  message key=value … [invocation_id=…]`: one line per
/// event whatever the values hold (line breaks are shown as `\n`), values as their text
/// (no Rust quoting), the request's span fields last.
struct TextLines;

impl<S> FormatEvent<S, TextFields> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, TextFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(256);
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        let _ = write!(line, " {:<5}", event.metadata().level().as_str());
        event.record(&mut TextVisitor(&mut line));
        if let Some(span) = ctx.lookup_current()
            && let Some(fields) = span.extensions().get::<FormattedFields<TextFields>>()
            && !fields.is_empty()
        {
            line.push_str(" [");
            line.push_str(fields.trim_start());
            line.push(']');
        }
        if line.len() > MAX_LINE_BYTES {
            let mut end = MAX_LINE_BYTES - 64;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            let bytes = line.len();
            line.truncate(end);
            let _ = write!(line, "… (log line cut: {bytes} bytes)");
        }
        line.push('\n');
        writer.write_str(&line)
    }
}

/// Span fields for [`TextLines`] (` a=1 b=x`).
type TextFields = SpanFields<TextVisitor<'static>>;

/// Appends the message as is and every other field as ` name=value`, on one line.
struct TextVisitor<'a>(&'a mut String);

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push(' ');
        if field.name() != "message" {
            self.0.push_str(field.name());
            self.0.push('=');
        }
        let _ = write!(OneLine(self.0), "{value:?}");
    }
}

/// Writes text with line breaks shown as `\n` and `\r`, so an event stays on one line.
struct OneLine<'a>(&'a mut String);

impl fmt::Write for OneLine<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 {
                self.0.push_str("\\n");
            }
            self.0.push_str(&part.replace('\r', "\\r"));
        }
        Ok(())
    }
}

/// One JSON object per line: `timestamp`, `level`, the event's fields (`message` first), and
/// `span` with the current span's fields and name (the invocation id of a request). It is the
/// shape tracing-subscriber's JSON formatter gives with flattened events and the current span,
/// written straight into the line: that formatter serialized through `serde` and re-parsed the
/// span's fields for every line, a sixth of the gateway's own instructions per request
/// (`valgrind --tool=callgrind`).
struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A request's summary line is 600 to 900 bytes: one allocation, no regrowth.
        let mut line = String::with_capacity(1024);
        line.push_str("{\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        line.push_str("\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push('"');
        event.record(&mut JsonVisitor(&mut line));
        if let Some(span) = ctx.lookup_current() {
            line.push_str(",\"span\":{");
            if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>()
                && let Some(inner) = fields.strip_prefix(',')
            {
                line.push_str(inner);
                line.push(',');
            }
            line.push_str("\"name\":");
            push_json_str(&mut line, span.name());
            line.push('}');
        }
        line.push_str("}\n");
        if line.len() > MAX_LINE_BYTES {
            line = cut_line(&line);
        }
        writer.write_str(&line)
    }
}

/// The most one log line may take. Caller input in answers and logs is cut where it is quoted
/// (`echo`); this bounds whatever else a line may carry, so no request can make the host's log
/// pipe, or Application Insights, take megabytes.
const MAX_LINE_BYTES: usize = 8 * 1024;

/// A line over [`MAX_LINE_BYTES`], still one JSON object: its start, as a string, with its
/// length, under the original timestamp and level.
fn cut_line(line: &str) -> String {
    // Escaped again as a string, a byte may take six (`\u0001`): an eighth stays under the cap.
    let mut end = MAX_LINE_BYTES / 8;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    // `{"timestamp":"…","level":"…"` is the line's first two members, as written above.
    let members = line.find(",\"level\":\"").and_then(|at| {
        let rest = &line[at + 10..];
        rest.find('"').map(|close| &line[..at + 10 + close + 1])
    });
    let mut cut = String::with_capacity(MAX_LINE_BYTES);
    cut.push_str(members.unwrap_or("{\"level\":\"WARN\""));
    cut.push_str(",\"message\":\"log line cut to its start\",\"lineBytes\":");
    cut.push_str(&line.len().to_string());
    cut.push_str(",\"lineStart\":");
    push_json_str(&mut cut, &line[..end]);
    cut.push_str("}\n");
    cut
}

/// Span fields for [`JsonLines`] (`,"a":1,"b":"x"`).
type JsonFields = SpanFields<JsonVisitor<'static>>;

/// A visitor that appends fields to a line, so that one [`SpanFields`] serves both formats.
trait LineVisitor: Visit {
    fn new(line: &mut String) -> impl Visit + '_;
}

impl LineVisitor for JsonVisitor<'_> {
    fn new(line: &mut String) -> impl Visit + '_ {
        JsonVisitor(line)
    }
}

impl LineVisitor for TextVisitor<'_> {
    fn new(line: &mut String) -> impl Visit + '_ {
        TextVisitor(line)
    }
}

/// A span's fields, stored as `V` writes them into a line; the event formatter copies them.
struct SpanFields<V>(std::marker::PhantomData<fn() -> V>);

impl<V> Default for SpanFields<V> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'w, V: LineVisitor + 'static> FormatFields<'w> for SpanFields<V> {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut text = String::new();
        fields.record(&mut V::new(&mut text));
        writer.write_str(&text)
    }

    /// Fields recorded later are appended as they come.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        fields.record(&mut V::new(&mut current.fields));
        Ok(())
    }
}

/// Appends each field as `,"name":value`.
struct JsonVisitor<'a>(&'a mut String);

impl JsonVisitor<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(',');
        push_json_str(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.0, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.0, "{value}");
        } else {
            self.0.push_str("null");
        }
    }

    /// Messages and `%`/`?` values: their text, as a JSON string.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.0.push('"');
        let _ = write!(Escaped(self.0), "{value:?}");
        self.0.push('"');
    }
}

/// Appends `text` as a JSON string, quotes included.
fn push_json_str(line: &mut String, text: &str) {
    line.push('"');
    let _ = Escaped(line).write_str(text);
    line.push('"');
}

/// Writes text into a JSON string: quotes, backslashes and control characters escaped.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.push_str(&text[plain..i]);
            if escape.is_empty() {
                let _ = write!(self.0, "\\u{byte:04x}");
            } else {
                self.0.push_str(escape);
            }
            plain = i + 1;
        }
        self.0.push_str(&text[plain..]);
        Ok(())
    }
}

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// Informational lines, written to stdout by a thread of their own in batches. Each request
/// logs a summary line; written directly, that is a pipe write per request under the stdout
/// lock (a quarter of the gateway's CPU under load, measured with `perf`). Queued, a burst of
/// lines is one write, and no request waits on the host reading its pipe.
#[derive(Clone)]
struct BatchedStdout(SyncSender<Message>);

/// Flushes the queued lines when dropped.
pub struct LogGuard(Option<SyncSender<Message>>);

impl BatchedStdout {
    fn start() -> (Self, LogGuard) {
        let (tx, rx) = mpsc::sync_channel::<Message>(QUEUED_LINES);
        let spawned = std::thread::Builder::new()
            .name("log-stdout".into())
            .spawn(move || write_batches(&rx));
        match spawned {
            Ok(_) => (Self(tx.clone()), LogGuard(Some(tx))),
            // No thread, no queue: a closed channel makes every line go straight to stdout.
            Err(_) => (Self(mpsc::sync_channel(0).0), LogGuard(None)),
        }
    }
}

fn write_batches(rx: &Receiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => batch.extend_from_slice(&line),
                Message::Flush(ack) => acks.push(ack),
            }
            if batch.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        // Lines sent while this thread sleeps are queued without waking it; waking it for
        // each line cost a context switch per request on a two-core machine (measured).
        std::thread::sleep(GATHER);
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let (ack, done) = mpsc::sync_channel(1);
            if tx.send(Message::Flush(ack)).is_ok() {
                let _ = done.recv_timeout(FLUSH_LIMIT);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Write for BatchedStdout {
    /// The formatter hands over each event as one complete line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Err(mpsc::SendError(Message::Line(line))) = self.0.send(Message::Line(buf.to_vec()))
        {
            std::io::stdout().write_all(&line)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The gateway's logger in `format`, on stderr only, for the operator commands (their stdout
/// is the command's output, possibly JSON for a script).
pub fn init_stderr(filter: EnvFilter, format: LogFormat) {
    // Only fails if a logger is already installed, which then stays.
    let _ = match format {
        LogFormat::Json => {
            tracing::subscriber::set_global_default(json_lines(filter, std::io::stderr))
        }
        LogFormat::Text => {
            tracing::subscriber::set_global_default(text_lines(filter, std::io::stderr))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// What the logger wrote, line by line.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn logged(f: impl FnOnce()) -> Vec<Value> {
        let out = Captured::default();
        let subscriber = json_lines(filter(Some("debug".into())).unwrap(), out.clone());
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        for line in text.lines() {
            // The order the host's log views show: time, level, message, then the fields.
            assert!(line.starts_with("{\"timestamp\":\""), "{line}");
            assert!(line.contains("\",\"level\":\""), "{line}");
            assert!(line.contains("\",\"message\":\""), "{line}");
        }
        out.lines()
    }

    #[test]
    fn lines_are_json_objects_with_fields_and_the_current_span() {
        let lines = logged(|| {
            tracing::info!(
                text = "a \"quoted\" \\ line\nwith\ttabs \u{1} é",
                count = 42u64,
                delta = -7i64,
                ratio = 0.5f64,
                nan = f64::NAN,
                ok = true,
                absent = None::<&str>,
                shown = %"display",
                debugged = ?Some(1),
                "resume {}",
                "accepted"
            );
            let span = tracing::info_span!("request", invocation_id = "inv-1", other = 3u64);
            span.in_scope(|| tracing::warn!(status = 503, "resume not done"));
            let empty = tracing::info_span!("request", invocation_id = None::<&str>);
            empty.in_scope(|| tracing::info!("no id"));
            let later = tracing::info_span!("request", invocation_id = tracing::field::Empty);
            later.record("invocation_id", "inv-2");
            later.in_scope(|| tracing::info!("recorded later"));
        });
        assert_eq!(lines.len(), 4, "{lines:?}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "resume accepted");
        assert_eq!(first["text"], "a \"quoted\" \\ line\nwith\ttabs \u{1} é");
        assert_eq!(first["count"], 42);
        assert_eq!(first["delta"], -7);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["nan"], Value::Null);
        assert_eq!(first["ok"], true);
        assert!(first.get("absent").is_none());
        assert_eq!(first["shown"], "display");
        assert_eq!(first["debugged"], "Some(1)");
        assert!(first.get("span").is_none());
        let ts = first["timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );

        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["status"], 503);
        assert_eq!(
            lines[1]["span"],
            json!({"invocation_id": "inv-1", "other": 3, "name": "request"})
        );
        assert_eq!(lines[2]["span"], json!({"name": "request"}));
        assert_eq!(
            lines[3]["span"],
            json!({"invocation_id": "inv-2", "name": "request"})
        );
    }

    #[test]
    fn text_lines_are_one_readable_line_per_event() {
        let out = Captured::default();
        let subscriber = text_lines(filter(Some("debug".into())).unwrap(), out.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", invocation_id = "inv-1");
            span.in_scope(|| {
                tracing::warn!(
                    status = 503u64,
                    problem = "graph-unavailable",
                    shown = %"plain",
                    reason = "two\nlines",
                    "resume not done: {}",
                    "Graph kept failing"
                )
            });
            tracing::info!(ok = true, "started");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (time, rest) = lines[0].split_once(' ').unwrap();
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
        assert_eq!(
            rest,
            r"WARN  resume not done: Graph kept failing status=503 problem=graph-unavailable shown=plain reason=two\nlines [invocation_id=inv-1]"
        );
        assert!(lines[1].ends_with(" INFO  started ok=true"), "{}", lines[1]);
    }

    proptest! {
        #[test]
        fn any_text_survives_as_a_json_string(text in any::<String>()) {
            let mut line = String::new();
            push_json_str(&mut line, &text);
            prop_assert_eq!(serde_json::from_str::<String>(&line).unwrap(), text);
        }
    }

    #[test]
    fn a_huge_text_line_is_cut_to_the_cap() {
        let out = Captured::default();
        let huge = "é".repeat(100_000);
        let subscriber = text_lines(filter(Some("info".into())).unwrap(), out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(field = huge.as_str(), "big")
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.len() <= MAX_LINE_BYTES, "{}", text.len());
        assert!(
            text.trim_end().ends_with("bytes)"),
            "{}",
            &text[text.len() - 60..]
        );
    }

    #[test]
    fn a_huge_line_is_cut_to_the_cap_and_stays_one_json_object() {
        let huge = "é\"\\\u{1}x".repeat(100_000);
        let lines = logged(|| tracing::warn!(field = huge.as_str(), "big {}", "line"));
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert!(line["timestamp"].is_string());
        assert!(line["lineBytes"].as_u64().unwrap() > 400_000);
        assert!(
            line["lineStart"]
                .as_str()
                .unwrap()
                .starts_with("{\"timestamp\"")
        );
        assert!(
            line.to_string().len() <= MAX_LINE_BYTES + 64,
            "{}",
            line.to_string().len()
        );
        // Short lines are untouched.
        let lines = logged(|| tracing::info!(field = "short", "small"));
        assert_eq!(lines[0]["field"], "short");
        assert!(lines[0].get("lineBytes").is_none());
    }

    #[test]
    fn bad_filters_are_setting_errors() {
        assert!(filter(None).is_ok());
        assert!(filter(Some("debug".into())).is_ok());
        let e = filter(Some("info,[[".into())).unwrap_err();
        assert_eq!(e.setting, "RUST_LOG");
        for word in ["warning", "verbose", "info,debg"] {
            let e = filter(Some(word.into())).unwrap_err();
            assert!(e.allowed.contains("is not a level"), "{word}: {e}");
        }
        for ok in [
            "WARN",
            "off",
            "hyper=debug",
            "resume_gateway::http::routes=debug",
            "[request]=debug",
            "info,reqwest=info",
        ] {
            assert!(filter(Some(ok.into())).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_sdk_stays_at_warn_unless_named() {
        let shown = |f: EnvFilter| f.to_string();
        let quiet = shown(filter(None).unwrap());
        for krate in QUIET_CRATES {
            assert!(quiet.contains(&format!("{krate}=warn")), "{quiet}");
        }
        let named = shown(filter(Some("debug,azure_identity=info".into())).unwrap());
        assert!(
            named.contains("azure_identity=info") && !named.contains("azure_identity=warn"),
            "{named}"
        );
    }

    #[test]
    fn the_format_follows_the_terminal_unless_set() {
        assert_eq!(
            LogFormat::from_setting(None, true).unwrap(),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::from_setting(None, false).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            LogFormat::from_setting(Some(" ".into()), true).unwrap(),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::from_setting(Some("JSON".into()), true).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            LogFormat::from_setting(Some("text".into()), false).unwrap(),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::from_setting(Some("xml".into()), false)
                .unwrap_err()
                .setting,
            "LOG_FORMAT"
        );
    }
}
