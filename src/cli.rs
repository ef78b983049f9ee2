//! The command line: `handler` with no arguments serves (that is how the Functions host starts
//! it); the other subcommands are operator tools that reuse the gateway's settings, credential
//! and Graph client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::callout::OperationStatus;
use crate::ops;

/// Resume gateway for Microsoft Entra Lifecycle Workflows.
///
/// With no subcommand it serves the resume function, as the Azure Functions host expects.
/// The other subcommands read the same settings (environment variables) and use the same
/// credential; locally, run `az login` and set RESUME_CREDENTIAL=developer.
#[derive(Debug, Parser)]
#[command(name = "handler", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the resume function on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (the default).
    Serve,
    /// List tasks of a workflow still waiting on a custom task extension.
    Pending(PendingArgs),
    /// Resume one waiting task, exactly as the resume function would.
    Resume(ResumeArgs),
    /// Check settings, credential, identity, permission and Graph reachability.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct PendingArgs {
    /// The workflow's id (a GUID).
    #[arg(long, value_name = "ID")]
    pub workflow: String,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["workflow", "callback_uri_path", "callout"])))]
pub struct ResumeArgs {
    /// Workflow id; needs --task and --result.
    #[arg(long, value_name = "ID", requires_all = ["task", "result"])]
    pub workflow: Option<String>,
    /// Task id (with --workflow).
    #[arg(long, value_name = "ID", requires = "workflow")]
    pub task: Option<String>,
    /// Task processing result id (with --workflow).
    #[arg(long, value_name = "ID", requires = "workflow")]
    pub result: Option<String>,
    /// The callout's callbackUriPath, as `handler pending` prints it.
    #[arg(long, value_name = "PATH")]
    pub callback_uri_path: Option<String>,
    /// A file holding the Lifecycle Workflows callout (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub callout: Option<PathBuf>,
    /// The outcome to record for the task.
    #[arg(long, value_enum)]
    pub status: StatusArg,
    /// A status reason, for the record: logged and printed, never sent to Graph (its resume
    /// action has no place for reasons); repeat for several.
    #[arg(long = "reason", value_name = "TEXT")]
    pub reasons: Vec<String>,
    /// Validate and show the Graph request without sending it.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Completed,
    Failed,
}

impl From<StatusArg> for OperationStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Completed => Self::Completed,
            StatusArg::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also check this custom task extension's callbackConfiguration.authorizedApps.
    #[arg(long, value_name = "CUSTOM_TASK_EXTENSION_ID")]
    pub extension: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs an operator subcommand to completion and returns its exit code.
pub fn run(command: Command) -> ExitCode {
    match command {
        // main handles serving itself: it owns the signal handling and the serve exit codes.
        Command::Serve => unreachable!("`serve` is dispatched by main"),
        Command::Pending(args) => ops::pending::main(args),
        Command::Resume(args) => ops::resume::main(args),
        Command::Check(args) => ops::check::main(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_means_serve() {
        assert!(Cli::try_parse_from(["handler"]).unwrap().command.is_none());
    }

    #[test]
    fn resume_needs_exactly_one_complete_target() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["handler", "resume", "--status", "completed"]
                    .iter()
                    .chain(args),
            )
        };
        assert!(parse(&[]).is_err());
        assert!(parse(&["--workflow", "w", "--task", "t"]).is_err());
        assert!(parse(&["--workflow", "w", "--task", "t", "--result", "r"]).is_ok());
        assert!(parse(&["--callback-uri-path", "/x", "--callout", "f.json"]).is_err());
        assert!(parse(&["--task", "t", "--callback-uri-path", "/x"]).is_err());
        assert!(parse(&["--callout", "-", "--reason", "a", "--reason", "b"]).is_ok());
    }
}
