//! Traffic capture of an injected pod: Istio's `traffic.sidecar.istio.io/*`
//! annotations turned into the arguments of `weft-proxy init`, which
//! programs iptables (inbound → 15006, outbound → 15001, the proxy's uid
//! excluded).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::InjectError;
use super::settings::{
    HEALTH_PORT, INBOUND_PORT, OUTBOUND_PORT, PROXY_METRICS_PORT, PROXY_UID, STATUS_PORT,
    TUNNEL_PORT,
};

/// Annotation: CIDRs whose outbound traffic is captured (`*`: all).
pub const INCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";
/// Annotation: CIDRs whose outbound traffic bypasses the proxy.
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
/// Annotation: inbound ports captured (`*`: all).
pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
/// Annotation: inbound ports that bypass the proxy.
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
/// Annotation: outbound ports captured even when their IP range is not.
pub const INCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeOutboundPorts";
/// Annotation: outbound destination ports that bypass the proxy.
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";

/// Inbound ports of the proxy itself, never captured.
pub const PROXY_INBOUND_PORTS: [u16; 4] =
    [TUNNEL_PORT, STATUS_PORT, HEALTH_PORT, PROXY_METRICS_PORT];

/// A list that is either everything (`*`) or explicit items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope<T> {
    All,
    Only(Vec<T>),
}

impl<T: ToString> Scope<T> {
    fn render(&self) -> String {
        match self {
            Self::All => "*".to_owned(),
            Self::Only(items) => join(items),
        }
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What `weft-proxy init` redirects, from the pod's annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficCapture {
    pub include_outbound_ip_ranges: Scope<String>,
    pub exclude_outbound_ip_ranges: Vec<String>,
    pub include_inbound_ports: Scope<u16>,
    pub exclude_inbound_ports: Vec<u16>,
    pub include_outbound_ports: Vec<u16>,
    pub exclude_outbound_ports: Vec<u16>,
}

impl TrafficCapture {
    /// Reads the annotations, refusing malformed values with the annotation's name.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, InjectError> {
        let get = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let include_outbound_ip_ranges = match get(INCLUDE_OUTBOUND_IP_RANGES) {
            None | Some("*") => Scope::All,
            Some(v) => Scope::Only(cidrs(INCLUDE_OUTBOUND_IP_RANGES, v)?),
        };
        let exclude_outbound_ip_ranges = match get(EXCLUDE_OUTBOUND_IP_RANGES) {
            None => Vec::new(),
            Some(v) => cidrs(EXCLUDE_OUTBOUND_IP_RANGES, v)?,
        };
        let include_inbound_ports = match get(INCLUDE_INBOUND_PORTS) {
            None | Some("*") => Scope::All,
            Some(v) => Scope::Only(ports(INCLUDE_INBOUND_PORTS, v)?),
        };
        let mut exclude_inbound_ports = PROXY_INBOUND_PORTS.to_vec();
        if let Some(v) = get(EXCLUDE_INBOUND_PORTS) {
            exclude_inbound_ports.extend(ports(EXCLUDE_INBOUND_PORTS, v)?);
        }
        exclude_inbound_ports.sort_unstable();
        exclude_inbound_ports.dedup();
        let list = |key: &str| get(key).map(|v| ports(key, v)).transpose();
        Ok(Self {
            include_outbound_ip_ranges,
            exclude_outbound_ip_ranges,
            include_inbound_ports,
            exclude_inbound_ports,
            include_outbound_ports: list(INCLUDE_OUTBOUND_PORTS)?.unwrap_or_default(),
            exclude_outbound_ports: list(EXCLUDE_OUTBOUND_PORTS)?.unwrap_or_default(),
        })
    }

    /// The arguments of `weft-proxy init`. Empty lists are left out.
    pub fn init_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["init".into()];
        let mut flag = |name: &str, value: String| {
            if !value.is_empty() {
                args.push(format!("--{name}"));
                args.push(value);
            }
        };
        flag("inbound-capture-port", INBOUND_PORT.to_string());
        flag("outbound-capture-port", OUTBOUND_PORT.to_string());
        flag("proxy-uid", PROXY_UID.to_string());
        flag("proxy-gid", PROXY_UID.to_string());
        flag(
            "include-outbound-ip-ranges",
            self.include_outbound_ip_ranges.render(),
        );
        flag(
            "exclude-outbound-ip-ranges",
            join(&self.exclude_outbound_ip_ranges),
        );
        flag("include-inbound-ports", self.include_inbound_ports.render());
        flag("exclude-inbound-ports", join(&self.exclude_inbound_ports));
        flag("include-outbound-ports", join(&self.include_outbound_ports));
        flag("exclude-outbound-ports", join(&self.exclude_outbound_ports));
        args
    }
}

fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn cidrs(annotation: &str, value: &str) -> Result<Vec<String>, InjectError> {
    items(value)
        .map(|item| {
            if is_cidr(item) {
                Ok(item.to_owned())
            } else {
                Err(InjectError::BadAnnotation {
                    annotation: annotation.to_owned(),
                    value: value.to_owned(),
                    reason: format!(
                        "{item:?} is not a CIDR range such as 10.0.0.0/8 or an IP address"
                    ),
                })
            }
        })
        .collect()
}

fn is_cidr(text: &str) -> bool {
    match text.split_once('/') {
        None => text.parse::<IpAddr>().is_ok(),
        Some((addr, bits)) => match (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
}

fn ports(annotation: &str, value: &str) -> Result<Vec<u16>, InjectError> {
    items(value)
        .map(|item| match item.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(InjectError::BadAnnotation {
                annotation: annotation.to_owned(),
                value: value.to_owned(),
                reason: format!("{item:?} is not a port number between 1 and 65535"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(pairs: &[(&str, &str)]) -> Result<TrafficCapture, InjectError> {
        let a: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TrafficCapture::from_annotations(Some(&a))
    }

    #[test]
    fn defaults_capture_everything_but_the_proxy_ports() {
        let c = capture(&[]).expect("no annotations");
        assert_eq!(
            c.init_args().join(" "),
            "init --inbound-capture-port 15006 --outbound-capture-port 15001 --proxy-uid 1337 \
             --proxy-gid 1337 --include-outbound-ip-ranges * --include-inbound-ports * \
             --exclude-inbound-ports 15008,15020,15021,15090"
        );
    }

    #[test]
    fn annotations_become_flags() {
        let c = capture(&[
            (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/8, 192.168.1.1"),
            (EXCLUDE_OUTBOUND_IP_RANGES, "10.96.0.0/12,fd00::/8"),
            (INCLUDE_INBOUND_PORTS, "8080,9090"),
            (EXCLUDE_INBOUND_PORTS, "9000,15020"),
            (INCLUDE_OUTBOUND_PORTS, "443"),
            (EXCLUDE_OUTBOUND_PORTS, "3306,5432"),
        ])
        .expect("valid annotations");
        assert_eq!(
            c.include_outbound_ip_ranges,
            Scope::Only(vec!["10.0.0.0/8".into(), "192.168.1.1".into()])
        );
        assert_eq!(
            c.exclude_inbound_ports,
            vec![9000, 15008, 15020, 15021, 15090]
        );
        let args = c.init_args().join(" ");
        assert!(
            args.contains("--include-outbound-ip-ranges 10.0.0.0/8,192.168.1.1"),
            "{args}"
        );
        assert!(
            args.contains("--exclude-outbound-ip-ranges 10.96.0.0/12,fd00::/8"),
            "{args}"
        );
        assert!(args.contains("--include-inbound-ports 8080,9090"), "{args}");
        assert!(args.contains("--include-outbound-ports 443"), "{args}");
        assert!(
            args.contains("--exclude-outbound-ports 3306,5432"),
            "{args}"
        );
    }

    #[test]
    fn malformed_annotations_are_refused_with_their_name() {
        let cases = [
            (EXCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/33"),
            (INCLUDE_OUTBOUND_IP_RANGES, "ten.0.0.0/8"),
            (EXCLUDE_INBOUND_PORTS, "80,http"),
            (EXCLUDE_OUTBOUND_PORTS, "70000"),
            (INCLUDE_INBOUND_PORTS, "0"),
        ];
        for (annotation, value) in cases {
            let err = capture(&[(annotation, value)]).expect_err(value);
            let message = err.to_string();
            assert!(message.contains(annotation), "{message}");
        }
    }
}
