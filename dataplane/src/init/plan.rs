//! What to capture, from the flags of `weft-proxy init` (the ones weftd's
//! injector passes, see `controlplane/src/inject/traffic.rs`): parsed and
//! checked into plain data, each refusal naming its flag.

use std::net::IpAddr;

use super::InitError;

/// An address family: IPv4 rules go to `iptables`, IPv6 to `ip6tables`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// A CIDR range (an address without `/bits` is a host range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub bits: u8,
}

impl Cidr {
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (addr, bits) = match text.split_once('/') {
            None => {
                let addr: IpAddr = text.parse().ok()?;
                let bits = if addr.is_ipv4() { 32 } else { 128 };
                (addr, bits)
            }
            Some((addr, bits)) => (addr.parse().ok()?, bits.parse().ok()?),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Self { addr, bits })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

/// Everything (`*`) or the listed items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope<T> {
    All,
    Only(Vec<T>),
}

/// The capture of one pod, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturePlan {
    pub inbound_capture_port: u16,
    pub outbound_capture_port: u16,
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    pub include_outbound_ip_ranges: Scope<Cidr>,
    pub exclude_outbound_ip_ranges: Vec<Cidr>,
    pub include_inbound_ports: Scope<u16>,
    pub exclude_inbound_ports: Vec<u16>,
    pub include_outbound_ports: Vec<u16>,
    pub exclude_outbound_ports: Vec<u16>,
}

/// The raw text of the list flags, as given on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawLists {
    pub include_outbound_ip_ranges: String,
    pub exclude_outbound_ip_ranges: String,
    pub include_inbound_ports: String,
    pub exclude_inbound_ports: String,
    pub include_outbound_ports: String,
    pub exclude_outbound_ports: String,
}

fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn bad(flag: &str, value: &str, reason: String) -> InitError {
    InitError::BadFlag {
        flag: flag.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

fn cidrs(flag: &str, value: &str) -> Result<Vec<Cidr>, InitError> {
    items(value)
        .map(|item| {
            Cidr::parse(item).ok_or_else(|| {
                bad(
                    flag,
                    value,
                    format!("{item:?} is not a CIDR range such as 10.0.0.0/8 or an IP address"),
                )
            })
        })
        .collect()
}

fn ports(flag: &str, value: &str) -> Result<Vec<u16>, InitError> {
    let mut out = items(value)
        .map(|item| match item.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(bad(
                flag,
                value,
                format!("{item:?} is not a port number between 1 and 65535"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn scope<T>(
    flag: &str,
    value: &str,
    parse: impl Fn(&str, &str) -> Result<Vec<T>, InitError>,
) -> Result<Scope<T>, InitError> {
    if value.trim() == "*" {
        Ok(Scope::All)
    } else {
        Ok(Scope::Only(parse(flag, value)?))
    }
}

impl CapturePlan {
    /// Checks the flags. `*` means everything for the include lists; an
    /// empty list means nothing.
    pub fn new(
        inbound_capture_port: u16,
        outbound_capture_port: u16,
        proxy_uid: u32,
        proxy_gid: u32,
        raw: &RawLists,
    ) -> Result<Self, InitError> {
        for (flag, port) in [
            ("--inbound-capture-port", inbound_capture_port),
            ("--outbound-capture-port", outbound_capture_port),
        ] {
            if port == 0 {
                return Err(bad(flag, "0", "the capture port must not be 0".into()));
            }
        }
        if inbound_capture_port == outbound_capture_port {
            return Err(bad(
                "--outbound-capture-port",
                &outbound_capture_port.to_string(),
                "inbound and outbound capture ports must differ".into(),
            ));
        }
        Ok(Self {
            inbound_capture_port,
            outbound_capture_port,
            proxy_uid,
            proxy_gid,
            include_outbound_ip_ranges: scope(
                "--include-outbound-ip-ranges",
                &raw.include_outbound_ip_ranges,
                cidrs,
            )?,
            exclude_outbound_ip_ranges: cidrs(
                "--exclude-outbound-ip-ranges",
                &raw.exclude_outbound_ip_ranges,
            )?,
            include_inbound_ports: scope(
                "--include-inbound-ports",
                &raw.include_inbound_ports,
                ports,
            )?,
            exclude_inbound_ports: ports("--exclude-inbound-ports", &raw.exclude_inbound_ports)?,
            include_outbound_ports: ports("--include-outbound-ports", &raw.include_outbound_ports)?,
            exclude_outbound_ports: ports("--exclude-outbound-ports", &raw.exclude_outbound_ports)?,
        })
    }

    /// Whether any outbound IPv6 range is named (then IPv6 rules matter
    /// even for a pod whose own addresses are IPv4).
    pub fn names_ipv6(&self) -> bool {
        let v6 = |c: &Cidr| c.family() == Family::V6;
        self.exclude_outbound_ip_ranges.iter().any(v6)
            || matches!(&self.include_outbound_ip_ranges, Scope::Only(l) if l.iter().any(v6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawLists {
        let mut r = RawLists {
            include_outbound_ip_ranges: "*".into(),
            include_inbound_ports: "*".into(),
            ..RawLists::default()
        };
        for (k, v) in pairs {
            let v = (*v).to_owned();
            match *k {
                "iir" => r.include_outbound_ip_ranges = v,
                "eir" => r.exclude_outbound_ip_ranges = v,
                "iip" => r.include_inbound_ports = v,
                "eip" => r.exclude_inbound_ports = v,
                "iop" => r.include_outbound_ports = v,
                "eop" => r.exclude_outbound_ports = v,
                _ => unreachable!("test key {k}"),
            }
        }
        r
    }

    #[test]
    fn parses_lists_and_wildcards() {
        let p = CapturePlan::new(
            15006,
            15001,
            1337,
            1337,
            &raw(&[
                ("iir", "10.0.0.0/8, 192.168.1.1"),
                ("eir", "10.96.0.0/12,fd00::/8"),
                ("iip", "9090,8080,8080"),
                ("eip", "15020,15008"),
                ("iop", "443"),
                ("eop", "5432,3306"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            p.include_outbound_ip_ranges,
            Scope::Only(vec![
                Cidr::parse("10.0.0.0/8").expect("cidr"),
                Cidr::parse("192.168.1.1/32").expect("cidr"),
            ])
        );
        assert_eq!(p.include_inbound_ports, Scope::Only(vec![8080, 9090]));
        assert_eq!(p.exclude_inbound_ports, vec![15008, 15020]);
        assert_eq!(p.exclude_outbound_ports, vec![3306, 5432]);
        assert!(p.names_ipv6());
        let all = CapturePlan::new(15006, 15001, 1337, 1337, &raw(&[])).expect("valid");
        assert_eq!(all.include_outbound_ip_ranges, Scope::All);
        assert_eq!(all.include_inbound_ports, Scope::All);
        assert!(!all.names_ipv6());
        let none = CapturePlan::new(15006, 15001, 1337, 1337, &raw(&[("iir", ""), ("iip", "")]))
            .expect("valid");
        assert_eq!(none.include_outbound_ip_ranges, Scope::Only(vec![]));
        assert_eq!(none.include_inbound_ports, Scope::Only(vec![]));
    }

    #[test]
    fn refusals_name_the_flag() {
        let cases = [
            ("eir", "10.0.0.0/33", "--exclude-outbound-ip-ranges"),
            ("iir", "ten.0.0.0/8", "--include-outbound-ip-ranges"),
            ("eip", "80,http", "--exclude-inbound-ports"),
            ("eop", "70000", "--exclude-outbound-ports"),
            ("iip", "0", "--include-inbound-ports"),
            ("iop", "-1", "--include-outbound-ports"),
        ];
        for (key, value, flag) in cases {
            let err =
                CapturePlan::new(15006, 15001, 1337, 1337, &raw(&[(key, value)])).expect_err(value);
            let message = err.to_string();
            assert!(message.contains(flag), "{message}");
            assert!(message.contains(value), "{message}");
        }
        let same = CapturePlan::new(15001, 15001, 1337, 1337, &raw(&[])).expect_err("same ports");
        assert!(same.to_string().contains("must differ"), "{same}");
    }
}
