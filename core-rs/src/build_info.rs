//! What was built, and how, for diagnostics and bug reports.

/// The version, compiler, target and profile of this build of the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate version, e.g. `0.1.0` (the workspace version, shared with the Python package).
    pub version: &'static str,
    /// The compiler's `--version` line, e.g. `rustc 1.85.0 (4d91de4e4 2025-02-17)`.
    pub rustc: &'static str,
    /// The target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: &'static str,
    /// `release` for optimised builds (including the `profiling` profile), `debug` otherwise.
    pub profile: &'static str,
}

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The build information captured by `build.rs`.
pub const BUILD_INFO: BuildInfo = BuildInfo {
    version: VERSION,
    rustc: env!("FLOWHOST_BUILD_RUSTC"),
    target: env!("FLOWHOST_BUILD_TARGET"),
    profile: env!("FLOWHOST_BUILD_PROFILE"),
};

#[cfg(test)]
mod tests {
    use super::{BUILD_INFO, VERSION};

    #[test]
    fn version_is_the_crate_version() {
        assert_eq!(BUILD_INFO.version, VERSION);
        assert!(VERSION.split('.').count() >= 3, "{VERSION}");
    }

    #[test]
    fn rustc_is_the_compiler_version_line() {
        assert!(
            BUILD_INFO.rustc.starts_with("rustc "),
            "{}",
            BUILD_INFO.rustc
        );
    }

    #[test]
    fn target_is_a_triple() {
        assert!(
            BUILD_INFO.target.split('-').count() >= 3,
            "{}",
            BUILD_INFO.target
        );
    }

    #[test]
    fn profile_follows_debug_assertions() {
        // `cargo test` uses the dev profile; `cargo test --release` the release one.
        let expected = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        assert_eq!(BUILD_INFO.profile, expected);
    }
}
