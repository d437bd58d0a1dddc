//! Running the real `arcseal` binary from the integration tests.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `arcseal args...` with `stdin`, isolated from the caller's certificate and kubeconfig.
pub fn arcseal(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arcseal"))
        .args(args)
        .env_remove("SEALED_SECRETS_CERT")
        .env("KUBECONFIG", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // The command may exit before reading its input (a refused certificate): a broken pipe is fine.
    let _ = pipe.write_all(stdin.unwrap_or_default());
    drop(pipe);
    child.wait_with_output().unwrap()
}
