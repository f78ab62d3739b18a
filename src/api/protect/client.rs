//! The client's address (api.md §6): the socket's peer, or what a trusted proxy says in
//! `X-Forwarded-For`; resolved once per request.

use std::net::IpAddr;

use ipnet::IpNet;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use crate::api::ApiSettings;

/// The address a request is from: the socket's peer or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy itself. Entries further left
/// were written by the client and prove nothing.
pub fn client_address<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Several headers count as one list, in order.
    let entries: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).map(str::trim).collect();
    let mut nearest_trusted = peer;
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => nearest_trusted = ip.to_canonical(),
            Ok(ip) => return Some(ip.to_canonical()),
            // Garbage where an address should be: believe nothing further left.
            Err(_) => return Some(nearest_trusted),
        }
    }
    Some(nearest_trusted)
}

/// The requesting client's address, resolved once per request.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    pub fn of(req: &Request<'_>) -> ClientAddr {
        *req.local_cache(|| {
            let trusted = req.rocket().state::<ApiSettings>().map(|s| s.trusted_proxies.as_slice()).unwrap_or(&[]);
            ClientAddr(client_address(req.remote().map(|r| r.ip()), req.headers().get("X-Forwarded-For"), trusted))
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientAddr {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        Outcome::Success(ClientAddr::of(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(client_address(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted), ip("203.0.113.9"));
        // Trusted peer: the right-most untrusted entry; the client's own left part is ignored.
        assert_eq!(
            client_address(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.7, 10.1.1.1"].into_iter(), &trusted),
            ip("198.51.100.7")
        );
        // Two headers form one list.
        assert_eq!(
            client_address(ip("10.0.0.2"), ["6.6.6.6", "198.51.100.7"].into_iter(), &trusted),
            ip("198.51.100.7")
        );
        // No header: the proxy itself. Only trusted entries: the furthest of them.
        assert_eq!(client_address(ip("10.0.0.2"), std::iter::empty(), &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), ["10.9.9.9"].into_iter(), &trusted), ip("10.9.9.9"));
        // Garbage stops the walk.
        assert_eq!(client_address(ip("10.0.0.2"), ["1.1.1.1, junk"].into_iter(), &trusted), ip("10.0.0.2"));
        // IPv4-mapped IPv6 peers are their IPv4 address.
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), ["5.5.5.5"].into_iter(), &trusted), ip("5.5.5.5"));
        assert_eq!(client_address(None, std::iter::empty(), &trusted), None);
    }
}
