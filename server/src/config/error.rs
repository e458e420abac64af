//! Why a configuration could not be loaded. A leaf of the configuration.

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing, mistyped or unknown.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A combination that cannot work.
    #[error("invalid configuration: {0}")]
    Inconsistent(String),
}
