//! Logs as the Functions host wants them: one JSON object per line, informational lines on
//! stdout (the host records them as Information) and warnings and errors on stderr (Error).
//!
//! Nothing logged carries tokens, keys or the subject's personal data: only ids, statuses
//! and timings are ever passed to `tracing` by this crate.

use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::ConfigError;

/// Applies unless `RUST_LOG` says otherwise; the SDK's per-request chatter stays out.
const DEFAULT_FILTER: &str = "info,azure_core=warn,azure_identity=info,hyper=warn,reqwest=warn";

/// The log filter from `RUST_LOG`, validated like every other setting.
pub fn filter(value: Option<String>) -> Result<EnvFilter, ConfigError> {
    let text = value
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    EnvFilter::try_new(&text).map_err(|_| ConfigError {
        setting: "RUST_LOG",
        value: format!("{text:?}"),
        allowed: "a tracing filter such as info, warn or info,resume_gateway=debug".into(),
    })
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

/// Installs the JSON logger for the process. Keep the guard until exit: dropping it writes
/// out every queued line.
#[must_use = "keep the guard until exit, or the last log lines may be lost"]
pub fn init(filter: EnvFilter) -> LogGuard {
    let (stdout, guard) = BatchedStdout::start();
    let writer = std::io::stderr.with_max_level(Level::WARN).or_else(stdout);
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
    guard
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

/// Installs a plain-text logger on stderr only, for the operator commands (their stdout is
/// the command's output, possibly JSON for a script).
pub fn init_stderr(filter: EnvFilter) {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filters_are_setting_errors() {
        assert!(filter(None).is_ok());
        assert!(filter(Some("debug".into())).is_ok());
        let e = filter(Some("info,[[".into())).unwrap_err();
        assert_eq!(e.setting, "RUST_LOG");
    }
}
