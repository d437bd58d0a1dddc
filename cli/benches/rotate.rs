//! `arcseal rotate` on a repository of 1,000 SealedSecrets x 3 items sealed to an old RSA-4096 key,
//! after a new key was added: whole-process time next to the raw RSA cost floor measured in the same run
//! (each stale item needs one RSA decryption with the old key and one encryption with the new one).
//!
//! Run: `cargo bench -p arcseal --bench rotate`. Prints figures; asserts nothing about time.

use std::process::Command;
use std::time::{Duration, Instant};

use arcseal_crypto::{PrivateKey, Scope, hazmat};

const OBJECTS: usize = 1_000;
const ITEMS: usize = 3;

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# arcseal rotate benchmark ({OBJECTS} SealedSecrets x {ITEMS} items, RSA-4096, {cores} cores)");
    let dir = tempfile::tempdir().unwrap();
    let arcseal = env!("CARGO_BIN_EXE_arcseal");
    let keygen = |name: &str| {
        let k = |s: &str| dir.path().join(format!("{name}{s}"));
        let status = Command::new(arcseal)
            .args(["keygen", "--key-out"])
            .arg(k(".pem"))
            .arg("--cert-out")
            .arg(k(".crt"))
            .arg("--secret-out")
            .arg(k("-secret.yaml"))
            .status()
            .unwrap();
        assert!(status.success());
        (PrivateKey::from_pem(&std::fs::read(k(".pem")).unwrap()).unwrap(), k(".crt"), k("-secret.yaml"))
    };
    let (old_key, old_cert, old_secret) = keygen("old");
    let (new_key, new_cert, new_secret) = keygen("new");

    // Raw RSA costs, single-threaded.
    let label = Scope::Strict.encryption_label("team-a", "app");
    let ct = hazmat::rsa_oaep_encrypt_session_key(old_key.public_key(), &label).unwrap();
    let dec = per_op(100, || {
        hazmat::rsa_oaep_decrypt_session_key(&old_key, &label, &ct).unwrap();
    });
    let enc = per_op(1_000, || {
        hazmat::rsa_oaep_encrypt_session_key(new_key.public_key(), &label).unwrap();
    });
    println!(
        "raw RSA-OAEP-4096 decrypt {:.0} µs, encrypt {:.0} µs",
        dec.as_secs_f64() * 1e6,
        enc.as_secs_f64() * 1e6
    );

    // The repository: one file per SealedSecret, sealed to the old key by the real binary.
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let secrets: String = (0..OBJECTS)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i}\n  namespace: team-{}\nstringData:\n  a: alpha-{i}\n  b: beta-{i}\n  c: gamma-{i}\n",
                i % 9
            )
        })
        .collect();
    let sealed = run_with_stdin(arcseal, &["seal", "--cert", old_cert.to_str().unwrap()], &secrets);
    for (i, doc) in sealed.split("---\n").filter(|d| !d.trim().is_empty()).enumerate() {
        std::fs::write(repo.join(format!("app-{i}.yaml")), doc).unwrap();
    }
    let backup = dir.path().join("backup.yaml");
    let both = format!(
        "{}---\n{}",
        std::fs::read_to_string(&old_secret).unwrap(),
        std::fs::read_to_string(&new_secret).unwrap()
    );
    std::fs::write(&backup, both).unwrap();

    let rotate = || {
        let start = Instant::now();
        let status = Command::new(arcseal)
            .args(["rotate"])
            .arg(&repo)
            .arg("--private-key")
            .arg(&backup)
            .arg("--cert")
            .arg(&new_cert)
            .status()
            .unwrap();
        assert!(status.success());
        start.elapsed()
    };
    let took = rotate();
    let items = OBJECTS * ITEMS;
    let floor = (dec + enc).mul_f64(items as f64);
    println!("rotate {items} stale items, whole process: {:.2} s", took.as_secs_f64());
    println!(
        "  raw RSA floor (1 decrypt + 1 encrypt per item): {:.2} s on one core, {:.2} s on {cores} cores -> {:.2}x the {cores}-core floor",
        floor.as_secs_f64(),
        floor.div_f64(cores as f64).as_secs_f64(),
        took.as_secs_f64() / floor.div_f64(cores as f64).as_secs_f64()
    );

    let again = rotate();
    println!(
        "second run (nothing to do; one decrypt per item to prove it): {:.2} s, floor {:.2} s on {cores} cores",
        again.as_secs_f64(),
        dec.mul_f64(items as f64).div_f64(cores as f64).as_secs_f64()
    );
}

fn per_op(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().div_f64(n as f64)
}

fn run_with_stdin(bin: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}
