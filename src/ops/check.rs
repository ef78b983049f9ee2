//! `handler check`: can this identity, with these settings, resume tasks? A checklist of
//! settings, token, identity, permission, an extension's `authorizedApps` and Graph
//! reachability, each failure with its remedy.
//!
//! Graph calls: `GET …/customTaskExtensions/{id}?$expand=…/authorizedApps` (with
//! `--extension`; `authorizedApps` is a navigation property of the callback configuration,
//! so it is only returned when expanded), `GET …/workflows?$top=1` and
//! `GET …/customTaskExtensions?$top=1` to learn whether the identity may read what
//! `CALLER_SCOPE=extension` reads, and one `GET …/lifecycleWorkflows/workflows?$top=1`
//! as a reachability probe, where any HTTP answer proves Graph is reachable.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, block_on, fail, print_json, settings_and_logs};
use crate::config::Config;
use crate::config::caller::CallerAuth;
use crate::config::caller::CallerScope;
use crate::graph::extension;
use crate::graph::{AttemptError, GetError, GraphClient};
use crate::identity::{
    CredentialSource, OperatorAccess, READ_PERMISSION, TokenIdentity, TokenSource,
    WRITE_PERMISSION, ways_to_allow_resume,
};
use crate::ops::access_package;
use crate::ops::cli::CheckArgs;
use crate::request::ids::Guid;

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Worth knowing, but resuming can still work.
    Warn,
    Fail,
    /// Not run, because an earlier check failed.
    Skip,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl Check {
    pub(super) fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
            remedy: None,
        }
    }

    pub(super) fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }
}

/// The whole checklist.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<TokenIdentity>,
    pub checks: Vec<Check>,
}

/// What the extension says about this identity.
enum Listing {
    Listed(&'static str),
    NotListed(Vec<String>),
    Unknown(Check),
}

/// `handler check`.
pub fn main(args: CheckArgs) -> ExitCode {
    let settings = settings_and_logs(&args.sign_in);
    let settings_failed = settings.is_err();
    let report = match settings {
        Err(e) => {
            let mut checks =
                vec![
                    Check::new("settings", Status::Fail, e.to_string()).remedy(format!(
                        "Set {} to one of: {} (or remove it to use the default).",
                        e.setting, e.allowed
                    )),
                ];
            checks.extend(
                ["token", "identity", "permission", "read", "graph"]
                    .map(|name| Check::new(name, Status::Skip, "needs valid settings")),
            );
            Report {
                ok: false,
                credential: None,
                identity: None,
                checks,
            }
        }
        Ok((config, logs)) => {
            logs.start();
            let access_package = access_package::Asked {
                extension: args
                    .catalog
                    .as_ref()
                    .zip(args.access_package_extension.as_ref()),
                assignment_request: args.assignment_request.as_ref(),
            };
            match block_on(run(&config, args.extension.as_ref(), &access_package)) {
                Ok(report) => report,
                Err(e) => return fail(&e, args.json),
            }
        }
    };
    if args.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    ExitCode::from(match (report.ok, settings_failed) {
        (true, _) => EXIT_OK,
        // As every command: a setting that cannot work is exit code 2.
        (false, true) => EXIT_USAGE,
        (false, false) => EXIT_FAILED,
    })
}

async fn run(
    config: &Config,
    extension: Option<&Guid>,
    access_package: &access_package::Asked<'_>,
) -> Report {
    let mut checks = vec![Check::new(
        "settings",
        Status::Pass,
        describe_settings(config),
    )];
    let graph = GraphClient::new(config);

    let tokens = match TokenSource::for_operator(config, OperatorAccess::Read) {
        Ok(t) => t,
        Err(e) => {
            checks.push(Check::new("token", Status::Fail, e.to_string()).remedy(
                "Check IDENTITY_ENDPOINT/MSI_ENDPOINT (set by the platform) and RESUME_CREDENTIAL.",
            ));
            return finish(checks, None, None);
        }
    };
    let source = tokens.source();
    let token = match tokens.token().await {
        Ok(t) => {
            checks.push(Check::new(
                "token",
                Status::Pass,
                format!(
                    "got a Graph token for {} with the {}",
                    tokens.scope(),
                    source.name()
                ),
            ));
            Some(t)
        }
        Err(e) => {
            checks.push(Check::new("token", Status::Fail, e.message).remedy(e.remedy));
            None
        }
    };
    let identity = token.as_ref().map(|t| t.identity.clone());

    if let Some(id) = &identity {
        checks.push(identity_check(id, source));
        let listing = match extension {
            Some(ext) => Some(read_listing(&graph, config, token.as_deref(), ext, id).await),
            None => None,
        };
        let listed = matches!(listing, Some(Listing::Listed(_)));
        let signed_in_user = matches!(
            source,
            CredentialSource::Developer | CredentialSource::DeviceCode
        );
        checks.push(permission_check(
            id,
            listed,
            extension.is_some(),
            signed_in_user,
        ));
        if let (Some(listing), Some(ext)) = (listing, extension) {
            checks.push(extension_check(listing, ext.as_str(), id, signed_in_user));
        }
    } else {
        checks.push(Check::new("identity", Status::Skip, "needs a token"));
        checks.push(Check::new("permission", Status::Skip, "needs a token"));
        if extension.is_some() {
            checks.push(Check::new("authorizedApps", Status::Skip, "needs a token"));
        }
    }

    checks.extend(access_package::checks(&graph, config, token.as_deref(), access_package).await);
    checks.push(read_check(&graph, config, token.as_ref().map(|t| t.secret())).await);
    checks.push(probe(&graph, token.as_ref().map(|t| t.secret())).await);
    finish(checks, Some(source), identity)
}

fn finish(
    checks: Vec<Check>,
    source: Option<CredentialSource>,
    identity: Option<TokenIdentity>,
) -> Report {
    Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        credential: source.map(CredentialSource::name),
        identity,
        checks,
    }
}

fn describe_settings(c: &Config) -> String {
    format!(
        "Graph {} ({}), token scope {}, credential {}{}, deadline {} s, dry run {}",
        c.graph_base,
        c.api_version.as_str(),
        c.graph_scope,
        c.credential.name(),
        c.managed_identity_client_id
            .as_deref()
            .map(|id| format!(" (client id {id})"))
            .unwrap_or_default(),
        c.deadline.as_secs(),
        if c.dry_run { "on" } else { "off" }
    )
}

fn identity_check(id: &TokenIdentity, source: CredentialSource) -> Check {
    let detail = format!(
        "application id {}, object id {}, tenant {} ({})",
        id.app_id.as_deref().unwrap_or("(none)"),
        id.object_id.as_deref().unwrap_or("(none)"),
        id.tenant_id.as_deref().unwrap_or("(none)"),
        source.name()
    );
    if id.app_id.is_some() {
        Check::new("identity", Status::Pass, detail)
    } else {
        Check::new("identity", Status::Warn, detail).remedy(
            "The token names no application id (appid/azp claim), so authorizedApps cannot be checked against it.",
        )
    }
}

/// A signed-in user's token (developer credential) carries no application roles: Graph
/// authorizes it by the user's directory role, which the token does not show, so a missing
/// role or listing is a warning there, not a failure.
const USER_TOKEN: &str = "this is a signed-in user's token (RESUME_CREDENTIAL=developer or device-code): Graph authorizes it by the user's Lifecycle Workflows Administrator role, not by application permissions; the Function App's identity needs its own grant";

fn permission_check(
    id: &TokenIdentity,
    listed: bool,
    extension_given: bool,
    signed_in_user: bool,
) -> Check {
    let app = id.app_id.as_deref().unwrap_or("<application id>");
    if id.has_lifecycle_write() {
        return Check::new(
            "permission",
            Status::Pass,
            format!("the token carries {WRITE_PERMISSION}: it may resume any task"),
        );
    }
    let carries = id.roles_lacking_write();
    if listed {
        return Check::new(
            "permission",
            Status::Pass,
            format!("{carries}; not needed: the identity is in the extension's authorizedApps"),
        );
    }
    if signed_in_user {
        return Check::new("permission", Status::Warn, format!("{carries}; {USER_TOKEN}"))
            .remedy("Run `handler check` with the Function App's settings (for example from its SSH console) to check the gateway's own identity.");
    }
    let hint = if extension_given {
        ""
    } else {
        " If you rely on authorizedApps instead, run `handler check --extension <customTaskExtensionId>`."
    };
    Check::new("permission", Status::Fail, carries).remedy(format!(
        "Allow {app} to resume, either way: {}.{hint} \
         A new grant reaches a managed identity's cached token within 24 h; restart the app to hurry it.",
        ways_to_allow_resume(app)
    ))
}

async fn read_listing(
    graph: &GraphClient,
    config: &Config,
    token: Option<&crate::identity::GraphToken>,
    extension: &Guid,
    id: &TokenIdentity,
) -> Listing {
    let ext = extension;
    let Some(token) = token else {
        return Listing::Unknown(Check::new("authorizedApps", Status::Skip, "needs a token"));
    };
    let deadline = tokio::time::Instant::now() + config.deadline;
    let extension = match extension::read(graph, token.secret(), ext, deadline).await {
        Ok((e, _)) => e,
        Err(GetError::Refused(f)) if matches!(f.status, Some(401 | 403)) => {
            return Listing::Unknown(
                Check::new(
                    "authorizedApps",
                    Status::Warn,
                    format!("this identity may not read custom task extensions (Graph answered {}: {})", f.status.unwrap_or(0), f.message),
                )
                .remedy("Resuming does not need read access, so this is not an error; check Authorized apps in the Entra admin center, or run this check as a Lifecycle Workflows Administrator (RESUME_CREDENTIAL=device-code: the Azure CLI's token cannot read Lifecycle Workflows)."),
            );
        }
        Err(GetError::Refused(f)) if f.status == Some(404) => {
            return Listing::Unknown(
                Check::new(
                    "authorizedApps",
                    Status::Fail,
                    format!("Graph knows no custom task extension {ext}"),
                )
                .remedy(
                    "Check the id: Entra admin center → Lifecycle workflows → Custom extensions.",
                ),
            );
        }
        Err(e) => {
            return Listing::Unknown(
                Check::new(
                    "authorizedApps",
                    Status::Fail,
                    format!("could not read the extension: {e}"),
                )
                .remedy("Run the check again; if Graph keeps failing, check its service health."),
            );
        }
    };
    let apps: Vec<String> = extension
        .authorized_apps()
        .iter()
        .filter_map(|a| a.identifier().map(str::to_owned))
        .collect();
    let me = id.app_id.as_deref().unwrap_or_default();
    let same = |other: &str| !me.is_empty() && other.eq_ignore_ascii_case(me);
    if extension.authorized_apps().iter().any(|a| a.is(me)) {
        Listing::Listed("is in callbackConfiguration.authorizedApps")
    } else if extension
        .authentication_configuration
        .and_then(|a| a.resource_id)
        .is_some_and(|r| same(&r))
    {
        Listing::Listed("is the extension's authenticationConfiguration resourceId")
    } else {
        Listing::NotListed(apps)
    }
}

fn extension_check(listing: Listing, ext: &str, id: &TokenIdentity, signed_in_user: bool) -> Check {
    let app = id.app_id.as_deref().unwrap_or("<application id>");
    match listing {
        Listing::Listed(how) => Check::new(
            "authorizedApps",
            Status::Pass,
            format!("application id {app} {how} of extension {ext}"),
        ),
        Listing::NotListed(apps) => {
            let listed = if apps.is_empty() {
                "lists no apps".to_owned()
            } else {
                format!("lists {}", apps.join(", "))
            };
            let detail = format!(
                "application id {app} is not in authorizedApps of extension {ext}, which {listed}"
            );
            let status = if id.has_lifecycle_write() || signed_in_user {
                Status::Warn
            } else {
                Status::Fail
            };
            Check::new("authorizedApps", status, detail).remedy(format!(
                "Add {app} to the extension's Authorized apps (Entra admin center → Lifecycle workflows → Custom extensions → {ext} → Authorized apps){}.",
                if signed_in_user {
                    format!("; {USER_TOKEN}")
                } else if status == Status::Warn {
                    format!("; until then {WRITE_PERMISSION} lets it resume")
                } else {
                    format!(", or grant it {WRITE_PERMISSION}")
                }
            ))
        }
        Listing::Unknown(check) => check,
    }
}

/// Whether the identity may read workflows (their tasks) and custom task extensions, which
/// `CALLER_SCOPE=extension` needs before each resume; a failure only where that scope is on.
async fn read_check(graph: &GraphClient, config: &Config, bearer: Option<&str>) -> Check {
    let Some(bearer) = bearer else {
        return Check::new("read", Status::Skip, "needs a token");
    };
    let in_use =
        matches!(&config.caller_auth, CallerAuth::Entra(c) if c.scope == CallerScope::Extension);
    let mut refused = Vec::new();
    let mut unclear = Vec::new();
    for what in ["workflows", "customTaskExtensions"] {
        let url = graph.url(&format!(
            "/identityGovernance/lifecycleWorkflows/{what}?$top=1&$select=id"
        ));
        let crid = crate::graph::client_request_id();
        match graph.get(&url, bearer, &crid, PROBE_TIMEOUT).await {
            Ok(_) => {}
            Err(AttemptError::Transient(f) | AttemptError::Permanent(f)) => {
                let answer = f
                    .status
                    .map_or(f.message, |s| format!("Graph answered {s}"));
                if matches!(f.status, Some(401 | 403)) {
                    refused.push(format!("{what} ({answer})"));
                } else {
                    unclear.push(format!("{what} ({answer})"));
                }
            }
        }
    }
    let scope = if in_use {
        "CALLER_SCOPE=extension is on and needs it"
    } else {
        "only CALLER_SCOPE=extension needs it, and it is not on"
    };
    if refused.is_empty() && unclear.is_empty() {
        return Check::new(
            "read",
            Status::Pass,
            "the identity can read workflows (their tasks) and custom task extensions: CALLER_SCOPE=extension can work",
        );
    }
    if refused.is_empty() {
        let status = if in_use { Status::Warn } else { Status::Pass };
        return Check::new(
            "read",
            status,
            format!(
                "could not tell whether the identity may read {}; {scope}",
                unclear.join(", ")
            ),
        );
    }
    let detail = format!("the identity may not read {}; {scope}", refused.join(", "));
    if !in_use {
        return Check::new("read", Status::Pass, detail);
    }
    Check::new("read", Status::Fail, detail).remedy(format!(
        "Grant the identity the Microsoft Graph application permission {READ_PERMISSION} (scripts/grant.sh --read), \
         or set CALLER_SCOPE=tenant to let every allowed caller resume any task the identity may resume."
    ))
}

/// One GET that any HTTP answer passes: it proves DNS, TLS and routing to Graph.
async fn probe(graph: &GraphClient, bearer: Option<&str>) -> Check {
    let url = graph.url("/identityGovernance/lifecycleWorkflows/workflows?$top=1&$select=id");
    let crid = uuid::Uuid::new_v4().to_string();
    let (status, request_id) = match graph
        .get(&url, bearer.unwrap_or(""), &crid, PROBE_TIMEOUT)
        .await
    {
        Ok(f) => (200, f.request_id),
        Err(AttemptError::Transient(f) | AttemptError::Permanent(f)) => match f.status {
            Some(s) => (s, f.request_id),
            None => {
                return Check::new("graph", Status::Fail, format!("{} ({})", f.message, graph.url("")))
                    .remedy("Check outbound network access to Graph (firewall, proxy, DNS) and GRAPH_ENDPOINT/GRAPH_CLOUD.");
            }
        },
    };
    let rid = request_id
        .map(|r| format!(", request-id {r}"))
        .unwrap_or_default();
    match status {
        401 if bearer.is_some() => Check::new(
            "graph",
            Status::Fail,
            format!("Graph is reachable but refused the token (401{rid})"),
        )
        .remedy("The token is for another cloud or tenant: check GRAPH_CLOUD, and that the identity belongs to the tenant whose workflows it resumes."),
        s if s >= 500 => Check::new(
            "graph",
            Status::Warn,
            format!("Graph is reachable but answered {s}{rid}"),
        )
        .remedy("Graph reports a fault; the gateway retries these. Check Graph's service health if it persists."),
        s => Check::new(
            "graph",
            Status::Pass,
            format!(
                "Graph answered {s} at {}{rid}{}",
                graph.url(""),
                if s == 403 { " (this identity may not list workflows; resuming does not need to)" } else { "" }
            ),
        ),
    }
}

fn print_report(r: &Report) {
    for c in &r.checks {
        let mark = match c.status {
            Status::Pass => "[ok]  ",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
            Status::Skip => "[skip]",
        };
        println!("{mark} {:<15} {}", c.name, c.detail);
        if let Some(remedy) = &c.remedy {
            println!("       {:<15} remedy: {remedy}", "");
        }
    }
    println!();
    println!(
        "{}",
        if r.ok {
            "All checks passed."
        } else {
            "Some checks failed; see the remedies above."
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(roles: &[&str]) -> TokenIdentity {
        TokenIdentity {
            app_id: Some("8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f".into()),
            object_id: None,
            tenant_id: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn the_role_or_a_listing_is_enough() {
        let with_role = identity(&[WRITE_PERMISSION]);
        assert_eq!(
            permission_check(&with_role, false, false, false).status,
            Status::Pass
        );
        let bare = identity(&[]);
        assert_eq!(
            permission_check(&bare, true, true, false).status,
            Status::Pass
        );
        let c = permission_check(&bare, false, false, false);
        assert_eq!(c.status, Status::Fail);
        assert!(c.remedy.unwrap().contains("--extension"));
    }

    #[test]
    fn a_signed_in_users_token_only_warns() {
        let user = identity(&[]);
        let c = permission_check(&user, false, true, true);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("signed-in user"));
        let c = extension_check(Listing::NotListed(vec![]), "ext", &user, true);
        assert_eq!(c.status, Status::Warn);
        let c = extension_check(Listing::NotListed(vec![]), "ext", &user, false);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("lists no apps"));
    }
}
