//! Certificate sign-in for automation: `azure_identity`'s `ClientAssertionCredential` with
//! assertions signed here. The SDK's own `ClientCertificateCredential` needs OpenSSL (its
//! `client_certificate` feature); signing the RFC 7523 assertion with `jsonwebtoken`'s
//! RustCrypto backend, already in the tree for caller tokens, does the same without it.
//!
//! The assertion is the one Microsoft's identity platform documents for certificate
//! credentials (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>):
//! header `alg` PS256, `typ` JWT, `x5t#S256` the certificate's SHA-256 thumbprint; claims
//! `aud` the token endpoint, `iss` = `sub` the client id, a fresh `jti`, `nbf`, `iat`, `exp`.
//! PS256 with the SHA-256 thumbprint is the pair that page names and that MSAL sends to Entra
//! ID (AzureAD/microsoft-authentication-library-for-dotnet#4428, MicrosoftDocs/entra-docs#1091);
//! the SDK's OpenSSL credential still sends RS256 with the SHA-1 `x5t`, which the page no
//! longer recommends.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::error::{Error, ErrorKind};
use azure_core::http::{ClientMethodOptions, ClientOptions};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::ClientCertificate;

/// How long one assertion is valid: it is used at once, for one token request (Microsoft's
/// libraries use 10 minutes too).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// Signs a fresh assertion for each token request.
pub(crate) struct CertificateAssertion {
    key: EncodingKey,
    header: Header,
    client_id: String,
    /// The token endpoint, exactly as the credential posts to it.
    audience: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl CertificateAssertion {
    fn sign(&self) -> azure_core::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            aud: &self.audience,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|e| {
            Error::with_message(
                ErrorKind::Credential,
                format!("cannot sign the client assertion with the certificate's key: {e}"),
            )
        })
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.sign()
    }
}

/// The credential for `certificate` at the sign-in host `authority` (the cloud's, or
/// `AZURE_AUTHORITY_HOST`); `options` carry the gateway's transport and no SDK retries.
pub(crate) fn credential(
    certificate: &ClientCertificate,
    authority: &str,
    mut options: ClientOptions,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    // The audience is the URL the credential posts to, built the way azure_identity builds it.
    let audience = url::Url::parse(authority)
        .and_then(|a| a.join(&format!("/{}/oauth2/v2.0/token", certificate.tenant_id)))
        .map_err(|e| Error::with_error(ErrorKind::Credential, e, "bad sign-in host"))?;
    let mut custom = CustomConfiguration::default();
    custom.authority_host = authority.to_owned();
    options.cloud = Some(Arc::new(CloudConfiguration::from(custom)));
    let mut header = Header::new(Algorithm::PS256);
    header.x5t_s256 = Some(certificate.thumbprint_s256.clone());
    let assertion = CertificateAssertion {
        key: EncodingKey::from_rsa_der(certificate.key_der()),
        header,
        client_id: certificate.client_id.clone(),
        audience: audience.to_string(),
    };
    Ok(ClientAssertionCredential::new(
        certificate.tenant_id.clone(),
        certificate.client_id.clone(),
        assertion,
        Some(ClientAssertionCredentialOptions {
            client_options: options,
        }),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CredentialSource, FailureClass, TokenSource};
    use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport};
    use base64::Engine;
    use jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::sha2::{Digest, Sha256};
    use rsa::traits::PublicKeyParts;
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
    /// The sign-in host the credential believes it talks to; [`ToMock`] takes it to wiremock
    /// (azure_identity accepts only https authorities, and wiremock serves plain http).
    const AUTHORITY: &str = "https://login.test";

    #[derive(Debug)]
    struct ToMock {
        mock: url::Url,
        client: reqwest::Client,
    }

    #[async_trait::async_trait]
    impl HttpClient for ToMock {
        async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
            let mut request = request.clone();
            let url = request.url_mut();
            assert_eq!(
                url.host_str(),
                Some("login.test"),
                "only the authority is called"
            );
            url.set_scheme("http").unwrap();
            url.set_host(self.mock.host_str()).unwrap();
            url.set_port(self.mock.port()).unwrap();
            self.client.execute_request(&request).await
        }
    }

    fn fixture_key() -> rsa::PrivateKey {
        let pem = crate::config::certificate_fixture("PRIVATE KEY");
        let (_, der) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
        rsa::PrivateKey::from_pkcs8_der(&der).unwrap()
    }

    fn fixture_thumbprint() -> String {
        let pem = crate::config::certificate_fixture("CERTIFICATE");
        let (_, der) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&der))
    }

    fn certificate() -> ClientCertificate {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/test-only-client-certificate.pem"
        );
        ClientCertificate::read(path, TENANT.into(), CLIENT.into()).unwrap()
    }

    async fn token_source(mock: &MockServer) -> TokenSource {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(ToMock {
                mock: url::Url::parse(&mock.uri()).unwrap(),
                client: reqwest::Client::new(),
            }))),
            retry: azure_core::http::RetryOptions::none(),
            ..Default::default()
        };
        let credential = credential(&certificate(), AUTHORITY, options).unwrap();
        TokenSource::new(
            credential,
            CredentialSource::ClientCertificate,
            "https://graph.microsoft.com/.default".into(),
            None,
        )
    }

    /// Checks the assertion as Entra ID does: the signature with the certificate's public
    /// key, and every claim and header field the platform documents.
    fn verify_assertion(assertion: &str) {
        let public = fixture_key().to_public_key();
        let key = DecodingKey::from_rsa_raw_components(
            &public.n().to_be_bytes_trimmed_vartime(),
            &public.e().to_be_bytes_trimmed_vartime(),
        );
        let endpoint = format!("{AUTHORITY}/{TENANT}/oauth2/v2.0/token");
        let mut validation = Validation::new(Algorithm::PS256);
        validation.set_audience(&[&endpoint]);
        validation.set_issuer(&[CLIENT]);
        validation.sub = Some(CLIENT.into());
        validation.set_required_spec_claims(&["aud", "iss", "sub", "exp", "nbf"]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
            .unwrap_or_else(|e| panic!("the assertion does not verify: {e}"));
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        assert_eq!(data.header.x5t_s256, Some(fixture_thumbprint()));
        let claims = data.claims;
        assert!(
            uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok(),
            "{claims}"
        );
        let (nbf, exp) = (
            claims["nbf"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - nbf, ASSERTION_LIFETIME.as_secs());
    }

    #[tokio::test]
    async fn signs_in_with_a_signed_assertion_and_the_token_calls_graph() {
        let authority = MockServer::start().await;
        let graph_token = "eyJ0eXAiOiJKV1QifQ.eyJhcHBpZCI6IjExMTExMTExLTIyMjItMzMzMy00NDQ0LTU1NTU1NTU1NTU1NSIsInJvbGVzIjpbIkxpZmVjeWNsZVdvcmtmbG93cy5SZWFkLkFsbCJdfQ.sig";
        Mock::given(method("POST"))
            .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains(
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                "access_token": graph_token
            })))
            .expect(2)
            .mount(&authority)
            .await;
        let graph = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(
                "/v1.0/identityGovernance/lifecycleWorkflows/workflows",
            ))
            .and(header("authorization", format!("Bearer {graph_token}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": []})),
            )
            .expect(1)
            .mount(&graph)
            .await;

        let tokens = token_source(&authority).await;
        let token = tokens.token().await.unwrap();
        assert_eq!(token.identity.app_id.as_deref(), Some(CLIENT));
        let answer = reqwest::Client::new()
            .get(format!(
                "{}/v1.0/identityGovernance/lifecycleWorkflows/workflows",
                graph.uri()
            ))
            .header("authorization", token.authorization().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);

        // A second credential signs a second, different assertion (fresh jti).
        let again = token_source(&authority).await;
        again.token().await.unwrap();
        let forms: Vec<Vec<(String, String)>> = authority
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
            .collect();
        let field = |form: &Vec<(String, String)>, name: &str| {
            form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        };
        for form in &forms {
            assert_eq!(field(form, "client_id").as_deref(), Some(CLIENT));
            assert_eq!(
                field(form, "scope").as_deref(),
                Some("https://graph.microsoft.com/.default")
            );
            assert_eq!(field(form, "client_secret"), None);
            verify_assertion(&field(form, "client_assertion").unwrap());
        }
        assert_ne!(
            field(&forms[0], "client_assertion"),
            field(&forms[1], "client_assertion")
        );
    }

    #[tokio::test]
    async fn an_unknown_certificate_is_refused_at_once_with_the_fix() {
        let authority = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error": "invalid_client",
                "error_description": "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.",
                "error_codes": [700027]
            })))
            .expect(1)
            .mount(&authority)
            .await;
        let e = token_source(&authority).await.token().await.unwrap_err();
        assert_eq!(e.class, FailureClass::Refused);
        assert!(!e.retryable());
        assert!(e.message.contains("AADSTS700027"), "{}", e.message);
        assert!(
            e.remedy.contains("AZURE_CLIENT_CERTIFICATE_PATH"),
            "{}",
            e.remedy
        );
    }

    #[test]
    fn the_assertion_is_signed_for_the_token_endpoint_it_is_sent_to() {
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(certificate().thumbprint_s256.clone());
        let assertion = CertificateAssertion {
            key: EncodingKey::from_rsa_der(certificate().key_der()),
            header,
            client_id: CLIENT.into(),
            audience: format!("{AUTHORITY}/{TENANT}/oauth2/v2.0/token"),
        };
        verify_assertion(&assertion.sign().unwrap());
        assert!(!format!("{assertion:?}").contains("key"), "{assertion:?}");
    }
}
