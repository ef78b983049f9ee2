//! Operator commands: the gateway's own settings, credential and Graph client, driven from a
//! shell instead of an HTTP request. Each command prints text, or one JSON document with
//! `--json`, on stdout; diagnostics go to stderr. Only ids are printed, never a subject's
//! name, UPN or mail, and never a token.

pub(crate) mod access_package;
pub(crate) mod check;
pub mod cli;
pub(crate) mod grant;
pub(crate) mod pending;
pub(crate) mod resume;

use std::process::ExitCode;

use serde::Serialize;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError, CredentialKind};
use crate::http::problem::{CommandError, Problem};
use crate::identity::{OperatorAccess, TokenSource};
use crate::logging;
use crate::ops::cli::SignInArgs;

/// The command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Graph, the identity or a check said no.
pub const EXIT_FAILED: u8 = 1;
/// A setting or argument cannot work (the same code clap and the serve path use).
pub const EXIT_USAGE: u8 = 2;

/// The settings, with the command line's sign-in choice applied and stderr logging started
/// as `RUST_LOG` asks.
pub(crate) fn settings(sign_in: &SignInArgs) -> Result<Config, CommandError> {
    let (config, filter) = settings_and_log_filter(sign_in)?;
    logging::init_stderr(filter);
    Ok(config)
}

/// Every setting, `RUST_LOG` included; commands log warnings only unless it says otherwise,
/// and only to stderr (stdout carries the command's output).
pub(crate) fn settings_and_log_filter(
    sign_in: &SignInArgs,
) -> Result<(Config, EnvFilter), ConfigError> {
    let mut config = Config::from_env()?;
    if let Some(client_id) = &sign_in.client_id {
        config.credential = CredentialKind::DeviceCode;
        config.operator.client_id = client_id.to_string();
    }
    let value = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "warn".to_owned());
    Ok((config, logging::filter(Some(value))?))
}

/// Runs `work` on a single-threaded runtime (commands make one call at a time).
pub(crate) fn block_on<T>(work: impl std::future::Future<Output = T>) -> Result<T, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(work))
        .map_err(|e| CommandError::Runtime(e.to_string()))
}

/// A command that signs in, does its Graph work and prints its result: settings, the
/// credential for `access`, `work` on the runtime, then the result as text (`text`) or one
/// JSON document, or the failure as [`fail`] reports it.
pub(crate) fn run_signed_in<T, F>(
    sign_in: &SignInArgs,
    access: OperatorAccess,
    json: bool,
    work: impl FnOnce(Config, TokenSource) -> F,
    text: impl FnOnce(&T),
) -> ExitCode
where
    T: Serialize,
    F: std::future::Future<Output = Result<T, CommandError>>,
{
    let done = settings(sign_in).and_then(|config| {
        let tokens = TokenSource::for_operator(&config, access)?;
        block_on(work(config, tokens))?
    });
    match done {
        Ok(result) if json => {
            print_json(&result);
            ExitCode::from(EXIT_OK)
        }
        Ok(result) => {
            text(&result);
            ExitCode::from(EXIT_OK)
        }
        Err(e) => fail(&e, json),
    }
}

/// Reports a failed command the one way every command does: with `--json`, its problem
/// document on stdout (so a script always gets exactly one JSON document); otherwise one line
/// on stderr, and the remedy on the next. Returns the exit code.
pub(crate) fn fail(error: &CommandError, json: bool) -> ExitCode {
    match error {
        // The very line the gateway prints for it, which already says what is allowed.
        CommandError::Setting(e) if !json => eprintln!("resume-gateway: {e}"),
        _ => report_problem(&error.problem(), json, "resume-gateway"),
    }
    ExitCode::from(if error.is_usage() {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    })
}

/// A problem as [`fail`] prints it; `lead` starts the stderr line.
pub(crate) fn report_problem(p: &Problem, json: bool, lead: &str) {
    if json {
        print_json(p);
        return;
    }
    eprintln!("{lead} ({}): {}", p.slug(), p.detail);
    if let Some(remedy) = &p.remedy {
        eprintln!("remedy: {remedy}");
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
