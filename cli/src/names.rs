//! Object names as the API server validates them (apimachinery's `IsDNS1123Subdomain` for Secret
//! names, `IsDNS1123Label` for namespaces). A name the API server would refuse is refused before
//! sealing: the SealedSecret could never be applied, and names with `/` would make the strict
//! scope's `namespace/name` label ambiguous.

/// Why `name` is not a DNS-1123 subdomain (lowercase alphanumerics, `-` and `.`, starting and ending
/// with an alphanumeric, at most 253 characters), or `None`.
pub fn subdomain_problem(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("is longer than 253 characters".into());
    }
    if name.split('.').all(label_chars_ok) {
        return None;
    }
    Some("must consist of lowercase letters, digits, '-' and '.', and start and end with a letter or digit (RFC 1123 subdomain)".into())
}

/// Why `name` is not a DNS-1123 label (lowercase alphanumerics and `-`, starting and ending with an
/// alphanumeric, at most 63 characters), or `None`.
pub fn label_problem(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("is longer than 63 characters".into());
    }
    if label_chars_ok(name) {
        return None;
    }
    Some("must consist of lowercase letters, digits and '-', and start and end with a letter or digit (RFC 1123 label)".into())
}

fn label_chars_ok(part: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = part.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|&b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_api_server() {
        for ok in ["db", "db-1", "a.b-c.d", "0", &"a".repeat(253)] {
            assert_eq!(subdomain_problem(ok), None, "{ok}");
        }
        for bad in ["", "a/b", "Bad Name!", "-a", "a-", "a..b", ".a", "A", &"a".repeat(254)] {
            assert!(subdomain_problem(bad).is_some(), "{bad}");
        }
        for ok in ["team-a", "x", &"a".repeat(63)] {
            assert_eq!(label_problem(ok), None, "{ok}");
        }
        for bad in ["a.b", "a/b", "", "Team", &"a".repeat(64)] {
            assert!(label_problem(bad).is_some(), "{bad}");
        }
    }
}
