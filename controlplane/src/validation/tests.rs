//! One table row per rule: an object, and the field and reason it is
//! refused for (or nothing, for the valid twin).

use serde_json::{Value, json};
use weft_api::validate::Schemas;

use super::validate;

fn object(api_version: &str, kind: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default"},
        "spec": spec,
    })
}

fn net(kind: &str, spec: Value) -> Value {
    object("networking.istio.io/v1", kind, spec)
}

fn sec(kind: &str, spec: Value) -> Value {
    object("security.istio.io/v1", kind, spec)
}

fn vs_match(m: Value) -> Value {
    net(
        "VirtualService",
        json!({"hosts": ["r"], "http": [{"match": [m], "route": [{"destination": {"host": "r"}}]}]}),
    )
}

#[test]
fn each_rule_refuses_with_field_and_reason() {
    let schemas = Schemas::default();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "uri regex",
            vs_match(json!({"uri": {"regex": "/api/(v1"}})),
            "spec.http[0].match[0].uri.regex",
            "RE2",
        ),
        (
            "look-ahead is not RE2",
            vs_match(json!({"authority": {"regex": "foo(?=bar)"}})),
            "spec.http[0].match[0].authority.regex",
            "RE2",
        ),
        (
            "header match regex",
            vs_match(json!({"headers": {"x-user": {"regex": "[z-a]"}}})),
            "spec.http[0].match[0].headers[x-user].regex",
            "RE2",
        ),
        (
            "query param regex",
            vs_match(json!({"queryParams": {"v": {"regex": "(a)\\1"}}})),
            "spec.http[0].match[0].queryParams[v].regex",
            "RE2",
        ),
        (
            "header match name",
            vs_match(json!({"headers": {"x user": {"exact": "a"}}})),
            "spec.http[0].match[0].headers[x user]",
            "not allowed",
        ),
        (
            "withoutHeaders name",
            vs_match(json!({"withoutHeaders": {"x(y)": {"exact": "a"}}})),
            "spec.http[0].match[0].withoutHeaders[x(y)]",
            "not a header name",
        ),
        (
            "source labels",
            vs_match(json!({"sourceLabels": {"app": "-bad"}})),
            "spec.http[0].match[0].sourceLabels[app]",
            "label value",
        ),
        (
            "duplicate hosts",
            net(
                "VirtualService",
                json!({"hosts": ["r", "s", "r"], "http": [{"route": [{"destination": {"host": "r"}}]}]}),
            ),
            "spec.hosts[2]",
            "duplicate host",
        ),
        (
            "duplicate route names",
            net(
                "VirtualService",
                json!({"hosts": ["r"], "http": [
                {"name": "a", "route": [{"destination": {"host": "r"}}]},
                {"name": "a", "route": [{"destination": {"host": "r"}}]}]}),
            ),
            "spec.http[1].name",
            "duplicate route name",
        ),
        (
            "set header name",
            net(
                "VirtualService",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}}],
                "headers": {"request": {"set": {"x y": "1"}}}}]}),
            ),
            "spec.http[0].headers.request.set[x y]",
            "not allowed",
        ),
        (
            "pseudo header cannot be removed",
            net(
                "VirtualService",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"},
                "headers": {"response": {"remove": [":status"]}}}]}]}),
            ),
            "spec.http[0].route[0].headers.response.remove[0]",
            "pseudo-headers",
        ),
        (
            "rewrite regex",
            net(
                "VirtualService",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}}],
                "rewrite": {"uriRegexRewrite": {"match": "(", "rewrite": "/"}}}]}),
            ),
            "spec.http[0].rewrite.uriRegexRewrite.match",
            "RE2",
        ),
        (
            "cors origin regex",
            net(
                "VirtualService",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}}],
                "corsPolicy": {"allowOrigins": [{"regex": "*.example.com"}]}}]}),
            ),
            "spec.http[0].corsPolicy.allowOrigins[0].regex",
            "RE2",
        ),
        (
            "duplicate subsets",
            net(
                "DestinationRule",
                json!({"host": "r", "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v1", "labels": {"version": "v2"}}]}),
            ),
            "spec.subsets[1].name",
            "duplicate subset name",
        ),
        (
            "subset labels",
            net(
                "DestinationRule",
                json!({"host": "r", "subsets": [{"name": "v1", "labels": {"Example.com/v": "1"}}]}),
            ),
            "spec.subsets[0].labels[Example.com/v]",
            "DNS subdomain",
        ),
        (
            "hash header name",
            net(
                "DestinationRule",
                json!({"host": "r", "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "x user"}}}}),
            ),
            "spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName",
            "not allowed",
        ),
        (
            "duplicate port-level settings",
            net(
                "DestinationRule",
                json!({"host": "r", "trafficPolicy": {"portLevelSettings": [
                {"port": {"number": 80}, "loadBalancer": {"simple": "ROUND_ROBIN"}},
                {"port": {"number": 80}, "loadBalancer": {"simple": "RANDOM"}}]}}),
            ),
            "spec.trafficPolicy.portLevelSettings[1].port",
            "duplicate port",
        ),
        (
            "gateway port protocols conflict",
            net(
                "Gateway",
                json!({"selector": {"istio": "ingressgateway"}, "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]},
                {"port": {"number": 80, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]}]}),
            ),
            "spec.servers[1].port.protocol",
            "one port carries one protocol",
        ),
        (
            "gateway port name reused",
            net(
                "Gateway",
                json!({"selector": {"istio": "ingressgateway"}, "servers": [
                {"port": {"number": 80, "name": "web", "protocol": "HTTP"}, "hosts": ["a.example.com"]},
                {"port": {"number": 8080, "name": "web", "protocol": "HTTP"}, "hosts": ["b.example.com"]}]}),
            ),
            "spec.servers[1].port.name",
            "port name",
        ),
        (
            "gateway duplicate server hosts",
            net(
                "Gateway",
                json!({"selector": {"istio": "ingressgateway"}, "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.example.com", "a.example.com"]}]}),
            ),
            "spec.servers[0].hosts[1]",
            "duplicate host",
        ),
        (
            "gateway selector",
            net(
                "Gateway",
                json!({"selector": {"istio": "ingress gateway"}, "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}),
            ),
            "spec.selector[istio]",
            "label value",
        ),
        (
            "service entry duplicate port numbers",
            net(
                "ServiceEntry",
                json!({"hosts": ["api.example.com"], "resolution": "DNS", "ports": [
                {"number": 443, "name": "https", "protocol": "TLS"},
                {"number": 443, "name": "https-2", "protocol": "HTTPS"}]}),
            ),
            "spec.ports[1].number",
            "duplicate port number",
        ),
        (
            "service entry duplicate hosts",
            net(
                "ServiceEntry",
                json!({"hosts": ["a.example.com", "a.example.com"], "resolution": "DNS", "ports": [
                {"number": 443, "name": "https", "protocol": "TLS"}]}),
            ),
            "spec.hosts[1]",
            "duplicate host",
        ),
        (
            "sidecar workload selector",
            net(
                "Sidecar",
                json!({"workloadSelector": {"labels": {"app/x/y": "v"}}, "egress": [{"hosts": ["./*"]}]}),
            ),
            "spec.workloadSelector.labels[app/x/y]",
            "label key",
        ),
        (
            "sidecar two catch-all egress listeners",
            net(
                "Sidecar",
                json!({"egress": [{"hosts": ["./*"]}, {"hosts": ["istio-system/*"]}]}),
            ),
            "spec.egress[1]",
            "without a port",
        ),
        (
            "sidecar duplicate egress ports",
            net(
                "Sidecar",
                json!({"egress": [
                {"port": {"number": 80, "protocol": "HTTP", "name": "a"}, "hosts": ["./*"]},
                {"port": {"number": 80, "protocol": "HTTP", "name": "b"}, "hosts": ["./*"]}]}),
            ),
            "spec.egress[1].port.number",
            "duplicate egress listener port",
        ),
        (
            "authorization policy: weft-api's check",
            sec(
                "AuthorizationPolicy",
                json!({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/40"]}}]}]}),
            ),
            "spec.rules[0].from[0].source.ipBlocks[0]",
            "not an IP address",
        ),
        (
            "authorization policy selector syntax",
            sec(
                "AuthorizationPolicy",
                json!({"selector": {"matchLabels": {"app": "a b"}}}),
            ),
            "spec.selector.matchLabels[app]",
            "label value",
        ),
        (
            "request authentication header",
            sec(
                "RequestAuthentication",
                json!({"jwtRules": [{"issuer": "https://issuer",
                "fromHeaders": [{"name": "x token", "prefix": "Bearer "}]}]}),
            ),
            "spec.jwtRules[0].fromHeaders[0].name",
            "not allowed",
        ),
    ];
    for (name, object, field, reason) in cases {
        let violations = validate(&schemas, &object).expect("a served kind");
        assert!(
            violations
                .iter()
                .any(|v| v.field == field && v.message.contains(reason)),
            "{name}: want {field} ({reason}), got {violations:?}"
        );
    }
}

#[test]
fn valid_objects_pass() {
    let schemas = Schemas::default();
    let objects = vec![
        vs_match(json!({
            "uri": {"regex": "^/api/v[0-9]+/.*"},
            "headers": {"x-user": {"exact": "jason"}, ":authority": {"prefix": "shop"}},
            "queryParams": {"debug": {"regex": "(?i)true"}},
            "sourceLabels": {"app.kubernetes.io/name": "web"}
        })),
        net(
            "DestinationRule",
            json!({"host": "r", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}}]}),
        ),
        net(
            "Gateway",
            json!({"selector": {"istio": "ingressgateway"}, "servers": [
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["a.example.com"],
             "tls": {"mode": "SIMPLE", "credentialName": "a"}},
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["b.example.com"],
             "tls": {"mode": "SIMPLE", "credentialName": "b"}}]}),
        ),
        net(
            "Sidecar",
            json!({"egress": [
            {"port": {"number": 80, "protocol": "HTTP", "name": "a"}, "hosts": ["./*"]},
            {"hosts": ["./*"]}]}),
        ),
        sec(
            "AuthorizationPolicy",
            json!({"selector": {"matchLabels": {"app": "web"}},
            "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}),
        ),
    ];
    for object in objects {
        let violations = validate(&schemas, &object).expect("a served kind");
        assert!(violations.is_empty(), "{object}: {violations:?}");
    }
}

#[test]
fn schema_violations_are_reported_too() {
    let schemas = Schemas::default();
    let bad = net("VirtualService", json!({"hosts": "not-a-list"}));
    let violations = validate(&schemas, &bad).expect("a served kind");
    assert!(
        violations.iter().any(|v| v.field == "spec.hosts"),
        "{violations:?}"
    );
}
