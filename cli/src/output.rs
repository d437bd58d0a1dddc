//! Rendering manifests (YAML as kubeseal writes it, or JSON) and writing files atomically: a temp file
//! in the target's directory, flushed, then renamed over the target. A failure leaves the target as it was.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// YAML documents separated by `---`.
    #[default]
    Yaml,
    /// One pretty-printed JSON object per document.
    Json,
}

impl Format {
    /// The format a file name implies (`.json`, `.yaml`, `.yml`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// `-o` if given, else what the output file's extension says, else YAML.
    pub fn choose(explicit: Option<Format>, output: Option<&Path>) -> Format {
        explicit.or_else(|| output.and_then(Format::from_path)).unwrap_or_default()
    }
}

/// Renders documents. The result may hold plaintext (unsealed Secrets), so it is wiped on drop.
pub fn render<T: Serialize>(documents: &[T], format: Format) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    for (i, doc) in documents.iter().enumerate() {
        match format {
            Format::Yaml => {
                if i > 0 {
                    out.push_str("---\n");
                }
                let options = serde_saphyr::ser_options! {
                    // Plain scalars for base64 values, as kubeseal writes them (no folded `>` blocks).
                    prefer_block_scalars: false,
                };
                let text = Zeroizing::new(
                    serde_saphyr::to_string_with_options(doc, options)
                        .map_err(|e| Error::Usage(format!("cannot render YAML: {e}")))?,
                );
                out.push_str(&text);
            }
            Format::Json => {
                let text = Zeroizing::new(
                    serde_json::to_string_pretty(doc)
                        .map_err(|e| Error::Usage(format!("cannot render JSON: {e}")))?,
                );
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Who may read a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Plaintext or private keys: always 0600, whatever mode an existing file had.
    Private,
    /// Public material (SealedSecrets, certificates, reports): an existing file keeps its mode, a new
    /// one gets 0644.
    Public,
}

/// Writes `contents` to `path` atomically (a temp file in the same directory, renamed over `path`).
/// A symbolic link or a non-regular file (a device, a FIFO) at `path` is refused: renaming over it
/// would replace the link or the device node, and taking its mode (`/dev/null` is 0666) would widen a
/// private file.
pub fn write_atomic(path: &Path, contents: &[u8], access: Access) -> Result<()> {
    let tmp = staged(path, contents, access)?;
    tmp.persist(path).map_err(|e| Error::io(path.display(), e.error))?;
    Ok(())
}

/// Writes several files, each as [`write_atomic`] does, all or none as far as the file system allows:
/// every file is written and flushed to its temp file before the first rename, so a full disk or a
/// refused target leaves every target as it was.
pub fn write_atomic_all(files: &[(&Path, &[u8])], access: Access) -> Result<()> {
    let staged = files
        .iter()
        .map(|(path, contents)| staged(path, contents, access).map(|tmp| (*path, tmp)))
        .collect::<Result<Vec<_>>>()?;
    for (path, tmp) in staged {
        tmp.persist(path).map_err(|e| Error::io(path.display(), e.error))?;
    }
    Ok(())
}

/// `contents` in a flushed temp file beside `path`, with the mode `path` will have.
fn staged(path: &Path, contents: &[u8], access: Access) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io = |e: std::io::Error| Error::io(path.display(), e);
    let existing = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Error::Usage(format!(
                "{}: is a symbolic link; refusing to write through it (give the link's target, or remove the link)",
                path.display()
            )));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(Error::Usage(format!(
                "{}: exists and is not a regular file; refusing to replace it (give a file name)",
                path.display()
            )));
        }
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let mut tmp = tempfile::Builder::new().prefix(".arcseal-").tempfile_in(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match (access, &existing) {
            (Access::Private, _) => 0o600,
            (Access::Public, Some(meta)) => meta.permissions().mode() & 0o7777,
            (Access::Public, None) => 0o644,
        };
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = (access, existing);
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    Ok(tmp)
}

/// Writes to `path` atomically, or to stdout when `path` is `None`.
pub fn emit(path: Option<&Path>, contents: &str) -> Result<()> {
    match path {
        Some(p) => write_atomic(p, contents.as_bytes(), Access::Public),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(contents.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| Error::io("<stdout>", e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_keeps_long_values_plain_and_quotes_true() {
        let long = "A".repeat(700);
        let text = render(&[json!({"a": long, "b": "true"}), json!({"c": 1})], Format::Yaml).unwrap();
        assert!(text.contains(&format!("a: {long}\n")), "{}", &text[..100]);
        assert!(text.contains("b: 'true'") || text.contains("b: \"true\""), "{}", text.as_str());
        assert_eq!(text.matches("---\n").count(), 1);
    }

    #[test]
    fn atomic_write_replaces_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.yaml");
        write_atomic(&path, b"one", Access::Private).unwrap();
        write_atomic(&path, b"two", Access::Public).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_even_over_a_wider_file_and_links_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_atomic(&path, b"new", Access::Private).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = write_atomic(&link, b"x", Access::Private).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let err = write_atomic(Path::new("/dev/null"), b"x", Access::Public).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn format_follows_flag_then_extension() {
        assert_eq!(Format::choose(None, Some(Path::new("x.json"))), Format::Json);
        assert_eq!(Format::choose(Some(Format::Yaml), Some(Path::new("x.json"))), Format::Yaml);
        assert_eq!(Format::choose(None, Some(Path::new("x"))), Format::Yaml);
    }
}
