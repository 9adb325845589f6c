//! HMAC-SHA256 webhook signatures, in Kapso's and Meta's header formats.
//!
//! Guarantees: verification runs over the exact raw bytes it is given (callers
//! must pass the body as received, never a re-serialisation); the comparison
//! is constant-time (`hmac`'s `verify_slice`); any one of several secrets may
//! match, which is how secrets rotate without downtime.
//!
//! - Kapso: `X-Webhook-Signature: <hex>` (lower- or uppercase, no prefix).
//! - Meta: `X-Hub-Signature-256: sha256=<hex>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was not accepted. Each variant is a 401 at the HTTP edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("signature does not match any configured secret")]
    Mismatch,
    #[error("no secret is configured for this source")]
    NoSecret,
}

/// The lowercase hex HMAC-SHA256 of `body` under `secret` (Kapso's header value).
pub fn kapso_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret.as_bytes(), body))
}

/// `sha256=<hex>` (Meta's `X-Hub-Signature-256` header value).
pub fn meta_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret.as_bytes(), body)))
}

fn mac(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Verifies a Kapso header: hex, either case, with an optional `sha256=`
/// prefix (Kapso documents bare hex; its own receivers strip the prefix).
pub fn verify_kapso(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&Secret],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_part = header.strip_prefix("sha256=").unwrap_or(header);
    if hex_part.contains('=') {
        return Err(SignatureError::Malformed(
            "Kapso signatures carry no prefix other than sha256=",
        ));
    }
    verify_hex(hex_part, body, secrets)
}

/// Verifies a Meta header of the form `sha256=<hex>`.
pub fn verify_meta(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&Secret],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_part = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed("expected the sha256= prefix"))?;
    verify_hex(hex_part, body, secrets)
}

fn verify_hex(hex_sig: &str, body: &[u8], secrets: &[&Secret]) -> Result<(), SignatureError> {
    if hex_sig.len() != 64 {
        return Err(SignatureError::Malformed("expected 64 hex digits"));
    }
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed("not hex"))?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    // Every secret is tried, so timing does not reveal which one matched.
    let mut matched = false;
    for secret in secrets {
        let mut m = HmacSha256::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        m.update(body);
        matched |= m.verify_slice(&expected).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"{\"a\":\"\\/ @ \xf0\x9f\x98\x80\"}\r\n";

    #[test]
    fn kapso_signature_verifies_in_either_case() {
        let s = Secret::new("k1");
        let sig = kapso_signature("k1", BODY);
        assert_eq!(verify_kapso(Some(&sig), BODY, &[&s]), Ok(()));
        assert_eq!(verify_kapso(Some(&sig.to_uppercase()), BODY, &[&s]), Ok(()));
    }

    #[test]
    fn kapso_accepts_an_optional_sha256_prefix_and_no_other() {
        let s = Secret::new("k1");
        let sig = kapso_signature("k1", BODY);
        assert_eq!(
            verify_kapso(Some(&format!("sha256={sig}")), BODY, &[&s]),
            Ok(())
        );
        assert!(matches!(
            verify_kapso(Some(&format!("sha1={sig}")), BODY, &[&s]),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify_kapso(
                Some(&format!("sha256={}", kapso_signature("x", BODY))),
                BODY,
                &[&s]
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn kapso_rejects_wrong_secret_short_and_missing() {
        let s = Secret::new("k1");
        let sig = kapso_signature("k1", BODY);
        assert_eq!(
            verify_kapso(Some(&kapso_signature("other", BODY)), BODY, &[&s]),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_kapso(Some(&sig[..63]), BODY, &[&s]),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify_kapso(Some(&"zz".repeat(32)), BODY, &[&s]),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify_kapso(None, BODY, &[&s]),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn meta_signature_needs_prefix_and_accepts_any_rotated_secret() {
        let old = Secret::new("old");
        let new = Secret::new("new");
        let sig = meta_signature("new", BODY);
        assert_eq!(verify_meta(Some(&sig), BODY, &[&old, &new]), Ok(()));
        assert!(matches!(
            verify_meta(Some(&sig[7..]), BODY, &[&new]),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify_meta(Some(&sig), b"other body", &[&new]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_signature_of_a_different_body_is_rejected() {
        let s = Secret::new("k");
        let sig = kapso_signature("k", b"{}");
        assert_eq!(
            verify_kapso(Some(&sig), b"{} ", &[&s]),
            Err(SignatureError::Mismatch)
        );
    }
}
