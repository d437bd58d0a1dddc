//! The unseal controller's HTTP API under attack, in figures (no assertions): the API server runs as a child process
//! (this binary re-run with `ARCSEAL_FLOOD_SERVER=1`, the controller's own router and accept loop, one RSA-4096 key),
//! and this process attacks it from many loopback addresses while one well-behaved caller keeps verifying.
//!
//! Phases: (1) 400 slow clients (half send headers byte by byte, half declare a 2 MiB body and send it slowly), each
//! from its own address in 127.0.0.0/8: the child's RSS before and at the peak; (2) one caller floods `/v1/verify`
//! with 64 concurrent connections for 10 s while another sends one request every 100 ms: what each got. Raw cost of
//! one RSA-4096 OAEP decryption is measured in the same run for scale.
//!
//! `cargo bench -p arcseal-controller --bench http_flood`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arcseal_controller::unseal::crd::{SealedSecret, SealedSecretSpec};
use arcseal_controller::unseal::http::{self, Admission, Api, HttpLimits};
use arcseal_controller::unseal::keys::{KeySet, KeyStore, LoadedKey};
use arcseal_controller::unseal::metrics::Metrics;
use arcseal_crypto::{Certificate, CertificateParams, PrivateKey};

fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn key_pem_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("arcseal-flood-key-{}.pem", std::process::id()))
}

async fn serve_child() -> Result<(), Box<dyn std::error::Error>> {
    let pem = std::fs::read(std::env::var("ARCSEAL_FLOOD_KEY")?)?;
    let key = PrivateKey::from_pem(&pem)?;
    let params = CertificateParams {
        common_name: String::new(),
        not_before: SystemTime::now(),
        validity: Duration::from_secs(3600),
    };
    let cert = Certificate::self_signed(&key, &params)?;
    let store = Arc::new(KeyStore::default());
    store.replace(KeySet::new(vec![LoadedKey { key, cert: Some(cert), secret_name: "k".into() }]));
    let limits = HttpLimits::default();
    let api = Arc::new(Api {
        keys: store,
        metrics: Arc::new(Metrics::new()),
        ready: Arc::default(),
        admission: Admission::new(limits.clone()),
        webhook_cert: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    http::serve(listener, http::router(api), &limits).await?;
    Ok(())
}

/// A connection from a chosen loopback source address.
fn connect_from(source: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

fn post(stream: &mut TcpStream, body: &str) -> std::io::Result<u16> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST /v1/verify HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    Ok(head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("ARCSEAL_FLOOD_SERVER").is_some() {
        return tokio::runtime::Runtime::new()?.block_on(serve_child());
    }
    let key = PrivateKey::generate(4096)?;
    let path = key_pem_path();
    std::fs::write(&path, key.to_pkcs1_pem()?.as_bytes())?;
    let mut child = Command::new(std::env::current_exe()?)
        .env("ARCSEAL_FLOOD_SERVER", "1")
        .env("ARCSEAL_FLOOD_KEY", &path)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?),
        &mut line,
    )?;
    let _ = std::fs::remove_file(&path);
    let addr: SocketAddr = ([127, 0, 0, 1], line.trim().parse::<u16>()?).into();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_mib(pid, "VmRSS:");

    let label = b"bench/flood".to_vec();
    let mut ss = SealedSecret::new(
        "flood",
        SealedSecretSpec {
            encrypted_data: [("a".to_owned(), arcseal_crypto::seal(key.public_key(), &label, b"v")?)].into(),
            ..SealedSecretSpec::default()
        },
    );
    ss.metadata.namespace = Some("bench".into());
    let body = serde_json::to_string(&ss)?;

    // Phase 1: 400 slow clients, one address each.
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..400u16 {
        let [hi, lo] = (i + 256).to_be_bytes();
        let source = [127, 1, hi, lo];
        if let Ok(mut s) = connect_from(source, addr) {
            let head = if i % 2 == 0 {
                "POST /v1/verify HTTP/1.1\r\nHo".to_owned()
            } else {
                format!(
                    "POST /v1/verify HTTP/1.1\r\nHost: c\r\nContent-Length: {}\r\n\r\n{{\"a\":\"",
                    2 << 20
                )
            };
            let _ = s.write_all(head.as_bytes());
            slow.push(s);
        }
    }
    let dribble = vec![b'x'; 64 << 10];
    let mut peak: f64 = 0.0;
    for _ in 0..20 {
        for s in slow.iter_mut().skip(1).step_by(2) {
            let _ = s.set_nonblocking(true);
            let _ = s.write(&dribble);
        }
        peak = peak.max(rss_mib(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let open_after = slow
        .iter()
        .filter(|s| {
            let mut b = [0u8; 1];
            let _ = s.set_nonblocking(true);
            matches!((&**s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    println!(
        "slow clients: {} connected; RSS idle {idle:.1} MiB, peak during 10 s of slow headers/bodies {peak:.1} MiB (VmHWM {:.1} MiB); still open after {:.0} s: {open_after} (header timeout 10 s)",
        slow.len(),
        rss_mib(pid, "VmHWM:"),
        started.elapsed().as_secs_f64()
    );
    drop(slow);

    // Phase 2: a flood from one caller, a steady caller beside it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flood_ok, flood_429, flood_other) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut threads = Vec::new();
    for _ in 0..64 {
        let (stop, ok, limited, other, body) =
            (stop.clone(), flood_ok.clone(), flood_429.clone(), flood_other.clone(), body.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match connect_from([127, 9, 9, 9], addr).and_then(|mut s| post(&mut s, &body)) {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(429) => limited.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut steady_codes = std::collections::BTreeMap::<u16, u32>::new();
    let phase = Instant::now();
    while phase.elapsed() < Duration::from_secs(10) {
        let t = Instant::now();
        let code = connect_from([127, 8, 8, 8], addr).and_then(|mut s| post(&mut s, &body)).unwrap_or(0);
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        *steady_codes.entry(code).or_default() += 1;
        std::thread::sleep(Duration::from_millis(100).saturating_sub(t.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |percent: usize| latencies[(latencies.len() - 1) * percent / 100];
    let secs = phase.elapsed().as_secs_f64();
    println!(
        "flood: one caller, 64 connections: {} ok ({:.1}/s), {} refused 429, {} other",
        flood_ok.load(Ordering::Relaxed),
        flood_ok.load(Ordering::Relaxed) as f64 / secs,
        flood_429.load(Ordering::Relaxed),
        flood_other.load(Ordering::Relaxed)
    );
    println!(
        "steady caller during the flood: {} requests, codes {steady_codes:?}, {:.1} ok/s, latency p50 {:.1} ms p99 {:.1} ms",
        latencies.len(),
        f64::from(steady_codes.get(&200).copied().unwrap_or(0)) / secs,
        pct(50),
        pct(99)
    );
    println!(
        "server RSS after the flood {:.1} MiB (VmHWM {:.1} MiB)",
        rss_mib(pid, "VmRSS:"),
        rss_mib(pid, "VmHWM:")
    );

    let ct = arcseal_crypto::hazmat::rsa_oaep_encrypt_session_key(key.public_key(), &label)?;
    let t = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(arcseal_crypto::hazmat::rsa_oaep_decrypt_session_key(&key, &label, &ct)?);
    }
    println!("raw RSA-4096 OAEP decryption in this run: {:.2} ms", t.elapsed().as_secs_f64() * 10.0);
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
