//! Names Weft derives from user input: revision names are DNS labels because
//! they become parts of object names, labels (`istio.io/rev`) and hostnames.

/// The largest a DNS label (RFC 1123) may be.
pub const DNS_LABEL_MAX: usize = 63;

/// CEL rule: `self` (a string) is an RFC 1123 DNS label.
pub const DNS_LABEL_CEL: &str =
    "size(self) <= 63 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";

/// Whether `name` is an RFC 1123 DNS label: lower-case alphanumerics and `-`,
/// starting and ending alphanumeric, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= DNS_LABEL_MAX
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// The revision name for a mesh version: `1.24.3` → `1-24-3`, `v1.25.0-rc.1`
/// → `1-25-0-rc-1`. Returns `None` when the result would not be a DNS label.
pub fn revision_for_version(version: &str) -> Option<String> {
    let name: String = version
        .trim_start_matches('v')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    is_dns_label(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "1-24-3", "stable", "canary-2", &"x".repeat(63)] {
            assert!(is_dns_label(ok), "{ok} should be a DNS label");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad} should not be a DNS label");
        }
    }

    #[test]
    fn revisions_from_versions() {
        assert_eq!(revision_for_version("1.24.3").as_deref(), Some("1-24-3"));
        assert_eq!(
            revision_for_version("v1.25.0-rc.1").as_deref(),
            Some("1-25-0-rc-1")
        );
        assert_eq!(
            revision_for_version("1.2.3+build").as_deref(),
            Some("1-2-3-build")
        );
        assert_eq!(revision_for_version("..."), None);
    }
}
