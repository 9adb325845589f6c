//! The README's configuration tables document exactly the defaults of
//! `deploy/config/ingress.toml` and `deploy/config/processor.toml`, the
//! single source of defaults: every key in a table holds the TOML's default,
//! and every TOML key has a row. Needs no broker and no database.

use std::collections::BTreeMap;

const README: &str = include_str!("../../README.md");
const INGRESS_TOML: &str = include_str!("../../deploy/config/ingress.toml");
const PROCESSOR_TOML: &str = include_str!("../../deploy/config/processor.toml");

/// `key -> default` of the table under `### {heading}` in "## Configuration".
fn readme_table(heading: &str) -> BTreeMap<String, String> {
    let config = README
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Configuration section");
    let section = config
        .split(&format!("\n### {heading}\n"))
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .unwrap_or_else(|| panic!("README has a ### {heading} table"));
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (unquote(cells[1]), unquote(cells[2]))
        })
        .collect()
}

fn unquote(cell: &str) -> String {
    cell.trim_matches('`').to_owned()
}

/// Every leaf of the TOML as a dotted key and its value as the README writes it.
fn toml_defaults(text: &str) -> BTreeMap<String, String> {
    let table: toml::Table = text.parse().expect("defaults are TOML");
    let mut leaves = BTreeMap::new();
    flatten("", &table, &mut leaves);
    leaves
}

fn flatten(prefix: &str, table: &toml::Table, leaves: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) if !inner.is_empty() => {
                flatten(&format!("{path}."), inner, leaves);
            }
            toml::Value::Table(_) => {
                leaves.insert(path, "{}".to_owned());
            }
            toml::Value::String(text) if text.is_empty() => {
                leaves.insert(path, "\"\"".to_owned());
            }
            toml::Value::String(text) => {
                leaves.insert(path, text.clone());
            }
            other => {
                leaves.insert(path, other.to_string());
            }
        }
    }
}

fn assert_documented(binary: &str, toml_text: &str) {
    let mut table = readme_table("Shared");
    table.extend(readme_table(binary));
    let defaults = toml_defaults(toml_text);
    for (key, documented) in &table {
        let actual = defaults
            .get(key)
            .unwrap_or_else(|| panic!("README {binary}: `{key}` is not in the defaults TOML"));
        assert_eq!(documented, actual, "README {binary}: default of `{key}`");
    }
    for key in defaults.keys() {
        assert!(
            table.contains_key(key),
            "README {binary}: `{key}` of the defaults TOML has no row"
        );
    }
}

#[test]
fn the_readme_documents_every_ingress_key_with_its_default() {
    assert_documented("Ingress", INGRESS_TOML);
}

#[test]
fn the_readme_documents_every_processor_key_with_its_default() {
    assert_documented("Processor", PROCESSOR_TOML);
}

#[test]
fn both_defaults_files_load_into_their_binarys_config() {
    let ingress = ingress::IngressConfig::default();
    let mut processor = processor::config::ProcessorConfig::default();
    let err = processor
        .validate()
        .expect_err("the envelope key has no default");
    assert!(err.to_string().contains("kafka.envelope_key"), "{err}");
    processor.kafka.envelope_key = shared::config::Secret::new("a-key-of-sixteen-bytes");
    processor
        .validate()
        .expect("processor defaults are valid with the key");
    assert_eq!(ingress.kafka.brokers, processor.kafka.brokers);
}
