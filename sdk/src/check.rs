//! Data-quality verdicts.

/// How serious a failed rule is; the connector decides what each severity does
/// (`violations.<severity>`: tag, dlq, drop or fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    /// Parses `info`, `warning` (or `warn`) and `error`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Self::Info),
            "warning" | "warn" => Some(Self::Warning),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// One rule a record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Name of the rule, e.g. `amount.between`: shown in the tag header and the DLQ.
    pub rule: String,
    pub severity: Severity,
    /// What was wrong, for a human.
    pub message: String,
}

impl Violation {
    /// A violation of the given severity.
    pub fn new(severity: Severity, rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            severity,
            message: message.into(),
        }
    }

    /// An `error` violation.
    pub fn error(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, rule, message)
    }

    /// A `warning` violation.
    pub fn warning(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, rule, message)
    }

    /// An `info` violation.
    pub fn info(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, rule, message)
    }
}
