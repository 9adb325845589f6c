//! [`Trust`]: which secret verified a delivery, carried in the
//! [`SIGNED_BY_HEADER`](super::SIGNED_BY_HEADER).
//!
//! Guarantee: [`Trust::header_value`] and [`Trust::from_header_value`] are
//! inverse; any other header value is refused, never widened to `Global`.

use std::sync::Arc;

/// Which secrets verified a delivery, which bounds where it may be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A global secret (Kapso or Meta): any workspace.
    Global,
    /// This workspace's own Kapso secret: this workspace only.
    Workspace(Arc<str>),
}

impl Trust {
    /// `global`, or `workspace:<id>`: the signed-by header value.
    pub fn header_value(&self) -> String {
        match self {
            Trust::Global => "global".to_owned(),
            Trust::Workspace(ws) => format!("workspace:{ws}"),
        }
    }

    /// The inverse of [`Trust::header_value`]; `None` for anything else.
    pub fn from_header_value(value: &str) -> Option<Self> {
        match value.strip_prefix("workspace:") {
            Some(ws) if !ws.is_empty() => Some(Trust::Workspace(Arc::from(ws))),
            Some(_) => None,
            None => (value == "global").then_some(Trust::Global),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_round_trips_through_its_header_value() {
        for trust in [Trust::Global, Trust::Workspace(Arc::from("ws_a"))] {
            assert_eq!(Trust::from_header_value(&trust.header_value()), Some(trust));
        }
        for bad in ["", "workspace:", "Global", "other"] {
            assert_eq!(Trust::from_header_value(bad), None, "{bad}");
        }
    }
}
