//! Seal/open throughput next to the raw cost of the RSA and AES operations, measured in the same run,
//! and the whole-process time of `arcseal seal` on 1,000 Secrets x 5 items (RSA-4096, the controller's
//! default), against a Python + OpenSSL peer (kubesealpy) when one is installed.
//!
//! Run: `cargo bench -p arcseal --bench seal` (set ARCSEAL_BENCH_PYTHON to a python with kubesealpy,
//! e.g. the venv `scripts/bench-peers` makes). Prints figures; asserts nothing about time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use arcseal_crypto::{Certificate, CertificateParams, KeyRing, PrivateKey, Scope, hazmat};

const SECRETS: usize = 1_000;
const ITEMS: usize = 5;
const ITEM_BYTES: usize = 32;

fn per_op(n: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm up
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().div_f64(n as f64)
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# arcseal seal benchmark (RSA-4096, {ITEM_BYTES}-byte items, {cores} cores)");
    let key = PrivateKey::generate(4096).expect("keygen");
    let params = CertificateParams {
        common_name: String::new(),
        not_before: SystemTime::now(),
        validity: arcseal_crypto::DEFAULT_CERT_VALIDITY,
    };
    let cert = Certificate::self_signed(&key, &params).expect("cert");
    let public = cert.public_key();
    let label = Scope::Strict.encryption_label("team-a", "db-credentials");
    let plaintext = vec![b'x'; ITEM_BYTES];

    // Raw primitives, single-threaded.
    let rsa_enc = per_op(2_000, || {
        hazmat::rsa_oaep_encrypt_session_key(public, &label).unwrap();
    });
    let ct = hazmat::rsa_oaep_encrypt_session_key(public, &label).unwrap();
    let rsa_dec = per_op(200, || {
        hazmat::rsa_oaep_decrypt_session_key(&key, &label, &ct).unwrap();
    });
    let mut body = plaintext.clone();
    let aes = per_op(200_000, || {
        hazmat::aes_256_gcm_seal(&mut body).unwrap();
    });
    println!("raw RSA-OAEP-4096 encrypt: {} / op", micros(rsa_enc));
    println!("raw RSA-OAEP-4096 decrypt: {} / op", micros(rsa_dec));
    println!("raw AES-256-GCM seal ({ITEM_BYTES} B): {} / op", micros(aes));

    // The format's seal and open, single-threaded.
    let seal = per_op(2_000, || {
        arcseal_crypto::seal(public, &label, &plaintext).unwrap();
    });
    let value = arcseal_crypto::seal(public, &label, &plaintext).unwrap();
    let ring = KeyRing::new(vec![key.clone()]);
    let open = per_op(200, || {
        ring.open_value(&label, &value, None).unwrap();
    });
    let raw_seal = rsa_enc + aes;
    println!(
        "seal: {} / value ({:.0} values/s), {:.2}x the raw RSA+AES cost",
        micros(seal),
        1.0 / seal.as_secs_f64(),
        seal.as_secs_f64() / raw_seal.as_secs_f64()
    );
    println!(
        "open: {} / value ({:.0} values/s), {:.2}x the raw RSA decrypt cost",
        micros(open),
        1.0 / open.as_secs_f64(),
        open.as_secs_f64() / rsa_dec.as_secs_f64()
    );

    // Whole process: the real binary on 1,000 Secrets x 5 items.
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, cert.to_pem()).unwrap();
    let input = dir.path().join("secrets.yaml");
    std::fs::write(&input, secrets_yaml()).unwrap();
    let output = dir.path().join("sealed.yaml");
    let arcseal = env!("CARGO_BIN_EXE_arcseal");
    let best = best_of(3, || {
        let status = Command::new(arcseal)
            .args(["seal", "--cert"])
            .arg(&cert_path)
            .arg("-f")
            .arg(&input)
            .arg("-w")
            .arg(&output)
            .status()
            .unwrap();
        assert!(status.success());
    });
    let values = SECRETS * ITEMS;
    let floor_one_core = raw_seal.mul_f64(values as f64);
    let floor_all_cores = floor_one_core.div_f64(cores as f64);
    println!(
        "arcseal seal, {SECRETS} Secrets x {ITEMS} items ({values} values), whole process: {:.3} s",
        best.as_secs_f64()
    );
    println!(
        "  raw crypto floor: {:.3} s on one core, {:.3} s on {cores} cores -> process / one-core floor = {:.2}x, / {cores}-core floor = {:.2}x (target <= 1.3x)",
        floor_one_core.as_secs_f64(),
        floor_all_cores.as_secs_f64(),
        best.as_secs_f64() / floor_one_core.as_secs_f64(),
        best.as_secs_f64() / floor_all_cores.as_secs_f64()
    );
    let sealed = std::fs::read_to_string(&output).unwrap();
    assert_eq!(sealed.matches("kind: SealedSecret").count(), SECRETS);

    python_peer(&cert_path, &input, dir.path(), best);
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn secrets_yaml() -> String {
    let mut out = String::new();
    for i in 0..SECRETS {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i}\n  namespace: team-{}\ntype: Opaque\nstringData:\n",
            i % 7
        ));
        for j in 0..ITEMS {
            out.push_str(&format!(
                "  item{j}: {}\n",
                format!("{i:08}-{j}").repeat(ITEM_BYTES / 10 + 1)[..ITEM_BYTES].to_owned()
            ));
        }
    }
    out
}

fn python_peer(cert: &Path, input: &Path, dir: &Path, ours: Duration) {
    let python = std::env::var("ARCSEAL_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_peer = Command::new(&python)
        .args(["-c", "import kubesealpy, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_peer {
        println!(
            "python peer: kubesealpy not importable by {python}; run scripts/bench-peers and set ARCSEAL_BENCH_PYTHON"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer_kubesealpy.py");
    let out = dir.join("peer.yaml");
    let theirs = best_of(2, || {
        let status = Command::new(&python).arg(&script).arg(cert).arg(input).arg(&out).status().unwrap();
        assert!(status.success(), "peer failed");
    });
    println!(
        "python + OpenSSL peer (kubesealpy), same input: {:.3} s -> arcseal is {:.1}x faster (target >= 5x)",
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}
