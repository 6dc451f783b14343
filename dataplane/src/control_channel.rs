//! The gRPC channel to weftd's TLS port (15012), shared by the CA client
//! and the xDS client: weftd's serving certificate is verified against the
//! mesh roots under the name weftd serves (the host of the address unless
//! overridden); the workload certificate is presented when there is one.

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long connecting to weftd (TCP + TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no channel to weftd could be opened.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the address of weftd {address:?} is not host:port: {detail}")]
    Address { address: String, detail: String },
    #[error(
        "connecting to weftd at {address}: {detail}; is the control plane running, and does its certificate chain to the mesh root?"
    )]
    Connect { address: String, detail: String },
}

/// The host of `host:port` (brackets of an IPv6 literal removed).
pub fn host_of(address: &str) -> Result<String, ChannelError> {
    let err = |detail: &str| ChannelError::Address {
        address: address.to_owned(),
        detail: detail.to_owned(),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| err("no :port"))?;
    port.parse::<u16>()
        .map_err(|_| err("the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(err("no host"));
    }
    Ok(host.to_owned())
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Where weftd is and how to check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeftdAddress {
    /// `host:port`, e.g. `weftd-default.weft-system.svc:15012`.
    pub address: String,
    /// Name weftd's certificate is checked against (`None`: the host).
    pub server_name: Option<String>,
}

impl WeftdAddress {
    /// A TLS channel verifying weftd against `roots_pem`, presenting
    /// `identity` (chain PEM, key PEM) when given. `request_timeout`
    /// bounds unary calls (`None` for streams).
    pub async fn connect(
        &self,
        roots_pem: &str,
        identity: Option<(String, String)>,
        request_timeout: Option<Duration>,
    ) -> Result<Channel, ChannelError> {
        let address = &self.address;
        let server_name = match &self.server_name {
            Some(n) => n.clone(),
            None => host_of(address)?,
        };
        let connect = |detail: String| ChannelError::Connect {
            address: address.clone(),
            detail,
        };
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(roots_pem))
            .domain_name(server_name);
        if let Some((chain, key)) = identity {
            tls = tls.identity(Identity::from_pem(chain, key));
        }
        let mut endpoint = Endpoint::from_shared(format!("https://{address}"))
            .map_err(|e| ChannelError::Address {
                address: address.clone(),
                detail: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if let Some(t) = request_timeout {
            endpoint = endpoint.timeout(t);
        }
        endpoint
            .tls_config(tls)
            .map_err(|e| connect(error_chain(&e)))?
            .connect()
            .await
            .map_err(|e| connect(error_chain(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(
            host_of("weftd-1-2.weft-system.svc:15012").expect("host"),
            "weftd-1-2.weft-system.svc"
        );
        assert_eq!(host_of("[::1]:15012").expect("v6"), "::1");
        for bad in ["weftd", "weftd:http", ":15012"] {
            assert!(host_of(bad).is_err(), "{bad}");
        }
    }
}
