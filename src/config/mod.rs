//! Settings: read from the environment (Function App settings in Azure) once at start and
//! validated, so a bad value stops the process with one line naming it instead of failing
//! the first resume.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub(crate) mod caller;
mod certificate;

pub use certificate::ClientCertificate;
#[cfg(test)]
pub(crate) use certificate::tests::section as certificate_fixture;

use crate::request::ids::Guid;
use caller::CallerAuth;

/// The Functions host caps an HTTP trigger at 230 s, whatever `functionTimeout` says.
pub const HTTP_TRIGGER_LIMIT_SECONDS: u64 = 230;
const DEFAULT_PORT: u16 = 3000;
const DEFAULT_DEADLINE_SECONDS: u64 = 60;
/// What Graph sees as the `source` of a resume when the caller names none.
pub const DEFAULT_SOURCE: &str = "resume-gateway";
const MAX_SOURCE_LEN: usize = 256;

/// Every setting the gateway reads (docs/settings.md, `local.settings.sample.json` and the
/// infrastructure templates must list each one; a test checks).
pub const SETTINGS: &[&str] = &[
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "FUNCTIONS_APP_ROOT_PATH",
    "GRAPH_CLOUD",
    "GRAPH_ENDPOINT",
    "GRAPH_API_VERSION",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "RESUME_CREDENTIAL",
    "RESUME_DRY_RUN",
    "RESUME_DEADLINE_SECONDS",
    "RESUME_SOURCE",
    "RUST_LOG",
    "LOG_FORMAT",
    "CALLER_AUTH",
    "CALLER_TENANT_ID",
    "CALLER_AUDIENCES",
    "CALLER_ALLOWED_APP_IDS",
    "CALLER_ALLOWED_OBJECT_IDS",
    "CALLER_AUTHORITY",
    "CALLER_SCOPE",
];

/// Settings only the operator commands read (device-code and certificate sign-in); the gateway
/// ignores them,
/// so they are documented under Operations rather than in the app settings.
pub const OPERATOR_SETTINGS: &[&str] = &[
    "RESUME_OPERATOR_CLIENT_ID",
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PATH",
];

/// The public client operators sign in through by default: Microsoft Graph Command Line Tools
/// (the app Microsoft Graph PowerShell uses, in every tenant), which may ask for any delegated
/// Graph permission, `LifecycleWorkflows.*` included, with consent.
pub const DEFAULT_OPERATOR_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// The settings the Functions host sets itself; users never configure them.
pub const HOST_SET: &[&str] = &["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_APP_ROOT_PATH"];

/// What the platform sets where it offers a managed identity (App Service and Functions:
/// `IDENTITY_ENDPOINT`; older hosts: `MSI_ENDPOINT`; a Function App without an identity still
/// sets `WEBSITE_INSTANCE_ID`). Read here once, like every setting, to choose the credential.
pub const PLATFORM_IDENTITY: &[&str] =
    &["IDENTITY_ENDPOINT", "MSI_ENDPOINT", "WEBSITE_INSTANCE_ID"];

/// The national cloud whose Graph the gateway calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphCloud {
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl GraphCloud {
    const ALLOWED: &'static str = "global, usgov, usgovdod, china";

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "global" => Some(Self::Global),
            "usgov" => Some(Self::UsGov),
            "usgovdod" => Some(Self::UsGovDod),
            "china" => Some(Self::China),
            _ => None,
        }
    }

    /// Graph's base URL in this cloud; the token audience is the same URL.
    pub fn graph_base(self) -> &'static str {
        match self {
            Self::Global => "https://graph.microsoft.com",
            Self::UsGov => "https://graph.microsoft.us",
            Self::UsGovDod => "https://dod-graph.microsoft.us",
            Self::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The Entra ID sign-in host of this cloud.
    pub fn authority(self) -> &'static str {
        match self {
            Self::Global => "https://login.microsoftonline.com",
            Self::UsGov | Self::UsGovDod => "https://login.microsoftonline.us",
            Self::China => "https://login.chinacloudapi.cn",
        }
    }
}

/// Graph API version used for the resume call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    /// The path segment Graph expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1.0",
            Self::Beta => "beta",
        }
    }
}

/// How the gateway gets its Graph token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// Managed identity when the platform offers one (`IDENTITY_ENDPOINT`), else developer tools.
    Auto,
    ManagedIdentity,
    /// Azure CLI, then Azure Developer CLI: for operators on their own machine.
    Developer,
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    /// A person signs in with a code on another device (OAuth 2.0 device authorization grant):
    /// operator commands only, see [`OperatorSignIn`].
    DeviceCode,
    /// An app registration signs in with its certificate, for automation: operator commands
    /// only (a Function App has its managed identity, and no place for a key file).
    ClientCertificate(ClientCertificate),
}

/// Where and through which public client a person signs in for the operator commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSignIn {
    /// `RESUME_OPERATOR_CLIENT_ID`, default [`DEFAULT_OPERATOR_CLIENT_ID`].
    pub client_id: String,
    /// `AZURE_TENANT_ID`, else `organizations` (any work or school account).
    pub tenant: String,
    /// `AZURE_AUTHORITY_HOST`, else the cloud's sign-in host.
    pub authority: String,
}

impl CredentialKind {
    /// The name users write in `RESUME_CREDENTIAL`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::ManagedIdentity => "managed-identity",
            Self::Developer => "developer",
            Self::ClientSecret { .. } => "client-secret",
            Self::DeviceCode => "device-code",
            Self::ClientCertificate(_) => "client-certificate",
        }
    }
}

/// A setting value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Every setting the gateway reads, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub cloud: GraphCloud,
    /// Graph base URL without a trailing slash, e.g. `https://graph.microsoft.com`.
    pub graph_base: String,
    /// Token scope: always the cloud's Graph audience, even when `GRAPH_ENDPOINT` points at a proxy.
    pub graph_scope: String,
    pub api_version: ApiVersion,
    pub credential: CredentialKind,
    /// Client id of a user-assigned managed identity; `None` means system-assigned.
    pub managed_identity_client_id: Option<String>,
    pub dry_run: bool,
    pub deadline: Duration,
    pub default_source: String,
    /// Where `host.json` and the function folders are: `FUNCTIONS_APP_ROOT_PATH` as the host
    /// sets it, else the working directory (the host starts the handler in the app root).
    pub app_root: PathBuf,
    /// Who may call the gateway (`CALLER_*`).
    pub caller_auth: CallerAuth,
    /// Device-code sign-in for the operator commands.
    pub operator: OperatorSignIn,
    /// The [`PLATFORM_IDENTITY`] variables that are set, with their values.
    pub platform_identity: Vec<(&'static str, String)>,
}

/// A setting that cannot be used, with what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}={value}: {allowed}")]
pub struct ConfigError {
    pub setting: &'static str,
    /// The offending value, quoted, or a placeholder for secrets and missing values.
    pub value: String,
    pub allowed: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, value: &str, allowed: impl Into<String>) -> Self {
        Self {
            setting,
            value: format!("{value:?}"),
            allowed: allowed.into(),
        }
    }

    pub(crate) fn missing(setting: &'static str, allowed: impl Into<String>) -> Self {
        Self {
            setting,
            value: "(unset)".into(),
            allowed: allowed.into(),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`; empty values count as unset, as an empty app setting does.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        // 0 asks the system for a free port. The Functions host never sends 0 (it picks the port
        // and polls it), so this only serves a process that learns the port afterwards: the
        // tests, which read it from the listening socket instead of reserving a port and
        // releasing it for the child (another test could take it in between). Still loopback
        // only, so nothing beyond this machine can reach it.
        let port = match get("FUNCTIONS_CUSTOMHANDLER_PORT") {
            None => DEFAULT_PORT,
            Some(v) => v.parse::<u16>().map_err(|_| {
                ConfigError::new(
                    "FUNCTIONS_CUSTOMHANDLER_PORT",
                    &v,
                    "a TCP port from 0 (any free port) to 65535",
                )
            })?,
        };

        let cloud = match get("GRAPH_CLOUD") {
            None => GraphCloud::Global,
            Some(v) => GraphCloud::parse(&v)
                .ok_or_else(|| ConfigError::new("GRAPH_CLOUD", &v, GraphCloud::ALLOWED))?,
        };

        let graph_base = match get("GRAPH_ENDPOINT") {
            None => cloud.graph_base().to_owned(),
            Some(v) => parse_endpoint("GRAPH_ENDPOINT", &v)?,
        };

        let api_version = match get("GRAPH_API_VERSION").as_deref() {
            None | Some("v1.0") => ApiVersion::V1,
            Some("beta") => ApiVersion::Beta,
            Some(v) => return Err(ConfigError::new("GRAPH_API_VERSION", v, "v1.0 or beta")),
        };

        let managed_identity_client_id = get("AZURE_CLIENT_ID")
            .map(|v| {
                guid_setting(
                    "AZURE_CLIENT_ID",
                    &v,
                    "the client id (a GUID) of a user-assigned managed identity, or unset for the system-assigned one",
                )
            })
            .transpose()?;

        let credential = match get("RESUME_CREDENTIAL")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("auto") => CredentialKind::Auto,
            Some("managed-identity") => CredentialKind::ManagedIdentity,
            Some("developer") => CredentialKind::Developer,
            Some("device-code") => CredentialKind::DeviceCode,
            Some(kind @ ("client-secret" | "client-certificate")) => {
                let needed = match kind {
                    "client-secret" => "required when RESUME_CREDENTIAL=client-secret",
                    _ => "required when RESUME_CREDENTIAL=client-certificate",
                };
                let tenant_id = get("AZURE_TENANT_ID")
                    .ok_or_else(|| ConfigError::missing("AZURE_TENANT_ID", needed))?;
                let tenant_id = guid_setting(
                    "AZURE_TENANT_ID",
                    &tenant_id,
                    "the directory (tenant) id, a GUID",
                )?;
                let client_id = managed_identity_client_id
                    .clone()
                    .ok_or_else(|| ConfigError::missing("AZURE_CLIENT_ID", needed))?;
                if kind == "client-certificate" {
                    const PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
                    let path = get(PATH).ok_or_else(|| ConfigError::missing(PATH, needed))?;
                    let certificate = ClientCertificate::read(&path, tenant_id, client_id)
                        .map_err(|why| {
                            ConfigError::new(
                                PATH,
                                &path,
                                format!("{}: {why}", certificate::ALLOWED),
                            )
                        })?;
                    CredentialKind::ClientCertificate(certificate)
                } else {
                    let secret = get("AZURE_CLIENT_SECRET")
                        .ok_or_else(|| ConfigError::missing("AZURE_CLIENT_SECRET", needed))?;
                    CredentialKind::ClientSecret {
                        tenant_id,
                        client_id,
                        secret: Secret(secret),
                    }
                }
            }
            Some(v) => {
                return Err(ConfigError::new(
                    "RESUME_CREDENTIAL",
                    v,
                    "auto, managed-identity, developer, client-secret, or for the operator commands device-code or client-certificate",
                ));
            }
        };

        let dry_run = match get("RESUME_DRY_RUN") {
            None => false,
            Some(v) => parse_bool(&v)
                .ok_or_else(|| ConfigError::new("RESUME_DRY_RUN", &v, "true or false"))?,
        };

        let deadline = match get("RESUME_DEADLINE_SECONDS") {
            None => DEFAULT_DEADLINE_SECONDS,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (1..HTTP_TRIGGER_LIMIT_SECONDS).contains(s))
                .ok_or_else(|| {
                    ConfigError::new(
                        "RESUME_DEADLINE_SECONDS",
                        &v,
                        format!(
                            "whole seconds from 1 to {} (the Functions HTTP trigger limit is {HTTP_TRIGGER_LIMIT_SECONDS} s)",
                            HTTP_TRIGGER_LIMIT_SECONDS - 1
                        ),
                    )
                })?,
        };

        let default_source = match get("RESUME_SOURCE") {
            None => DEFAULT_SOURCE.to_owned(),
            Some(v) if v.chars().count() <= MAX_SOURCE_LEN && !v.chars().any(char::is_control) => v,
            Some(v) => {
                return Err(ConfigError::new(
                    "RESUME_SOURCE",
                    &v,
                    format!("printable text of at most {MAX_SOURCE_LEN} characters"),
                ));
            }
        };

        let operator = OperatorSignIn::from_settings(&get, cloud)?;
        let caller_auth = CallerAuth::from_settings(get, cloud)?;

        Ok(Self {
            port,
            cloud,
            graph_base,
            graph_scope: format!("{}/.default", cloud.graph_base()),
            api_version,
            credential,
            managed_identity_client_id,
            dry_run,
            deadline: Duration::from_secs(deadline),
            default_source,
            app_root: get("FUNCTIONS_APP_ROOT_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
            caller_auth,
            operator,
            platform_identity: PLATFORM_IDENTITY
                .iter()
                .filter_map(|name| Some((*name, get(name)?)))
                .collect(),
        })
    }

    /// A [`PLATFORM_IDENTITY`] variable as read at start.
    pub fn platform(&self, name: &str) -> Option<String> {
        self.platform_identity
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
}

impl OperatorSignIn {
    fn from_settings(
        get: &impl Fn(&str) -> Option<String>,
        cloud: GraphCloud,
    ) -> Result<Self, ConfigError> {
        let client_id = match get("RESUME_OPERATOR_CLIENT_ID") {
            None => DEFAULT_OPERATOR_CLIENT_ID.to_owned(),
            Some(v) => guid_setting(
                "RESUME_OPERATOR_CLIENT_ID",
                &v,
                "the application (client) id, a GUID, of a public client app registration",
            )?,
        };
        // A tenant id or one of its domain names, as Entra ID takes either in the path.
        let tenant = match get("AZURE_TENANT_ID") {
            None => "organizations".to_owned(),
            Some(v)
                if v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                v.to_ascii_lowercase()
            }
            Some(v) => {
                return Err(ConfigError::new(
                    "AZURE_TENANT_ID",
                    &v,
                    "the directory (tenant) id, a GUID, or one of its domain names",
                ));
            }
        };
        let authority = match get("AZURE_AUTHORITY_HOST") {
            None => cloud.authority().to_owned(),
            Some(v) => parse_endpoint("AZURE_AUTHORITY_HOST", &v)?,
        };
        Ok(Self {
            client_id,
            tenant,
            authority,
        })
    }
}

/// A setting that must be a GUID, in Graph's spelling; otherwise refused naming it.
fn guid_setting(setting: &'static str, value: &str, allowed: &str) -> Result<String, ConfigError> {
    Guid::parse(value)
        .map(String::from)
        .ok_or_else(|| ConfigError::new(setting, value, allowed))
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// An endpoint override: https, or plain http only on loopback (a local mock or proxy).
/// Returns it without a trailing slash.
pub fn parse_endpoint(setting: &'static str, value: &str) -> Result<String, ConfigError> {
    let allowed = "an absolute https URL without query or fragment (http only for a loopback host)";
    let url = Url::parse(value).map_err(|_| ConfigError::new(setting, value, allowed))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(ConfigError::new(setting, value, allowed));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_platform_identity_is_read_with_the_settings() {
        let c = load(&[
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token"),
            ("WEBSITE_INSTANCE_ID", " "),
        ])
        .unwrap();
        assert_eq!(
            c.platform_identity,
            vec![(
                "IDENTITY_ENDPOINT",
                "http://127.0.0.1:41234/msi/token".to_owned()
            )]
        );
        assert_eq!(
            c.platform("IDENTITY_ENDPOINT").as_deref(),
            Some("http://127.0.0.1:41234/msi/token")
        );
        // Empty is unset, as for every setting.
        assert_eq!(c.platform("WEBSITE_INSTANCE_ID"), None);
        assert!(load(&[]).unwrap().platform_identity.is_empty());
    }

    #[test]
    fn operator_sign_in_defaults_and_checks() {
        let c = load(&[("GRAPH_CLOUD", "usgov")]).unwrap();
        assert_eq!(c.operator.client_id, DEFAULT_OPERATOR_CLIENT_ID);
        assert_eq!(c.operator.tenant, "organizations");
        assert_eq!(c.operator.authority, "https://login.microsoftonline.us");
        let c = load(&[
            ("RESUME_CREDENTIAL", "Device-Code"),
            (
                "RESUME_OPERATOR_CLIENT_ID",
                "5E6F7A8B-9C0D-4E1F-8A2B-3C4D5E6F7A8B",
            ),
            ("AZURE_TENANT_ID", "Contoso.onmicrosoft.com"),
            ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:8080/"),
        ])
        .unwrap();
        assert_eq!(c.credential, CredentialKind::DeviceCode);
        assert_eq!(c.operator.client_id, "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b");
        assert_eq!(c.operator.tenant, "contoso.onmicrosoft.com");
        assert_eq!(c.operator.authority, "http://127.0.0.1:8080");
        for (setting, value) in [
            ("RESUME_OPERATOR_CLIENT_ID", "graph-cli"),
            ("AZURE_TENANT_ID", "contoso/../common"),
            ("AZURE_AUTHORITY_HOST", "http://login.example.com"),
        ] {
            assert_eq!(load(&[(setting, value)]).unwrap_err().setting, setting);
        }
    }

    #[test]
    fn port_zero_means_any_free_port_and_the_host_s_port_is_kept() {
        assert_eq!(
            load(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "0")]).unwrap().port,
            0
        );
        assert_eq!(
            load(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "40123")])
                .unwrap()
                .port,
            40123
        );
        for bad in ["-1", "65536", "http"] {
            let e = load(&[("FUNCTIONS_CUSTOMHANDLER_PORT", bad)]).unwrap_err();
            assert_eq!(e.setting, "FUNCTIONS_CUSTOMHANDLER_PORT", "{bad}");
        }
    }

    #[test]
    fn defaults_need_no_settings() {
        let c = load(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.graph_base, "https://graph.microsoft.com");
        assert_eq!(c.graph_scope, "https://graph.microsoft.com/.default");
        assert_eq!(c.api_version, ApiVersion::V1);
        assert_eq!(c.credential, CredentialKind::Auto);
        assert_eq!(c.deadline, Duration::from_secs(60));
        assert_eq!(c.default_source, "resume-gateway");
        assert!(!c.dry_run);
        assert!(c.managed_identity_client_id.is_none());
    }

    #[test]
    fn clouds_pick_base_and_scope() {
        for (name, base) in [
            ("usgov", "https://graph.microsoft.us"),
            ("USGOVDOD", "https://dod-graph.microsoft.us"),
            ("china", "https://microsoftgraph.chinacloudapi.cn"),
        ] {
            let c = load(&[("GRAPH_CLOUD", name)]).unwrap();
            assert_eq!(c.graph_base, base);
            assert_eq!(c.graph_scope, format!("{base}/.default"));
        }
    }

    #[test]
    fn endpoint_override_keeps_the_cloud_scope() {
        let c = load(&[("GRAPH_ENDPOINT", "http://127.0.0.1:8080/")]).unwrap();
        assert_eq!(c.graph_base, "http://127.0.0.1:8080");
        assert_eq!(c.graph_scope, "https://graph.microsoft.com/.default");
        let c = load(&[("GRAPH_ENDPOINT", "https://proxy.example.com/graph")]).unwrap();
        assert_eq!(c.graph_base, "https://proxy.example.com/graph");
    }

    #[test]
    fn endpoint_rejects_plain_http_off_loopback_and_queries() {
        for bad in [
            "http://graph.example.com",
            "ftp://127.0.0.1",
            "https://x.example.com/?a=b",
            "https://user:pw@x.example.com",
            "graph.microsoft.com",
        ] {
            let e = load(&[("GRAPH_ENDPOINT", bad)]).unwrap_err();
            assert_eq!(e.setting, "GRAPH_ENDPOINT", "{bad}");
        }
        assert!(load(&[("GRAPH_ENDPOINT", "http://localhost:1")]).is_ok());
        assert!(load(&[("GRAPH_ENDPOINT", "http://[::1]:1")]).is_ok());
    }

    #[test]
    fn errors_name_setting_value_and_what_is_allowed() {
        let e = load(&[("GRAPH_CLOUD", "mars")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting GRAPH_CLOUD=\"mars\": global, usgov, usgovdod, china"
        );
        let cases = [
            ("GRAPH_API_VERSION", "v2"),
            ("RESUME_CREDENTIAL", "password"),
            ("RESUME_DRY_RUN", "maybe"),
            ("RESUME_DEADLINE_SECONDS", "230"),
            ("RESUME_DEADLINE_SECONDS", "0"),
            ("RESUME_DEADLINE_SECONDS", "ten"),
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "70000"),
            ("AZURE_CLIENT_ID", "not-a-guid"),
        ];
        for (setting, value) in cases {
            let e = load(&[(setting, value)]).unwrap_err();
            assert_eq!(e.setting, setting);
            assert!(e.to_string().contains(value), "{e}");
        }
    }

    #[test]
    fn deadline_accepts_up_to_229() {
        let c = load(&[("RESUME_DEADLINE_SECONDS", "229")]).unwrap();
        assert_eq!(c.deadline, Duration::from_secs(229));
    }

    #[test]
    fn client_secret_needs_all_three_and_never_prints_the_secret() {
        let e = load(&[("RESUME_CREDENTIAL", "client-secret")]).unwrap_err();
        assert_eq!(e.setting, "AZURE_TENANT_ID");
        let e = load(&[
            ("RESUME_CREDENTIAL", "client-secret"),
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "AZURE_CLIENT_SECRET");
        let c = load(&[
            ("RESUME_CREDENTIAL", "client-secret"),
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn client_certificate_is_read_once_and_each_setting_is_named() {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/test-only-client-certificate.pem"
        );
        let all = [
            ("RESUME_CREDENTIAL", "Client-Certificate"),
            ("AZURE_TENANT_ID", "72F988BF-86F1-41AF-91AB-2D7CD011DB47"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", fixture),
        ];
        let c = load(&all).unwrap();
        let CredentialKind::ClientCertificate(cert) = &c.credential else {
            panic!("{:?}", c.credential);
        };
        assert_eq!(c.credential.name(), "client-certificate");
        assert_eq!(cert.tenant_id, "72f988bf-86f1-41af-91ab-2d7cd011db47");
        assert_eq!(cert.client_id, "11111111-2222-3333-4444-555555555555");
        for missing in 1..all.len() {
            let mut some = all.to_vec();
            let (setting, _) = some.remove(missing);
            let e = load(&some).unwrap_err();
            assert_eq!(e.setting, setting);
            assert!(e.to_string().contains("client-certificate"), "{e}");
        }
        let mut wrong = all.to_vec();
        wrong[3].1 = "/nonexistent/app.pem";
        let e = load(&wrong).unwrap_err();
        assert_eq!(e.setting, "AZURE_CLIENT_CERTIFICATE_PATH");
        assert!(e.to_string().contains("/nonexistent/app.pem"), "{e}");
        assert!(e.to_string().contains("cannot read it"), "{e}");
        wrong[3].1 = "Cargo.toml";
        let e = load(&wrong).unwrap_err().to_string();
        assert!(e.contains("no private key"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = load(&[("GRAPH_CLOUD", ""), ("AZURE_CLIENT_ID", "  ")]).unwrap();
        assert_eq!(c.cloud, GraphCloud::Global);
        assert!(c.managed_identity_client_id.is_none());
    }

    #[test]
    fn user_assigned_client_id_is_normalised() {
        let c = load(&[("AZURE_CLIENT_ID", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE")]).unwrap();
        assert_eq!(
            c.managed_identity_client_id.as_deref(),
            Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
        );
    }
}
