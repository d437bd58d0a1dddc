//! The repository config, `.arcseal.yaml`: which cluster a path of a GitOps repository belongs to,
//! and where that cluster's sealing certificate is pinned. Found like `.git`: in the directory of the
//! file being written (or the working directory) or the nearest one above it.
//!
//! ```yaml
//! version: 1                      # required; the only version so far
//! clusters:
//!   dev:                          # a DNS label: it also fills `{cluster}` in output paths
//!     cert: clusters/dev/sealed-secrets-cert.pem    # relative to this file, inside the repository
//!     paths: ["apps/dev/**"]      # globs relative to this file: `*`, `?`, `**` (a whole segment)
//!     context: kind-dev           # optional: kubeconfig context, for `arcseal cert --pin/--check`
//!     controllerName: sealed-secrets-controller     # optional (else --controller-name)
//!     controllerNamespace: kube-system              # optional (else --controller-namespace)
//! ```
//!
//! Unknown fields, duplicate keys and a path two clusters could both claim are errors: a file must
//! never be sealed for, or checked against, a cluster by accident of ordering.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// The config's file name.
pub const FILE_NAME: &str = ".arcseal.yaml";
/// The schema version this build reads.
pub const VERSION: u32 = 1;
/// A config is a few lines; anything bigger is not one.
const MAX_CONFIG_BYTES: u64 = 256 << 10;
/// Bounds on the overlap check, which compares every pair of globs of different clusters in time
/// proportional to the product of their lengths: far above any real repository, far below a hang.
const MAX_GLOBS: usize = 128;
const MAX_GLOB_CHARS: usize = 128;

/// Why a repository config cannot be used. Every message names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid YAML, or not the schema (unknown field, wrong type, duplicate key).
    #[error("{file}: {message}")]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Two clusters' globs can match the same path.
    #[error(
        "{file}: clusters {first} and {second} both match paths such as {example:?}; a path must belong to \
         one cluster: narrow one of the globs"
    )]
    Overlap {
        /// The config file.
        file: PathBuf,
        /// One cluster and its glob: `dev (apps/**)`.
        first: String,
        /// The other cluster and its glob.
        second: String,
        /// A path both match.
        example: String,
    },
    /// `--for-cluster` names a cluster the config does not have.
    #[error("{file}: no cluster {name:?}; the clusters are: {known}")]
    UnknownCluster {
        /// The config file.
        file: PathBuf,
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// No config in the directory or above.
    #[error(
        "no {FILE_NAME} in {} or any directory above it; create one at the repository root (see deploy/README.md)",
        start.display()
    )]
    NotFound {
        /// Where the search started.
        start: PathBuf,
    },
}

/// The file as written; camelCase like the Kubernetes objects next to it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<u32>,
    clusters: BTreeMap<String, RawCluster>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCluster {
    cert: String,
    paths: Vec<String>,
    context: Option<String>,
    controller_name: Option<String>,
    controller_namespace: Option<String>,
}

/// A loaded, checked config.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    /// The config file.
    pub file: PathBuf,
    /// Its directory: certificate paths and globs are relative to it.
    pub root: PathBuf,
    /// The clusters by name.
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// One cluster of the config.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Its name.
    pub name: String,
    /// The pinned certificate (absolute: the root joined with the configured path).
    pub cert: PathBuf,
    /// The globs, as written.
    pub paths: Vec<String>,
    globs: Vec<Glob>,
    /// Kubeconfig context that reaches the cluster.
    pub context: Option<String>,
    /// The controller's Service name, when not the default.
    pub controller_name: Option<String>,
    /// The controller's namespace, when not the default.
    pub controller_namespace: Option<String>,
}

impl RepoConfig {
    /// The config in `start` (a directory, made absolute) or the nearest directory above it.
    pub fn discover(start: &Path) -> Result<Option<RepoConfig>, ConfigError> {
        let start = absolute(start);
        for dir in start.ancestors() {
            let file = dir.join(FILE_NAME);
            if file.is_file() {
                return RepoConfig::load(&file).map(Some);
            }
        }
        Ok(None)
    }

    /// [`RepoConfig::discover`], where no config is an error.
    pub fn require(start: &Path) -> Result<RepoConfig, ConfigError> {
        RepoConfig::discover(start)?.ok_or_else(|| ConfigError::NotFound { start: absolute(start) })
    }

    /// Reads and checks the config at `file`.
    pub fn load(file: &Path) -> Result<RepoConfig, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read { file: file.to_path_buf(), source };
        let mut text = String::new();
        std::fs::File::open(file)
            .map_err(read)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(invalid(file, "larger than 256 KiB; that is not a repository config"));
        }
        RepoConfig::parse(&absolute(file), &text)
    }

    /// Checks the text of a config that lives at `file`.
    pub fn parse(file: &Path, text: &str) -> Result<RepoConfig, ConfigError> {
        let options = serde_saphyr::options! { strict_booleans: true };
        let raw: RawConfig = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| invalid(file, format!("{e} (fields: version, clusters.<name>.{{cert, paths, context, controllerName, controllerNamespace}})")))?;
        match raw.version {
            Some(VERSION) => {}
            Some(v) => {
                return Err(invalid(
                    file,
                    format!(
                        "version {v} is not supported by this arcseal (it reads version {VERSION}); upgrade arcseal"
                    ),
                ));
            }
            None => return Err(invalid(file, format!("no version; add `version: {VERSION}` at the top"))),
        }
        if raw.clusters.is_empty() {
            return Err(invalid(file, "no clusters; add at least one under `clusters:`"));
        }
        if raw.clusters.values().map(|c| c.paths.len()).sum::<usize>() > MAX_GLOBS {
            return Err(invalid(
                file,
                format!("more than {MAX_GLOBS} path globs; use `**` to cover directories"),
            ));
        }
        let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut clusters = BTreeMap::new();
        for (name, c) in raw.clusters {
            clusters.insert(name.clone(), cluster(file, &root, name, c)?);
        }
        check_overlaps(file, &clusters)?;
        Ok(RepoConfig { file: file.to_path_buf(), root, clusters })
    }

    /// The cluster called `name`.
    pub fn cluster(&self, name: &str) -> Result<&ClusterConfig, ConfigError> {
        self.clusters.get(name).ok_or_else(|| ConfigError::UnknownCluster {
            file: self.file.clone(),
            name: name.to_owned(),
            known: self.clusters.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The cluster whose globs match `path` (relative to the working directory or absolute), if any.
    /// At most one can: [`RepoConfig::parse`] refuses overlapping globs.
    pub fn cluster_for(&self, path: &Path) -> Option<&ClusterConfig> {
        let relative = self.relative(path)?;
        self.clusters.values().find(|c| c.globs.iter().any(|g| g.matches(&relative)))
    }

    /// `path` relative to the root with `/` separators, or `None` outside the repository.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let rest = absolute(path).strip_prefix(&self.root).ok()?.to_path_buf();
        let parts: Vec<String> =
            rest.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        Some(parts.join("/"))
    }
}

fn invalid(file: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file: file.to_path_buf(), message: message.into() }
}

fn cluster(file: &Path, root: &Path, name: String, raw: RawCluster) -> Result<ClusterConfig, ConfigError> {
    if let Some(why) = crate::names::label_problem(&name) {
        return Err(invalid(
            file,
            format!(
                "cluster name {name:?} {why}; use a DNS label such as `prod-eu` (it fills `{{cluster}}` in paths)"
            ),
        ));
    }
    let cert = inside(&raw.cert).ok_or_else(|| {
        invalid(
            file,
            format!(
                "clusters.{name}.cert {:?} must be a path inside the repository, relative to {FILE_NAME} \
                 (no leading `/`, no `..`)",
                raw.cert
            ),
        )
    })?;
    if raw.paths.is_empty() {
        return Err(invalid(
            file,
            format!(
                "clusters.{name}.paths is empty; list the globs of its manifests, e.g. [\"apps/{name}/**\"]"
            ),
        ));
    }
    let globs = raw
        .paths
        .iter()
        .map(|p| Glob::parse(p).map_err(|why| invalid(file, format!("clusters.{name}.paths: {p:?} {why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    for (field, value) in [
        ("context", &raw.context),
        ("controllerName", &raw.controller_name),
        ("controllerNamespace", &raw.controller_namespace),
    ] {
        if value.as_deref() == Some("") {
            return Err(invalid(
                file,
                format!("clusters.{name}.{field} is empty; remove it to use the default"),
            ));
        }
    }
    Ok(ClusterConfig {
        cert: root.join(cert),
        name,
        paths: raw.paths,
        globs,
        context: raw.context,
        controller_name: raw.controller_name,
        controller_namespace: raw.controller_namespace,
    })
}

/// A relative path that stays inside the directory it is relative to.
fn inside(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let ok =
        !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    ok.then(|| p.to_path_buf())
}

fn check_overlaps(file: &Path, clusters: &BTreeMap<String, ClusterConfig>) -> Result<(), ConfigError> {
    let all: Vec<&ClusterConfig> = clusters.values().collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            for (ga, pa) in a.globs.iter().zip(&a.paths) {
                for (gb, pb) in b.globs.iter().zip(&b.paths) {
                    if let Some(example) = ga.common_path(gb) {
                        return Err(ConfigError::Overlap {
                            file: file.to_path_buf(),
                            first: format!("{} ({pa})", a.name),
                            second: format!("{} ({pb})", b.name),
                            example,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// `path` made absolute (against the working directory) and with `.` and `..` resolved by name: the
/// file being written may not exist yet, so nothing is resolved on disk.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// What one step of a glob consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// This character.
    Char(char),
    /// Any character but `/` (`*`, `?`).
    NonSlash,
    /// Any character (`**`).
    Any,
}

impl Class {
    fn admits(self, c: char) -> bool {
        match self {
            Class::Char(x) => x == c,
            Class::NonSlash => c != '/',
            Class::Any => true,
        }
    }

    /// A character both classes admit, if any.
    fn meet(self, other: Class) -> Option<char> {
        match (self, other) {
            (Class::Char(a), b) | (b, Class::Char(a)) => b.admits(a).then_some(a),
            _ => Some('x'),
        }
    }
}

/// A path glob compiled to a small NFA: state `i` has character steps and empty steps; the last state
/// accepts. Matching and the overlap check both walk it, so they cannot disagree.
#[derive(Debug, Clone)]
struct Glob {
    steps: Vec<Vec<(Class, usize)>>,
    empty: Vec<Vec<usize>>,
}

impl Glob {
    fn parse(pattern: &str) -> Result<Glob, String> {
        if pattern.chars().count() > MAX_GLOB_CHARS {
            return Err(format!("is longer than {MAX_GLOB_CHARS} characters; use `*` or `**`"));
        }
        if pattern.is_empty() || pattern.starts_with('/') {
            return Err("must be a relative path such as \"apps/dev/**\"".into());
        }
        if let Some(c) = pattern.chars().find(|c| matches!(c, '[' | ']' | '{' | '}' | '\\' | '!')) {
            return Err(format!(
                "uses {c:?}, which globs here do not support (only `*`, `?`, `**`); list each path instead"
            ));
        }
        let mut g = Glob { steps: vec![Vec::new()], empty: vec![Vec::new()] };
        let segments: Vec<&str> = pattern.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            match *segment {
                "" | "." | ".." => {
                    return Err("has an empty, `.` or `..` segment; write the path plainly".into());
                }
                "**" if last => {
                    // One or more characters of anything: everything below the directory.
                    let s = g.push();
                    g.step(s - 1, Class::Any, s);
                    g.step(s, Class::Any, s);
                }
                "**" => {
                    // Zero or more whole directories, each ending in `/`.
                    let start = g.last();
                    let inner = g.push();
                    let end = g.push();
                    g.empty[start].push(end);
                    g.step(start, Class::Any, inner);
                    g.step(inner, Class::Any, inner);
                    g.step(inner, Class::Char('/'), end);
                }
                s if s.contains("**") => {
                    return Err(
                        "uses `**` inside a segment; `**` must be a whole segment (\"apps/**/db.yaml\")"
                            .into(),
                    );
                }
                s => {
                    for c in s.chars() {
                        let from = g.last();
                        match c {
                            '*' => {
                                let to = g.push();
                                g.empty[from].push(to);
                                g.step(from, Class::NonSlash, from);
                            }
                            '?' => {
                                let to = g.push();
                                g.step(from, Class::NonSlash, to);
                            }
                            c => {
                                let to = g.push();
                                g.step(from, Class::Char(c), to);
                            }
                        }
                    }
                    if !last {
                        let from = g.last();
                        let to = g.push();
                        g.step(from, Class::Char('/'), to);
                    }
                }
            }
        }
        Ok(g)
    }

    fn push(&mut self) -> usize {
        self.steps.push(Vec::new());
        self.empty.push(Vec::new());
        self.steps.len() - 1
    }

    fn last(&self) -> usize {
        self.steps.len() - 1
    }

    fn step(&mut self, from: usize, class: Class, to: usize) {
        self.steps[from].push((class, to));
    }

    /// The states reachable from `states` by empty steps.
    fn closure(&self, states: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut seen = vec![false; self.steps.len()];
        let mut stack: Vec<usize> = states.into_iter().collect();
        while let Some(s) = stack.pop() {
            if !std::mem::replace(&mut seen[s], true) {
                stack.extend(&self.empty[s]);
            }
        }
        (0..seen.len()).filter(|&s| seen[s]).collect()
    }

    fn matches(&self, path: &str) -> bool {
        let mut states = self.closure([0]);
        for c in path.chars() {
            let next: Vec<usize> = states
                .iter()
                .flat_map(|&s| self.steps[s].iter().filter(|(class, _)| class.admits(c)).map(|&(_, to)| to))
                .collect();
            if next.is_empty() {
                return false;
            }
            states = self.closure(next);
        }
        states.contains(&self.last())
    }

    /// A path both globs match, if there is one: a breadth-first walk of the product of the two NFAs.
    fn common_path(&self, other: &Glob) -> Option<String> {
        let (n, m) = (self.steps.len(), other.steps.len());
        let mut from: Vec<Option<(usize, char)>> = vec![None; n * m];
        let mut seen = vec![false; n * m];
        let mut queue = VecDeque::new();
        let start_pairs = |a: Vec<usize>, b: Vec<usize>| -> Vec<(usize, usize)> {
            a.iter().flat_map(|&x| b.iter().map(move |&y| (x, y))).collect()
        };
        for (a, b) in start_pairs(self.closure([0]), other.closure([0])) {
            seen[a * m + b] = true;
            queue.push_back((a, b));
        }
        while let Some((a, b)) = queue.pop_front() {
            if a == self.last() && b == other.last() {
                let mut path = Vec::new();
                let mut at = a * m + b;
                while let Some((prev, c)) = from[at] {
                    path.push(c);
                    at = prev;
                }
                return Some(path.into_iter().rev().collect());
            }
            for &(ca, ta) in &self.steps[a] {
                for &(cb, tb) in &other.steps[b] {
                    let Some(c) = ca.meet(cb) else { continue };
                    for (x, y) in start_pairs(self.closure([ta]), other.closure([tb])) {
                        if !std::mem::replace(&mut seen[x * m + y], true) {
                            from[x * m + y] = Some((a * m + b, c));
                            queue.push_back((x, y));
                        }
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn glob(p: &str) -> Glob {
        Glob::parse(p).unwrap()
    }

    #[test]
    fn globs_match_as_gitignore_users_expect() {
        let g = glob("apps/dev/**");
        assert!(g.matches("apps/dev/db.yaml") && g.matches("apps/dev/a/b/db.yaml"));
        assert!(!g.matches("apps/dev") && !g.matches("apps/devx/db.yaml") && !g.matches("apps/prod/db.yaml"));
        let g = glob("apps/**/dev/*.yaml");
        assert!(g.matches("apps/dev/x.yaml") && g.matches("apps/a/b/dev/x.yaml"));
        assert!(!g.matches("apps/dev/a/x.yaml") && !g.matches("apps/dev/x.json"));
        let g = glob("**/prod-?.yaml");
        assert!(g.matches("prod-1.yaml") && g.matches("a/b/prod-2.yaml") && !g.matches("prod-12.yaml"));
    }

    #[test]
    fn overlaps_are_found_with_an_example_and_disjoint_globs_pass() {
        assert_eq!(glob("apps/dev/**").common_path(&glob("apps/prod/**")), None);
        assert_eq!(glob("apps/*/db.yaml").common_path(&glob("apps/dev/*.json")), None);
        let example = glob("apps/**").common_path(&glob("apps/prod/*.yaml")).unwrap();
        assert!(glob("apps/**").matches(&example) && glob("apps/prod/*.yaml").matches(&example), "{example}");
        let example = glob("**/db.yaml").common_path(&glob("apps/dev/**")).unwrap();
        assert_eq!(example, "apps/dev/db.yaml");
    }

    #[test]
    fn bad_globs_say_why() {
        for (p, why) in [
            ("/apps/**", "relative"),
            ("apps/[ab]/x", "only `*`"),
            ("apps/../x", "`..`"),
            ("apps/a**/x", "whole segment"),
            ("apps//x", "empty"),
        ] {
            let err = Glob::parse(p).unwrap_err();
            assert!(err.contains(why), "{p}: {err}");
        }
    }

    const THREE: &str = "version: 1\nclusters:\n  dev:\n    cert: clusters/dev/cert.pem\n    paths: [\"apps/dev/**\"]\n  staging:\n    cert: clusters/staging/cert.pem\n    paths: [\"apps/staging/**\"]\n    context: kind-staging\n  prod:\n    cert: clusters/prod/cert.pem\n    paths: [\"apps/prod/**\", \"clusters/prod/*.yaml\"]\n";

    #[test]
    fn a_three_cluster_config_routes_each_path() {
        let c = RepoConfig::parse(Path::new("/repo/.arcseal.yaml"), THREE).unwrap();
        assert_eq!(c.cluster_for(Path::new("/repo/apps/staging/x/db.yaml")).unwrap().name, "staging");
        assert_eq!(c.cluster_for(Path::new("/repo/clusters/prod/a.yaml")).unwrap().name, "prod");
        assert!(c.cluster_for(Path::new("/repo/apps/base/db.yaml")).is_none());
        assert!(c.cluster_for(Path::new("/elsewhere/apps/dev/db.yaml")).is_none());
        assert_eq!(c.cluster("dev").unwrap().cert, Path::new("/repo/clusters/dev/cert.pem"));
        assert_eq!(c.cluster("staging").unwrap().context.as_deref(), Some("kind-staging"));
        let err = c.cluster("qa").unwrap_err().to_string();
        assert!(err.contains("/repo/.arcseal.yaml") && err.contains("dev, prod, staging"), "{err}");
    }

    #[test]
    fn bad_configs_name_the_file_and_the_fix() {
        let file = Path::new("/repo/.arcseal.yaml");
        for (text, want) in [
            (THREE.replace("version: 1\n", ""), "add `version: 1`"),
            (THREE.replace("version: 1", "version: 2"), "upgrade arcseal"),
            (THREE.replace("context:", "kontext:"), "kontext"),
            (THREE.replace("apps/staging/**", "apps/**"), "narrow one of the globs"),
            (THREE.replace("clusters/dev/cert.pem", "../dev.pem"), "inside the repository"),
            (THREE.replace("  dev:", "  Dev_1:"), "DNS label"),
            (THREE.replace("  staging:", "  dev:"), "duplicate"),
            ("version: 1\nclusters: {}\n".to_owned(), "at least one"),
        ] {
            let err = RepoConfig::parse(file, &text).unwrap_err().to_string();
            assert!(err.starts_with("/repo/.arcseal.yaml: "), "{err}");
            assert!(err.to_lowercase().contains(&want.to_lowercase()), "want {want:?} in: {err}");
        }
    }

    fn pattern() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            Just("**".to_owned()),
            Just("*".to_owned()),
            "[ab]{1,2}",
            "[ab?*]{1,3}".prop_filter("no ** in a segment", |s| !s.contains("**")),
        ];
        prop::collection::vec(segment, 1..4).prop_map(|s| s.join("/"))
    }

    proptest! {
        /// Any text, and any config-shaped text, gives a config or an error naming the file; never a panic.
        #[test]
        fn parse_never_panics(
            text in ".{0,200}",
            name in "[a-z-]{0,8}",
            globs in prop::collection::vec("[a-z*?/.]{0,12}", 0..4),
        ) {
            let file = Path::new("/r/.arcseal.yaml");
            if let Err(e) = RepoConfig::parse(file, &text) {
                prop_assert!(e.to_string().starts_with("/r/.arcseal.yaml: "), "{e}");
            }
            let config = format!("version: 1\nclusters:\n  {name:?}:\n    cert: c.pem\n    paths: {globs:?}\n");
            if let Ok(c) = RepoConfig::parse(file, &config) {
                for g in &globs {
                    let _ = c.cluster_for(&Path::new("/r").join(g));
                }
            }
        }

        /// The overlap check agrees with matching: an example matches both globs, and no path of
        /// a small alphabet matches both when it finds none.
        #[test]
        fn overlap_agrees_with_matching(a in pattern(), b in pattern(), paths in prop::collection::vec("[ab/]{1,6}", 0..40)) {
            let (ga, gb) = (glob(&a), glob(&b));
            match ga.common_path(&gb) {
                Some(example) => prop_assert!(ga.matches(&example) && gb.matches(&example), "{example}"),
                None => for p in &paths {
                    prop_assert!(!(ga.matches(p) && gb.matches(p)), "{p} matches {a} and {b}");
                },
            }
        }
    }
}
