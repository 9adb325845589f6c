//! Secrets: a string that is never printed, and the environment variables
//! that hold secrets, read verbatim.
//!
//! Guarantees: a [`Secret`] never prints its value (`Debug` shows
//! `[redacted]`, there is no `Display` and no `Serialize`); deserializing one
//! accepts a string or an integer (TOML `token = 123456` is the secret
//! "123456") and fails with a message that holds no value. [`SecretEnv`]
//! reads the binary's secret keys from the environment as written, so an
//! all-digits secret stays a string with its leading zeros (figment's
//! environment provider would read it as a number).

use std::collections::BTreeSet;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A secret string: usable, never printed, never serialized.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }
    /// The envelope key this secret holds.
    pub fn envelope_key(&self) -> crate::record::EnvelopeKey {
        crate::record::EnvelopeKey::new(self.clone())
    }

    /// The secret's bytes, for HMAC keys and comparisons only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(\"[redacted]\")")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: serde::de::Error>(kind: &str) -> E {
        E::custom(format!(
            "a secret must be a string, found {kind} (value not shown)"
        ))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a secret string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
        Ok(Secret::new(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
        Ok(Secret::new(v.to_string()))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Secret, E> {
        Ok(Secret::new(v.to_string()))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Secret, E> {
        Ok(Secret::new(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::refuse("a float"))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::refuse("a boolean"))
    }
    fn visit_char<E: serde::de::Error>(self, v: char) -> Result<Secret, E> {
        Ok(Secret::new(v.to_string()))
    }
    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(Self::refuse("bytes"))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Secret, E> {
        Err(Self::refuse("an empty value"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(Self::refuse("a list"))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(Self::refuse("a table"))
    }
}

/// The binary's secret keys, read verbatim from `INBOXFLOW_<KEY>`.
///
/// A key whose default is a list takes a list: `["a","b"]` (JSON strings),
/// `[a, b]` (comma separated, quotes optional) or a single bare value.
#[derive(Debug, Clone)]
pub struct SecretEnv {
    prefix: &'static str,
    scalars: BTreeSet<String>,
    lists: BTreeSet<String>,
}

impl SecretEnv {
    /// `keys` are top-level keys; those in `list_keys` hold lists.
    pub fn new(prefix: &'static str, keys: &[&str], list_keys: &BTreeSet<String>) -> Self {
        let (lists, scalars) = keys
            .iter()
            .map(|k| (*k).to_owned())
            .partition(|k| list_keys.contains(k));
        Self {
            prefix,
            scalars,
            lists,
        }
    }

    /// Whether `key` (lowercase, as figment's `Env` names it) is a secret key.
    pub fn holds(&self, key: &str) -> bool {
        self.scalars.contains(key) || self.lists.contains(key)
    }

    fn raw(&self, key: &str) -> Option<String> {
        std::env::var(format!("{}{}", self.prefix, key.to_ascii_uppercase())).ok()
    }
}

impl Provider for SecretEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("`{}` environment variable(s)", self.prefix))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for key in &self.scalars {
            if let Some(raw) = self.raw(key) {
                dict.insert(key.clone(), Value::from(raw));
            }
        }
        for key in &self.lists {
            if let Some(raw) = self.raw(key) {
                dict.insert(key.clone(), Value::from(split_list(&raw)));
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// `["a","b"]`, `[a, b]` or `a` as a list of strings, digits kept as written.
fn split_list(raw: &str) -> Vec<String> {
    let trimmed = raw.trim();
    let Some(inner) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return vec![raw.to_owned()];
    };
    if let Ok(list) = serde_json::from_str::<Vec<String>>(trimmed) {
        return list;
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            ['"', '\'']
                .iter()
                .find_map(|q| item.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
                .unwrap_or(item)
                .to_owned()
        })
        .filter(|item| !item.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_keep_digits_and_quotes_as_written() {
        assert_eq!(split_list(r#"["007","b"]"#), ["007", "b"]);
        assert_eq!(split_list("[007, 'x y']"), ["007", "x y"]);
        assert_eq!(split_list("0123456789"), ["0123456789"]);
        assert!(split_list("[]").is_empty());
    }

    #[test]
    fn an_integer_is_a_secret_and_other_kinds_fail_without_their_value() {
        #[derive(Deserialize)]
        struct S {
            s: Vec<Secret>,
        }
        let ok: S = toml::from_str("s = [123456, \"abc\"]").expect("digits are a secret");
        assert_eq!(ok.s, [Secret::new("123456"), Secret::new("abc")]);
        let err = toml::from_str::<S>("s = [1.5]")
            .err()
            .map(|e| e.message().to_owned());
        assert!(err.is_some_and(|m| !m.contains("1.5")));
    }
}
