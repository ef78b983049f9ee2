//! `handler grant`: allow an app (the gateway's identity) to resume the tasks of one custom
//! task extension, by adding its application id to the extension's
//! `callbackConfiguration.authorizedApps`.
//!
//! Graph calls: `GET …/customTaskExtensions/{id}?$expand=…/authorizedApps`, then, only when
//! the app is not listed yet, `PATCH …/customTaskExtensions/{id}` with the whole callback
//! configuration: the derived type's `@odata.type` (the declared type is abstract), the
//! `timeoutDuration` it had (a complex value is replaced, not merged), and `authorizedApps`
//! with one `{"id": …}` per app, the apps already there first. The shape follows Graph's
//! v1.0 metadata (`customTaskExtensionCallbackConfiguration`: `timeoutDuration`, navigation
//! `authorizedApps` of `application`), graph-docs-contrib
//! `identitygovernance-customtaskextension-update.md` (PATCH, 204) and
//! `identitygovernance-customtaskextensioncallbackconfiguration.md` ("the unique identifiers
//! or appIds of the applications"); a managed identity has no application object, so its
//! appId is the identifier that always exists.
//!
//! Who may run it: a person with the Lifecycle Workflows Administrator role, signed in with
//! `LifecycleWorkflows.ReadWrite.All` (device-code), who also holds Logic App Contributor,
//! Contributor or Owner on the extension's Logic App (Graph checks that Azure role on update).

use std::process::ExitCode;

use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use super::run_signed_in;
use crate::config::Config;
use crate::graph::extension::{self, CALLBACK_TYPE};
use crate::graph::{GetError, GraphClient};
use crate::http::problem::CommandError;
use crate::identity::{OperatorAccess, TokenSource, WRITE_PERMISSION};
use crate::ops::cli::GrantArgs;
use crate::request::ids::Guid;

/// What `grant` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Granted {
    /// `granted`, `already-granted` or `dry-run`.
    pub outcome: &'static str,
    pub extension_id: String,
    pub app_id: String,
    /// The identifiers in authorizedApps after the change (before it, when nothing changed).
    pub authorized_apps: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_request_id: Option<String>,
    /// The PATCH body, in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
}

/// `handler grant`.
pub fn main(args: GrantArgs) -> ExitCode {
    run_signed_in(
        &args.sign_in,
        OperatorAccess::Write,
        args.json,
        |config, tokens| async move {
            grant(&config, &tokens, &args.extension, &args.app, args.dry_run).await
        },
        print_granted,
    )
}

async fn grant(
    config: &Config,
    tokens: &TokenSource,
    ext: &Guid,
    app: &Guid,
    dry_run: bool,
) -> Result<Granted, CommandError> {
    let graph = GraphClient::new(config);
    let token = tokens.token().await?;
    let deadline = Instant::now() + config.deadline;
    let (extension, _) = extension::read(&graph, token.secret(), ext, deadline)
        .await
        .map_err(|e| graph_error("reading the custom task extension", e))?;
    let mut apps: Vec<String> = extension
        .authorized_apps()
        .iter()
        .filter_map(|a| a.identifier().map(str::to_owned))
        .collect();
    let granted = |outcome, apps, graph_request_id, request| Granted {
        outcome,
        extension_id: ext.to_string(),
        app_id: app.to_string(),
        authorized_apps: apps,
        graph_request_id,
        request,
    };
    if extension
        .authorized_apps()
        .iter()
        .any(|a| a.is(app.as_str()))
    {
        return Ok(granted("already-granted", apps, None, None));
    }
    let Some(timeout) = extension
        .callback_configuration
        .as_ref()
        .and_then(|c| c.timeout_duration.clone())
    else {
        return Err(CommandError::InvalidArgument {
            argument: Some("--extension".into()),
            message: format!(
                "custom task extension {ext} has no callbackConfiguration.timeoutDuration: it does not wait for a resume (\"launch and continue\"), so authorizedApps does not apply"
            ),
        });
    };
    apps.push(app.to_string());
    let body = json!({
        "callbackConfiguration": {
            "@odata.type": CALLBACK_TYPE,
            "timeoutDuration": timeout,
            "authorizedApps": apps.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        }
    });
    if dry_run {
        return Ok(granted("dry-run", apps, None, Some(body)));
    }
    let url = extension::url(&graph, ext);
    let patched = graph
        .patch_retrying(&url, token.secret(), &body, deadline)
        .await
        .map_err(|e| graph_error("updating the custom task extension", e))?;
    Ok(granted("granted", apps, patched.request_id, None))
}

/// A failed read or update, with the prerequisite that is most likely missing.
fn graph_error(what: &'static str, source: GetError) -> CommandError {
    let remedy = match &source {
        GetError::Refused(f) => match f.status {
            Some(401 | 403) => Some(prerequisites()),
            Some(404) => Some(
                "Check the id: Entra admin center → Lifecycle workflows → Custom extensions."
                    .into(),
            ),
            _ => None,
        },
        GetError::Unavailable { .. } => {
            Some("Graph kept throttling or failing; run the command again later.".into())
        }
        _ => None,
    };
    CommandError::Graph {
        what,
        source: Box::new(source),
        remedy,
    }
}

/// Everything Graph wants of the person running `grant`.
fn prerequisites() -> String {
    format!(
        "Run it as a person with the Lifecycle Workflows Administrator role (RESUME_CREDENTIAL=device-code or --client-id: the Azure CLI's token has no LifecycleWorkflows scopes), signed in with {WRITE_PERMISSION} consented for the client, who also holds Logic App Contributor, Contributor or Owner on the extension's Logic App."
    )
}

fn print_granted(g: &Granted) {
    match g.outcome {
        "already-granted" => println!(
            "already granted: {} is in authorizedApps of extension {}; nothing changed",
            g.app_id, g.extension_id
        ),
        "dry-run" => {
            println!(
                "dry run: nothing was sent. Extension {} would be updated:",
                g.extension_id
            );
            println!(
                "  PATCH …/identityGovernance/lifecycleWorkflows/customTaskExtensions/{}",
                g.extension_id
            );
            if let Some(body) = &g.request {
                println!("  {body}");
            }
        }
        _ => println!(
            "granted: {} added to authorizedApps of extension {} (now {}); Graph request-id {}",
            g.app_id,
            g.extension_id,
            g.authorized_apps.join(", "),
            g.graph_request_id.as_deref().unwrap_or("(none)")
        ),
    }
}
