//! The command line: `handler` with no arguments serves (that is how the Functions host starts
//! it); the other subcommands are operator tools that reuse the gateway's settings, credential
//! and Graph client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::http::problem::CommandError;
use crate::ops;
use crate::request::OperationStatus;
use crate::request::ids::Guid;

/// Resume gateway for Microsoft Entra Lifecycle Workflows.
///
/// With no subcommand it serves the resume function, as the Azure Functions host expects.
/// The other subcommands read the same settings (environment variables) and use the same
/// credential. As a person, sign in with RESUME_CREDENTIAL=device-code (or --client-id): the
/// token then carries the LifecycleWorkflows permissions these commands need.
/// RESUME_CREDENTIAL=developer (after `az login`) gives the Azure CLI's token, which Graph
/// pre-authorizes without any LifecycleWorkflows scope: it can check settings and Graph
/// reachability, but pending, resume and grant get 403 with it on a real tenant. For
/// automation, RESUME_CREDENTIAL=client-certificate signs in as an app registration with the
/// certificate and key in AZURE_CLIENT_CERTIFICATE_PATH.
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
    Resume(Box<ResumeArgs>),
    /// Check settings, credential, identity, permission and Graph reachability.
    Check(CheckArgs),
    /// Allow an app (the gateway's identity) to resume one custom task extension's tasks.
    ///
    /// Adds --app to the extension's callbackConfiguration.authorizedApps (nothing is sent when
    /// it is listed already). Needs a person with the Lifecycle Workflows Administrator role,
    /// signed in by device code (RESUME_CREDENTIAL=device-code or --client-id), who also holds
    /// Logic App Contributor, Contributor or Owner on the extension's Logic App.
    Grant(GrantArgs),
}

/// How a person signs in, for every operator command.
#[derive(Debug, Clone, Default, Args)]
pub struct SignInArgs {
    /// Sign in as a person with a device code, through this public client (application) id
    /// instead of RESUME_OPERATOR_CLIENT_ID; implies RESUME_CREDENTIAL=device-code.
    #[arg(long, value_name = "APP_ID", value_parser = guid)]
    pub client_id: Option<Guid>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["workflow", "access_packages"])))]
pub struct PendingArgs {
    /// The workflow's id (a GUID).
    #[arg(long, value_name = "ID", value_parser = guid)]
    pub workflow: Option<Guid>,
    /// Entitlement Management: says why Graph cannot list access-package requests waiting on
    /// a callback, and what to do instead.
    #[arg(long)]
    pub access_packages: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sign_in: SignInArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["workflow", "callback_uri_path", "callout", "assignment_request"])))]
pub struct ResumeArgs {
    /// Workflow id; needs --task and --result.
    #[arg(long, value_name = "ID", requires_all = ["task", "result"], value_parser = guid)]
    pub workflow: Option<Guid>,
    /// Task id (with --workflow).
    #[arg(long, value_name = "ID", requires = "workflow", value_parser = guid)]
    pub task: Option<Guid>,
    /// Task processing result id (with --workflow).
    #[arg(long, value_name = "ID", requires = "workflow", value_parser = guid)]
    pub result: Option<Guid>,
    /// The callout's callbackUriPath, as `handler pending` prints it.
    #[arg(long, value_name = "PATH")]
    pub callback_uri_path: Option<String>,
    /// A file holding the callout, Lifecycle Workflows' or an access-package extension's
    /// (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub callout: Option<PathBuf>,
    /// Entitlement Management: the access package assignment request's id; needs
    /// --stage-instance and --stage.
    #[arg(long, value_name = "ID", requires_all = ["stage_instance", "stage"], value_parser = guid)]
    pub assignment_request: Option<Guid>,
    /// Entitlement Management: the callout's customExtensionStageInstanceId.
    #[arg(long, value_name = "ID", requires = "assignment_request", value_parser = guid)]
    pub stage_instance: Option<Guid>,
    /// Entitlement Management: the stage the request waits at, e.g. assignmentRequestCreated.
    #[arg(long, value_name = "STAGE", requires = "assignment_request")]
    pub stage: Option<String>,
    /// Entitlement Management: deny or cancel the request (only at assignmentRequestCreated);
    /// without it the request continues.
    #[arg(long, value_name = "denied|canceled", conflicts_with = "status")]
    pub state: Option<String>,
    /// Entitlement Management: sent to Graph as customExtensionStageInstanceDetail.
    #[arg(long, value_name = "TEXT", conflicts_with = "status")]
    pub detail: Option<String>,
    /// Lifecycle Workflows: the outcome to record for the task (any case, as the resume
    /// function takes it). Required for a task; an access-package resume takes none.
    #[arg(long, value_enum, ignore_case = true)]
    pub status: Option<StatusArg>,
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
    #[command(flatten)]
    pub sign_in: SignInArgs,
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
    #[arg(long, value_name = "CUSTOM_TASK_EXTENSION_ID", value_parser = guid)]
    pub extension: Option<Guid>,
    /// Entitlement Management: also check this catalog custom extension (with --catalog):
    /// whether it waits for a resume, and the permission to resume.
    #[arg(long, value_name = "ID", requires = "catalog", value_parser = guid)]
    pub access_package_extension: Option<Guid>,
    /// The catalog of --access-package-extension.
    #[arg(long, value_name = "CATALOG_ID", requires = "access_package_extension", value_parser = guid)]
    pub catalog: Option<Guid>,
    /// Entitlement Management: also show this assignment request's custom extension callout
    /// instances, and which one waits for a resume.
    #[arg(long, value_name = "ID", value_parser = guid)]
    pub assignment_request: Option<Guid>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sign_in: SignInArgs,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The custom task extension's id.
    #[arg(long, value_name = "CUSTOM_TASK_EXTENSION_ID", value_parser = guid)]
    pub extension: Guid,
    /// The application (client) id to allow, e.g. the Function App identity's.
    #[arg(long, value_name = "APP_ID", value_parser = guid)]
    pub app: Guid,
    /// Read the extension and show the update without sending it.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sign_in: SignInArgs,
}

/// Every id argument: Graph's ids are GUIDs, so anything else is refused before a call.
fn guid(value: &str) -> Result<Guid, String> {
    Guid::parse(value.trim()).ok_or_else(|| {
        "not a GUID (8-4-4-4-12 hexadecimal digits, e.g. ffcc4c85-5a14-448e-a390-77abf2700369)"
            .to_owned()
    })
}

/// Why the command line could not be parsed, on one line; `None` for `--help` and
/// `--version`, which clap prints itself.
fn parse_failure(e: &clap::Error) -> Option<CommandError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    // clap's text is several lines (the error, a usage block, a hint): keep the error's lines.
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let message = message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned();
    let argument = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split_whitespace().next().map(str::to_owned),
        _ => None,
    };
    Some(CommandError::InvalidArgument {
        argument,
        message: format!("{message} (see --help)"),
    })
}

/// Reports a command line that does not parse, as every command reports its failures (one
/// stderr line, or one JSON document on stdout when `--json` was among the arguments), and
/// gives exit code 2; `--help` and `--version` print as clap does and exit 0.
pub fn refuse(e: clap::Error) -> ExitCode {
    match parse_failure(&e) {
        None => e.exit(),
        Some(failure) => ops::fail(&failure, std::env::args_os().any(|a| a == "--json")),
    }
}

/// Runs an operator subcommand to completion and returns its exit code.
pub fn run(command: Command) -> ExitCode {
    match command {
        // main handles serving itself: it owns the signal handling and the serve exit codes.
        Command::Serve => unreachable!("`serve` is dispatched by main"),
        Command::Pending(args) => ops::pending::main(args),
        Command::Resume(args) => ops::resume::main(*args),
        Command::Check(args) => ops::check::main(args),
        Command::Grant(args) => ops::grant::main(args),
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
    fn parse_failures_are_one_line_and_name_the_argument() {
        let e = Cli::try_parse_from(["handler", "check", "--extension", "not-a-guid"]).unwrap_err();
        let Some(CommandError::InvalidArgument { argument, message }) = parse_failure(&e) else {
            panic!("not an argument error");
        };
        assert_eq!(argument.as_deref(), Some("--extension"));
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.starts_with("invalid value 'not-a-guid' for '--extension"),
            "{message}"
        );
        let e = Cli::try_parse_from(["handler", "pending"]).unwrap_err();
        let failure = parse_failure(&e).unwrap().to_string();
        assert!(
            !failure.contains('\n') && failure.contains("--workflow"),
            "{failure}"
        );
        let help = Cli::try_parse_from(["handler", "--help"]).unwrap_err();
        assert!(parse_failure(&help).is_none());
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
        assert!(parse(&["--workflow", "w", "--task", "t", "--result", "r"]).is_err());
        let g = "ffcc4c85-5a14-448e-a390-77abf2700369";
        assert!(parse(&["--workflow", g, "--task", g, "--result", g]).is_ok());
        assert!(parse(&["--workflow", "w", "--task", g, "--result", g]).is_err());
        assert!(parse(&["--callback-uri-path", "/x", "--callout", "f.json"]).is_err());
        assert!(parse(&["--task", "t", "--callback-uri-path", "/x"]).is_err());
        assert!(parse(&["--callout", "-", "--reason", "a", "--reason", "b"]).is_ok());
    }
}
