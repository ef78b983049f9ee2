//! Logs as the Functions host wants them: one JSON object per line, informational lines on
//! stdout (the host records them as Information) and warnings and errors on stderr (Error).
//!
//! Nothing logged carries tokens, keys or the subject's personal data: only ids, statuses
//! and timings are ever passed to `tracing` by this crate.

use tracing::Level;
use tracing_subscriber::EnvFilter;
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

/// Installs the JSON logger for the process.
pub fn init(filter: EnvFilter) {
    let writer = std::io::stderr
        .with_max_level(Level::WARN)
        .or_else(std::io::stdout);
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
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
