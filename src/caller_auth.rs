//! Who may ask the gateway to resume: with `CALLER_AUTH=entra`, every request carries an Entra
//! ID app token (a Logic App's managed identity, say) that is verified here, in-process, and
//! whose calling app (and optionally object) must be on an allow-list.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::config::{ConfigError, GraphCloud, parse_endpoint};
use crate::echo;
use crate::ids::Guid;
use crate::jwks::{KeyCache, KeyError, KeyTiming};
use crate::scope::CallerScope;

/// Tokens longer than this are refused unread; Entra app tokens are one to three kilobytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 300;

/// How callers are authenticated (`CALLER_AUTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerAuth {
    /// Only the Functions host's key check (the default).
    FunctionKey,
    Entra(EntraCallers),
}

/// The `CALLER_*` settings for `CALLER_AUTH=entra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraCallers {
    pub tenant_id: String,
    pub audiences: Vec<String>,
    /// Lower-case client ids; never empty.
    pub allowed_app_ids: Vec<String>,
    /// Lower-case object ids; `None` means any object of an allowed app.
    pub allowed_object_ids: Option<Vec<String>>,
    /// Sign-in host without a trailing slash, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// Accepted `iss` values: v1 then v2.
    pub issuers: [String; 2],
    /// Which tasks an allowed caller may resume (`CALLER_SCOPE`).
    pub scope: CallerScope,
}

const DEPENDENT: [&str; 6] = [
    "CALLER_TENANT_ID",
    "CALLER_AUDIENCES",
    "CALLER_ALLOWED_APP_IDS",
    "CALLER_ALLOWED_OBJECT_IDS",
    "CALLER_AUTHORITY",
    // Without a known caller there is nothing to scope.
    "CALLER_SCOPE",
];

impl CallerAuth {
    /// Reads the `CALLER_*` settings through `get` (which already maps empty values to `None`).
    pub fn from_settings(
        get: impl Fn(&str) -> Option<String>,
        cloud: GraphCloud,
    ) -> Result<Self, ConfigError> {
        let mode = get("CALLER_AUTH").map(|v| v.to_ascii_lowercase());
        match mode.as_deref() {
            None | Some("function-key") => {
                // A half-done setup must not look protected while it is not.
                if let Some(set) = DEPENDENT.iter().find(|s| get(s).is_some()) {
                    return Err(ConfigError::new(
                        "CALLER_AUTH",
                        mode.as_deref().unwrap_or(""),
                        format!(
                            "entra, because {set} is set (or remove the CALLER_* settings to rely on the function key alone)"
                        ),
                    ));
                }
                Ok(Self::FunctionKey)
            }
            Some("entra") => EntraCallers::from_settings(&get, cloud).map(Self::Entra),
            Some(v) => Err(ConfigError::new("CALLER_AUTH", v, "function-key or entra")),
        }
    }
}

impl EntraCallers {
    fn from_settings(
        get: &impl Fn(&str) -> Option<String>,
        cloud: GraphCloud,
    ) -> Result<Self, ConfigError> {
        let needed = "required when CALLER_AUTH=entra";
        let tenant = get("CALLER_TENANT_ID")
            .ok_or_else(|| ConfigError::missing("CALLER_TENANT_ID", needed))?;
        let tenant_id = Guid::parse(&tenant).map(String::from).ok_or_else(|| {
            ConfigError::new(
                "CALLER_TENANT_ID",
                &tenant,
                "the directory (tenant) id of the callers, a GUID",
            )
        })?;

        let raw = get("CALLER_AUDIENCES")
            .ok_or_else(|| ConfigError::missing("CALLER_AUDIENCES", needed))?;
        let audiences = list(&raw);
        let audience_ok = |a: &&str| {
            Guid::parse(a).is_some() || (a.contains("://") && !a.contains('*') && !a.contains(' '))
        };
        if audiences.is_empty() || !audiences.iter().all(audience_ok) {
            return Err(ConfigError::new(
                "CALLER_AUDIENCES",
                &raw,
                "a comma list of the gateway app's Application ID URI (api://<app-id>) and/or its app id (a GUID)",
            ));
        }

        let guids = |setting: &'static str, raw: &str, allowed: &str| {
            let items = list(raw);
            let parsed: Option<Vec<String>> = items
                .iter()
                .map(|v| Guid::parse(v).map(String::from))
                .collect();
            match parsed {
                Some(ids) if !ids.is_empty() => Ok(ids),
                _ => Err(ConfigError::new(setting, raw, allowed)),
            }
        };
        let raw = get("CALLER_ALLOWED_APP_IDS")
            .ok_or_else(|| ConfigError::missing("CALLER_ALLOWED_APP_IDS", needed))?;
        let allowed_app_ids = guids(
            "CALLER_ALLOWED_APP_IDS",
            &raw,
            "a comma list of the calling apps' client (application) ids, GUIDs; allowing every app is refused",
        )?;
        let allowed_object_ids = get("CALLER_ALLOWED_OBJECT_IDS")
            .map(|raw| {
                guids(
                    "CALLER_ALLOWED_OBJECT_IDS",
                    &raw,
                    "a comma list of the calling service principals' object ids, GUIDs, or unset",
                )
            })
            .transpose()?;

        let authority = match get("CALLER_AUTHORITY") {
            None => cloud.authority().to_owned(),
            Some(v) => parse_endpoint("CALLER_AUTHORITY", &v)?,
        };
        // v1 tokens name the security token service; only China runs its own.
        let sts = match cloud {
            GraphCloud::China => "https://sts.chinacloudapi.cn",
            _ => "https://sts.windows.net",
        };
        let issuers = [
            format!("{sts}/{tenant_id}/"),
            format!("{authority}/{tenant_id}/v2.0"),
        ];
        let scope = CallerScope::parse(get("CALLER_SCOPE").as_deref())?;
        Ok(Self {
            scope,
            tenant_id,
            audiences: audiences.into_iter().map(str::to_owned).collect(),
            allowed_app_ids,
            allowed_object_ids,
            authority,
            issuers,
        })
    }
}

fn list(raw: &str) -> Vec<&str> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The verified calling identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub app_id: String,
    pub object_id: Option<String>,
}

/// Why a caller was not let in. Texts name the claim, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerAuthError {
    #[error("The request has no Authorization header.")]
    MissingHeader,
    /// The scheme's registered name, when it has one: nothing else of the header is repeated,
    /// since a value without a space after the scheme may be a credential.
    #[error("The Authorization header uses {}, not Bearer.", match .0 {
        Some(scheme) => format!("the {scheme} scheme"),
        None => "another scheme".to_owned(),
    })]
    WrongScheme(Option<&'static str>),
    /// The token is not a usable Entra app token; `claim` names what failed.
    #[error("{detail}")]
    InvalidToken { claim: &'static str, detail: String },
    /// A valid token from an identity that is not on the allow-list.
    #[error("{detail}")]
    NotAllowed {
        caller: Caller,
        claim: &'static str,
        detail: String,
    },
    #[error("{reason}")]
    KeysUnavailable {
        reason: String,
        retry_after: Duration,
    },
}

impl CallerAuthError {
    fn invalid(claim: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidToken {
            claim,
            detail: detail.into(),
        }
    }
}

/// The claims the gateway reads after the signature and the standard claims are verified.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    oid: Option<String>,
    sub: Option<String>,
    idtyp: Option<String>,
    scp: Option<serde_json::Value>,
}

/// Verifies callers' tokens against the tenant's keys and the allow-list.
#[derive(Debug)]
pub struct Authenticator {
    settings: EntraCallers,
    keys: Arc<KeyCache>,
    validation: Validation,
}

impl Authenticator {
    /// Builds the authenticator and starts fetching the tenant's keys in the background.
    pub fn start(settings: EntraCallers) -> Self {
        let keys = Arc::new(KeyCache::new(
            &settings.authority,
            &settings.tenant_id,
            KeyTiming::default(),
        ));
        keys.start();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_audience(&settings.audiences);
        validation.set_issuer(&settings.issuers);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Self {
            settings,
            keys,
            validation,
        }
    }

    /// Checks the request's bearer token; the body has not been read yet.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, CallerAuthError> {
        let token = bearer_token(headers)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            CallerAuthError::invalid(
                "header",
                format!(
                    "The bearer token is not a signed JWT ({}).",
                    describe(e.kind())
                ),
            )
        })?;
        if header.alg != Algorithm::RS256 {
            return Err(CallerAuthError::invalid(
                "alg",
                format!(
                    "The token is signed with {:?}; only RS256 tokens from Entra ID are accepted.",
                    header.alg
                ),
            ));
        }
        let kid = header.kid.as_deref().ok_or_else(|| {
            CallerAuthError::invalid("kid", "The token's header names no signing key (kid).")
        })?;
        let key = self.keys.key(kid).await.map_err(|e| match e {
            KeyError::UnknownKid { kid } => CallerAuthError::invalid(
                "kid",
                format!(
                    "The token is signed with key {}, which is not one of tenant {}'s signing keys: the token was issued by another tenant or cloud, or forged.",
                    echo::quoted(&kid),
                    self.settings.tenant_id
                ),
            ),
            KeyError::Unavailable {
                reason,
                retry_after,
            } => CallerAuthError::KeysUnavailable {
                reason,
                retry_after,
            },
        })?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| self.claims_error(token, e.kind()))?;
        self.check(data.claims)
    }

    fn claims_error(&self, token: &str, kind: &ErrorKind) -> CallerAuthError {
        // Issuer and audience are checked after the signature, so quoting them is safe and
        // tells the admin exactly which setting or token request to fix.
        let claim = |name: &str| {
            jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(token)
                .ok()
                .and_then(|c| c.get(name).cloned())
                .map(|v| quote(&v))
                .unwrap_or_else(|| "(none)".into())
        };
        let s = &self.settings;
        match kind {
            ErrorKind::InvalidSignature => CallerAuthError::invalid(
                "signature",
                "The token's signature does not verify against the tenant's signing key it names.",
            ),
            ErrorKind::ExpiredSignature => CallerAuthError::invalid(
                "exp",
                format!("The token has expired (exp is more than {LEEWAY_SECONDS} s in the past)."),
            ),
            ErrorKind::ImmatureSignature => CallerAuthError::invalid(
                "nbf",
                format!(
                    "The token is not valid yet (nbf is more than {LEEWAY_SECONDS} s in the future)."
                ),
            ),
            ErrorKind::InvalidIssuer => CallerAuthError::invalid(
                "iss",
                format!(
                    "The token's issuer {} is not tenant {}'s ({} or {}): the caller signed in to another tenant, or CALLER_TENANT_ID is wrong.",
                    claim("iss"),
                    s.tenant_id,
                    s.issuers[0],
                    s.issuers[1]
                ),
            ),
            ErrorKind::InvalidAudience => CallerAuthError::invalid(
                "aud",
                format!(
                    "The token's audience {} is not in CALLER_AUDIENCES ({}): the caller must request its token for one of them.",
                    claim("aud"),
                    s.audiences.join(", ")
                ),
            ),
            ErrorKind::MissingRequiredClaim(c) => {
                let name = match c.as_str() {
                    "iss" => "iss",
                    "aud" => "aud",
                    _ => "exp",
                };
                CallerAuthError::invalid(name, format!("The token has no {name} claim."))
            }
            other => CallerAuthError::invalid(
                "token",
                format!("The token cannot be verified: {}.", describe(other)),
            ),
        }
    }

    /// The Entra-specific checks jsonwebtoken does not know about, then the allow-list.
    fn check(&self, claims: Claims) -> Result<Caller, CallerAuthError> {
        let s = &self.settings;
        let tid = claims.tid.as_deref().and_then(Guid::parse);
        if tid.as_ref().map(Guid::as_str) != Some(s.tenant_id.as_str()) {
            return Err(CallerAuthError::invalid(
                "tid",
                format!(
                    "The token's tenant (tid) {} is not CALLER_TENANT_ID {}.",
                    claims.tid.as_deref().map_or("(none)".into(), echo::quoted),
                    s.tenant_id
                ),
            ));
        }
        let user = match claims.idtyp.as_deref() {
            Some(t) => !t.eq_ignore_ascii_case("app"),
            // Without idtyp, an app token has no delegated scopes and is its own subject.
            None => claims.scp.is_some() || claims.sub.is_none() || claims.sub != claims.oid,
        };
        if user {
            return Err(CallerAuthError::invalid(
                "idtyp",
                "The token was issued to a user, not to an application: the caller must authenticate with its managed identity or as an app (client credentials).",
            ));
        }
        let v2 = claims.iss == s.issuers[1];
        let (name, app) = if v2 {
            ("azp", claims.azp.as_deref())
        } else {
            ("appid", claims.appid.as_deref())
        };
        let app_id = app.and_then(Guid::parse).map(String::from).ok_or_else(|| {
            CallerAuthError::invalid(name, format!("The token has no client id ({name}) claim."))
        })?;
        let object_id = claims
            .oid
            .as_deref()
            .and_then(Guid::parse)
            .map(String::from);
        let caller = Caller {
            app_id: app_id.clone(),
            object_id: object_id.clone(),
        };
        if !s.allowed_app_ids.contains(&app_id) {
            return Err(CallerAuthError::NotAllowed {
                caller,
                claim: name,
                detail: format!(
                    "The caller's app id ({name}) {app_id} is not in CALLER_ALLOWED_APP_IDS."
                ),
            });
        }
        if let Some(allowed) = &s.allowed_object_ids {
            let listed = object_id.as_ref().is_some_and(|o| allowed.contains(o));
            if !listed {
                return Err(CallerAuthError::NotAllowed {
                    caller,
                    claim: "oid",
                    detail: format!(
                        "The caller's object id (oid) {} is not in CALLER_ALLOWED_OBJECT_IDS.",
                        object_id.as_deref().unwrap_or("(none)")
                    ),
                });
            }
        }
        Ok(caller)
    }
}

/// Authorization schemes a refusal may name: the IANA HTTP Authentication Scheme Registry, and
/// NTLM and PoP, which Windows and Entra clients send.
const KNOWN_SCHEMES: [&str; 16] = [
    "Basic",
    "Bearer",
    "Concealed",
    "Digest",
    "DPoP",
    "GNAP",
    "HOBA",
    "Mutual",
    "Negotiate",
    "NTLM",
    "OAuth",
    "PoP",
    "PrivateToken",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "vapid",
];

/// The token from `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, CallerAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(CallerAuthError::MissingHeader)?;
    if values.next().is_some() {
        return Err(CallerAuthError::invalid(
            "header",
            "The request has more than one Authorization header.",
        ));
    }
    let text = value.to_str().map_err(|_| {
        CallerAuthError::invalid("header", "The Authorization header is not printable ASCII.")
    })?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        let known = KNOWN_SCHEMES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(scheme))
            .copied();
        return Err(CallerAuthError::WrongScheme(known));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(CallerAuthError::invalid(
            "header",
            "The Bearer scheme carries no token.",
        ));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(CallerAuthError::invalid(
            "token",
            format!(
                "The bearer token is {} bytes; Entra app tokens are a few kilobytes and at most {MAX_TOKEN_BYTES} are accepted.",
                token.len()
            ),
        ));
    }
    Ok(token)
}

/// jsonwebtoken's error kind in words that hold nothing of the token itself.
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidToken => "it does not have three dot-separated parts",
        ErrorKind::Base64(_) => "a part is not base64url",
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "a part is not the JSON a JWT needs, or names an unknown algorithm such as none"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "its algorithm is not RS256"
        }
        ErrorKind::InvalidClaimFormat(_) => "a claim has the wrong type",
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            "the tenant's key cannot verify RS256"
        }
        _ => "it is malformed",
    }
}

fn quote(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => echo::quoted(s),
        other => echo::quoted(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const APP: &str = "11111111-2222-3333-4444-555555555555";

    fn load(pairs: &[(&str, &str)]) -> Result<CallerAuth, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        CallerAuth::from_settings(
            |k| map.get(k).map(|v| v.to_string()).filter(|v| !v.is_empty()),
            GraphCloud::Global,
        )
    }

    fn entra(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![
            ("CALLER_AUTH", "entra"),
            ("CALLER_TENANT_ID", TENANT),
            (
                "CALLER_AUDIENCES",
                "api://resume-gateway, 8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f",
            ),
            ("CALLER_ALLOWED_APP_IDS", APP),
        ];
        for (k, val) in extra {
            v.retain(|(key, _)| key != k);
            v.push((k, val));
        }
        v
    }

    #[test]
    fn function_key_is_the_default_and_refuses_stray_caller_settings() {
        assert_eq!(load(&[]).unwrap(), CallerAuth::FunctionKey);
        assert_eq!(
            load(&[("CALLER_AUTH", "Function-Key")]).unwrap(),
            CallerAuth::FunctionKey
        );
        let e = load(&[("CALLER_ALLOWED_APP_IDS", APP)]).unwrap_err();
        assert_eq!(e.setting, "CALLER_AUTH");
        assert!(e.allowed.contains("CALLER_ALLOWED_APP_IDS"), "{e}");
        let e = load(&[("CALLER_AUTH", "jwt")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting CALLER_AUTH=\"jwt\": function-key or entra"
        );
        let e = load(&[("CALLER_SCOPE", "tenant")]).unwrap_err();
        assert_eq!(e.setting, "CALLER_AUTH");
        assert!(e.allowed.contains("CALLER_SCOPE"), "{e}");
    }

    #[test]
    fn caller_scope_is_extension_unless_tenant_is_set() {
        let scope = |extra| match load(&entra(extra)) {
            Ok(CallerAuth::Entra(c)) => Ok(c.scope),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(scope(&[]).unwrap(), CallerScope::Extension);
        assert_eq!(
            scope(&[("CALLER_SCOPE", "extension")]).unwrap(),
            CallerScope::Extension
        );
        assert_eq!(
            scope(&[("CALLER_SCOPE", "TENANT")]).unwrap(),
            CallerScope::Tenant
        );
        let e = scope(&[("CALLER_SCOPE", "everyone")]).unwrap_err();
        assert_eq!(e.setting, "CALLER_SCOPE");
        assert!(e.to_string().contains("\"everyone\""), "{e}");
    }

    #[test]
    fn entra_settings_are_normalised_and_issuers_follow_the_cloud() {
        let CallerAuth::Entra(c) = load(&entra(&[(
            "CALLER_ALLOWED_APP_IDS",
            "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE, 11111111-2222-3333-4444-555555555555,",
        )]))
        .unwrap() else {
            panic!("entra expected")
        };
        assert_eq!(
            c.allowed_app_ids,
            ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", APP]
        );
        assert_eq!(c.audiences.len(), 2);
        assert_eq!(c.authority, "https://login.microsoftonline.com");
        assert_eq!(c.issuers[0], format!("https://sts.windows.net/{TENANT}/"));
        assert_eq!(
            c.issuers[1],
            format!("https://login.microsoftonline.com/{TENANT}/v2.0")
        );
        assert!(c.allowed_object_ids.is_none());

        let map: HashMap<&str, &str> = entra(&[]).into_iter().collect();
        let get = |k: &str| map.get(k).map(|v| v.to_string());
        let CallerAuth::Entra(us) = CallerAuth::from_settings(get, GraphCloud::UsGov).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            us.issuers[1],
            format!("https://login.microsoftonline.us/{TENANT}/v2.0")
        );
    }

    #[test]
    fn bad_or_allow_all_entra_settings_are_refused_by_name() {
        let cases: [(&'static str, &'static str); 9] = [
            ("CALLER_TENANT_ID", ""),
            ("CALLER_TENANT_ID", "contoso.onmicrosoft.com"),
            ("CALLER_AUDIENCES", ""),
            ("CALLER_AUDIENCES", "*"),
            ("CALLER_ALLOWED_APP_IDS", ""),
            ("CALLER_ALLOWED_APP_IDS", "*"),
            ("CALLER_ALLOWED_APP_IDS", ", ,"),
            ("CALLER_ALLOWED_OBJECT_IDS", "all"),
            ("CALLER_AUTHORITY", "http://login.example.com"),
        ];
        for (setting, value) in cases {
            let e = load(&entra(&[(setting, value)])).unwrap_err();
            assert_eq!(e.setting, setting, "{setting}={value}: {e}");
            assert!(e.to_string().contains(value), "{e}");
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_token_is_taken_from_the_header_only_in_the_bearer_scheme() {
        assert_eq!(
            bearer_token(&HeaderMap::new()),
            Err(CallerAuthError::MissingHeader)
        );
        assert_eq!(bearer_token(&headers("bearer a.b.c")), Ok("a.b.c"));
        assert_eq!(
            bearer_token(&headers("Basic dXNlcjpwYXNz")),
            Err(CallerAuthError::WrongScheme(Some("Basic")))
        );
        // No space after the scheme: the value may be a credential, so none of it is repeated.
        for secret in [
            "Basicdxnlcjpwyxnz",
            "c2VjcmV0LXRva2Vu.eyJ",
            "Bearer\tsecret",
        ] {
            let e = bearer_token(&headers(secret)).unwrap_err();
            assert_eq!(e, CallerAuthError::WrongScheme(None), "{secret}");
            let text = e.to_string();
            assert!(
                !text.contains("Basicd") && !text.contains("c2Vj") && !text.contains("secret"),
                "{text}"
            );
        }
        assert_eq!(
            bearer_token(&headers("negotiate abc")),
            Err(CallerAuthError::WrongScheme(Some("Negotiate")))
        );
        assert!(matches!(
            bearer_token(&headers("Bearer ")),
            Err(CallerAuthError::InvalidToken {
                claim: "header",
                ..
            })
        ));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        let e = bearer_token(&headers(&long)).unwrap_err();
        assert!(!e.to_string().contains("aaaa"), "the token is never echoed");
    }

    #[test]
    fn audiences_must_be_a_uri_or_a_guid_without_wildcards_or_spaces() {
        for ok in [
            "api://resume-gateway",
            "8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f",
            "https://contoso.com/gateway",
        ] {
            let CallerAuth::Entra(c) = load(&entra(&[("CALLER_AUDIENCES", ok)])).unwrap() else {
                panic!("entra expected")
            };
            assert_eq!(c.audiences, [ok]);
        }
        for bad in [
            "api://*",
            "resume-gateway",
            "api://resume gateway",
            "api://x, *",
            "8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f, gateway",
        ] {
            let e = load(&entra(&[("CALLER_AUDIENCES", bad)])).unwrap_err();
            assert_eq!(e.setting, "CALLER_AUDIENCES", "{bad}: {e}");
        }
    }

    #[test]
    fn china_v1_tokens_come_from_its_own_token_service() {
        let map: HashMap<&str, &str> = entra(&[]).into_iter().collect();
        let get = |k: &str| map.get(k).map(|v| v.to_string());
        let CallerAuth::Entra(cn) = CallerAuth::from_settings(get, GraphCloud::China).unwrap()
        else {
            panic!("entra expected")
        };
        assert_eq!(
            cn.issuers[0],
            format!("https://sts.chinacloudapi.cn/{TENANT}/")
        );
        assert_eq!(
            cn.issuers[1],
            format!("https://login.chinacloudapi.cn/{TENANT}/v2.0")
        );
        let CallerAuth::Entra(dod) = CallerAuth::from_settings(get, GraphCloud::UsGovDod).unwrap()
        else {
            panic!("entra expected")
        };
        assert_eq!(dod.issuers[0], format!("https://sts.windows.net/{TENANT}/"));
    }

    #[test]
    fn a_token_of_exactly_the_limit_is_taken_one_byte_more_is_not() {
        let exact = "a".repeat(MAX_TOKEN_BYTES);
        assert_eq!(
            bearer_token(&headers(&format!("Bearer {exact}"))),
            Ok(exact.as_str())
        );
        let over = format!("Bearer {exact}a");
        assert!(matches!(
            bearer_token(&headers(&over)),
            Err(CallerAuthError::InvalidToken { claim: "token", .. })
        ));
    }

    fn claims(
        scp: Option<&str>,
        idtyp: Option<&str>,
        sub: Option<&str>,
        oid: Option<&str>,
    ) -> Claims {
        Claims {
            iss: format!("https://sts.windows.net/{TENANT}/"),
            tid: Some(TENANT.into()),
            appid: Some(APP.into()),
            azp: None,
            oid: oid.map(str::to_owned),
            sub: sub.map(str::to_owned),
            idtyp: idtyp.map(str::to_owned),
            scp: scp.map(|s| serde_json::Value::String(s.into())),
        }
    }

    #[tokio::test]
    async fn without_idtyp_only_a_scopeless_token_that_is_its_own_subject_is_an_app() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let CallerAuth::Entra(settings) =
            load(&entra(&[("CALLER_AUTHORITY", "http://127.0.0.1:9")])).unwrap()
        else {
            panic!("entra expected")
        };
        let auth = Authenticator::start(settings);
        let me = Some("3c4d5e6f-8e1f-4a3c-9b4d-7e6f1a2b3c4d");
        let other = Some("4d5e6f3c-1f8e-4c3a-8d9b-6f7e2b1a4d3c");
        let app = auth.check(claims(None, None, me, me)).unwrap();
        assert_eq!(app.app_id, APP);
        let is_user = |c: Claims| {
            matches!(
                auth.check(c),
                Err(CallerAuthError::InvalidToken { claim: "idtyp", .. })
            )
        };
        // Delegated scopes make it a user's token, even when sub equals oid.
        assert!(is_user(claims(Some("User.Read"), None, me, me)));
        // No scopes, but someone else's subject.
        assert!(is_user(claims(None, None, other, me)));
        // No subject at all.
        assert!(is_user(claims(None, None, None, me)));
        assert!(is_user(claims(None, None, None, None)));
        // idtyp decides when present.
        assert!(is_user(claims(None, Some("user"), me, me)));
        assert!(
            auth.check(claims(Some("x"), Some("app"), other, me))
                .is_ok()
        );
    }
}
