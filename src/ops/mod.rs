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

use std::io::IsTerminal;
use std::process::ExitCode;

use serde::Serialize;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError, CredentialKind};
use crate::http::problem::{CommandError, Problem};
use crate::identity::{OperatorAccess, TokenSource};
use crate::logging::{self, LogFormat};
use crate::ops::cli::SignInArgs;

/// The command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Graph, the identity or a check said no.
pub const EXIT_FAILED: u8 = 1;
/// A setting or argument cannot work (the same code clap and the serve path use).
pub const EXIT_USAGE: u8 = 2;

/// The settings, with the command line's sign-in choice applied and stderr logging started
/// as `RUST_LOG` and `LOG_FORMAT` ask.
pub(crate) fn settings(sign_in: &SignInArgs) -> Result<Config, CommandError> {
    let (config, logs) = settings_and_logs(sign_in)?;
    logs.start();
    Ok(config)
}

/// How a command logs: `RUST_LOG`'s filter, `LOG_FORMAT`'s lines, always on stderr.
pub(crate) struct CommandLogs {
    filter: EnvFilter,
    format: LogFormat,
}

impl CommandLogs {
    pub(crate) fn start(self) {
        logging::init_stderr(self.filter, self.format);
    }
}

/// Every setting, `RUST_LOG` and `LOG_FORMAT` included; commands log warnings only unless
/// `RUST_LOG` says otherwise, and only to stderr (stdout carries the command's output), in
/// `LOG_FORMAT` with the gateway's default for where the lines go: text when stderr is a
/// terminal, JSON when it is not.
pub(crate) fn settings_and_logs(
    sign_in: &SignInArgs,
) -> Result<(Config, CommandLogs), ConfigError> {
    let mut config = Config::from_env()?;
    if let Some(client_id) = &sign_in.client_id {
        config.credential = CredentialKind::DeviceCode;
        config.operator.client_id = client_id.to_string();
    }
    let value = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "warn".to_owned());
    let filter = logging::filter(Some(value))?;
    let format = LogFormat::from_setting(
        std::env::var("LOG_FORMAT").ok(),
        std::io::stderr().is_terminal(),
    )?;
    Ok((config, CommandLogs { filter, format }))
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

/// The program as this process was started (`target/release/handler`, `./handler`, or
/// `handler` from PATH), ready for a shell: a command printed with it runs from where this one
/// ran, whatever the binary's place.
pub(crate) fn invoked_as() -> String {
    let program = std::env::args_os()
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "handler".to_owned());
    shell_word(&program)
}

/// `word` as one POSIX shell word: as it is when nothing in it is special to a shell,
/// otherwise in single quotes.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-+:@,=%".contains(&b);
    if !word.is_empty() && word.bytes().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
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
    fn printed_words_survive_a_shell() {
        assert_eq!(
            shell_word("target/release/handler"),
            "target/release/handler"
        );
        assert_eq!(shell_word("./handler"), "./handler");
        assert_eq!(
            shell_word("/opt/my tools/handler"),
            "'/opt/my tools/handler'"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("a;b"), "'a;b'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(12 * 60 + 5), "12m 5s");
        assert_eq!(human_age(3 * 3600 + 2 * 60 + 9), "3h 2m");
        assert_eq!(human_age(2 * 86_400 + 4 * 3600), "2d 4h");
    }
}
