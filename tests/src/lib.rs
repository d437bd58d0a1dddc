//! Test support shared by arcseal's integration tests: a real Kubernetes API server per test binary
//! ([`k8s`]), a wire-faithful Azure Key Vault + Entra ID stand-in ([`keyvault`]), and GitHub and Azure DevOps
//! pull request API stand-ins ([`pullrequests`]), the in-process unseal controller's test configuration
//! ([`unseal`]).

pub mod k8s;
pub mod keyvault;
pub mod pullrequests;
pub mod unseal;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `arcseal` CLI binary of this workspace (built on first use, as `cargo build -p` would).
pub fn arcseal_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("arcseal", "arcseal"))
}

/// The `arcseal-controller` binary of this workspace (built on first use, as `cargo build -p` would).
pub fn controller_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("arcseal-controller", "arcseal-controller"))
}

/// Builds binary `bin` of `package` (a test crate cannot name another package's binary) and returns its path.
/// `cargo test` releases its build lock before running tests, so this nested build finds the binary up to date
/// and returns at once.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .unwrap_or_else(|e| panic!("running cargo build -p {package}: {e}"));
    assert!(status.success(), "cargo build -p {package} failed");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<bin>
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>").join(bin)
}
