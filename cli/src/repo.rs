//! A GitOps repository as `rotate` and `validate` see it: manifest files under a path, each split into
//! its YAML documents with their byte ranges and first lines, so problems point at `file:line` and edits
//! touch only the bytes of the values they change.

use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};
use crate::input::{self, Source, Wiped};

/// File names that may hold manifests.
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Every manifest file under `path` (or `path` itself when it is a file), sorted, skipping hidden
/// directories (`.git`) and symbolic links (a link could point outside the repository).
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path.display(), e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir.display(), e))?;
            let name = entry.file_name();
            let kind = entry.file_type().map_err(|e| Error::io(entry.path().display(), e))?;
            if name.to_string_lossy().starts_with('.') || kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && entry
                    .path()
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One YAML document of a file: its bytes `start..end` in the file text and the line it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset of the document's first byte.
    pub start: usize,
    /// Byte offset one past its last byte.
    pub end: usize,
    /// 1-based line of `start`.
    pub first_line: usize,
}

/// Splits YAML text at document markers (`---` and `...` at the start of a line; YAML forbids them
/// inside content there). JSON text is one chunk.
pub fn split_documents(text: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let (mut start, mut first_line) = (0, 1);
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker =
            |m: &str| bare == m || bare.strip_prefix(m).is_some_and(|rest| rest.starts_with([' ', '\t']));
        if marker("---") || marker("...") {
            chunks.push(Chunk { start, end: offset, first_line });
            // Content after `--- ` on the marker line belongs to the next document.
            start = offset + if bare.starts_with("---") { 3 } else { line.len() };
            // `start` is on the marker line itself after `---`, on the next line after `...`.
            first_line = i + 1 + usize::from(!bare.starts_with("---"));
        }
        offset += line.len();
    }
    chunks.push(Chunk { start, end: text.len(), first_line });
    chunks.retain(|c| {
        text[c.start..c.end].lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
    });
    chunks
}

/// A manifest file read whole, with its documents.
pub struct ManifestFile {
    /// Path as found.
    pub path: PathBuf,
    /// The text (wiped on drop: a repo may hold plain Secrets too).
    pub source: Source,
    /// Its non-empty documents.
    pub chunks: Vec<Chunk>,
}

impl ManifestFile {
    /// Reads and splits `path`.
    pub fn read(path: &Path) -> Result<ManifestFile> {
        let source = Source::read(Some(path))?;
        let text = std::str::from_utf8(&source.bytes)
            .map_err(|_| Error::input(&source.location(), "not UTF-8 text; manifests are UTF-8"))?;
        let chunks = split_documents(text);
        Ok(ManifestFile { path: path.to_path_buf(), source, chunks })
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        // Checked to be UTF-8 in `read`.
        std::str::from_utf8(&self.source.bytes).unwrap_or_default()
    }

    /// Where document `index` (0-based) is: `file:line, document n`, with the line of its first content.
    pub fn location(&self, index: usize) -> Location {
        let chunk = self.chunks[index];
        let text = &self.text()[chunk.start..chunk.end];
        let blank =
            text.lines().take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#')).count();
        Location::source(format!("{}:{}", self.path.display(), chunk.first_line + blank)).document(index + 1)
    }

    /// Parses document `index` with the same limits as every other input.
    pub fn parse(&self, index: usize) -> Result<Wiped> {
        let chunk = self.chunks[index];
        let text = &self.text()[chunk.start..chunk.end];
        let at = self.location(index);
        let mut docs = input::documents(&Source::from_bytes(&at.source, text.as_bytes().to_vec()))
            .map_err(|e| relocate(e, &at))?;
        match docs.len() {
            1 => Ok(docs.remove(0).value),
            _ => Err(Error::input(&at, "expected one document here")),
        }
    }

    /// 1-based line, in the file, of the first line in document `index` that starts with `key:`
    /// (after `after:` when given), for pointing problems at items.
    pub fn line_of(&self, index: usize, after: Option<&str>, key: &str) -> Option<usize> {
        let chunk = self.chunks[index];
        let text = &self.text()[chunk.start..chunk.end];
        let mut seen_after = after.is_none();
        let starts = |line: &str, k: &str| {
            let t = line.trim_start();
            t.strip_prefix(k)
                .or_else(|| t.strip_prefix(&format!("\"{k}\"")))
                .is_some_and(|r| r.starts_with(':'))
        };
        for (i, line) in text.lines().enumerate() {
            if !seen_after {
                seen_after = after.is_some_and(|a| starts(line, a));
                continue;
            }
            if starts(line, key) {
                return Some(chunk.first_line + i);
            }
        }
        None
    }
}

fn relocate(error: Error, at: &Location) -> Error {
    match error {
        Error::Input { message, .. } => Error::input(at, message),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<(&str, usize)> {
        split_documents(text).iter().map(|c| (&text[c.start..c.end], c.first_line)).collect()
    }

    #[test]
    fn splits_at_markers_with_first_lines() {
        let text = "a: 1\n---\nb: 2\nc: 3\n--- \n# only a comment\n---\nd: 4\n";
        assert_eq!(texts(text), vec![("a: 1\n", 1), ("\nb: 2\nc: 3\n", 2), ("\nd: 4\n", 7)]);
        assert_eq!(texts("---\nx: 1\n"), vec![("\nx: 1\n", 1)]);
        assert_eq!(texts("a: 1\n...\nb: 2\n"), vec![("a: 1\n", 1), ("b: 2\n", 3)]);
        assert_eq!(texts("{\"a\": 1}"), vec![("{\"a\": 1}", 1)]);
        // `---x` is content, not a marker.
        assert_eq!(texts("a: |\n  ---x\n").len(), 1);
    }

    #[test]
    fn finds_files_and_skips_hidden_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("apps/a")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        for f in ["apps/a/s.yaml", "apps/b.yml", "x.json", "README.md", ".git/c.yaml"] {
            std::fs::write(dir.path().join(f), "a: 1\n").unwrap();
        }
        let found: Vec<String> = manifest_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(found, vec!["apps/a/s.yaml", "apps/b.yml", "x.json"]);
    }

    #[test]
    fn item_lines_point_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(
            &path,
            "a: 1\n---\nkind: SealedSecret\nspec:\n  encryptedData:\n    user: AQA\n    pw: AQB\n",
        )
        .unwrap();
        let file = ManifestFile::read(&path).unwrap();
        assert_eq!(file.chunks.len(), 2);
        assert_eq!(file.line_of(1, Some("encryptedData"), "pw"), Some(7));
        assert_eq!(file.line_of(1, Some("encryptedData"), "user"), Some(6));
        assert!(file.location(1).to_string().ends_with("s.yaml:3, document 2"), "{}", file.location(1));
    }
}
