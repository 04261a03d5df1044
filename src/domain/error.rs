//! Why a value or an action was refused, in words a subscriber can act on.

/// A rule of the product was broken. `field` names the input at fault, when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    pub field: &'static str,
    pub message: String,
}

impl DomainError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Checks shared by every free-text name: trimmed, 1..=max characters (Unicode scalar values,
/// not bytes), and no control characters that would corrupt tables, CSV files or file names.
pub fn parse_display_name(
    field: &'static str,
    raw: &str,
    max: usize,
) -> Result<String, DomainError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(DomainError::new(
            field,
            format!("{field} must not be empty"),
        ));
    }
    let chars = trimmed.chars().count();
    if chars > max {
        return Err(DomainError::new(
            field,
            format!("{field} must be at most {max} characters (got {chars})"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::new(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}
