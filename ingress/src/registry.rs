//! The workspace registry: which workspace owns each business
//! phone_number_id, and the optional per-workspace Kapso secrets.
//!
//! The file is TOML (see `deploy/config/registry.toml`):
//!
//! ```toml
//! [[workspace]]
//! id = "ws_acme"
//! phone_number_ids = ["123456789012345"]
//! business_account_ids = ["102290129340398"]   # optional: Meta WABA ids
//! kapso_secrets = ["..."]   # optional
//! ```
//!
//! Meta's account-level webhooks (`account_update`, template and quality
//! updates, `security`, ...) name no phone number, only the business account
//! (`entry[].id`): `business_account_ids` routes them.
//!
//! Guarantees: no [`RegistryError`] quotes the file (a syntax or type error
//! names the file, line and column only), so a typo never puts a secret in
//! a log line; a [`Registry`] is immutable and always valid (ids non-blank,
//! no workspace listed twice, no phone number or business account owned by two
//! workspaces). The
//! [`RegistryHandle`] swaps in a whole new registry at once, so a request sees
//! either the old or the new mapping, never a mix; a file that fails to load
//! leaves the current registry in place (see [`crate::reload`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Deserialize;
use shared::config::{Secret, TomlError};

/// Why a registry file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read registry file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Bad TOML or a field of the wrong type: the file, line and column,
    /// never the text (a registry holds secrets).
    #[error("registry is not valid: {0}")]
    Parse(#[from] TomlError),
    #[error("registry is not valid: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    workspace: Vec<WorkspaceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceEntry {
    id: String,
    #[serde(default)]
    phone_number_ids: Vec<String>,
    #[serde(default)]
    business_account_ids: Vec<String>,
    #[serde(default)]
    kapso_secrets: Vec<Secret>,
}

/// An immutable, validated phone_number_id → workspace mapping.
#[derive(Debug, Default)]
pub struct Registry {
    owners: HashMap<String, Arc<str>>,
    account_owners: HashMap<String, Arc<str>>,
    kapso_secrets: HashMap<Arc<str>, Vec<Secret>>,
    workspaces: usize,
}

impl Registry {
    /// Parses and validates registry TOML.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|err| TomlError::new(&err, text))?;
        let mut owners = HashMap::new();
        let mut account_owners = HashMap::new();
        let mut kapso_secrets = HashMap::new();
        let mut seen = HashSet::new();
        for entry in &file.workspace {
            let id = entry.id.trim();
            if id.is_empty() || id != entry.id || id.len() > 128 {
                return Err(invalid(format!(
                    "workspace id {:?} must be 1 to 128 characters without surrounding spaces",
                    entry.id
                )));
            }
            if !seen.insert(id) {
                return Err(invalid(format!("workspace {id} is listed twice")));
            }
            let id: Arc<str> = Arc::from(id);
            claim(&mut owners, &entry.phone_number_ids, &id, "phone_number_id")?;
            claim(
                &mut account_owners,
                &entry.business_account_ids,
                &id,
                "business_account_id",
            )?;
            if entry
                .kapso_secrets
                .iter()
                .any(|s| s.expose().trim().is_empty())
            {
                return Err(invalid(format!("workspace {id} has a blank kapso secret")));
            }
            if !entry.kapso_secrets.is_empty() {
                kapso_secrets.insert(id, entry.kapso_secrets.clone());
            }
        }
        Ok(Self {
            owners,
            account_owners,
            kapso_secrets,
            workspaces: file.workspace.len(),
        })
    }

    /// Reads and parses the registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|err| match err {
            RegistryError::Parse(err) => RegistryError::Parse(err.in_file(path)),
            other => other,
        })
    }

    /// The workspace owning `phone_number_id`, if any.
    pub fn workspace_of(&self, phone_number_id: &str) -> Option<&Arc<str>> {
        self.owners.get(phone_number_id)
    }

    /// The workspace owning a Meta business account, if any.
    pub fn workspace_of_account(&self, business_account_id: &str) -> Option<&Arc<str>> {
        self.account_owners.get(business_account_id)
    }

    /// The workspace's own Kapso secrets (empty when it has none or is unknown).
    pub fn kapso_secrets(&self, workspace_id: &str) -> &[Secret] {
        self.kapso_secrets
            .get(workspace_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Number of workspaces, for logs.
    pub fn workspace_count(&self) -> usize {
        self.workspaces
    }

    /// Number of phone numbers, for logs.
    pub fn phone_number_count(&self) -> usize {
        self.owners.len()
    }
}

/// Records `id` as the owner of each of `keys`, refusing blanks and keys
/// another workspace owns.
fn claim(
    owners: &mut HashMap<String, Arc<str>>,
    keys: &[String],
    id: &Arc<str>,
    what: &str,
) -> Result<(), RegistryError> {
    for key in keys {
        if key.trim().is_empty() {
            return Err(invalid(format!("workspace {id} has a blank {what}")));
        }
        if let Some(other) = owners.insert(key.clone(), Arc::clone(id)) {
            return Err(invalid(format!(
                "a {what} is listed by both {other} and {id}"
            )));
        }
    }
    Ok(())
}

fn invalid(message: String) -> RegistryError {
    RegistryError::Invalid(message)
}

/// The current registry, shared by every request and replaced whole on reload.
#[derive(Debug, Clone, Default)]
pub struct RegistryHandle(Arc<RwLock<Arc<Registry>>>);

impl RegistryHandle {
    pub fn new(registry: Registry) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(registry))))
    }

    /// A snapshot: cheap (one `Arc` clone), and unaffected by later reloads.
    pub fn current(&self) -> Arc<Registry> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Installs `registry` for all later requests.
    pub fn replace(&self, registry: Registry) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [[workspace]]
        id = "ws_acme"
        phone_number_ids = ["111", "112"]
        kapso_secrets = ["acme-secret"]

        [[workspace]]
        id = "ws_beta"
        phone_number_ids = ["222"]
    "#;

    #[test]
    fn a_registry_maps_each_phone_number_to_its_workspace() {
        let r = Registry::parse(SAMPLE).expect("valid");
        assert_eq!(r.workspace_of("111").map(|w| &**w), Some("ws_acme"));
        assert_eq!(r.workspace_of("112").map(|w| &**w), Some("ws_acme"));
        assert_eq!(r.workspace_of("222").map(|w| &**w), Some("ws_beta"));
        assert_eq!(r.workspace_of("333"), None);
        assert_eq!(r.kapso_secrets("ws_acme"), &[Secret::new("acme-secret")]);
        assert!(r.kapso_secrets("ws_beta").is_empty());
        assert!(r.kapso_secrets("nope").is_empty());
        assert_eq!((r.workspace_count(), r.phone_number_count()), (2, 3));
    }

    #[test]
    fn the_example_registry_file_is_valid() {
        let r = Registry::parse(include_str!("../../deploy/config/registry.toml")).expect("valid");
        assert_eq!(
            r.workspace_of("123456789012345").map(|w| &**w),
            Some("ws_acme")
        );
        assert!(!r.kapso_secrets("ws_acme").is_empty());
    }

    #[test]
    fn an_empty_file_is_an_empty_registry() {
        let r = Registry::parse("").expect("valid");
        assert_eq!(r.workspace_count(), 0);
    }

    #[test]
    fn a_phone_number_owned_by_two_workspaces_is_refused() {
        let text = "[[workspace]]\nid = \"a\"\nphone_number_ids = [\"1\"]\n\
                    [[workspace]]\nid = \"b\"\nphone_number_ids = [\"1\"]\n";
        let err = Registry::parse(text).expect_err("duplicate").to_string();
        assert!(err.contains("both a and b"), "{err}");
    }

    #[test]
    fn duplicate_blank_or_unknown_entries_are_refused() {
        for bad in [
            "[[workspace]]\nid = \"a\"\n[[workspace]]\nid = \"a\"\n",
            "[[workspace]]\nid = \" \"\n",
            "[[workspace]]\nid = \"a\"\nphone_number_ids = [\"\"]\n",
            "[[workspace]]\nid = \"a\"\nkapso_secrets = [\"\"]\n",
            "[[workspace]]\nid = \"a\"\nphone_numbers = [\"1\"]\n",
            "[[workspaces]]\nid = \"a\"\n",
            "not toml at all [",
        ] {
            assert!(Registry::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_never_quote_the_file() {
        for bad in [
            "[[workspace]]\nid = \"a\"\nkapso_secrets = [\"hunter2\"\n",
            "[[workspace]]\nid = \"a\"\nkapso_secrets = \"hunter2\"\n",
            "[[workspace]]\nid = \"a\"\nkapso_secrets = [hunter2]\n",
            "[[workspace]]\nid = \"a\"\nkapso_secrets = [{ x = \"hunter2\" }]\n",
        ] {
            let err = Registry::parse(bad).expect_err("bad registry");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("line 3"), "{shown}");
        }
        let digits = "[[workspace]]\nid = \"a\"\nkapso_secrets = [123456]\n";
        let r = Registry::parse(digits).expect("an all-digits secret is a secret");
        assert_eq!(r.kapso_secrets("a"), &[Secret::new("123456")]);
    }

    #[test]
    fn a_snapshot_is_unaffected_by_a_later_replace() {
        let handle = RegistryHandle::new(Registry::parse(SAMPLE).expect("valid"));
        let before = handle.current();
        handle.replace(Registry::default());
        assert!(before.workspace_of("111").is_some());
        assert!(handle.current().workspace_of("111").is_none());
    }
}
