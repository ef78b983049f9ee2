//! Who may ask the gateway to resume: with `CALLER_AUTH=entra`, every request carries an Entra
//! ID app token (a Logic App's managed identity, say) that is verified here, in-process, and
//! whose calling app (and optionally object) must be on an allow-list.

pub(crate) mod keys;
pub(crate) mod scope;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::caller::keys::{KeyCache, KeyError, KeyTiming};
use crate::config::caller::EntraCallers;
use crate::request::echo;
use crate::request::ids::Guid;

/// Tokens longer than this are refused unread; Entra app tokens are one to three kilobytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 300;

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
    use crate::config::GraphCloud;
    use crate::config::caller::CallerAuth;
    use crate::identity::tests::jwt;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const APP: &str = "11111111-2222-3333-4444-555555555555";

    /// Entra caller settings as `config` reads them, with keys fetched from `authority`.
    fn entra_settings(authority: &str) -> EntraCallers {
        let pairs = [
            ("CALLER_AUTH", "entra"),
            ("CALLER_TENANT_ID", TENANT),
            ("CALLER_AUDIENCES", "api://resume-gateway"),
            ("CALLER_ALLOWED_APP_IDS", APP),
            ("CALLER_AUTHORITY", authority),
        ];
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        match CallerAuth::from_settings(get, GraphCloud::Global).unwrap() {
            CallerAuth::Entra(settings) => settings,
            CallerAuth::FunctionKey => panic!("entra expected"),
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
    fn large_real_tokens_are_taken() {
        // Entra app tokens are one to three kilobytes; one carrying many app roles, a few more.
        for size in [3 * 1024, 8 * 1024] {
            let token = "a".repeat(size);
            assert_eq!(
                bearer_token(&headers(&format!("Bearer {token}"))),
                Ok(token.as_str())
            );
        }
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
        let settings = entra_settings("http://127.0.0.1:9");
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

    #[tokio::test]
    async fn an_object_id_list_lets_in_only_the_listed_objects_of_allowed_apps() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let me = "3c4d5e6f-8e1f-4a3c-9b4d-7e6f1a2b3c4d";
        let other = "4d5e6f3c-1f8e-4c3a-8d9b-6f7e2b1a4d3c";
        let mut settings = entra_settings("http://127.0.0.1:9");
        settings.allowed_object_ids = Some(vec![me.to_owned()]);
        let auth = Authenticator::start(settings);
        let caller = auth.check(claims(None, None, Some(me), Some(me))).unwrap();
        assert_eq!(caller.object_id.as_deref(), Some(me));
        let refused = |sub_and_oid: Option<&str>| match auth.check(claims(
            None,
            Some("app"),
            sub_and_oid,
            sub_and_oid,
        )) {
            Err(CallerAuthError::NotAllowed { claim, .. }) => claim == "oid",
            _ => false,
        };
        assert!(refused(Some(other)));
        assert!(refused(None));
    }

    #[tokio::test]
    async fn only_rs256_tokens_are_looked_up_against_the_tenant_keys() {
        use base64::Engine;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let auth = Authenticator::start(entra_settings("http://127.0.0.1:9"));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let hs256 = format!(
            "Bearer {}.e30.c2ln",
            b64.encode(r#"{"alg":"HS256","kid":"k"}"#)
        );
        assert!(matches!(
            auth.authenticate(&headers(&hs256)).await,
            Err(CallerAuthError::InvalidToken { claim: "alg", .. })
        ));
        // RS256 passes the algorithm check (and, without a kid, stops at the next one).
        let rs256 = format!("Bearer {}", jwt(serde_json::json!({})));
        assert!(matches!(
            auth.authenticate(&headers(&rs256)).await,
            Err(CallerAuthError::InvalidToken { claim: "kid", .. })
        ));
    }

    #[test]
    fn each_token_failure_is_explained_in_its_own_words() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let header_error =
            |token: &str| describe(jsonwebtoken::decode_header(token).unwrap_err().kind());
        assert_eq!(
            header_error("abc"),
            "it does not have three dot-separated parts"
        );
        assert_eq!(header_error("a!b.c.d"), "a part is not base64url");
        for not_json in [b64("not json"), b64(r#"{"alg":"none"}"#)] {
            assert!(
                header_error(&format!("{not_json}.e30.sig")).starts_with("a part is not the JSON"),
                "{not_json}"
            );
        }
        let cases = [
            (ErrorKind::InvalidAlgorithm, "its algorithm is not RS256"),
            (
                ErrorKind::InvalidAlgorithmName,
                "its algorithm is not RS256",
            ),
            (
                ErrorKind::InvalidClaimFormat("exp".into()),
                "a claim has the wrong type",
            ),
            (
                ErrorKind::InvalidRsaKey("n".into()),
                "the tenant's key cannot verify RS256",
            ),
            (
                ErrorKind::InvalidKeyFormat,
                "the tenant's key cannot verify RS256",
            ),
            (ErrorKind::MissingAlgorithm, "it is malformed"),
        ];
        for (kind, words) in cases {
            assert_eq!(describe(&kind), words, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn standard_claim_failures_name_the_claim_and_quote_what_the_token_said() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let auth = Authenticator::start(entra_settings("http://127.0.0.1:9"));
        let token = jwt(serde_json::json!({
            "iss": "https://sts.example.com/other/",
            "aud": ["api://one", "api://two"],
        }));
        for name in ["iss", "aud", "exp"] {
            let e = auth.claims_error(&token, &ErrorKind::MissingRequiredClaim(name.into()));
            assert_eq!(
                e,
                CallerAuthError::invalid(name, format!("The token has no {name} claim."))
            );
        }
        let refused = |kind| match auth.claims_error(&token, &kind) {
            CallerAuthError::InvalidToken { claim, detail } => (claim, detail),
            other => panic!("{other:?}"),
        };
        let (claim, detail) = refused(ErrorKind::InvalidIssuer);
        assert_eq!(claim, "iss");
        assert!(
            detail
                .starts_with("The token's issuer \"https://sts.example.com/other/\" is not tenant"),
            "{detail}"
        );
        let (claim, detail) = refused(ErrorKind::InvalidAudience);
        assert_eq!(claim, "aud");
        // Not a string: quoted as the JSON the token holds.
        assert!(
            detail.starts_with(r#"The token's audience "[\"api://one\",\"api://two\"]" is not in"#),
            "{detail}"
        );
    }
}
