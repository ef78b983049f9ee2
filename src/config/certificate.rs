//! `AZURE_CLIENT_CERTIFICATE_PATH`: an app registration's certificate credential, read and
//! checked once at start so that a wrong file stops the command with one line naming the
//! setting instead of an `AADSTS` refusal later.
//!
//! The file is PEM, as `azure_identity`'s `EnvironmentCredential` takes under the same name:
//! the RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`, unencrypted) and
//! the certificate uploaded to the app registration, in any order. Entra ID signs apps in
//! with such a certificate through a signed client assertion (RFC 7523), naming the
//! certificate by its SHA-256 thumbprint:
//! <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>.

use std::fmt;

use base64::Engine;
use rsa::PrivateKey as RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::{Digest, Sha256};

/// An app's certificate credential, checked: the key parses and a certificate in the file
/// holds its public key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub tenant_id: String,
    pub client_id: String,
    /// The RSA private key as PKCS#1 DER, the form `jsonwebtoken` signs with.
    pkcs1_der: Vec<u8>,
    /// `x5t#S256`: the base64url SHA-256 of the matching certificate's DER.
    pub thumbprint_s256: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("thumbprint_s256", &self.thumbprint_s256)
            .finish_non_exhaustive()
    }
}

/// What the setting must name, said whenever it does not.
pub(crate) const ALLOWED: &str = "a readable PEM file holding the app registration's certificate and its unencrypted RSA private key";

impl ClientCertificate {
    /// Reads the PEM at `path`; the error says what is wrong with it, for [`ALLOWED`].
    pub(crate) fn read(path: &str, tenant_id: String, client_id: String) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read it ({e})"))?;
        let (pkcs1_der, thumbprint_s256) = parse(&bytes)?;
        Ok(Self {
            tenant_id,
            client_id,
            pkcs1_der,
            thumbprint_s256,
        })
    }

    /// The private key as PKCS#1 DER, for the one place that signs with it.
    pub(crate) fn key_der(&self) -> &[u8] {
        &self.pkcs1_der
    }
}

/// The key (PKCS#1 DER) and the thumbprint of the certificate that holds its public key.
fn parse(pem: &[u8]) -> Result<(Vec<u8>, String), String> {
    let text = std::str::from_utf8(pem).map_err(|_| "it is not PEM text".to_owned())?;
    let mut key = None;
    let mut certificates = Vec::new();
    for (label, der) in blocks(text)? {
        match label.as_str() {
            "PRIVATE KEY" | "RSA PRIVATE KEY" if key.is_some() => {
                return Err("it holds more than one private key".into());
            }
            "PRIVATE KEY" => {
                key = Some(RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| {
                    format!("its PRIVATE KEY is not an RSA key Entra ID can use ({e})")
                })?);
            }
            "RSA PRIVATE KEY" => {
                key = Some(
                    RsaPrivateKey::from_pkcs1_der(&der)
                        .map_err(|e| format!("its RSA PRIVATE KEY does not parse ({e})"))?,
                );
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(
                    "its private key is encrypted; write it out unencrypted (openssl pkey -in IN -out OUT) and keep the file readable only by you".into(),
                );
            }
            "CERTIFICATE" => certificates.push(der),
            "EC PRIVATE KEY" => {
                return Err(
                    "its key is an EC key; Entra ID's certificate credentials are RSA (PS256)"
                        .into(),
                );
            }
            _ => {}
        }
    }
    let key = key.ok_or("it holds no private key (-----BEGIN PRIVATE KEY-----)")?;
    if certificates.is_empty() {
        return Err("it holds no certificate (-----BEGIN CERTIFICATE-----), which names the key to Entra ID".into());
    }
    // The certificate's SubjectPublicKeyInfo carries the key's PKCS#1 public form verbatim;
    // finding it there ties the thumbprint to this key without an X.509 parser (a chain may
    // follow the app's own certificate).
    let public = key
        .to_public_key()
        .to_pkcs1_der()
        .map_err(|e| format!("its key cannot be encoded ({e})"))?;
    let public = public.as_bytes();
    let certificate = certificates
        .iter()
        .find(|der| der.windows(public.len()).any(|w| w == public))
        .ok_or("none of its certificates holds this private key's public key")?;
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(certificate.as_slice()));
    let der = key
        .to_pkcs1_der()
        .map_err(|e| format!("its key cannot be encoded ({e})"))?;
    Ok((der.as_bytes().to_vec(), thumbprint))
}

/// Every `-----BEGIN …-----` block with its label; text around them (comments, the
/// "Bag Attributes" openssl writes) is skipped.
fn blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    const BEGIN: &str = "-----BEGIN ";
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let label_end = block[BEGIN.len()..]
            .find("-----")
            .ok_or("a BEGIN line is not closed")?;
        let label = &block[BEGIN.len()..BEGIN.len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| format!("its {label} has no END line"))?
            + end_marker.len();
        let (_, der) = pem_rfc7468::decode_vec(&block.as_bytes()[..end])
            .map_err(|e| format!("its {label} is not valid PEM ({e})"))?;
        found.push((label.to_owned(), der));
        rest = &block[end..];
    }
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway key and certificate made for these tests (see the file's header).
    const FIXTURE: &str = include_str!("../../tests/fixtures/test-only-client-certificate.pem");

    /// The fixture's `label` block, as PEM text.
    pub(crate) fn section(label: &str) -> String {
        let begin = FIXTURE.find(&format!("-----BEGIN {label}-----")).unwrap();
        let end_marker = format!("-----END {label}-----");
        let end = FIXTURE.find(&end_marker).unwrap() + end_marker.len();
        format!("{}\n", &FIXTURE[begin..end])
    }

    #[test]
    fn the_thumbprint_is_the_certificate_s_sha256_and_order_does_not_matter() {
        let (key, thumbprint) = parse(FIXTURE.as_bytes()).unwrap();
        let certificate = pem_rfc7468::decode_vec(section("CERTIFICATE").as_bytes())
            .unwrap()
            .1;
        let expected =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&certificate));
        assert_eq!(thumbprint, expected);
        assert_eq!(thumbprint.len(), 43, "32 bytes, base64url without padding");
        assert!(RsaPrivateKey::from_pkcs1_der(&key).is_ok());
        let reversed = format!("{}{}", section("CERTIFICATE"), section("PRIVATE KEY"));
        assert_eq!(parse(reversed.as_bytes()).unwrap().1, expected);
        // PKCS#1 and PKCS#8 give the same key.
        let pkcs1 =
            pem_rfc7468::encode_string("RSA PRIVATE KEY", pem_rfc7468::LineEnding::LF, &key)
                .unwrap();
        let both = format!("{pkcs1}{}", section("CERTIFICATE"));
        assert_eq!(parse(both.as_bytes()).unwrap(), (key, expected));
    }

    #[test]
    fn unusable_files_say_why() {
        let cases = [
            (section("CERTIFICATE"), "no private key"),
            (section("PRIVATE KEY"), "no certificate"),
            (
                section("PRIVATE KEY").replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
                "encrypted",
            ),
            (
                format!("{}{}", section("PRIVATE KEY"), section("PRIVATE KEY")),
                "more than one private key",
            ),
            (
                section("PRIVATE KEY").replacen('M', "%", 1),
                "not valid PEM",
            ),
            (
                section("PRIVATE KEY").replace("-----END PRIVATE KEY-----", ""),
                "no END line",
            ),
            ("not pem at all".to_owned(), "no private key"),
        ];
        for (text, says) in cases {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{e} should say {says}");
        }
        let e =
            ClientCertificate::read("/nonexistent/cert.pem", "t".into(), "c".into()).unwrap_err();
        assert!(e.starts_with("cannot read it"), "{e}");
    }

    #[test]
    fn a_certificate_of_another_key_is_refused() {
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::{Generate, PrivateKey};
        let other = PrivateKey::generate().to_pkcs8_der().unwrap();
        let other = pem_rfc7468::encode_string(
            "PRIVATE KEY",
            pem_rfc7468::LineEnding::LF,
            other.as_bytes(),
        )
        .unwrap();
        let text = format!("{other}{}", section("CERTIFICATE"));
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(e.contains("none of its certificates"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let (der, _) = parse(FIXTURE.as_bytes()).unwrap();
        let c = ClientCertificate {
            tenant_id: "t".into(),
            client_id: "c".into(),
            pkcs1_der: der.clone(),
            thumbprint_s256: "x".into(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains(&format!("{:?}", &der[..8])), "{shown}");
        assert!(shown.contains("thumbprint_s256"), "{shown}");
    }
}
