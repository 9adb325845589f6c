//! Configuration errors that never carry a value.
//!
//! Guarantee: no [`ConfigError`] or [`TomlError`], in `Display` or `Debug`,
//! holds text of the source it came from. A TOML syntax error names the file,
//! line and column and the parser's description; a shape error (wrong type,
//! unknown key) names the key and the expected type, never the value found.
//! The libraries' own errors are not kept: `toml` prints the offending line,
//! and `figment` and `serde` print the value found ("found string \"...\""),
//! which for a mistyped secret is the secret.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::error::{Actual, Kind};

/// Why configuration could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid TOML: {0}")]
    Toml(#[from] TomlError),
    #[error("invalid configuration: {0}")]
    Shape(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        let described: Vec<String> = err.into_iter().map(|e| describe(&e)).collect();
        Self::Shape(described.join("; "))
    }
}

/// A TOML file that does not parse or does not fit: where, and what, without the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// 1-based line and column of the error, when the parser knows them.
    pub position: Option<(usize, usize)>,
    /// The parser's description, with any quoted value removed.
    pub message: String,
}

impl TomlError {
    /// Describes `err`, raised while parsing `text`, without quoting `text`.
    pub fn new(err: &toml::de::Error, text: &str) -> Self {
        let position = err.span().map(|span| line_and_column(text, span.start));
        Self {
            file: None,
            position,
            message: safe_message(err.message()),
        }
    }

    /// The same error, naming the file it came from.
    pub fn in_file(self, file: &Path) -> Self {
        Self {
            file: Some(file.to_owned()),
            ..self
        }
    }
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some((line, column)) = self.position {
            write!(f, "line {line}, column {column}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for TomlError {}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A serde or parser message with the value it quotes removed: serde writes
/// "invalid type: string \"...\", expected ..." and "unknown variant `...`".
pub fn safe_message(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    for prefix in ["invalid type", "invalid value", "unknown variant"] {
        if message.starts_with(prefix) {
            return match message.split_once(", expected ") {
                Some((_, expected)) => format!("{prefix} (value not shown), expected {expected}"),
                None => format!("{prefix} (value not shown)"),
            };
        }
    }
    message
}

/// One figment error: the key, what was wrong (never the value), the source.
fn describe(err: &figment::Error) -> String {
    let what = match &err.kind {
        Kind::Message(message) => safe_message(message),
        Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected}",
                kind_of(actual)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                kind_of(actual)
            )
        }
        Kind::InvalidLength(len, expected) => format!("invalid length {len}, expected {expected}"),
        Kind::UnknownVariant(_, expected) => {
            format!("unknown variant (value not shown), expected one of {expected:?}")
        }
        Kind::UnknownField(field, expected) => {
            format!("unknown field `{field}`, expected one of {expected:?}")
        }
        Kind::MissingField(field) => format!("missing field `{field}`"),
        Kind::DuplicateField(field) => format!("duplicate field `{field}`"),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "number out of range".to_owned(),
        Kind::Unsupported(actual) => format!("unsupported {}", kind_of(actual)),
        Kind::UnsupportedKey(actual, _) => format!("unsupported key type {}", kind_of(actual)),
    };
    let mut text = what;
    if !err.path.is_empty() {
        text = format!("key `{}`: {text}", err.path.join("."));
    }
    if let Some(metadata) = &err.metadata {
        match &metadata.source {
            Some(figment::Source::File(path)) => {
                text.push_str(&format!(" (in {})", path.display()))
            }
            _ => text.push_str(&format!(" (in {})", metadata.name)),
        }
    }
    text
}

/// The kind of a value, never the value.
fn kind_of(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "an empty value",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "a value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_the_value_they_quote() {
        let m = safe_message("invalid type: string \"hunter2\", expected a sequence");
        assert_eq!(m, "invalid type (value not shown), expected a sequence");
        let m = safe_message("unknown variant `hunter2`, expected `json` or `pretty`");
        assert!(!m.contains("hunter2"), "{m}");
        assert_eq!(safe_message("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn a_toml_syntax_error_names_the_position_and_not_the_line() {
        let text = "a = 1\nsecrets = [\"hunter2\"\n";
        let err = toml::from_str::<toml::Table>(text).expect_err("bad TOML");
        let safe = TomlError::new(&err, text).in_file(Path::new("c.toml"));
        let shown = format!("{safe} {safe:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.starts_with("c.toml: line 2, column"), "{shown}");
    }
}
