//! Kubernetes `Condition`s the Gateway API way: observedGeneration on
//! every condition, lastTransitionTime moved only when the status changes,
//! conditions of types Weft does not set left untouched.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition Weft sets, before merging with what is on the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// `ours` merged into `existing`: a condition of the same type is replaced in
/// place, keeping its lastTransitionTime when its status is unchanged; new
/// types are appended; other types stay as they are.
pub fn merge(existing: &[Condition], ours: &[Cond], generation: i64, now: &Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing.to_vec();
    for c in ours {
        let status = status_str(c.status).to_owned();
        let previous = out.iter().position(|e| e.type_ == c.type_);
        let last_transition_time = match previous {
            Some(i) if out[i].status == status => out[i].last_transition_time.clone(),
            _ => now.clone(),
        };
        let condition = Condition {
            type_: c.type_.to_owned(),
            status,
            reason: c.reason.to_owned(),
            message: c.message.clone(),
            observed_generation: Some(generation),
            last_transition_time,
        };
        match previous {
            Some(i) => out[i] = condition,
            None => out.push(condition),
        }
    }
    out
}

/// Whether any condition was written for a newer generation than the one we
/// see: our copy of the object is stale, so its status must not be written
/// now (the watch brings the new generation shortly).
pub fn is_stale(existing: &[Condition], generation: i64) -> bool {
    existing
        .iter()
        .any(|c| c.observed_generation.is_some_and(|g| g > generation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    fn existing(type_: &str, status: &str, t: i64) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: "Old".to_owned(),
            message: "old".to_owned(),
            observed_generation: Some(1),
            last_transition_time: time(t),
        }
    }

    #[test]
    fn merge_table() {
        struct Case {
            name: &'static str,
            existing: Vec<Condition>,
            ours: Vec<Cond>,
            want: Vec<(&'static str, &'static str, &'static str, i64)>,
        }
        let cases = [
            Case {
                name: "new condition gets now",
                existing: vec![],
                ours: vec![Cond::new("Accepted", true, "Accepted", "ok")],
                want: vec![("Accepted", "True", "Accepted", 100)],
            },
            Case {
                name: "same status keeps its transition time, takes the new reason",
                existing: vec![existing("Accepted", "True", 5)],
                ours: vec![Cond::new("Accepted", true, "Accepted", "ok")],
                want: vec![("Accepted", "True", "Accepted", 5)],
            },
            Case {
                name: "changed status moves the transition time",
                existing: vec![existing("Programmed", "Unknown", 0)],
                ours: vec![Cond::new("Programmed", false, "Pending", "wait")],
                want: vec![("Programmed", "False", "Pending", 100)],
            },
            Case {
                name: "others' conditions stay, in place",
                existing: vec![
                    existing("example.com/Custom", "True", 3),
                    existing("Accepted", "False", 4),
                ],
                ours: vec![
                    Cond::new("Accepted", true, "Accepted", "ok"),
                    Cond::new("Programmed", true, "Programmed", "ok"),
                ],
                want: vec![
                    ("example.com/Custom", "True", "Old", 3),
                    ("Accepted", "True", "Accepted", 100),
                    ("Programmed", "True", "Programmed", 100),
                ],
            },
        ];
        for case in cases {
            let got = merge(&case.existing, &case.ours, 7, &time(100));
            let got: Vec<_> = got
                .iter()
                .map(|c| {
                    (
                        c.type_.as_str(),
                        c.status.as_str(),
                        c.reason.as_str(),
                        c.last_transition_time.0.as_second(),
                    )
                })
                .collect();
            assert_eq!(got, case.want, "{}", case.name);
        }
        let merged = merge(
            &[],
            &[Cond::new("Accepted", true, "Accepted", "ok")],
            7,
            &time(1),
        );
        assert_eq!(merged[0].observed_generation, Some(7));
    }

    #[test]
    fn staleness() {
        assert!(!is_stale(&[existing("Accepted", "True", 1)], 1));
        assert!(!is_stale(&[existing("Accepted", "True", 1)], 2));
        assert!(is_stale(&[existing("Accepted", "True", 1)], 0));
    }
}
