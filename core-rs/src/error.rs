//! The one error type of the core. `py::errors` maps each variant to its own Python exception.

/// Why a core operation refused its input.
///
/// Adding a variant means adding its Python exception in `py::errors`; the match there is
/// exhaustive, so the compiler points at the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// An argument has the right type but a value the operation cannot use.
    #[error("{0}")]
    InvalidArgument(String),
    /// A cron expression is invalid or can never fire.
    #[error("{0}")]
    CronSyntax(crate::cron::CronSyntaxError),
    /// A trigger pattern is not valid in its syntax.
    #[error("invalid pattern {pattern:?}: {problem}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it, e.g. "empty segment: ...".
        problem: String,
    },
    /// A name to match against trigger patterns is not a valid event name or topic.
    #[error("invalid name {name:?}: {problem}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it, e.g. "a name must not contain the wildcard '*' ...".
        problem: String,
    },
}

/// The result of a core operation.
pub type CoreResult<T> = Result<T, CoreError>;

#[cfg(test)]
mod tests {
    use super::CoreError;

    #[test]
    fn invalid_argument_displays_its_message_unchanged() {
        let error = CoreError::InvalidArgument("emitted must not be a str".to_owned());
        assert_eq!(error.to_string(), "emitted must not be a str");
    }

    #[test]
    fn pattern_and_name_errors_name_the_culprit() {
        let error = CoreError::InvalidPattern {
            pattern: "a..b".to_owned(),
            problem: "empty segment".to_owned(),
        };
        assert_eq!(error.to_string(), "invalid pattern \"a..b\": empty segment");
        let error = CoreError::InvalidName {
            name: "a.*".to_owned(),
            problem: "wildcard".to_owned(),
        };
        assert_eq!(error.to_string(), "invalid name \"a.*\": wildcard");
    }
}
