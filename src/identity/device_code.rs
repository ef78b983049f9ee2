//! Operator sign-in as a person: the OAuth 2.0 device authorization grant (RFC 8628) through
//! the `oauth2` crate, against Entra ID's v2.0 endpoints, over the gateway's own reqwest and
//! rustls stack. The Azure CLI cannot be used for this: its Graph token is pre-authorized for
//! a fixed scope list without `LifecycleWorkflows.*` (Azure/azure-cli#26471), so operators
//! sign in through a public client that may ask for those scopes.
//!
//! The token lives in this process's memory only (the [`crate::identity::TokenSource`]
//! cache, for one command); it is never written to disk and never printed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::time::OffsetDateTime;
use oauth2::basic::BasicClient;
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, DeviceAuthorizationUrl, HttpRequest, HttpResponse,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};

use crate::config::OperatorSignIn;

/// A person has this long to enter the code; Entra ID's own codes last 15 minutes.
pub(crate) const SIGN_IN_LIMIT: Duration = Duration::from_secs(15 * 60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// When the token endpoint names no lifetime (RFC 6749 makes `expires_in` optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Device-code sign-in; the prompt goes to stderr, where a person at the terminal reads it.
#[derive(Debug)]
pub struct DeviceCodeCredential {
    sign_in: OperatorSignIn,
    http: Http,
}

impl DeviceCodeCredential {
    pub fn new(sign_in: OperatorSignIn) -> azure_core::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(crate::outbound::USER_AGENT)
            .timeout(CALL_TIMEOUT)
            // RFC 6749 §3.2 forbids following redirects from the token endpoint.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::with_error(ErrorKind::Credential, e, "cannot set up HTTPS"))?;
        Ok(Self {
            sign_in,
            http: Http(http),
        })
    }

    fn endpoint(&self, name: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/{name}",
            self.sign_in.authority, self.sign_in.tenant
        )
    }
}

/// `oauth2`'s HTTP exchanges on our reqwest 0.13 (its own reqwest feature would bring a
/// second reqwest and TLS stack).
#[derive(Debug)]
struct Http(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let answer = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let mut response = HttpResponse::new(Vec::new());
            *response.status_mut() = answer.status();
            *response.headers_mut() = answer.headers().clone();
            *response.body_mut() = answer.bytes().await?.to_vec();
            Ok(response)
        })
    }
}

/// An `oauth2` failure on one line, without the token endpoint's whole answer.
fn sign_in_error<E: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    step: &str,
    e: RequestTokenError<E, T>,
) -> Error {
    let message = match &e {
        RequestTokenError::ServerResponse(r) => format!("{step}: Entra ID answered {r}"),
        RequestTokenError::Request(inner) => format!("{step}: {inner}"),
        RequestTokenError::Parse(inner, _) => format!("{step}: unexpected answer: {inner}"),
        RequestTokenError::Other(inner) => format!("{step}: {inner}"),
    };
    // No HTTP status: `credential::classify` reads AADSTS codes and network words from the text.
    Error::with_message(ErrorKind::Credential, message)
}

#[async_trait::async_trait]
impl TokenCredential for DeviceCodeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let url = |e: url::ParseError| Error::with_error(ErrorKind::Credential, e, "bad URL");
        let client = BasicClient::new(ClientId::new(self.sign_in.client_id.clone()))
            // A public client: its id goes in the body, and it has no secret.
            .set_auth_type(AuthType::RequestBody)
            .set_device_authorization_url(
                DeviceAuthorizationUrl::new(self.endpoint("devicecode")).map_err(url)?,
            )
            .set_token_uri(TokenUrl::new(self.endpoint("token")).map_err(url)?);
        let http = &self.http;

        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(
                scopes
                    .iter()
                    .flat_map(|s| s.split_whitespace())
                    .map(|s| Scope::new(s.to_owned())),
            )
            .request_async(http)
            .await
            .map_err(|e| sign_in_error("asking for a sign-in code", e))?;
        eprintln!(
            "resume-gateway: to sign in, open {} and enter the code {} (within {} min); waiting…",
            details.verification_uri().as_str(),
            details.user_code().secret(),
            details.expires_in().min(SIGN_IN_LIMIT).as_secs() / 60
        );
        let token = client
            .exchange_device_access_token(&details)
            .request_async(http, tokio::time::sleep, Some(SIGN_IN_LIMIT))
            .await
            .map_err(|e| sign_in_error("signing in", e))?;
        eprintln!("resume-gateway: signed in");
        let lifetime = token.expires_in().unwrap_or(DEFAULT_LIFETIME);
        Ok(AccessToken::new(
            Secret::new(token.access_token().secret().clone()),
            OffsetDateTime::now_utc() + lifetime,
        ))
    }
}
