//! The one thing sealing needs from a kubeconfig without a cluster: the current context's namespace
//! (kubeseal's fallback when neither the Secret nor `-n` names one).

use std::path::PathBuf;

use serde_json::Value;

/// The namespace of the current context of `$KUBECONFIG` (first entry) or `~/.kube/config`;
/// `"default"` when there is no kubeconfig or it names none.
pub fn current_namespace() -> String {
    kubeconfig_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| namespace_of(&text))
        .unwrap_or_else(|| "default".to_owned())
}

fn kubeconfig_path() -> Option<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty());
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
}

/// The current context's namespace in kubeconfig YAML text.
pub fn namespace_of(text: &str) -> Option<String> {
    let config: Value = serde_saphyr::from_str(text).ok()?;
    let current = config.get("current-context")?.as_str()?;
    config
        .get("contexts")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(current))?
        .get("context")?
        .get("namespace")?
        .as_str()
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_contexts_namespace() {
        let text = "current-context: b\ncontexts:\n- name: a\n  context: {namespace: x}\n- name: b\n  context:\n    cluster: c\n    namespace: team-b\n";
        assert_eq!(namespace_of(text).as_deref(), Some("team-b"));
        assert_eq!(namespace_of("current-context: a\ncontexts: []\n"), None);
        assert_eq!(namespace_of("not: [valid"), None);
    }
}
