//! A readable, stable JSON rendering of xDS resources for golden files and
//! the debug endpoint. prost messages have no reflection, but their `Debug`
//! output is regular; this parses it, decodes embedded `Any`s of known
//! types, flattens `Option`s and wrapper types, renders durations as
//! `"10s"`, inline bytes as text, and leaves out unset and default fields.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, Secret, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use prost::{Message, Name};
use serde_json::{Map, Value};

use crate::resources::{Resources, type_url};

/// The `Debug` text of an encoded message of a known type.
fn debug_of(type_url: &str, bytes: &[u8]) -> Option<String> {
    fn d<M: Message + Name + Default + std::fmt::Debug>(bytes: &[u8]) -> Option<String> {
        M::decode(bytes).ok().map(|m| format!("{m:?}"))
    }
    macro_rules! known {
        ($($ty:ty),*) => {
            $(if type_url == <$ty>::type_url() { return d::<$ty>(bytes); })*
        };
    }
    known!(
        Listener,
        RouteConfiguration,
        Cluster,
        ClusterLoadAssignment,
        Secret,
        HttpConnectionManager,
        TcpProxy,
        Router,
        UpstreamTlsContext,
        DownstreamTlsContext,
        RawBuffer,
        OriginalDst,
        TlsInspector,
        HttpProtocolOptions
    );
    None
}

/// Every resource, as `{ "<Type>": { "<name>": <message> } }`.
pub fn resources_to_json(resources: &Resources) -> Value {
    let mut out = Map::new();
    for url in type_url::PUSH_ORDER {
        let mut of_type = Map::new();
        for r in resources.of_type(url) {
            of_type.insert(r.name.clone(), any_to_json(url, &r.body.value));
        }
        if !of_type.is_empty() {
            let short = url.rsplit('.').next().unwrap_or(url);
            out.insert(short.to_owned(), Value::Object(of_type));
        }
    }
    Value::Object(out)
}

/// One message as JSON; `{"@type", "undecoded_bytes"}` for unknown types.
pub fn any_to_json(type_url: &str, bytes: &[u8]) -> Value {
    let text = debug_of(type_url, bytes);
    let parsed = text.as_deref().map(|text| Parser::new(text).value());
    if let Some(Err(e)) = &parsed {
        let mut m = Map::new();
        m.insert("@type".into(), Value::String(type_url.to_owned()));
        m.insert("unreadable_debug_output".into(), Value::String(e.clone()));
        return Value::Object(m);
    }
    let mut obj = match parsed.and_then(Result::ok).and_then(|n| to_json(&n, false)) {
        Some(Value::Object(m)) => m,
        Some(other) => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
        None => {
            let mut m = Map::new();
            if debug_of(type_url, bytes).is_none() {
                m.insert("undecoded_bytes".into(), Value::from(bytes.len()));
            }
            m
        }
    };
    let mut with_type = Map::new();
    with_type.insert("@type".into(), Value::String(type_url.to_owned()));
    with_type.append(&mut obj);
    Value::Object(with_type)
}

/// A parsed `Debug` value.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Str(String),
    Num(String),
    Ident(String),
    Struct(String, Vec<(String, Node)>),
    Tuple(String, Vec<Node>),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            let near = String::from_utf8_lossy(
                &self.s[self.i.saturating_sub(60)..(self.i + 20).min(self.s.len())],
            )
            .into_owned();
            Err(format!(
                "expected {:?} at {} near {near:?}",
                c as char, self.i
            ))
        }
    }

    fn ident(&mut self) -> String {
        // Raw identifiers (`r#match`) name the field without the prefix.
        if self.s[self.i..].starts_with(b"r#") {
            self.i += 2;
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// Items until `close`, separated by commas.
    fn items<T>(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(out);
            }
            out.push(item(self)?);
            self.ws();
            if self.peek() == Some(b',') {
                self.i += 1;
            }
        }
    }

    fn value(&mut self) -> Result<Node, String> {
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(Node::Str),
            Some(b'[') => {
                self.i += 1;
                self.items(b']', Self::value).map(Node::List)
            }
            Some(b'{') => {
                self.i += 1;
                self.items(b'}', |p| {
                    let k = p.value()?;
                    p.eat(b':')?;
                    Ok((k, p.value()?))
                })
                .map(Node::Map)
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-'))
                {
                    self.i += 1;
                }
                Ok(Node::Num(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let name = self.ident();
                if self.s[self.i..].starts_with(b" {") {
                    self.i += 2;
                    let fields = self.items(b'}', |p| {
                        p.ws();
                        let f = p.ident();
                        p.eat(b':')?;
                        Ok((f, p.value()?))
                    })?;
                    Ok(Node::Struct(name, fields))
                } else if self.peek() == Some(b'(') {
                    self.i += 1;
                    Ok(Node::Tuple(name, self.items(b')', Self::value)?))
                } else {
                    Ok(Node::Ident(name))
                }
            }
            other => Err(format!(
                "unexpected {:?} at {}",
                other.map(char::from),
                self.i
            )),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'0' => out.push(0),
                        b'u' => {
                            self.eat(b'{')?;
                            let start = self.i;
                            while self.peek().is_some_and(|c| c != b'}') {
                                self.i += 1;
                            }
                            let hex = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                            self.i += 1;
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or(char::REPLACEMENT_CHARACTER);
                            out.extend(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Names of the value-0 (default) variants of the enums weftd's output
/// uses; prost's `Debug` prints enum fields by name, so defaults are
/// recognised by name. Extend this when a new enum shows up as noise.
const DEFAULT_VARIANTS: [&str; 12] = [
    "UseConfiguredProtocol",
    "Any",
    "ServiceUnavailable",
    "PassThroughInternalRedirect",
    "Unspecified",
    "Default",
    "Auto",
    "Sanitize",
    "ImplementationSpecificDefault",
    "Overwrite",
    "LenientStapling",
    "Tcp",
];

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn bytes_of(items: &[Node]) -> Option<Vec<u8>> {
    items
        .iter()
        .map(|n| match n {
            Node::Num(s) => s.parse::<u8>().ok(),
            _ => None,
        })
        .collect()
}

/// Converts a node; `None` when `prune` and the value is unset or default.
fn to_json(node: &Node, prune: bool) -> Option<Value> {
    match node {
        Node::Str(s) if prune && s.is_empty() => None,
        Node::Str(s) => Some(Value::String(s.clone())),
        Node::Num(n) if prune && n.parse::<f64>().is_ok_and(|v| v == 0.0) => None,
        Node::Num(n) => Some(
            n.parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<u64>().map(Value::from))
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| Value::String(n.clone())),
        ),
        Node::Ident(i) => match i.as_str() {
            "None" => None,
            "true" => Some(Value::Bool(true)),
            "false" if prune => None,
            "false" => Some(Value::Bool(false)),
            v if prune && DEFAULT_VARIANTS.contains(&v) => None,
            v => Some(Value::String(v.to_owned())),
        },
        Node::Tuple(name, items) => match (name.as_str(), items.as_slice()) {
            ("Some", [inner]) => to_json(inner, false),
            ("InlineBytes", [Node::List(bytes)]) => {
                let text = bytes_of(bytes).map(|b| String::from_utf8_lossy(&b).into_owned());
                let mut m = Map::new();
                m.insert(
                    "inline_bytes".into(),
                    Value::String(text.unwrap_or_default()),
                );
                Some(Value::Object(m))
            }
            (variant, [inner]) => {
                let mut m = Map::new();
                m.insert(snake(variant), to_json(inner, false).unwrap_or(Value::Null));
                Some(Value::Object(m))
            }
            (variant, items) => {
                let mut m = Map::new();
                let vals = items.iter().filter_map(|n| to_json(n, false)).collect();
                m.insert(snake(variant), Value::Array(vals));
                Some(Value::Object(m))
            }
        },
        Node::List(items) if prune && items.is_empty() => None,
        Node::List(items) => Some(Value::Array(
            items.iter().filter_map(|n| to_json(n, false)).collect(),
        )),
        Node::Map(pairs) if prune && pairs.is_empty() => None,
        Node::Map(pairs) => {
            let mut m = Map::new();
            for (k, v) in pairs {
                let key = match k {
                    Node::Str(s) | Node::Num(s) | Node::Ident(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                m.insert(key, to_json(v, false).unwrap_or(Value::Null));
            }
            Some(Value::Object(m))
        }
        Node::Struct(name, fields) => struct_to_json(name, fields),
    }
}

fn field<'n>(fields: &'n [(String, Node)], name: &str) -> Option<&'n Node> {
    fields.iter().find(|(f, _)| f == name).map(|(_, n)| n)
}

fn struct_to_json(name: &str, fields: &[(String, Node)]) -> Option<Value> {
    match name {
        "Any" => {
            let url = match field(fields, "type_url") {
                Some(Node::Str(s)) => s.clone(),
                _ => String::new(),
            };
            let bytes = match field(fields, "value") {
                Some(Node::List(items)) => bytes_of(items).unwrap_or_default(),
                _ => Vec::new(),
            };
            return Some(any_to_json(&url, &bytes));
        }
        "Duration" => {
            let num = |f: &str| match field(fields, f) {
                Some(Node::Num(n)) => n.parse::<i64>().unwrap_or(0),
                _ => 0,
            };
            let (s, nanos) = (num("seconds"), num("nanos"));
            let text = if nanos == 0 {
                format!("{s}s")
            } else {
                let frac = format!("{nanos:09}");
                format!("{s}.{}s", frac.trim_end_matches('0'))
            };
            return Some(Value::String(text));
        }
        "BoolValue" | "UInt32Value" | "UInt64Value" | "Int32Value" | "Int64Value"
        | "DoubleValue" | "FloatValue" | "StringValue" => {
            return field(fields, "value").and_then(|v| to_json(v, false));
        }
        _ => {}
    }
    let mut m = Map::new();
    for (f, v) in fields {
        if let Some(json) = to_json(v, true) {
            m.insert(f.clone(), json);
        }
    }
    Some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::cluster;
    use envoy_types::pb::google::protobuf::{BoolValue, Duration};
    use serde_json::json;

    use super::*;
    use crate::resources::{Resource, Resources};

    #[test]
    fn renders_messages_readably() {
        let c = Cluster {
            name: "outbound|80||a.b.svc.cluster.local".into(),
            connect_timeout: Some(Duration {
                seconds: 1,
                nanos: 500_000_000,
            }),
            lb_policy: cluster::LbPolicy::LeastRequest as i32,
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            ..Default::default()
        };
        let l = Listener {
            name: "l \"quoted\"".into(),
            use_original_dst: Some(BoolValue { value: false }),
            ..Default::default()
        };
        let mut r = Resources::default();
        r.insert(Resource::from_message(&c.name, type_url::CLUSTER, &c));
        r.insert(Resource::from_message(&l.name, type_url::LISTENER, &l));
        assert_eq!(
            resources_to_json(&r),
            json!({
                "Cluster": {"outbound|80||a.b.svc.cluster.local": {
                    "@type": type_url::CLUSTER,
                    "name": "outbound|80||a.b.svc.cluster.local",
                    "connect_timeout": "1.5s",
                    "lb_policy": "LeastRequest",
                    "cluster_discovery_type": {"type": "Eds"},
                }},
                "Listener": {"l \"quoted\"": {
                    "@type": type_url::LISTENER,
                    "name": "l \"quoted\"",
                    // A set wrapper keeps its value even when it is the default.
                    "use_original_dst": false,
                }},
            })
        );
    }

    #[test]
    fn parses_debug_syntax() {
        let n =
            Parser::new(r#"A { x: Some(B(C { y: [1, -2], z: {"k": "v\"\u{e9}"} })), w: Name }"#)
                .value()
                .expect("parses");
        assert_eq!(
            to_json(&n, false),
            Some(json!({"x": {"b": {"y": [1, -2], "z": {"k": "v\"é"}}}, "w": "Name"}))
        );
    }
}
