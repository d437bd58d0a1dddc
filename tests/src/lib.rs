//! Test support shared by arcseal's integration tests: a real Kubernetes API server per test binary
//! ([`k8s`]), a wire-faithful Azure Key Vault + Entra ID stand-in ([`keyvault`]), and GitHub and Azure DevOps
//! pull request API stand-ins ([`pullrequests`]).

pub mod k8s;
pub mod keyvault;
pub mod pullrequests;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `arcseal` CLI binary of this workspace, built once per test process (a test crate cannot name
/// another package's binary). `cargo test` releases its build lock before running tests, so this nested
/// build finds the binary up to date and returns at once.
pub fn arcseal_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "arcseal", "--bin", "arcseal"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("running cargo build -p arcseal");
        assert!(status.success(), "cargo build -p arcseal failed");
        // target/<profile>/deps/<test>-<hash> -> target/<profile>/arcseal
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent().and_then(Path::parent).expect("target/<profile>").join("arcseal")
    })
}
