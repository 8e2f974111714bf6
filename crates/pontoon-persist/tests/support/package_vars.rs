//! Which environment variables cargo sets for one package's build or run: one file, included
//! by path by the crash tests and by xtask, which both leave them out of the cargo commands
//! they start.
//!
//! Why: ring's build script reruns when `CARGO_MANIFEST_DIR` or `CARGO_PKG_NAME` changes, and
//! cargo checks that against its own environment. A cargo started with a package's variables
//! inherited rebuilds ring and everything above it, and so does every plain `cargo` after it.

/// Whether `key` is one of the variables cargo sets for a package (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...), as opposed to ones that configure cargo itself (`CARGO_HOME`,
/// `CARGO_TARGET_DIR`, ...).
pub(crate) fn is_package_variable(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
        )
}
