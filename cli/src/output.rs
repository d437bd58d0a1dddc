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

/// Writes `contents` to `path` atomically. An existing file keeps its permissions; a new one gets
/// `new_mode` (e.g. 0o600 for private keys) or the temp file's default 0o600 widened to 0o644.
pub fn write_atomic(path: &Path, contents: &[u8], new_mode: Option<u32>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io = |e: std::io::Error| Error::io(path.display(), e);
    let mut tmp = tempfile::Builder::new().prefix(".arcseal-").tempfile_in(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(_) => new_mode.unwrap_or(0o644),
        };
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = new_mode;
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Writes to `path` atomically, or to stdout when `path` is `None`.
pub fn emit(path: Option<&Path>, contents: &str) -> Result<()> {
    match path {
        Some(p) => write_atomic(p, contents.as_bytes(), None),
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
        write_atomic(&path, b"one", Some(0o600)).unwrap();
        write_atomic(&path, b"two", None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left behind");
    }

    #[test]
    fn format_follows_flag_then_extension() {
        assert_eq!(Format::choose(None, Some(Path::new("x.json"))), Format::Json);
        assert_eq!(Format::choose(Some(Format::Yaml), Some(Path::new("x.json"))), Format::Yaml);
        assert_eq!(Format::choose(None, Some(Path::new("x"))), Format::Yaml);
    }
}
