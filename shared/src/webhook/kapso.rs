//! Placeholder: replaced by the full model and normaliser.
use serde_json::Value;

use super::{Event, ShapeError};

pub(super) fn phone_number_ids(_value: &Value) -> Result<Vec<String>, ShapeError> {
    Ok(Vec::new())
}

pub(super) fn normalize(
    _event_type: Option<&str>,
    _value: &Value,
) -> Result<Vec<Event>, ShapeError> {
    Ok(Vec::new())
}
