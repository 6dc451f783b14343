//! What a client subscribed to for one type: everything (wildcard) and/or
//! resources by name. Follows the xDS rules: a first request with no names
//! is a (legacy) wildcard subscription; `*` subscribes to everything
//! explicitly; proxyless gRPC clients subscribe by name.

use std::collections::BTreeSet;

pub const WILDCARD: &str = "*";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Everything of the type, whatever `names` says.
    pub wildcard: bool,
    /// Wildcard because the first request named nothing (it stays wildcard
    /// until the client names resources).
    legacy_wildcard: bool,
    pub names: BTreeSet<String>,
}

impl Subscription {
    /// From the names of the first request for a type.
    pub fn first(names: &[String]) -> Self {
        let mut s = Self {
            legacy_wildcard: names.is_empty(),
            ..Self::default()
        };
        s.add(names);
        s.wildcard |= s.legacy_wildcard;
        s
    }

    /// State of the world: every request carries the full list of names.
    /// Returns whether the subscription changed.
    pub fn replace(&mut self, names: &[String]) -> bool {
        let before = self.clone();
        if names.is_empty() && self.legacy_wildcard {
            return false;
        }
        self.legacy_wildcard = false;
        self.wildcard = false;
        self.names.clear();
        self.add(names);
        *self != before
    }

    /// Delta: names added. Returns the ones newly subscribed (`*` included).
    pub fn add(&mut self, names: &[String]) -> Vec<String> {
        let mut added = Vec::new();
        for n in names {
            if n == WILDCARD {
                if !self.wildcard {
                    self.wildcard = true;
                    added.push(n.clone());
                }
            } else if self.names.insert(n.clone()) {
                added.push(n.clone());
            }
        }
        added
    }

    /// Delta: names removed (`*` ends the wildcard subscription).
    pub fn remove(&mut self, names: &[String]) {
        for n in names {
            if n == WILDCARD {
                self.wildcard = false;
                self.legacy_wildcard = false;
            } else {
                self.names.remove(n);
            }
        }
    }

    /// Whether a resource named `name` is wanted.
    pub fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_request_rules() {
        // (names of the first request, wildcard?, wants "x"?, wants "a"?)
        let table = [
            (v(&[]), true, true, true),
            (v(&["*"]), true, true, true),
            (v(&["a"]), false, false, true),
            (v(&["*", "a"]), true, true, true),
        ];
        for (names, wildcard, wants_x, wants_a) in table {
            let s = Subscription::first(&names);
            assert_eq!(s.wildcard, wildcard, "{names:?}");
            assert_eq!(s.wants("x"), wants_x, "{names:?}");
            assert_eq!(s.wants("a"), wants_a, "{names:?}");
        }
    }

    #[test]
    fn sotw_replace_keeps_legacy_wildcard_on_empty_lists() {
        let mut s = Subscription::first(&[]);
        assert!(!s.replace(&[]), "empty list again: still wildcard");
        assert!(s.wants("x"));
        assert!(
            s.replace(&v(&["a"])),
            "naming resources ends the legacy wildcard"
        );
        assert!(!s.wants("x"));
        assert!(s.replace(&[]), "now an empty list unsubscribes from all");
        assert!(!s.wants("a"));
    }

    #[test]
    fn delta_add_and_remove() {
        let mut s = Subscription::first(&v(&["a"]));
        assert_eq!(s.add(&v(&["a", "b", "*"])), v(&["b", "*"]));
        assert!(s.wants("zzz"));
        s.remove(&v(&["*", "a"]));
        assert!(!s.wants("zzz"));
        assert!(!s.wants("a"));
        assert!(s.wants("b"));
    }
}
