//! Running the real `arcseal` binary from the integration tests.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `arcseal args...` with `stdin`, isolated from the caller's certificate and kubeconfig.
pub fn arcseal(args: &[&str], stdin: Option<&[u8]>) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_arcseal")), args, stdin, &[])
}

/// Runs `arcseal args...` with extra environment variables.
#[allow(dead_code)]
pub fn arcseal_env(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_arcseal")), args, stdin, env)
}

/// Runs `arcseal args...` in `dir` (commands that look for `.arcseal.yaml` from the working directory).
#[allow(dead_code)]
pub fn arcseal_in(dir: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arcseal"));
    command.current_dir(dir);
    run(command, args, stdin, &[])
}

/// Runs the binary through a link named `kubeseal` (its kubeseal personality).
#[allow(dead_code)]
pub fn kubeseal(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    static LINK: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let link = LINK.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("arcseal-kubeseal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("kubeseal");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_arcseal"), &link).unwrap();
        link
    });
    run(Command::new(link), args, stdin, env)
}

fn run(mut command: Command, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    command
        .args(args)
        .env_remove("SEALED_SECRETS_CERT")
        .env("KUBECONFIG", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // The command may exit before reading its input (a refused certificate): a broken pipe is fine.
    let _ = pipe.write_all(stdin.unwrap_or_default());
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// One answer of [`FakeController`]: status, extra headers, body.
#[allow(dead_code)]
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP/1.1 server on 127.0.0.1 standing in for a controller (or a hostile one): each
/// request (method, path, body) is answered by `handler`. Lives until the process ends.
#[allow(dead_code)]
pub struct FakeController {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[allow(dead_code)]
impl FakeController {
    pub fn start(handler: impl Fn(&str, &str, &[u8]) -> Answer + Send + Sync + 'static) -> FakeController {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) =
                        (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = header.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        break;
                    }
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (status, headers, answer) = handler(&method, &path, &body);
                    let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", answer.len());
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&answer)).is_err() {
                        break;
                    }
                }
            }
        });
        FakeController { url, requests }
    }

    pub fn count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A temporary directory with a throwaway RSA-2048 key pair made by `arcseal keygen`: `key.pem`, `cert.pem` and
/// `key-secret.yaml` (the key as the controller's key Secret).
#[allow(dead_code)]
pub struct KeyDir {
    /// The directory; removed on drop.
    pub dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl KeyDir {
    pub fn new() -> KeyDir {
        let keys = KeyDir { dir: tempfile::tempdir().unwrap() };
        let (key, cert, secret) = (keys.path("key.pem"), keys.path("cert.pem"), keys.path("key-secret.yaml"));
        let args =
            ["keygen", "--bits", "2048", "--key-out", &key, "--cert-out", &cert, "--secret-out", &secret];
        let out = arcseal(&args, None);
        assert!(out.status.success(), "keygen failed: {}", String::from_utf8_lossy(&out.stderr));
        keys
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Writes `contents` to `name` (parent directories created); returns the path.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        if let Some(parent) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// `arcseal seal` of the Secret text `secret` with this directory's certificate: the SealedSecret's text.
    pub fn seal(&self, secret: &str) -> String {
        let input = self.write("in.yaml", secret);
        let out = arcseal(&["seal", "--cert", &self.path("cert.pem"), "-f", &input], None);
        assert!(out.status.success(), "seal failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The stdout of a run that must succeed (its stderr in the failure message).
#[allow(dead_code)]
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The stderr of a run that must fail with exit code 1 (its stdout in the failure message).
#[allow(dead_code)]
pub fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr.clone()).unwrap()
}
