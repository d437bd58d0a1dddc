//! `arcseal rotate`: re-seal every item of every SealedSecret under a path that is not sealed with the
//! target (newest) certificate, offline, with private keys (a key Secret backup is enough, so CI needs no
//! cluster access).
//!
//! Files are edited in place and only where a ciphertext changes: the old value's bytes are replaced by
//! the new value's, so comments, key order, quoting, other documents and formatting stay byte-identical
//! and a pull request shows exactly what rotated. Nothing is written until every item is planned; each
//! file is then replaced atomically (temp file + rename), so an interrupted run leaves every file either
//! old or new.
//!
//! `--rotate-values` also replaces the plaintext of items a policy marks as generated:
//! `arcseal.dev/generate: "password=32, token=64:hex"` on the SealedSecret (`item=LENGTH[:ALPHABET]`,
//! alphabets `alnum` (default), `hex`, `base64url`, `printable`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use arcseal_crypto::{Certificate, Fingerprint, KeyRing};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Location, Result};
use crate::manifest::{KIND, SEALING_KEY_ANNOTATION, SealedSecret};
use crate::output;
use crate::repo::ManifestFile;

/// Annotation naming the items `--rotate-values` regenerates, and how.
pub const GENERATE_ANNOTATION: &str = "arcseal.dev/generate";

/// What to do.
pub struct RotateOptions {
    /// Seal everything to this certificate's key.
    pub target: Certificate,
    /// Keys that open the current values; must include the target's key (offline mode).
    pub keys: KeyRing,
    /// Online mode: the controller's `/v1/rotate` re-seals instead of local keys. Whether an object is
    /// current is then read from its `arcseal.dev/sealed-with` annotation; objects without it are
    /// re-sealed on every run.
    pub controller: Option<crate::controller::Controller>,
    /// Regenerate items named in [`GENERATE_ANNOTATION`].
    pub rotate_values: bool,
}

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already sealed with the target key.
    Current,
    /// Same plaintext, sealed again with the target key.
    Resealed,
    /// New generated plaintext, sealed with the target key.
    Regenerated,
}

/// One item's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// File and line of the item.
    pub file: String,
    /// Line of the item (or of its document).
    pub line: usize,
    /// `namespace/name` of the SealedSecret.
    pub object: String,
    /// Item name.
    pub item: String,
    /// What was done.
    pub action: Action,
    /// Key that had sealed it (`sha256:<hex>`).
    pub sealed_with: String,
}

/// The planned edits: new file texts and the per-item report.
pub struct Plan {
    /// Target key (`sha256:<hex>`).
    pub target: String,
    /// Files whose text changes, with their new text.
    pub changes: Vec<(PathBuf, String)>,
    /// Every item seen.
    pub items: Vec<ItemReport>,
}

impl Plan {
    /// Items that change.
    pub fn changed(&self) -> impl Iterator<Item = &ItemReport> {
        self.items.iter().filter(|i| i.action != Action::Current)
    }

    /// A commit message listing what rotated.
    pub fn commit_message(&self) -> String {
        let changed: Vec<&ItemReport> = self.changed().collect();
        let mut msg = format!(
            "arcseal rotate: re-seal {} item(s) in {} file(s) to key {}\n\n",
            changed.len(),
            self.changes.len(),
            self.target
        );
        for i in changed {
            let what = if i.action == Action::Regenerated { "new value" } else { "re-sealed" };
            msg.push_str(&format!(
                "- {}:{} {} {} ({what}, was {})\n",
                i.file, i.line, i.object, i.item, i.sealed_with
            ));
        }
        msg
    }
}

/// One item to open and maybe re-seal.
struct Job {
    file: usize,
    doc: usize,
    object: String,
    item: String,
    line: usize,
    label: Vec<u8>,
    value: String,
    generate: Option<Generator>,
    /// The key the annotation says sealed it: tried first, so a stale item costs one RSA decryption.
    hint: Fingerprint,
}

/// One value to replace in a document's text.
struct Edit {
    old: String,
    new: String,
    at: Location,
}

/// What the controller re-sealed, per (file, document) in online mode; `None` when already current.
type Online = BTreeMap<(usize, usize), Option<BTreeMap<String, String>>>;

/// New texts of the files that change.
type Changes = Vec<(PathBuf, String)>;

/// What became of one item: the action, the new ciphertext if any, and the key that had sealed it.
type Outcome = (Action, Option<String>, String);

/// Plans the rotation of every SealedSecret in `paths`. Writes nothing.
pub fn plan(
    paths: &[PathBuf],
    options: &RotateOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Plan> {
    let target = options.target.fingerprint();
    if options.controller.is_none() && options.keys.get(&target).is_none() {
        return Err(Error::Usage(format!(
            "the target certificate's private key (sha256:{target}) is not among --private-key; rotate needs it \
             to tell which items are already current (pass the controller's whole key backup)"
        )));
    }
    let files = paths.iter().map(|p| ManifestFile::read(p)).collect::<Result<Vec<_>>>()?;
    let (jobs, online) = collect_jobs(&files, options, target)?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = jobs
        .par_iter()
        .map(|job| {
            let outcome = rotate_item(job, &files, &online, options, target)?;
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, jobs.len());
            Ok(outcome)
        })
        .collect::<Result<Vec<_>>>()?;
    let (changes, items) = edit_files(&files, &jobs, results, target)?;
    Ok(Plan { target: format!("sha256:{target}"), changes, items })
}

/// Reads every SealedSecret of `files` into one job per item (asking the controller to re-seal, in online mode).
fn collect_jobs(
    files: &[ManifestFile],
    options: &RotateOptions,
    target: Fingerprint,
) -> Result<(Vec<Job>, Online)> {
    let mut jobs = Vec::new();
    let mut online = Online::new();
    for (f, file) in files.iter().enumerate() {
        for d in 0..file.chunks.len() {
            let at = file.location(d);
            let doc = match file.parse(d) {
                Ok(doc) => doc,
                // Not every YAML file in a repo is a manifest we can read; only SealedSecrets matter.
                Err(_) if !file.text()[file.chunks[d].start..file.chunks[d].end].contains(KIND) => continue,
                Err(e) => return Err(e),
            };
            if doc.0.get("kind").and_then(Value::as_str) != Some(KIND) {
                continue;
            }
            let sealed = SealedSecret::from_value(&doc.0, &at)?;
            let generators = if options.rotate_values {
                generators(&sealed, &sealed.location(&at))?
            } else {
                BTreeMap::new()
            };
            if let Some(name) = generators.keys().find(|g| !sealed.spec.encrypted_data.contains_key(*g)) {
                return Err(Error::input(
                    &sealed.location(&at),
                    format!(
                        "{GENERATE_ANNOTATION} names item {name:?}, which is not in encryptedData; seal it once first"
                    ),
                ));
            }
            if let Some(controller) = &options.controller {
                let rotated = if sealed.sealed_with() == [target] {
                    None
                } else {
                    let modulus = Some(options.target.public_key().modulus_len());
                    Some(controller.rotate(&doc.0, &sealed.location(&at), modulus)?.spec.encrypted_data)
                };
                online.insert((f, d), rotated);
            }
            let hint =
                sealed.sealed_with().into_iter().find(|f| options.keys.get(f).is_some()).unwrap_or(target);
            let object = format!("{}/{}", sealed.namespace(), sealed.name());
            for (item, value) in &sealed.spec.encrypted_data {
                jobs.push(Job {
                    file: f,
                    doc: d,
                    object: object.clone(),
                    item: item.clone(),
                    line: file.line_of(d, Some("encryptedData"), item).unwrap_or(file.chunks[d].first_line),
                    label: sealed.encryption_label(),
                    value: value.clone(),
                    generate: generators.get(item).cloned(),
                    hint,
                });
            }
        }
    }
    Ok((jobs, online))
}

/// Decides one item: current, re-sealed (from the controller's answer or by opening it with the key backup), or
/// regenerated with a fresh value.
fn rotate_item(
    job: &Job,
    files: &[ManifestFile],
    online: &Online,
    options: &RotateOptions,
    target: Fingerprint,
) -> Result<Outcome> {
    let (namespace, name) = job.object.split_once('/').unwrap_or(("", &job.object));
    let at = Location::source(format!("{}:{}", files[job.file].path.display(), job.line))
        .document(job.doc + 1)
        .object(KIND, Some(namespace), Some(name))
        .item(&job.item);
    let encrypt = |source| Error::Encrypt { at: Box::new(at.clone()), source };
    let seal_fresh = |generator: &Generator| {
        let fresh = generator.generate().map_err(encrypt)?;
        arcseal_crypto::seal(options.target.public_key(), &job.label, fresh.as_bytes()).map_err(encrypt)
    };
    if let Some(rotated) = online.get(&(job.file, job.doc)) {
        let from = if job.hint == target && rotated.is_some() {
            "unknown".to_owned()
        } else {
            format!("sha256:{}", job.hint)
        };
        return Ok(match (&job.generate, rotated) {
            (Some(generator), _) => (Action::Regenerated, Some(seal_fresh(generator)?), from),
            (None, None) => (Action::Current, None, from),
            (None, Some(values)) => {
                let new = values
                    .get(&job.item)
                    .cloned()
                    .ok_or_else(|| Error::input(&at, "the controller's /v1/rotate answer lacks this item"))?;
                (Action::Resealed, Some(new), from)
            }
        });
    }
    let opened = options.keys.open_value(&job.label, &job.value, Some(&job.hint)).map_err(|_| {
        Error::input(
            &at,
            "no given key opens it (sealed with a key not in --private-key, or for another name, namespace or scope)",
        )
    })?;
    let from = format!("sha256:{}", opened.key);
    Ok(match &job.generate {
        Some(generator) => (Action::Regenerated, Some(seal_fresh(generator)?), from),
        None if opened.key == target => (Action::Current, None, from),
        None => {
            let sealed =
                arcseal_crypto::seal(options.target.public_key(), &job.label, opened.plaintext.as_bytes())
                    .map_err(encrypt)?;
            (Action::Resealed, Some(sealed), from)
        }
    })
}

/// Edits each changed document's text, replacing exactly the old values' bytes and the sealed-with annotation;
/// returns the new texts of the files that change and the report of every item.
fn edit_files(
    files: &[ManifestFile],
    jobs: &[Job],
    results: Vec<Outcome>,
    target: Fingerprint,
) -> Result<(Changes, Vec<ItemReport>)> {
    let mut items = Vec::with_capacity(jobs.len());
    // (file, document) -> the value replacements in it.
    let mut edits: BTreeMap<(usize, usize), Vec<Edit>> = BTreeMap::new();
    for (job, (action, new_value, from)) in jobs.iter().zip(results) {
        let file = &files[job.file];
        items.push(ItemReport {
            file: file.path.display().to_string(),
            line: job.line,
            object: job.object.clone(),
            item: job.item.clone(),
            action,
            sealed_with: from,
        });
        if let Some(new_value) = new_value {
            let at = Location::source(format!("{}:{}", file.path.display(), job.line)).item(&job.item);
            edits.entry((job.file, job.doc)).or_default().push(Edit {
                old: job.value.clone(),
                new: new_value,
                at,
            });
        }
    }
    let mut changes = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let docs: Vec<usize> = edits.keys().filter(|(ff, _)| *ff == f).map(|(_, d)| *d).collect();
        if docs.is_empty() {
            continue;
        }
        let mut text = String::with_capacity(file.text().len() + 64);
        let mut cursor = 0;
        for d in docs {
            let chunk = file.chunks[d];
            text.push_str(&file.text()[cursor..chunk.start]);
            let mut doc_text = file.text()[chunk.start..chunk.end].to_owned();
            for edit in &edits[&(f, d)] {
                replace_once(&mut doc_text, &edit.old, &edit.new, &edit.at)?;
            }
            update_annotation(&mut doc_text, target, &file.location(d))?;
            check_pinned(file, d, &doc_text, &edits[&(f, d)], target)?;
            text.push_str(&doc_text);
            cursor = chunk.end;
        }
        text.push_str(&file.text()[cursor..]);
        changes.push((file.path.clone(), text));
    }
    Ok((changes, items))
}

/// Writes every changed file atomically. Files are renamed one by one: an interruption leaves each
/// file wholly old or wholly new.
pub fn apply(plan: &Plan) -> Result<()> {
    for (path, text) in &plan.changes {
        output::write_atomic(path, text.as_bytes(), output::Access::Public)?;
    }
    Ok(())
}

fn replace_once(text: &mut String, old: &str, new: &str, at: &Location) -> Result<()> {
    match text.matches(old).count() {
        1 => {
            *text = text.replacen(old, new, 1);
            Ok(())
        }
        0 => Err(Error::input(
            at,
            "cannot edit this value in place: it is written across several lines; put it on one line and rerun",
        )),
        n => Err(Error::input(
            at,
            format!("cannot edit this value in place: the same ciphertext appears {n} times"),
        )),
    }
}

/// Proves the text edits changed exactly the value nodes that were decrypted: the edited document,
/// parsed again, must equal the original with those `encryptedData` items (and the sealed-with
/// annotation) replaced, and nothing else. A ciphertext that also appears elsewhere (a copy inside
/// `last-applied-configuration`, a comment) while its own node is folded over several lines would
/// otherwise have its copy edited and the real value left stale.
fn check_pinned(
    file: &ManifestFile,
    d: usize,
    new_text: &str,
    edits: &[Edit],
    target: Fingerprint,
) -> Result<()> {
    let at = file.location(d);
    let refuse = |why: &str| {
        Error::input(
            &at,
            format!(
                "cannot pin every rotated value to exactly one encryptedData node ({why}); put each value on one \
                 line and remove copies of it (e.g. the last-applied-configuration annotation), then rerun"
            ),
        )
    };
    let mut expected = file.parse(d)?;
    for edit in edits {
        let item = edit.at.item.as_deref().unwrap_or_default();
        match expected
            .0
            .pointer_mut(&format!("/spec/encryptedData/{}", item.replace('~', "~0").replace('/', "~1")))
        {
            Some(Value::String(v)) if *v == edit.old => *v = edit.new.clone(),
            _ => return Err(refuse(&format!("item {item:?} is not where it was read"))),
        }
    }
    if let Some(Value::String(v)) = expected
        .0
        .pointer_mut(&format!("/metadata/annotations/{}", SEALING_KEY_ANNOTATION.replace('/', "~1")))
    {
        *v = format!("sha256:{target}");
    }
    let docs =
        crate::input::documents(&crate::input::Source::from_bytes(&at.source, new_text.as_bytes().to_vec()))
            .map_err(|_| refuse("the edited text no longer parses"))?;
    match docs.as_slice() {
        [doc] if doc.value.0 == expected.0 => Ok(()),
        _ => Err(refuse("the edit changed something else than the value")),
    }
}

/// Points an existing `arcseal.dev/sealed-with` annotation at the target key (every item is sealed
/// with it after rotation). An absent annotation is not added: that would touch lines that did not change.
fn update_annotation(text: &mut String, target: Fingerprint, at: &Location) -> Result<()> {
    let key = format!("{SEALING_KEY_ANNOTATION}:");
    let Some(line_start) = text.find(&key) else { return Ok(()) };
    let value_start = line_start + key.len();
    let line_end = text[value_start..].find('\n').map_or(text.len(), |i| value_start + i);
    let raw = text[value_start..line_end].trim();
    let quote = raw.chars().next().filter(|c| *c == '"' || *c == '\'');
    let new = format!("sha256:{target}");
    let replacement = match quote {
        Some(q) => format!(" {q}{new}{q}"),
        None if raw.starts_with("sha256:") => format!(" {new}"),
        None => {
            return Err(Error::input(
                at,
                format!("{SEALING_KEY_ANNOTATION} has an unexpected form; fix or remove it"),
            ));
        }
    };
    text.replace_range(value_start..line_end, &replacement);
    Ok(())
}

/// How to make a new value for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    /// Characters.
    pub length: usize,
    /// Alphabet.
    pub alphabet: &'static [u8],
}

impl Generator {
    /// A new random value.
    pub fn generate(&self) -> std::result::Result<arcseal_crypto::Plaintext, arcseal_crypto::EncryptError> {
        arcseal_crypto::random_string(self.length, self.alphabet)
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const PRINTABLE: &[u8] =
    b"!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~";

/// Parses [`GENERATE_ANNOTATION`]: `item=LENGTH[:ALPHABET]`, comma-separated.
pub fn parse_generators(spec: &str) -> std::result::Result<BTreeMap<String, Generator>, String> {
    let mut out = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (item, rule) =
            part.split_once('=').ok_or_else(|| format!("{part:?}: expected item=LENGTH[:ALPHABET]"))?;
        let (length, alphabet) = rule.split_once(':').unwrap_or((rule, "alnum"));
        let length: usize = length
            .trim()
            .parse()
            .ok()
            .filter(|n| (8..=4096).contains(n))
            .ok_or_else(|| format!("{part:?}: LENGTH must be a number from 8 to 4096"))?;
        let alphabet = match alphabet.trim() {
            "alnum" => ALNUM,
            "hex" => HEX,
            "base64url" => BASE64URL,
            "printable" => PRINTABLE,
            other => {
                return Err(format!(
                    "{part:?}: unknown alphabet {other:?} (alnum, hex, base64url, printable)"
                ));
            }
        };
        if out.insert(item.trim().to_owned(), Generator { length, alphabet }).is_some() {
            return Err(format!("item {:?} is named twice", item.trim()));
        }
    }
    Ok(out)
}

fn generators(sealed: &SealedSecret, at: &Location) -> Result<BTreeMap<String, Generator>> {
    match sealed.metadata.annotations.as_ref().and_then(|a| a.get(GENERATE_ANNOTATION)) {
        None => Ok(BTreeMap::new()),
        Some(spec) => {
            parse_generators(spec).map_err(|e| Error::input(at, format!("{GENERATE_ANNOTATION}: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_policy_parses_and_refuses_nonsense() {
        let g = parse_generators("password=32, token=64:hex").unwrap();
        assert_eq!(g["password"], Generator { length: 32, alphabet: ALNUM });
        assert_eq!(g["token"].alphabet, HEX);
        assert!(parse_generators("password").unwrap_err().contains("item=LENGTH"));
        assert!(parse_generators("p=4").unwrap_err().contains("8 to 4096"));
        assert!(parse_generators("p=16:emoji").unwrap_err().contains("unknown alphabet"));
        assert!(parse_generators("p=16,p=20").unwrap_err().contains("twice"));
    }

    #[test]
    fn annotation_update_keeps_the_quoting() {
        let fp = Fingerprint([0xab; 32]);
        let at = Location::source("x");
        let mut plain = format!("  {SEALING_KEY_ANNOTATION}: sha256:00\n  other: 1\n");
        update_annotation(&mut plain, fp, &at).unwrap();
        assert_eq!(plain, format!("  {SEALING_KEY_ANNOTATION}: sha256:{fp}\n  other: 1\n"));
        let mut quoted = format!("  {SEALING_KEY_ANNOTATION}: 'sha256:00,sha256:11'\n");
        update_annotation(&mut quoted, fp, &at).unwrap();
        assert_eq!(quoted, format!("  {SEALING_KEY_ANNOTATION}: 'sha256:{fp}'\n"));
        let mut none = "a: 1\n".to_owned();
        update_annotation(&mut none, fp, &at).unwrap();
        assert_eq!(none, "a: 1\n");
    }

    #[test]
    fn a_copy_in_last_applied_configuration_is_never_edited_instead_of_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        // The value node is written with an escape; its plain copy sits in the annotation.
        let text = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: a\n  namespace: b\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"spec\":{\"encryptedData\":{\"p\":\"AAAABBBB\"}}}'\nspec:\n  encryptedData:\n    p: \"AAAA\\u0042BBB\"\n";
        std::fs::write(&path, text).unwrap();
        let file = ManifestFile::read(&path).unwrap();
        let mut doc_text = text.to_owned();
        let edit =
            Edit { old: "AAAABBBB".into(), new: "CCCC".into(), at: Location::source("s.yaml:10").item("p") };
        // What a plain text search finds is the copy:
        replace_once(&mut doc_text, "AAAABBBB", "CCCC", &edit.at).unwrap();
        let err = check_pinned(&file, 0, &doc_text, &[edit], Fingerprint([1; 32])).unwrap_err().to_string();
        assert!(err.contains("cannot pin"), "{err}");
    }

    #[test]
    fn replace_once_refuses_ambiguous_or_missing_values() {
        let at = Location::source("x");
        let mut t = "a: AAA\nb: BBB\n".to_owned();
        replace_once(&mut t, "AAA", "CCC", &at).unwrap();
        assert_eq!(t, "a: CCC\nb: BBB\n");
        assert!(replace_once(&mut t, "ZZZ", "Y", &at).unwrap_err().to_string().contains("several lines"));
        let mut twice = "a: Q\nb: Q\n".to_owned();
        assert!(replace_once(&mut twice, "Q", "R", &at).unwrap_err().to_string().contains("2 times"));
    }
}
