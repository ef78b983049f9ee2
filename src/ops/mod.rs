//! Operator commands: the gateway's own settings, credential and Graph client, driven from a
//! shell instead of an HTTP request. Each command prints text, or one JSON document with
//! `--json`, on stdout; diagnostics go to stderr. Only ids are printed, never a subject's
//! name, UPN or mail, and never a token.

pub mod check;
pub mod pending;
pub mod resume;

use std::process::ExitCode;

use serde::Serialize;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError};
use crate::logging;

/// The command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Graph, the identity or a check said no.
pub const EXIT_FAILED: u8 = 1;
/// A setting or argument cannot work (the same code clap and the serve path use).
pub const EXIT_USAGE: u8 = 2;

/// The settings, or the exit code after saying on one stderr line which one is wrong,
/// exactly as the serve path does.
pub(crate) fn settings() -> Result<Config, ExitCode> {
    match settings_and_log_filter() {
        Ok((config, filter)) => {
            logging::init_stderr(filter);
            Ok(config)
        }
        Err(e) => {
            eprintln!("resume-gateway: {e}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Every setting, `RUST_LOG` included; commands log warnings only unless it says otherwise,
/// and only to stderr (stdout carries the command's output).
pub(crate) fn settings_and_log_filter() -> Result<(Config, EnvFilter), ConfigError> {
    let config = Config::from_env()?;
    let value = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "warn".to_owned());
    Ok((config, logging::filter(Some(value))?))
}

/// Runs `work` on a single-threaded runtime (commands make one call at a time), or gives the
/// exit code after saying why no runtime could start.
pub(crate) fn block_on<T>(work: impl std::future::Future<Output = T>) -> Result<T, ExitCode> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Ok(rt.block_on(work)),
        Err(e) => {
            eprintln!("resume-gateway: cannot start the async runtime: {e}");
            Err(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// Prints one JSON document on stdout.
pub(crate) fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("resume-gateway: cannot write JSON: {e}"),
    }
}

/// A duration as an operator reads it: `45s`, `12m 5s`, `3h 2m`, `2d 4h`.
pub(crate) fn human_age(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(12 * 60 + 5), "12m 5s");
        assert_eq!(human_age(3 * 3600 + 2 * 60 + 9), "3h 2m");
        assert_eq!(human_age(2 * 86_400 + 4 * 3600), "2d 4h");
    }
}
