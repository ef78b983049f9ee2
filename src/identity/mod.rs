//! The gateway's Graph token: one `azure_identity` credential chosen from the settings, behind
//! a single-flight cache, so that a burst of requests on a cold cache makes one identity call
//! and a failing identity endpoint is asked once per burst, not once per request.

mod certificate;
pub(crate) mod device_code;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use azure_core::cloud::CloudConfiguration;
use azure_core::credentials::{AccessToken, Secret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};
use base64::Engine;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::{Config, CredentialKind, GraphCloud};

/// A token is renewed this long before it expires (the SDK's own managed-identity cache uses
/// the same margin, so both agree on when a new token is needed).
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// One identity call may take this long; the request deadline bounds it further.
const IDENTITY_CALL_TIMEOUT: Duration = Duration::from_secs(20);
const IDENTITY_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which credential is actually in use, after `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    ManagedIdentity,
    Developer,
    ClientSecret,
    /// A person signed in with a device code (operator commands only).
    DeviceCode,
    /// An app registration's certificate (operator commands only).
    ClientCertificate,
}

impl CredentialSource {
    /// Picks the credential for `kind`; `auto` means managed identity wherever the platform
    /// says there is one (App Service and Functions set `IDENTITY_ENDPOINT`; a Function App
    /// without an identity still sets `WEBSITE_INSTANCE_ID`, and a clear managed-identity error
    /// beats "Azure CLI not found" there), developer tools elsewhere. IMDS is never probed.
    pub fn resolve(kind: &CredentialKind, env: impl Fn(&str) -> Option<String>) -> Self {
        match kind {
            CredentialKind::ManagedIdentity => Self::ManagedIdentity,
            CredentialKind::Developer => Self::Developer,
            CredentialKind::ClientSecret { .. } => Self::ClientSecret,
            CredentialKind::DeviceCode => Self::DeviceCode,
            CredentialKind::ClientCertificate(_) => Self::ClientCertificate,
            CredentialKind::Auto => {
                let set = |name| env(name).is_some_and(|v| !v.is_empty());
                if set("IDENTITY_ENDPOINT") || set("MSI_ENDPOINT") || set("WEBSITE_INSTANCE_ID") {
                    Self::ManagedIdentity
                } else {
                    Self::Developer
                }
            }
        }
    }

    /// Name for logs and answers.
    pub fn name(self) -> &'static str {
        match self {
            Self::ManagedIdentity => "managed identity",
            Self::Developer => "developer tools (Azure CLI, Azure Developer CLI)",
            Self::ClientSecret => "client secret",
            Self::DeviceCode => "device-code sign-in",
            Self::ClientCertificate => "client certificate",
        }
    }
}

/// Who the gateway's token says it is, read from the token's own claims. Used to name the
/// identity in remedies; never trusted for any decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct TokenIdentity {
    /// `appid` (v1 tokens) or `azp` (v2): what `authorizedApps` must list.
    #[serde(rename = "appId", alias = "appid", alias = "azp")]
    pub app_id: Option<String>,
    #[serde(rename = "objectId", alias = "oid")]
    pub object_id: Option<String>,
    #[serde(rename = "tenantId", alias = "tid")]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl TokenIdentity {
    /// Reads the claims of a JWT without verifying it (it came straight from the identity
    /// endpoint); anything that is not a JWT gives an empty identity.
    pub fn from_jwt(token: &str) -> Self {
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Self::default();
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Whether the token carries the application permission that allows any resume.
    pub fn has_lifecycle_write(&self) -> bool {
        self.has_role(WRITE_PERMISSION)
    }

    /// Whether the token carries the application permission `role`.
    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// What the token's roles say about the resume permission, for remedies: "the token
    /// carries no application permissions" or "the token carries X, Y but not …".
    pub(crate) fn roles_lacking_write(&self) -> String {
        self.roles_lacking(WRITE_PERMISSION)
    }

    /// [`Self::roles_lacking_write`] for any permission.
    pub(crate) fn roles_lacking(&self, permission: &str) -> String {
        if self.roles.is_empty() {
            "the token carries no application permissions".to_owned()
        } else {
            format!(
                "the token carries {} but not {permission}",
                self.roles.join(", ")
            )
        }
    }
}

/// Microsoft Graph's application permission that lets an identity resume any task.
pub(crate) const WRITE_PERMISSION: &str = "LifecycleWorkflows.ReadWrite.All";
/// Microsoft Graph's application permission to read workflows, tasks and extensions.
pub(crate) const READ_PERMISSION: &str = "LifecycleWorkflows.Read.All";

/// Microsoft Graph's application permission for Entitlement Management's resume
/// (graph-docs-contrib `accesspackageassignmentrequest-resume.md`, permissions table), and to
/// read assignment requests and catalogs' custom extensions.
pub(crate) const ACCESS_PACKAGE_WRITE_PERMISSION: &str = "EntitlementManagement.ReadWrite.All";

/// The two ways to let the app `app` resume access-package requests, least privilege first;
/// the one place that says how. The role alternative is from the resume page's app-only note
/// (its beta version: "the calling app can be assigned one of the preceding supported roles
/// instead of the EntitlementManagement.ReadWrite.All application permission").
pub(crate) fn ways_to_allow_access_package_resume(app: &str) -> String {
    format!(
        "(1) least privilege: assign {app} the catalog role Access package assignment manager on the catalog of the access package \
         (Entra admin center → Identity Governance → Catalogs → the catalog → Roles and administrators); or \
         (2) grant {app} the Microsoft Graph application permission {ACCESS_PACKAGE_WRITE_PERMISSION} with admin consent. \
         Entitlement Management has no per-extension list of apps allowed to resume"
    )
}

/// The two ways to let the app `app` resume a task, least privilege first; the one place
/// that says how, for the gateway's 403 answer and `handler check` alike.
pub(crate) fn ways_to_allow_resume(app: &str) -> String {
    format!(
        "(1) least privilege: add {app} to the custom task extension's callbackConfiguration.authorizedApps \
         (handler grant --extension <customTaskExtensionId> --app {app}; or Entra admin center → Lifecycle workflows → \
         Custom extensions → the extension → Authorized apps); or \
         (2) grant {app} the Microsoft Graph application permission {WRITE_PERMISSION} with admin consent \
         (scripts/grant.sh --app-role)"
    )
}

/// A Graph access token with what it says about the identity.
pub struct GraphToken {
    secret: Secret,
    /// `Bearer <token>`, built and checked once per token rather than once per request;
    /// `None` when the token is not a valid header value.
    authorization: Option<HeaderValue>,
    expires_on: OffsetDateTime,
    pub identity: TokenIdentity,
}

impl GraphToken {
    fn new(token: AccessToken) -> Self {
        let identity = TokenIdentity::from_jwt(token.token.secret());
        let authorization = HeaderValue::try_from(format!("Bearer {}", token.token.secret()))
            .ok()
            .map(|mut v| {
                // Kept out of debug output and of HTTP/2 header compression tables.
                v.set_sensitive(true);
                v
            });
        Self {
            secret: token.token,
            authorization,
            expires_on: token.expires_on,
            identity,
        }
    }

    /// The bearer value, for the Authorization header only.
    pub fn secret(&self) -> &str {
        self.secret.secret()
    }

    /// The whole `Authorization` header value (`Bearer <token>`), marked sensitive.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    fn fresh(&self) -> bool {
        self.expires_on - REFRESH_AHEAD > OffsetDateTime::now_utc()
    }
}

impl fmt::Debug for GraphToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphToken")
            .field("expires_on", &self.expires_on)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The credential could not produce a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CredentialError {
    /// What failed, on one line, in the SDK's words where they help (never containing a token).
    pub message: String,
    /// The one fix for this cause, for the credential in use.
    pub remedy: String,
    pub class: FailureClass,
}

impl CredentialError {
    /// Whether asking again within this request can help.
    pub fn retryable(&self) -> bool {
        self.class == FailureClass::Transient
    }
}

/// Why no token came, as far as asking again is concerned. Only the last class is retried:
/// the others are configuration, and a retry loop would only hide them for the whole deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// A developer tool (`az`, `azd`) is not installed or not on PATH.
    ToolMissing,
    /// The developer tool runs, but nobody is signed in to it (or the sign-in expired).
    NotSignedIn,
    /// The identity endpoint or Entra ID refused the request as configured: an identity not
    /// assigned to the app, an unknown client id or tenant, a wrong or expired secret (a 4xx
    /// other than 408/429, or an `AADSTS` error).
    Refused,
    /// No answer, a timeout, 408, 429 or 5xx: the identity endpoint may answer next time.
    Transient,
}

impl FailureClass {
    /// The name answers and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ToolMissing => "tool-missing",
            Self::NotSignedIn => "not-signed-in",
            Self::Refused => "refused",
            Self::Transient => "transient",
        }
    }
}

/// The credential could not even be built (a malformed platform variable).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the {source_name} credential: {message}")]
pub struct CredentialSetupError {
    source_name: &'static str,
    message: String,
}

/// What an operator command does with Graph, and so which delegated permission a person's
/// sign-in asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAccess {
    /// `pending`, `check`: `LifecycleWorkflows.Read.All`.
    Read,
    /// `resume`, `grant`: `LifecycleWorkflows.ReadWrite.All`.
    Write,
}

impl OperatorAccess {
    /// The delegated permission, as Entra ID names it in a scope.
    pub fn permission(self) -> &'static str {
        match self {
            Self::Read => READ_PERMISSION,
            Self::Write => WRITE_PERMISSION,
        }
    }
}

/// Graph tokens for the gateway, cached and fetched single-flight.
pub struct TokenSource {
    credential: Arc<dyn TokenCredential>,
    source: CredentialSource,
    scope: String,
    user_assigned: Option<String>,
    cached: RwLock<Option<Arc<GraphToken>>>,
    /// Held while fetching; remembers the last failure so that callers who queued behind a
    /// failing fetch share its answer instead of each asking again.
    fetching: tokio::sync::Mutex<Option<(Instant, CredentialError)>>,
    fetches: AtomicU64,
    /// How long one `get_token` may take: an identity endpoint answers in seconds, a person
    /// signing in with a device code in minutes.
    call_timeout: Duration,
    /// Whether a failure that asking again cannot fix is logged: the gateway's log needs it,
    /// an operator command prints the failure itself.
    log_permanent: bool,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("source", &self.source)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Builds the credential an operator command uses: the settings' credential, or, with
    /// `device-code`, a person's sign-in asking for `access` on the configured cloud's Graph
    /// (a named delegated permission: `.default` would give a user only what some app was
    /// already consented to).
    pub fn for_operator(
        config: &Config,
        access: OperatorAccess,
    ) -> Result<Self, CredentialSetupError> {
        if let CredentialKind::ClientCertificate(certificate) = &config.credential {
            let source = CredentialSource::ClientCertificate;
            let credential = certificate::credential(
                certificate,
                &config.operator.authority,
                client_options(None),
            )
            .map_err(|e| CredentialSetupError {
                source_name: source.name(),
                message: e.to_string(),
            })?;
            return Ok(Self {
                log_permanent: false,
                ..Self::new(credential, source, config.graph_scope.clone(), None)
            });
        }
        if config.credential != CredentialKind::DeviceCode {
            return Ok(Self {
                log_permanent: false,
                ..Self::from_config(config)?
            });
        }
        let credential =
            crate::identity::device_code::DeviceCodeCredential::new(config.operator.clone())
                .map_err(|e| CredentialSetupError {
                    source_name: CredentialSource::DeviceCode.name(),
                    message: e.to_string(),
                })?;
        Ok(Self {
            call_timeout: crate::identity::device_code::SIGN_IN_LIMIT + IDENTITY_CALL_TIMEOUT,
            log_permanent: false,
            ..Self::new(
                Arc::new(credential),
                CredentialSource::DeviceCode,
                format!("{}/{}", config.cloud.graph_base(), access.permission()),
                None,
            )
        })
    }

    /// Builds the credential the settings ask for.
    pub fn from_config(config: &Config) -> Result<Self, CredentialSetupError> {
        let source = CredentialSource::resolve(&config.credential, |k| config.platform(k));
        // The gateway has no person at a terminal to enter a code, and a Function App has its
        // managed identity and no place for a key file.
        if matches!(
            source,
            CredentialSource::DeviceCode | CredentialSource::ClientCertificate
        ) {
            return Err(CredentialSetupError {
                source_name: source.name(),
                message: format!(
                    "{} is for the operator commands (pending, resume, check, grant); the gateway needs RESUME_CREDENTIAL=managed-identity (or auto, client-secret, developer)",
                    config.credential.name()
                ),
            });
        }
        let setup_error = |e: azure_core::Error| CredentialSetupError {
            source_name: source.name(),
            message: e.to_string(),
        };
        let credential: Arc<dyn TokenCredential> = match (&config.credential, source) {
            (
                CredentialKind::ClientSecret {
                    tenant_id,
                    client_id,
                    secret,
                },
                _,
            ) => ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret.expose().to_owned()),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(Some(config.cloud)),
                }),
            )
            .map_err(setup_error)?,
            (_, CredentialSource::ManagedIdentity) => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: config
                        .managed_identity_client_id
                        .clone()
                        .map(UserAssignedId::ClientId),
                    client_options: client_options(None),
                }))
                .map_err(setup_error)?
            }
            _ => DeveloperToolsCredential::new(None).map_err(setup_error)?,
        };
        Ok(Self::new(
            credential,
            source,
            config.graph_scope.clone(),
            config.managed_identity_client_id.clone(),
        ))
    }

    /// Wraps any credential (tests use this with fakes).
    pub fn new(
        credential: Arc<dyn TokenCredential>,
        source: CredentialSource,
        scope: String,
        user_assigned: Option<String>,
    ) -> Self {
        Self {
            credential,
            source,
            scope,
            user_assigned,
            cached: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
            call_timeout: IDENTITY_CALL_TIMEOUT,
            log_permanent: true,
        }
    }

    /// The scope tokens are asked for (`…/.default`, or a person's named permission).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Which credential is in use.
    pub fn source(&self) -> CredentialSource {
        self.source
    }

    #[cfg(test)]
    /// How many times the credential was asked for a token since start.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A token with more than [`REFRESH_AHEAD`] to live, from the cache or a single fetch.
    pub async fn token(&self) -> Result<Arc<GraphToken>, CredentialError> {
        if let Some(token) = self.cached_fresh() {
            return Ok(token);
        }
        let asked = Instant::now();
        let mut last_failure = self.fetching.lock().await;
        if let Some(token) = self.cached_fresh() {
            return Ok(token);
        }
        if let Some((at, error)) = last_failure.as_ref()
            && *at >= asked
        {
            return Err(error.clone());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let scopes = [self.scope.as_str()];
        let result =
            tokio::time::timeout(self.call_timeout, self.credential.get_token(&scopes, None)).await;
        match result {
            Ok(Ok(access)) => {
                let token = Arc::new(GraphToken::new(access));
                *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                *last_failure = None;
                Ok(token)
            }
            Ok(Err(e)) => {
                let error = self.describe(&e);
                if self.log_permanent && !error.retryable() {
                    // Once per fetch, not per waiting caller: they share this failure.
                    tracing::warn!(
                        credential = self.source.name(),
                        cause = error.class.as_str(),
                        error = %error.message,
                        "no Graph token, and asking again will not help until this is fixed"
                    );
                }
                *last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
            Err(_) => {
                let error = CredentialError {
                    message: format!(
                        "the {} did not answer within {} s",
                        self.source.name(),
                        self.call_timeout.as_secs()
                    ),
                    remedy: self.remedy(FailureClass::Transient, ""),
                    class: FailureClass::Transient,
                };
                *last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    fn cached_fresh(&self) -> Option<Arc<GraphToken>> {
        self.cached
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|t| t.fresh())
            .cloned()
    }

    fn describe(&self, error: &azure_core::Error) -> CredentialError {
        let text = error.to_string();
        let (class, cause) = classify(self.source, http_status(error), &text);
        let detail = one_line(&text);
        CredentialError {
            message: format!(
                "the {} could not get a token: {}",
                self.source.name(),
                if cause.is_empty() { &detail } else { &cause }
            ),
            remedy: self.remedy(class, &cause),
            class,
        }
    }

    /// The one fix for `class`; `cause` is the short cause [`classify`] named, if any.
    fn remedy(&self, class: FailureClass, cause: &str) -> String {
        let other = "or set RESUME_CREDENTIAL to the credential for where this runs (managed-identity in Azure, client-secret for automation)";
        match (self.source, class) {
            (CredentialSource::Developer, FailureClass::ToolMissing) => format!(
                "{cause}: install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli) and run `az login`, {other}."
            ),
            (CredentialSource::Developer, FailureClass::NotSignedIn) => format!(
                "{cause}: run `{}` as an account allowed to resume Lifecycle Workflows tasks, {other}.",
                if cause.starts_with("azd") { "azd auth login" } else { "az login" }
            ),
            (CredentialSource::Developer, _) => format!(
                "Run `az account get-access-token --scope {}` to see the Azure CLI's own error, {other}.",
                self.scope
            ),
            (CredentialSource::ManagedIdentity, _) => match &self.user_assigned {
                None => "Check that the Function App has its system-assigned managed identity turned on (Identity blade, or `az functionapp identity assign`), or set AZURE_CLIENT_ID to the client id of a user-assigned identity attached to it.".into(),
                Some(id) => format!(
                    "Check that the user-assigned identity with client id {id} (AZURE_CLIENT_ID) is attached to the Function App, or clear AZURE_CLIENT_ID to use the system-assigned identity."
                ),
            },
            (CredentialSource::ClientSecret | CredentialSource::ClientCertificate, FailureClass::Transient) => "Entra ID did not answer; check outbound access to the sign-in host (login.microsoftonline.com or the cloud's), then try again.".into(),
            (CredentialSource::ClientSecret, _) => "Check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (the secret may have expired): Entra ID refused them.".into(),
            (CredentialSource::ClientCertificate, _) => "Check AZURE_TENANT_ID and AZURE_CLIENT_ID, and that the certificate in AZURE_CLIENT_CERTIFICATE_PATH is uploaded to that app registration (Certificates & secrets) and not expired: Entra ID refused the sign-in (AADSTS700027 names an unknown certificate).".into(),
            (CredentialSource::DeviceCode, FailureClass::Transient) => "Entra ID did not answer; check access to the sign-in host (AZURE_AUTHORITY_HOST or the cloud's), then run the command again.".into(),
            (CredentialSource::DeviceCode, _) => "Run the command again and enter the code in time, as an account with the Lifecycle Workflows Administrator role; if Entra ID refused the client or the permission (AADSTS65001, 700016), an administrator must consent to it for RESUME_OPERATOR_CLIENT_ID, or register your own public client (see docs/operations.md).".into(),
        }
    }
}

/// Sorts an SDK failure into a [`FailureClass`] and names its cause in a few words (empty when
/// the SDK's own line says it best). The SDK gives text, not types, for the developer tools:
/// its messages are matched as `azure_identity` 1.0 writes them (`az not found on PATH`,
/// the CLI's `Please run 'az login'`).
fn classify(source: CredentialSource, status: Option<u16>, text: &str) -> (FailureClass, String) {
    let lower = text.to_ascii_lowercase();
    if let Some(status) = status {
        return if crate::retry::is_transient_status(status) {
            (FailureClass::Transient, String::new())
        } else {
            (
                FailureClass::Refused,
                format!(
                    "the identity endpoint answered {status}: {}",
                    one_line(text)
                ),
            )
        };
    }
    if source == CredentialSource::Developer {
        let missing = |tool: &str| {
            lower.contains(&format!("{tool} not found on path"))
                || lower.contains(&format!("\"{tool}\" wasn't found on path"))
        };
        let az_missing = missing("az");
        let az_signed_out = lower.contains("az login")
            || lower.contains("aadsts70043")
            || lower.contains("aadsts700082");
        let azd_signed_out = lower.contains("azd auth login") || lower.contains("not logged in");
        if az_signed_out && !az_missing {
            return (
                FailureClass::NotSignedIn,
                "the Azure CLI (az) is not signed in".into(),
            );
        }
        if az_missing && azd_signed_out && !missing("azd") {
            return (
                FailureClass::NotSignedIn,
                "azd (the Azure Developer CLI) is not signed in, and az was not found on PATH"
                    .into(),
            );
        }
        if az_missing {
            return (FailureClass::ToolMissing, "az not found on PATH".into());
        }
    }
    let transient = [
        "timed out",
        "timeout",
        "connection",
        "temporarily",
        "dns error",
        "network",
    ];
    if lower.contains("aadsts") {
        (FailureClass::Refused, String::new())
    } else if source != CredentialSource::Developer || transient.iter().any(|t| lower.contains(t)) {
        // No HTTP answer from an endpoint: the network, which may be back next time.
        (FailureClass::Transient, String::new())
    } else {
        (FailureClass::Refused, String::new())
    }
}

/// The SDK's message on one line: its lines joined, without the troubleshooting links and the
/// "multiple errors" header, at most [`MAX_MESSAGE`] characters (a CLI may print pages).
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("To troubleshoot")
                && !l.starts_with("Multiple errors were encountered")
        })
        .collect::<Vec<_>>()
        .join("; ");
    match joined.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// How much of an SDK message a problem's `detail` carries.
const MAX_MESSAGE: usize = 400;

/// The HTTP status anywhere in the SDK error's chain.
fn http_status(error: &azure_core::Error) -> Option<u16> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(status) = e
            .downcast_ref::<azure_core::Error>()
            .and_then(azure_core::Error::http_status)
        {
            return Some(u16::from(status));
        }
        current = e.source();
    }
    None
}

/// Client options for the identity pipeline: no SDK retries (the gateway's retry loop owns
/// the deadline) and a transport with bounded connect and call times.
fn client_options(cloud: Option<GraphCloud>) -> ClientOptions {
    let http = crate::outbound::LazyClient::new(
        reqwest::Client::builder()
            .connect_timeout(IDENTITY_CONNECT_TIMEOUT)
            .timeout(IDENTITY_CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none()),
    );
    ClientOptions {
        retry: RetryOptions::none(),
        transport: Some(Transport::new(Arc::new(http))),
        cloud: cloud.map(|c| {
            Arc::new(match c {
                GraphCloud::Global => CloudConfiguration::AzurePublic,
                GraphCloud::UsGov | GraphCloud::UsGovDod => CloudConfiguration::AzureGovernment,
                GraphCloud::China => CloudConfiguration::AzureChina,
            })
        }),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use azure_core::credentials::TokenRequestOptions;
    use std::sync::atomic::AtomicUsize;

    /// An RS256 JWT with these claims and no real signature (the caller tests use it too).
    pub(crate) fn jwt(claims: serde_json::Value) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(claims.to_string())
        )
    }

    #[test]
    fn identity_from_v1_and_v2_claims() {
        let v1 = TokenIdentity::from_jwt(&jwt(serde_json::json!({
            "appid": "app-1", "oid": "obj-1", "tid": "ten-1",
            "roles": ["LifecycleWorkflows.ReadWrite.All"]
        })));
        assert_eq!(v1.app_id.as_deref(), Some("app-1"));
        assert_eq!(v1.object_id.as_deref(), Some("obj-1"));
        assert_eq!(v1.tenant_id.as_deref(), Some("ten-1"));
        assert!(v1.has_lifecycle_write());
        let v2 = TokenIdentity::from_jwt(&jwt(serde_json::json!({"azp": "app-2"})));
        assert_eq!(v2.app_id.as_deref(), Some("app-2"));
        assert!(!v2.has_lifecycle_write());
        assert_eq!(TokenIdentity::from_jwt("opaque"), TokenIdentity::default());
        assert_eq!(TokenIdentity::from_jwt("a.%%%.c"), TokenIdentity::default());
    }

    #[test]
    fn auto_prefers_the_platform_identity() {
        let none = |_: &str| None;
        assert_eq!(
            CredentialSource::resolve(&CredentialKind::Auto, none),
            CredentialSource::Developer
        );
        for var in ["IDENTITY_ENDPOINT", "WEBSITE_INSTANCE_ID", "MSI_ENDPOINT"] {
            let env = |k: &str| (k == var).then(|| "x".to_string());
            assert_eq!(
                CredentialSource::resolve(&CredentialKind::Auto, env),
                CredentialSource::ManagedIdentity
            );
        }
        let env = |_: &str| Some("x".to_string());
        assert_eq!(
            CredentialSource::resolve(&CredentialKind::Developer, env),
            CredentialSource::Developer
        );
    }

    #[test]
    fn the_credential_is_chosen_from_the_settings_not_the_process_environment() {
        // The test process has no IDENTITY_ENDPOINT; the settings do.
        assert!(std::env::var_os("IDENTITY_ENDPOINT").is_none());
        let settings = |pairs: &'static [(&'static str, &'static str)]| {
            Config::from_lookup(|k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap()
        };
        let platform = settings(&[("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")]);
        assert_eq!(
            TokenSource::from_config(&platform).unwrap().source(),
            CredentialSource::ManagedIdentity
        );
        assert_eq!(
            TokenSource::from_config(&settings(&[])).unwrap().source(),
            CredentialSource::Developer
        );
    }

    /// A credential that counts calls, answers after a pause, and fails while `fail` is set.
    #[derive(Debug)]
    struct Counting {
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
        lifetime: Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Io,
                    "connection refused",
                ));
            }
            Ok(AccessToken::new(
                Secret::new("token-value"),
                OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    fn source(fail: bool, lifetime: Duration) -> (Arc<Counting>, Arc<TokenSource>) {
        let cred = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            fail: std::sync::atomic::AtomicBool::new(fail),
            lifetime,
        });
        let ts = TokenSource::new(
            cred.clone(),
            CredentialSource::ManagedIdentity,
            "https://graph.microsoft.com/.default".into(),
            None,
        );
        (cred, Arc::new(ts))
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let (cred, ts) = source(false, Duration::from_secs(3600));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let ts = ts.clone();
                tokio::spawn(async move { ts.token().await.map(|t| t.secret().to_owned()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "token-value");
        }
        assert_eq!(cred.calls.load(Ordering::SeqCst), 1);
        assert_eq!(ts.fetches(), 1);
    }

    #[tokio::test]
    async fn queued_callers_share_a_failure_then_a_later_call_retries() {
        let (cred, ts) = source(true, Duration::from_secs(3600));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let ts = ts.clone();
                tokio::spawn(async move { ts.token().await })
            })
            .collect();
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert!(e.retryable());
            assert!(e.message.contains("connection refused"), "{}", e.message);
            assert!(e.remedy.contains("system-assigned"), "{}", e.remedy);
        }
        assert_eq!(cred.calls.load(Ordering::SeqCst), 1);
        cred.fail.store(false, Ordering::SeqCst);
        assert!(ts.token().await.is_ok());
        assert_eq!(cred.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn tokens_near_expiry_are_renewed() {
        let (cred, ts) = source(false, Duration::from_secs(120));
        ts.token().await.unwrap();
        ts.token().await.unwrap();
        assert_eq!(cred.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn credential_failures_are_classified() {
        use CredentialSource::{ClientSecret, Developer, ManagedIdentity};
        use FailureClass::*;
        let class = |source, status, text: &str| classify(source, status, text).0;
        // What azure_identity 1.0's DeveloperToolsCredential says, tool by tool.
        let az_missing = "Multiple errors were encountered while attempting to authenticate:\nAzureCliCredential authentication failed. az not found on PATH\nTo troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot#azure-cli\nAzureDeveloperCliCredential authentication failed. azd not found on PATH\nTo troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot#azd";
        assert_eq!(
            classify(Developer, None, az_missing),
            (ToolMissing, "az not found on PATH".into())
        );
        let signed_out = "Multiple errors were encountered while attempting to authenticate:\nAzureCliCredential authentication failed. ERROR: Please run 'az login' to setup account.\nAzureDeveloperCliCredential authentication failed. azd not found on PATH";
        assert_eq!(class(Developer, None, signed_out), NotSignedIn);
        let azd_only = "AzureCliCredential authentication failed. az not found on PATH\nAzureDeveloperCliCredential authentication failed.\nnot logged in, run `azd auth login` to login";
        let (c, cause) = classify(Developer, None, azd_only);
        assert_eq!(c, NotSignedIn);
        assert!(cause.starts_with("azd"), "{cause}");
        assert_eq!(
            class(
                Developer,
                None,
                "AADSTS65002: Consent between first party application"
            ),
            Refused
        );
        assert_eq!(
            class(
                Developer,
                None,
                "az: HTTPSConnectionPool: connection aborted"
            ),
            Transient
        );
        assert_eq!(class(ManagedIdentity, Some(400), "Bad Request"), Refused);
        assert_eq!(class(ManagedIdentity, Some(404), "Not Found"), Refused);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(class(ManagedIdentity, Some(s), "x"), Transient, "{s}");
        }
        assert_eq!(
            class(ManagedIdentity, None, "connection refused"),
            Transient
        );
        assert_eq!(
            class(
                ClientSecret,
                Some(401),
                "AADSTS7000215: Invalid client secret"
            ),
            Refused
        );
        assert_eq!(
            class(ClientSecret, None, "AADSTS90002: Tenant not found"),
            Refused
        );
        assert_eq!(
            class(ClientSecret, None, "error sending request"),
            Transient
        );
    }

    #[test]
    fn sdk_text_becomes_one_short_line() {
        let text = "Multiple errors were encountered while attempting to authenticate:\nAzureCliCredential authentication failed. az not found on PATH\nTo troubleshoot, visit https://aka.ms/x\n\n  AzureDeveloperCliCredential authentication failed. azd not found on PATH\n";
        assert_eq!(
            one_line(text),
            "AzureCliCredential authentication failed. az not found on PATH; AzureDeveloperCliCredential authentication failed. azd not found on PATH"
        );
        let long = one_line(&"é".repeat(1000));
        assert_eq!(long.chars().count(), MAX_MESSAGE + 1);
        assert!(long.ends_with('…'));
    }

    #[tokio::test]
    async fn a_missing_tool_is_answered_once_without_retry_and_names_the_fix() {
        #[derive(Debug)]
        struct NoAz(AtomicUsize);
        #[async_trait::async_trait]
        impl TokenCredential for NoAz {
            async fn get_token(
                &self,
                _: &[&str],
                _: Option<TokenRequestOptions<'_>>,
            ) -> azure_core::Result<AccessToken> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    "AzureCliCredential authentication failed. az not found on PATH\nTo troubleshoot, visit https://aka.ms/x",
                ))
            }
        }
        let ts = TokenSource::new(
            Arc::new(NoAz(AtomicUsize::new(0))),
            CredentialSource::Developer,
            "https://graph.microsoft.com/.default".into(),
            None,
        );
        let e = ts.token().await.unwrap_err();
        assert!(!e.retryable());
        assert_eq!(e.class, FailureClass::ToolMissing);
        assert!(!e.message.contains('\n'), "{}", e.message);
        assert!(
            e.remedy
                .starts_with("az not found on PATH: install the Azure CLI"),
            "{}",
            e.remedy
        );
        assert!(e.remedy.contains("RESUME_CREDENTIAL"), "{}", e.remedy);
        assert!(!e.remedy.contains("sign in"), "{}", e.remedy);
    }

    #[test]
    fn the_gateway_refuses_device_code_sign_in() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config =
            Config::from_lookup(|k| (k == "RESUME_CREDENTIAL").then(|| "device-code".to_owned()))
                .unwrap();
        let e = TokenSource::from_config(&config).unwrap_err().to_string();
        assert!(e.contains("operator commands"), "{e}");
        let ts = TokenSource::for_operator(&config, OperatorAccess::Write).unwrap();
        assert_eq!(ts.source(), CredentialSource::DeviceCode);
        assert!(
            ts.call_timeout > crate::identity::device_code::SIGN_IN_LIMIT,
            "a person has the whole sign-in time"
        );
        assert_eq!(
            ts.scope,
            "https://graph.microsoft.com/LifecycleWorkflows.ReadWrite.All"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = GraphToken::new(AccessToken::new(
            Secret::new("very-secret-token"),
            OffsetDateTime::now_utc(),
        ));
        assert!(!format!("{t:?}").contains("very-secret-token"));
    }
}
