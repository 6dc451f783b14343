//! Per-kind checks of Istio networking and security objects, over the
//! object's JSON so that every finding carries the exact field path the
//! user wrote (e.g. `spec.http[0].match[1].uri.regex`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use weft_api::validate::Violation;

use super::syntax::{header_name_error, label_key_error, label_value_error, regex_error};

/// Collects violations while walking one object.
#[derive(Debug, Default)]
pub struct Findings(pub Vec<Violation>);

impl Findings {
    fn push(&mut self, field: String, message: String) {
        self.0.push(Violation { field, message });
    }

    fn regex(&mut self, field: String, pattern: &str) {
        if let Some(message) = regex_error(pattern) {
            self.push(field, message);
        }
    }

    fn header(&mut self, field: String, name: &str, allow_pseudo: bool) {
        if let Some(message) = header_name_error(name, allow_pseudo) {
            self.push(field, message);
        }
    }

    /// A `StringMatch` (`{exact|prefix|regex: ...}`) at `path`.
    fn string_match(&mut self, path: &str, value: Option<&Value>) {
        if let Some(pattern) = value.and_then(|v| v.get("regex")).and_then(Value::as_str) {
            self.regex(format!("{path}.regex"), pattern);
        }
    }

    /// A map of header (or parameter) name → `StringMatch`.
    fn match_map(&mut self, path: &str, value: Option<&Value>, header_names: bool) {
        for (name, m) in entries(value) {
            let field = format!("{path}[{name}]");
            if header_names {
                self.header(field.clone(), name, true);
            }
            self.string_match(&field, Some(m));
        }
    }

    /// Header manipulation: `{request|response: {set, add, remove}}`.
    fn header_operations(&mut self, path: &str, value: Option<&Value>) {
        for side in ["request", "response"] {
            let ops = value.and_then(|v| v.get(side));
            for op in ["set", "add"] {
                for (name, _) in entries(ops.and_then(|o| o.get(op))) {
                    self.header(format!("{path}.{side}.{op}[{name}]"), name, false);
                }
            }
            for (i, name) in items(ops, "remove") {
                if let Some(name) = name.as_str() {
                    self.header(format!("{path}.{side}.remove[{i}]"), name, false);
                }
            }
        }
    }

    /// Label map (selectors, subset labels): well-formed keys and values.
    pub fn labels(&mut self, path: &str, value: Option<&Value>) {
        for (key, v) in entries(value) {
            // Empty keys and wildcards are reported by weft-api's policy checks.
            if key.is_empty() || key.contains('*') {
                continue;
            }
            let field = format!("{path}[{key}]");
            if let Some(message) = label_key_error(key) {
                self.push(field.clone(), message);
            }
            match v.as_str() {
                Some(text) if text.contains('*') => {}
                Some(text) => {
                    if let Some(message) = label_value_error(text) {
                        self.push(field, message);
                    }
                }
                None => self.push(field, "label values are strings".to_owned()),
            }
        }
    }

    /// The same string twice in one list (hosts, gateways, ...).
    fn duplicates(&mut self, path: &str, value: Option<&Value>, what: &str) {
        let mut seen = BTreeMap::new();
        for (i, item) in value
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(text) = item.as_str() else { continue };
            if let Some(first) = seen.insert(text, i) {
                self.push(
                    format!("{path}[{i}]"),
                    format!("duplicate {what} {text:?} (also at {path}[{first}]): remove one"),
                );
            }
        }
    }

    /// The same `key` value twice among the objects of a list.
    fn duplicate_keys(&mut self, path: &str, value: Option<&Value>, key: &str, what: &str) {
        let mut seen = BTreeMap::new();
        for (i, item) in items(value, "") {
            let Some(k) = item.get(key).filter(|k| !k.is_null()) else {
                continue;
            };
            let k = k.to_string();
            if let Some(first) = seen.insert(k.clone(), i) {
                self.push(
                    format!("{path}[{i}].{key}"),
                    format!(
                        "duplicate {what} {k} (also at {path}[{first}].{key}): each must be unique"
                    ),
                );
            }
        }
    }
}

/// `(key, value)` of a JSON object, or nothing.
fn entries(value: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(Map::iter)
}

/// `(index, item)` of the array at `key` of `value` (`""`: `value` itself).
fn items<'a>(value: Option<&'a Value>, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    let array = if key.is_empty() {
        value
    } else {
        value.and_then(|v| v.get(key))
    };
    array
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// Checks of one object of `kind` (networking.istio.io or security.istio.io).
pub fn check(kind: &str, spec: Option<&Value>) -> Vec<Violation> {
    let mut f = Findings::default();
    match kind {
        "VirtualService" => virtual_service(&mut f, spec),
        "DestinationRule" => destination_rule(&mut f, spec),
        "Gateway" => gateway(&mut f, spec),
        "ServiceEntry" => service_entry(&mut f, spec),
        "Sidecar" => sidecar(&mut f, spec),
        "AuthorizationPolicy" | "PeerAuthentication" => {
            f.labels(
                "spec.selector.matchLabels",
                spec_at(spec, &["selector", "matchLabels"]),
            );
        }
        "RequestAuthentication" => request_authentication(&mut f, spec),
        _ => {}
    }
    f.0
}

fn spec_at<'a>(spec: Option<&'a Value>, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(spec?, |v, key| v.get(key))
}

fn virtual_service(f: &mut Findings, spec: Option<&Value>) {
    f.duplicates("spec.hosts", spec_at(spec, &["hosts"]), "host");
    f.duplicates("spec.gateways", spec_at(spec, &["gateways"]), "gateway");
    f.duplicate_keys("spec.http", spec_at(spec, &["http"]), "name", "route name");
    for (i, route) in items(spec, "http") {
        let at = format!("spec.http[{i}]");
        for (j, m) in items(Some(route), "match") {
            let at = format!("{at}.match[{j}]");
            for key in ["uri", "scheme", "method", "authority"] {
                f.string_match(&format!("{at}.{key}"), m.get(key));
            }
            f.match_map(&format!("{at}.headers"), m.get("headers"), true);
            f.match_map(
                &format!("{at}.withoutHeaders"),
                m.get("withoutHeaders"),
                true,
            );
            f.match_map(&format!("{at}.queryParams"), m.get("queryParams"), false);
            f.labels(&format!("{at}.sourceLabels"), m.get("sourceLabels"));
        }
        f.header_operations(&format!("{at}.headers"), route.get("headers"));
        for (k, destination) in items(Some(route), "route") {
            f.header_operations(
                &format!("{at}.route[{k}].headers"),
                destination.get("headers"),
            );
        }
        if let Some(pattern) =
            spec_at(Some(route), &["rewrite", "uriRegexRewrite", "match"]).and_then(Value::as_str)
        {
            f.regex(format!("{at}.rewrite.uriRegexRewrite.match"), pattern);
        }
        let cors = route.get("corsPolicy");
        for (k, origin) in items(cors, "allowOrigins") {
            f.string_match(&format!("{at}.corsPolicy.allowOrigins[{k}]"), Some(origin));
        }
        for list in ["allowHeaders", "exposeHeaders"] {
            for (k, name) in items(cors, list) {
                if let Some(name) = name.as_str() {
                    // `*` is CORS' wildcard, not a header.
                    if name != "*" {
                        f.header(format!("{at}.corsPolicy.{list}[{k}]"), name, false);
                    }
                }
            }
        }
    }
    for section in ["tls", "tcp"] {
        for (i, route) in items(spec, section) {
            for (j, m) in items(Some(route), "match") {
                f.labels(
                    &format!("spec.{section}[{i}].match[{j}].sourceLabels"),
                    m.get("sourceLabels"),
                );
            }
        }
    }
}

fn traffic_policy(f: &mut Findings, path: &str, policy: Option<&Value>) {
    f.duplicate_keys(
        &format!("{path}.portLevelSettings"),
        spec_at(policy, &["portLevelSettings"]),
        "port",
        "port",
    );
    let mut policies: Vec<(String, Option<&Value>)> = vec![(path.to_owned(), policy)];
    for (i, p) in items(policy, "portLevelSettings") {
        policies.push((format!("{path}.portLevelSettings[{i}]"), Some(p)));
    }
    for (at, p) in policies {
        if let Some(name) = spec_at(p, &["loadBalancer", "consistentHash", "httpHeaderName"])
            .and_then(Value::as_str)
        {
            f.header(
                format!("{at}.loadBalancer.consistentHash.httpHeaderName"),
                name,
                false,
            );
        }
    }
}

fn destination_rule(f: &mut Findings, spec: Option<&Value>) {
    f.duplicate_keys(
        "spec.subsets",
        spec_at(spec, &["subsets"]),
        "name",
        "subset name",
    );
    f.labels(
        "spec.workloadSelector.matchLabels",
        spec_at(spec, &["workloadSelector", "matchLabels"]),
    );
    traffic_policy(f, "spec.trafficPolicy", spec_at(spec, &["trafficPolicy"]));
    for (i, subset) in items(spec, "subsets") {
        f.labels(&format!("spec.subsets[{i}].labels"), subset.get("labels"));
        traffic_policy(
            f,
            &format!("spec.subsets[{i}].trafficPolicy"),
            subset.get("trafficPolicy"),
        );
    }
}

fn gateway(f: &mut Findings, spec: Option<&Value>) {
    f.labels("spec.selector", spec_at(spec, &["selector"]));
    // One port number carries one protocol; one port name one number.
    let mut protocols: BTreeMap<u64, (String, usize)> = BTreeMap::new();
    let mut names: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    f.duplicate_keys(
        "spec.servers",
        spec_at(spec, &["servers"]),
        "name",
        "server name",
    );
    for (i, server) in items(spec, "servers") {
        f.duplicates(
            &format!("spec.servers[{i}].hosts"),
            server.get("hosts"),
            "host",
        );
        let port = server.get("port");
        let number = port.and_then(|p| p.get("number")).and_then(Value::as_u64);
        let protocol = port
            .and_then(|p| p.get("protocol"))
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase);
        if let (Some(number), Some(protocol)) = (number, protocol) {
            match protocols.get(&number) {
                Some((other, first)) if !compatible(other, &protocol) => f.push(
                    format!("spec.servers[{i}].port.protocol"),
                    format!(
                        "port {number} is {protocol} here but {other} at spec.servers[{first}].port.protocol: one port carries one protocol"
                    ),
                ),
                Some(_) => {}
                None => {
                    protocols.insert(number, (protocol, i));
                }
            }
        }
        let name = port.and_then(|p| p.get("name")).and_then(Value::as_str);
        if let (Some(number), Some(name)) = (number, name) {
            match names.get(name) {
                Some((other, first)) if *other != number => f.push(
                    format!("spec.servers[{i}].port.name"),
                    format!(
                        "port name {name:?} is port {number} here but {other} at spec.servers[{first}].port: use a different name"
                    ),
                ),
                Some(_) => {}
                None => {
                    names.insert(name.to_owned(), (number, i));
                }
            }
        }
    }
}

/// Gateway servers on one port may mix HTTPS and TLS (both terminate or
/// pass through TLS by SNI), otherwise the protocol must be the same.
fn compatible(a: &str, b: &str) -> bool {
    let tls = |p: &str| p == "HTTPS" || p == "TLS";
    a == b || (tls(a) && tls(b))
}

fn service_entry(f: &mut Findings, spec: Option<&Value>) {
    f.duplicates("spec.hosts", spec_at(spec, &["hosts"]), "host");
    f.duplicate_keys(
        "spec.ports",
        spec_at(spec, &["ports"]),
        "number",
        "port number",
    );
    f.duplicate_keys("spec.ports", spec_at(spec, &["ports"]), "name", "port name");
    f.labels(
        "spec.workloadSelector.labels",
        spec_at(spec, &["workloadSelector", "labels"]),
    );
    for (i, endpoint) in items(spec, "endpoints") {
        f.labels(
            &format!("spec.endpoints[{i}].labels"),
            endpoint.get("labels"),
        );
    }
}

fn sidecar(f: &mut Findings, spec: Option<&Value>) {
    f.labels(
        "spec.workloadSelector.labels",
        spec_at(spec, &["workloadSelector", "labels"]),
    );
    for section in ["ingress", "egress"] {
        let mut seen = BTreeMap::new();
        for (i, listener) in items(spec, section) {
            let Some(number) = spec_at(Some(listener), &["port", "number"]).and_then(Value::as_u64)
            else {
                continue;
            };
            if let Some(first) = seen.insert(number, i) {
                f.push(
                    format!("spec.{section}[{i}].port.number"),
                    format!(
                        "duplicate {section} listener port {number} (also at spec.{section}[{first}].port.number): merge them"
                    ),
                );
            }
        }
    }
    // An egress listener without a port catches everything else: only one.
    let portless: Vec<usize> = items(spec, "egress")
        .filter(|(_, l)| l.get("port").is_none_or(Value::is_null))
        .map(|(i, _)| i)
        .collect();
    if let [first, rest @ ..] = portless.as_slice() {
        for i in rest {
            f.push(
                format!("spec.egress[{i}]"),
                format!(
                    "a second egress listener without a port (the first is spec.egress[{first}]): give it a port or merge their hosts"
                ),
            );
        }
    }
}

fn request_authentication(f: &mut Findings, spec: Option<&Value>) {
    f.labels(
        "spec.selector.matchLabels",
        spec_at(spec, &["selector", "matchLabels"]),
    );
    for (i, rule) in items(spec, "jwtRules") {
        for (j, header) in items(Some(rule), "fromHeaders") {
            if let Some(name) = header.get("name").and_then(Value::as_str) {
                f.header(
                    format!("spec.jwtRules[{i}].fromHeaders[{j}].name"),
                    name,
                    false,
                );
            }
        }
        if let Some(name) = rule.get("outputPayloadToHeader").and_then(Value::as_str) {
            f.header(
                format!("spec.jwtRules[{i}].outputPayloadToHeader"),
                name,
                false,
            );
        }
        for (j, claim) in items(Some(rule), "outputClaimToHeaders") {
            if let Some(name) = claim.get("header").and_then(Value::as_str) {
                f.header(
                    format!("spec.jwtRules[{i}].outputClaimToHeaders[{j}].header"),
                    name,
                    false,
                );
            }
        }
    }
}
