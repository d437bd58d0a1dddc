//! Scopes: which SealedSecret name and namespace a value may be opened for, bound through the OAEP label.
//!
//! | scope          | label                 | annotation on the SealedSecret's own metadata        |
//! |----------------|-----------------------|------------------------------------------------------|
//! | strict         | `<namespace>/<name>`  | none                                                 |
//! | namespace-wide | `<namespace>`         | `sealedsecrets.bitnami.com/namespace-wide: "true"`   |
//! | cluster-wide   | empty                 | `sealedsecrets.bitnami.com/cluster-wide: "true"`     |
//!
//! Annotation values count only when exactly `"true"`; when both are set, cluster-wide wins. The scope of
//! a SealedSecret is read from its top-level metadata only, never from `spec.template` (CVE-2026-22728).

use std::fmt;
use std::str::FromStr;

/// Annotation that marks a SealedSecret as namespace-wide.
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// Annotation that marks a SealedSecret as cluster-wide.
pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";

/// The scope of a sealed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Bound to one name in one namespace (the default).
    #[default]
    Strict,
    /// Bound to a namespace; any name.
    NamespaceWide,
    /// Any name in any namespace.
    ClusterWide,
}

impl Scope {
    /// All scopes, in the order kubeseal lists them.
    pub const ALL: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

    /// The OAEP label for a value of this scope sealed for `namespace`/`name`.
    pub fn encryption_label(self, namespace: &str, name: &str) -> Vec<u8> {
        match self {
            Scope::Strict => format!("{namespace}/{name}").into_bytes(),
            Scope::NamespaceWide => namespace.as_bytes().to_vec(),
            Scope::ClusterWide => Vec::new(),
        }
    }

    /// The scope a SealedSecret declares through its top-level `metadata.annotations`.
    /// `annotation` looks one annotation up by key.
    pub fn from_annotations<'a>(annotation: impl Fn(&str) -> Option<&'a str>) -> Scope {
        if annotation(CLUSTER_WIDE_ANNOTATION) == Some("true") {
            Scope::ClusterWide
        } else if annotation(NAMESPACE_WIDE_ANNOTATION) == Some("true") {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }

    /// The one annotation (key, value) that declares this scope, if any.
    pub fn annotation(self) -> Option<(&'static str, &'static str)> {
        match self {
            Scope::Strict => None,
            Scope::NamespaceWide => Some((NAMESPACE_WIDE_ANNOTATION, "true")),
            Scope::ClusterWide => Some((CLUSTER_WIDE_ANNOTATION, "true")),
        }
    }

    /// The scope with what it binds, as errors name it: `strict (ns/name)`, `namespace-wide (ns)`, `cluster-wide`.
    pub fn describe(self, namespace: &str, name: &str) -> String {
        match self {
            Scope::Strict => format!("strict ({namespace}/{name})"),
            Scope::NamespaceWide => format!("namespace-wide ({namespace})"),
            Scope::ClusterWide => "cluster-wide".to_owned(),
        }
    }

    /// The name kubeseal uses for this scope on its command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope annotation sealed-secrets would read differently from what its author meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeAnnotationProblem {
    /// On the SealedSecret's own metadata with a value other than exactly `"true"`: read as absent.
    NotTrue {
        /// The annotation.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// Both scope annotations are `"true"`: cluster-wide wins.
    BothScopes,
    /// In `spec.template.metadata` but not (with that value) on the SealedSecret itself: ignored, since the scope
    /// is read from the SealedSecret's own metadata only.
    OnlyInTemplate {
        /// The annotation.
        key: &'static str,
    },
    /// In `spec.template.metadata` with the same value as on the SealedSecret: harmless (the Secret carries it).
    AlsoInTemplate {
        /// The annotation.
        key: &'static str,
    },
}

impl ScopeAnnotationProblem {
    /// Whether the object's author almost certainly meant another scope than the one the value is bound to.
    pub fn changes_the_scope(&self) -> bool {
        matches!(self, ScopeAnnotationProblem::NotTrue { .. } | ScopeAnnotationProblem::OnlyInTemplate { .. })
    }
}

impl fmt::Display for ScopeAnnotationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeAnnotationProblem::NotTrue { key, value } => write!(
                f,
                "annotation {key} is {value:?}; sealed-secrets honours exactly \"true\" and treats anything else as absent"
            ),
            ScopeAnnotationProblem::BothScopes => {
                f.write_str("both scope annotations are set; cluster-wide wins, remove the other")
            }
            ScopeAnnotationProblem::OnlyInTemplate { key } => write!(
                f,
                "{key} in spec.template is ignored: the scope is read from the SealedSecret's own metadata; move it to metadata.annotations and re-seal"
            ),
            ScopeAnnotationProblem::AlsoInTemplate { key } => write!(
                f,
                "{key} in spec.template has no effect on the scope (it is read from the SealedSecret's own metadata, where it is also set)"
            ),
        }
    }
}

/// The scope annotations of a SealedSecret as sealed-secrets reads them: `own` looks up the object's
/// `metadata.annotations`, `template` its `spec.template.metadata.annotations`.
pub fn scope_annotation_problems<'a, 'b>(
    own: impl Fn(&str) -> Option<&'a str>,
    template: impl Fn(&str) -> Option<&'b str>,
) -> Vec<ScopeAnnotationProblem> {
    let mut problems = Vec::new();
    let keys = [NAMESPACE_WIDE_ANNOTATION, CLUSTER_WIDE_ANNOTATION];
    for key in keys {
        if let Some(value) = own(key)
            && value != "true"
        {
            problems.push(ScopeAnnotationProblem::NotTrue { key, value: value.to_owned() });
        }
    }
    if keys.iter().all(|k| own(k) == Some("true")) {
        problems.push(ScopeAnnotationProblem::BothScopes);
    }
    for key in keys {
        match template(key) {
            None => {}
            Some(v) if own(key) == Some(v) && v == "true" => {
                problems.push(ScopeAnnotationProblem::AlsoInTemplate { key })
            }
            Some(_) => problems.push(ScopeAnnotationProblem::OnlyInTemplate { key }),
        }
    }
    problems
}

/// A scope name that is not `strict`, `namespace-wide` or `cluster-wide`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: use strict, namespace-wide or cluster-wide")]
pub struct ScopeParseError(pub String);

impl FromStr for Scope {
    type Err = ScopeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| ScopeParseError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn scope_of(pairs: &[(&str, &str)]) -> Scope {
        let map: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Scope::from_annotations(|k| map.get(k).map(String::as_str))
    }

    #[test]
    fn descriptions_name_what_the_scope_binds() {
        assert_eq!(Scope::Strict.describe("ns", "n"), "strict (ns/n)");
        assert_eq!(Scope::NamespaceWide.describe("ns", "n"), "namespace-wide (ns)");
        assert_eq!(Scope::ClusterWide.describe("ns", "n"), "cluster-wide");
    }

    #[test]
    fn labels_follow_the_spec() {
        assert_eq!(Scope::Strict.encryption_label("ns", "n"), b"ns/n");
        assert_eq!(Scope::NamespaceWide.encryption_label("ns", "n"), b"ns");
        assert!(Scope::ClusterWide.encryption_label("ns", "n").is_empty());
    }

    #[test]
    fn annotations_need_exactly_true_and_cluster_wide_wins() {
        assert_eq!(scope_of(&[]), Scope::Strict);
        assert_eq!(scope_of(&[(NAMESPACE_WIDE_ANNOTATION, "true")]), Scope::NamespaceWide);
        assert_eq!(scope_of(&[(NAMESPACE_WIDE_ANNOTATION, "True")]), Scope::Strict);
        assert_eq!(scope_of(&[(CLUSTER_WIDE_ANNOTATION, "yes")]), Scope::Strict);
        assert_eq!(
            scope_of(&[(NAMESPACE_WIDE_ANNOTATION, "true"), (CLUSTER_WIDE_ANNOTATION, "true")]),
            Scope::ClusterWide
        );
    }

    #[test]
    fn annotation_problems_follow_what_sealed_secrets_reads() {
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let check = |own: Pairs<'_>, template: Pairs<'_>| {
            scope_annotation_problems(
                |k| own.iter().find(|(key, _)| *key == k).map(|(_, v)| *v),
                |k| template.iter().find(|(key, _)| *key == k).map(|(_, v)| *v),
            )
        };
        assert!(check(&[], &[]).is_empty());
        assert!(check(&[(NAMESPACE_WIDE_ANNOTATION, "true")], &[]).is_empty());
        let yes = check(&[(CLUSTER_WIDE_ANNOTATION, "yes")], &[]);
        assert_eq!(
            yes,
            vec![ScopeAnnotationProblem::NotTrue { key: CLUSTER_WIDE_ANNOTATION, value: "yes".into() }]
        );
        assert!(yes[0].changes_the_scope());
        let only = check(&[], &[(NAMESPACE_WIDE_ANNOTATION, "true")]);
        assert_eq!(only, vec![ScopeAnnotationProblem::OnlyInTemplate { key: NAMESPACE_WIDE_ANNOTATION }]);
        assert!(only[0].changes_the_scope());
        let also = check(&[(NAMESPACE_WIDE_ANNOTATION, "true")], &[(NAMESPACE_WIDE_ANNOTATION, "true")]);
        assert_eq!(also, vec![ScopeAnnotationProblem::AlsoInTemplate { key: NAMESPACE_WIDE_ANNOTATION }]);
        assert!(!also[0].changes_the_scope());
        let both = check(&[(NAMESPACE_WIDE_ANNOTATION, "true"), (CLUSTER_WIDE_ANNOTATION, "true")], &[]);
        assert_eq!(both, vec![ScopeAnnotationProblem::BothScopes]);
        assert!(!both[0].changes_the_scope());
        // A template value that differs from the object's is ignored too.
        let differs = check(&[(CLUSTER_WIDE_ANNOTATION, "true")], &[(CLUSTER_WIDE_ANNOTATION, "false")]);
        assert_eq!(differs, vec![ScopeAnnotationProblem::OnlyInTemplate { key: CLUSTER_WIDE_ANNOTATION }]);
    }

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
            let from_annotation = scope_of(&scope.annotation().into_iter().collect::<Vec<_>>());
            assert_eq!(from_annotation, scope);
        }
        assert!("global".parse::<Scope>().unwrap_err().to_string().contains("namespace-wide"));
    }
}
