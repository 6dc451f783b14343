//! Request and response header handling between hops: hop-by-hop headers,
//! `x-request-id`, `x-forwarded-for` / `-proto`, and Istio's
//! `x-forwarded-client-cert` carrying the caller's SPIFFE ID.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
/// Why the proxy answered itself (no healthy upstream, no route, …).
pub const X_WEFT_REASON: HeaderName = HeaderName::from_static("x-weft-reason");

const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether a request asks for a protocol upgrade (WebSocket, h2c, …).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers (and those the Connection header names);
/// an upgrade keeps `Connection: upgrade` and `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let upgrade = headers.get(header::UPGRADE).cloned();
    let h2c_settings = headers.get(HTTP2_SETTINGS).cloned();
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(n);
    }
    // TE is only allowed as "trailers" (gRPC needs it).
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade && let Some(u) = upgrade {
        // h2c upgrades carry their settings in a connection-scoped header.
        if let Some(settings) = h2c_settings {
            headers.insert(
                header::CONNECTION,
                HeaderValue::from_static("upgrade, http2-settings"),
            );
            headers.insert(HTTP2_SETTINGS, settings);
        } else {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        headers.insert(header::UPGRADE, u);
    }
}

/// A random UUID v4 (a per-thread generator seeded from the system RNG:
/// request ids need uniqueness, not secrecy, and no syscall per request).
pub fn request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64)> = Cell::new(seed());
    }
    fn seed() -> (u64, u64) {
        let mut b = [0u8; 16];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            return (t | 1, crate::proxy::lb::random() | 1);
        }
        let mut a = [0u8; 8];
        let mut c = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        c.copy_from_slice(&b[8..]);
        (u64::from_le_bytes(a) | 1, u64::from_le_bytes(c) | 1)
    }
    // xorshift128+
    let (hi, lo) = STATE.with(|s| {
        let (mut x, y) = s.get();
        x ^= x << 23;
        let next = (y, x ^ y ^ (x >> 17) ^ (y >> 26));
        s.set(next);
        let (mut x2, y2) = next;
        x2 ^= x2 << 23;
        let after = (y2, x2 ^ y2 ^ (x2 >> 17) ^ (y2 >> 26));
        s.set(after);
        (next.1.wrapping_add(next.0), after.1.wrapping_add(after.0))
    });
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_le_bytes());
    b[8..].copy_from_slice(&lo.to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xf)] as char);
    }
    out
}

/// A header value that takes over a string's buffer (no copy).
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
}

/// Keeps an incoming `x-request-id`, generates one when absent.
pub fn ensure_request_id(headers: &mut HeaderMap) {
    if !headers.contains_key(X_REQUEST_ID)
        && let Some(v) = owned_value(request_id())
    {
        headers.insert(X_REQUEST_ID, v);
    }
}

/// Appends the downstream address to `x-forwarded-for` and sets
/// `x-forwarded-proto` when absent.
pub fn forwarded(headers: &mut HeaderMap, client_ip: std::net::IpAddr, proto: &'static str) {
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {client_ip}"),
        _ => client_ip.to_string(),
    };
    if let Some(v) = owned_value(xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
}

/// Istio's SANITIZE_SET: drop what the caller sent, set `By` (this
/// proxy) and `URI` (the verified caller) for mTLS callers.
pub fn set_client_cert(headers: &mut HeaderMap, by: Option<&str>, peer: Option<&str>) {
    headers.remove(&XFCC);
    if let Some(peer) = peer {
        let value = match by {
            Some(by) => format!("By={by};URI={peer}"),
            None => format!("URI={peer}"),
        };
        if let Some(v) = owned_value(value) {
            headers.insert(XFCC, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_upgrades_stay() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            "keep-alive, x-secret, Upgrade".parse().unwrap(),
        );
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(header::TE, "trailers, deflate".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        assert!(is_upgrade(&h));
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain, false);
        assert!(!plain.contains_key("x-secret") && !plain.contains_key(header::UPGRADE));
        assert_eq!(plain.get(header::TE).unwrap(), "trailers");
        assert!(plain.contains_key("x-keep"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        let mut h = HeaderMap::new();
        ensure_request_id(&mut h);
        let id = h.get(X_REQUEST_ID).unwrap().to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        ensure_request_id(&mut h);
        assert_eq!(h.get(X_REQUEST_ID).unwrap(), id.as_str());
        assert_ne!(request_id(), request_id());
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, "1.2.3.4".parse().unwrap());
        forwarded(&mut h, "10.0.0.1".parse().unwrap(), "https");
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "1.2.3.4, 10.0.0.1");
        assert_eq!(h.get(X_FORWARDED_PROTO).unwrap(), "https");
    }

    #[test]
    fn client_cert_header_cannot_be_forged() {
        let mut h = HeaderMap::new();
        h.insert(XFCC, "URI=spiffe://evil/ns/x/sa/y".parse().unwrap());
        set_client_cert(&mut h, Some("spiffe://td/ns/b/sa/b"), None);
        assert!(!h.contains_key(XFCC));
        set_client_cert(
            &mut h,
            Some("spiffe://td/ns/b/sa/b"),
            Some("spiffe://td/ns/a/sa/a"),
        );
        assert_eq!(
            h.get(XFCC).unwrap(),
            "By=spiffe://td/ns/b/sa/b;URI=spiffe://td/ns/a/sa/a"
        );
    }
}
