//! Syntax checks the CRD schema cannot express: RE2 regular expressions,
//! HTTP header names (RFC 7230 tokens) and Kubernetes label keys/values.

use std::sync::LazyLock;

use regex::Regex;

/// Why `pattern` is not an RE2 regex, or None if it is. The `regex` crate
/// implements RE2's syntax (no backreferences, no look-around), the
/// dialect Envoy evaluates.
pub fn regex_error(pattern: &str) -> Option<String> {
    match regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(_) => None,
        Err(regex::Error::Syntax(detail)) => Some(format!(
            "{pattern:?} is not a valid RE2 regular expression: {}",
            detail.lines().last().unwrap_or_default().trim()
        )),
        Err(regex::Error::CompiledTooBig(_)) => Some(format!(
            "{pattern:?} compiles to a program too large to evaluate per request: simplify it"
        )),
        Err(other) => Some(format!("{pattern:?} is not usable: {other}")),
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Why `name` is not an HTTP header name (RFC 7230 `token`), or None.
/// `allow_pseudo` admits HTTP/2 pseudo-headers such as `:authority`
/// (matchable, but not settable).
pub fn header_name_error(name: &str, allow_pseudo: bool) -> Option<String> {
    let token = match name.strip_prefix(':') {
        Some(rest) if allow_pseudo => rest,
        Some(_) => {
            return Some(format!("{name:?}: pseudo-headers cannot be set or removed"));
        }
        None => name,
    };
    if token.is_empty() {
        return Some(format!("{name:?} is not a header name: it is empty"));
    }
    token.chars().find(|c| !is_tchar(*c)).map(|c| {
        format!(
            "{name:?} is not a header name: {c:?} is not allowed (RFC 7230: letters, digits and !#$%&'*+-.^_`|~)"
        )
    })
}

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$").expect("static regex compiles")
});
static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static regex compiles")
});

/// Why `key` is not a Kubernetes label key (`[prefix/]name`), or None.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > 253 || !DNS_SUBDOMAIN.is_match(prefix))
    {
        return Some(format!(
            "label key {key:?}: prefix {prefix:?} must be a DNS subdomain (lowercase, e.g. example.com)"
        ));
    }
    if name.is_empty() || name.len() > 63 || !NAME.is_match(name) {
        return Some(format!(
            "label key {key:?}: name must be 1-63 characters of letters, digits, '-', '_', '.', starting and ending with a letter or digit"
        ));
    }
    None
}

/// Why `value` is not a Kubernetes label value, or None.
pub fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() || (value.len() <= 63 && NAME.is_match(value)) {
        None
    } else {
        Some(format!(
            "label value {value:?} must be at most 63 characters of letters, digits, '-', '_', '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_follow_re2() {
        for ok in ["^/api/v[0-9]+/.*", "(?i)foo", "a{2,3}", ""] {
            assert_eq!(regex_error(ok), None, "{ok}");
        }
        for bad in ["/api/(v1", "(a)\\1", "foo(?=bar)", "[z-a]", "*"] {
            assert!(regex_error(bad).is_some(), "{bad}");
        }
        let message = regex_error("(a").unwrap_or_default();
        assert!(message.contains("RE2"), "{message}");
    }

    #[test]
    fn header_names_are_tokens() {
        for ok in ["x-user", "X-Request-Id", "a.b_c~d"] {
            assert_eq!(header_name_error(ok, false), None, "{ok}");
        }
        assert_eq!(header_name_error(":authority", true), None);
        for bad in ["", "x user", "x:y", "é", "x(y)", "a\"b"] {
            assert!(header_name_error(bad, true).is_some(), "{bad:?}");
        }
        assert!(header_name_error(":authority", false).is_some());
        assert!(header_name_error(":", true).is_some());
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes() {
        for ok in ["app", "app.kubernetes.io/name", "a_b.c-d", "x/Y"] {
            assert_eq!(label_key_error(ok), None, "{ok}");
        }
        for bad in ["", "-app", "app-", "Example.com/x", "/x", "a/b/c", "a b"] {
            assert!(label_key_error(bad).is_some(), "{bad:?}");
        }
        let long = "a".repeat(64);
        assert!(label_key_error(&long).is_some());
        for ok in ["", "v1", "1.2.3", "A_b"] {
            assert_eq!(label_value_error(ok), None, "{ok}");
        }
        for bad in ["-v1", "v 1", "v1/", long.as_str()] {
            assert!(label_value_error(bad).is_some(), "{bad:?}");
        }
    }
}
