//! Arbitrary signature headers and bodies through `verify_kapso` and
//! `verify_meta`: never a panic, and never a false accept.
//!
//! Input layout: the header is the bytes before the first `\n` (lossily
//! decoded, as any header string may be), the body is the rest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::config::Secret;
use shared::signing::{kapso_signature, meta_signature, verify_kapso, verify_meta};

/// The secret the seed corpus is signed with.
const SECRET: &str = "fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let header = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let secret = Secret::new(SECRET);
    let other = Secret::new("another-secret");
    let secrets = [&other, &secret];

    let expected = kapso_signature(SECRET, body);
    let kapso = verify_kapso(Some(&header), body, &secrets);
    // Accepted only when the header is the body's HMAC (any case, trimmed),
    // with or without one `sha256=` prefix.
    let kapso_hex = header.trim();
    let kapso_hex = kapso_hex.strip_prefix("sha256=").unwrap_or(kapso_hex);
    assert_eq!(
        kapso.is_ok(),
        kapso_hex.eq_ignore_ascii_case(&expected),
        "kapso verdict disagrees with the expected signature"
    );
    let meta = verify_meta(Some(&header), body, &secrets);
    let meta_expected = header
        .trim()
        .strip_prefix("sha256=")
        .is_some_and(|hex| hex.eq_ignore_ascii_case(&expected));
    assert_eq!(meta.is_ok(), meta_expected, "meta verdict disagrees");

    // The right signature for this body always verifies, with either secret order.
    assert!(verify_kapso(Some(&expected), body, &[&secret]).is_ok());
    assert!(
        verify_meta(
            Some(&meta_signature(SECRET, body)),
            body,
            &[&other, &secret]
        )
        .is_ok()
    );
    // No secret never verifies anything.
    assert!(verify_kapso(Some(&header), body, &[]).is_err());
});
