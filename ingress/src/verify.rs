//! Signature verification at the HTTP edge, before any parsing.
//!
//! Guarantees: the HMAC is checked over the exact raw body bytes, in constant
//! time, against every configured secret of the source (rotation); a failure
//! is reported by a [`SignatureError`] whose label, a
//! [`SignatureFailure`](crate::metrics::SignatureFailure), comes from a
//! fixed set. Nothing here reads the body as JSON: on the per-workspace Kapso
//! route the secrets are chosen by the URL path, never by the body.

use std::sync::Arc;

use shared::config::Secret;
use shared::record::Trust;
use shared::signing::{SignatureError, verify_kapso, verify_meta};
use warp::http::HeaderMap;

use crate::registry::Registry;

pub const KAPSO_SIGNATURE_HEADER: &str = "x-webhook-signature";
pub const META_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// A header as text: `Ok(None)` when absent, malformed when not visible ASCII.
fn signature_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, SignatureError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| SignatureError::Malformed("header is not visible ASCII")),
    }
}

/// Verifies a Kapso delivery. On `/webhooks/kapso/{workspace}` the
/// workspace's own secrets are tried first (a match limits routing to that
/// workspace), then the global ones; on `/webhooks/kapso` only the global ones.
pub fn kapso(
    headers: &HeaderMap,
    body: &[u8],
    global: &[Secret],
    registry: &Registry,
    path_workspace: Option<&str>,
) -> Result<Trust, SignatureError> {
    let header = signature_header(headers, KAPSO_SIGNATURE_HEADER)?;
    if let Some(ws) = path_workspace {
        let own: Vec<&Secret> = registry.kapso_secrets(ws).iter().collect();
        if !own.is_empty() && verify_kapso(header, body, &own).is_ok() {
            return Ok(Trust::Workspace(Arc::from(ws)));
        }
    }
    let global: Vec<&Secret> = global.iter().collect();
    verify_kapso(header, body, &global).map(|()| Trust::Global)
}

/// Verifies a Meta delivery (`X-Hub-Signature-256: sha256=<hex>`).
pub fn meta(headers: &HeaderMap, body: &[u8], secrets: &[Secret]) -> Result<Trust, SignatureError> {
    let header = signature_header(headers, META_SIGNATURE_HEADER)?;
    let secrets: Vec<&Secret> = secrets.iter().collect();
    verify_meta(header, body, &secrets).map(|()| Trust::Global)
}

/// Compares the handshake token in constant time (for equal lengths).
pub fn verify_token_matches(expected: &Secret, given: &str) -> bool {
    let (a, b) = (expected.expose().as_bytes(), given.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use shared::signing::{kapso_signature, meta_signature};
    use warp::http::HeaderValue;

    use super::*;
    use crate::metrics::SignatureFailure;

    const BODY: &[u8] = b"{\"phone_number_id\":\"1\"}";

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).expect("header"));
        h
    }

    fn registry() -> Registry {
        Registry::parse("[[workspace]]\nid = \"ws_a\"\nkapso_secrets = [\"own\"]\n").expect("valid")
    }

    #[test]
    fn a_workspace_secret_verifies_only_on_that_workspaces_route() {
        let h = headers(KAPSO_SIGNATURE_HEADER, &kapso_signature("own", BODY));
        let global = [Secret::new("global")];
        let trust = kapso(&h, BODY, &global, &registry(), Some("ws_a")).expect("verified");
        assert_eq!(trust, Trust::Workspace(Arc::from("ws_a")));
        assert_eq!(
            kapso(&h, BODY, &global, &registry(), None),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            kapso(&h, BODY, &global, &registry(), Some("ws_other")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_global_secret_verifies_on_both_kapso_routes() {
        let h = headers(
            KAPSO_SIGNATURE_HEADER,
            &kapso_signature("global", BODY).to_uppercase(),
        );
        let global = [Secret::new("old"), Secret::new("global")];
        assert_eq!(
            kapso(&h, BODY, &global, &registry(), None),
            Ok(Trust::Global)
        );
        assert_eq!(
            kapso(&h, BODY, &global, &registry(), Some("ws_a")),
            Ok(Trust::Global)
        );
    }

    #[test]
    fn meta_needs_its_prefix_and_failures_have_fixed_reasons() {
        let secrets = [Secret::new("app")];
        let good = headers(META_SIGNATURE_HEADER, &meta_signature("app", BODY));
        assert_eq!(meta(&good, BODY, &secrets), Ok(Trust::Global));
        let bare = headers(META_SIGNATURE_HEADER, &kapso_signature("app", BODY));
        let err = meta(&bare, BODY, &secrets).expect_err("no prefix");
        assert_eq!(SignatureFailure::of(&err).as_str(), "malformed");
        let err = meta(&HeaderMap::new(), BODY, &secrets).expect_err("missing");
        assert_eq!(SignatureFailure::of(&err).as_str(), "missing");
    }

    #[test]
    fn a_non_ascii_signature_header_is_malformed_not_missing() {
        let mut h = HeaderMap::new();
        h.insert(
            KAPSO_SIGNATURE_HEADER,
            HeaderValue::from_bytes(b"\xff\xfe").expect("bytes"),
        );
        let err = kapso(&h, BODY, &[Secret::new("k")], &registry(), None).expect_err("bad");
        assert_eq!(SignatureFailure::of(&err).as_str(), "malformed");
    }

    #[test]
    fn the_handshake_token_must_match_exactly() {
        let token = Secret::new("tok");
        assert!(verify_token_matches(&token, "tok"));
        assert!(!verify_token_matches(&token, "tok "));
        assert!(!verify_token_matches(&token, "toK"));
        assert!(!verify_token_matches(&Secret::new(""), ""));
    }
}
