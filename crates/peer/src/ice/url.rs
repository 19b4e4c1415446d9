//! `stun:`, `turn:` and `turns:` URLs (RFC 7064, RFC 7065).

use std::fmt;

/// What a server URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `stun:` — server-reflexive addresses only.
    Stun,
    /// `turn:` — relayed addresses, over UDP or TCP.
    Turn,
    /// `turns:` — relayed addresses over TLS.
    Turns,
}

/// How the client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Datagrams from the link's own sockets.
    Udp,
    /// One TCP connection (TLS for `turns:`).
    Tcp,
}

/// A parsed server URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerUrl {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) transport: Transport,
}

/// Why a URL was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad ICE server URL {url:?}: {why}")]
pub struct UrlError {
    url: String,
    why: &'static str,
}

impl ServerUrl {
    /// Parses `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]` or `turns:host[:port][?transport=tcp]`.
    pub(crate) fn parse(url: &str) -> Result<Self, UrlError> {
        let bad = |why| UrlError { url: url.to_owned(), why };
        let (scheme, rest) = url.split_once(':').ok_or_else(|| bad("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "stun" => Scheme::Stun,
            "turn" => Scheme::Turn,
            "turns" => Scheme::Turns,
            _ => return Err(bad("the scheme must be stun, turn or turns")),
        };
        let (hostport, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let transport = match (scheme, query) {
            (Scheme::Stun, Some(_)) => return Err(bad("stun: URLs take no query")),
            (Scheme::Turns, None) | (_, Some("transport=tcp")) => Transport::Tcp,
            (_, None | Some("transport=udp")) if scheme != Scheme::Turns => Transport::Udp,
            _ => return Err(bad("the query must be transport=udp or transport=tcp (turns: is TCP only)")),
        };
        let default_port = if scheme == Scheme::Turns { 5349 } else { 3478 };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("bad host or port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(ServerUrl { scheme, host: host.to_owned(), port: port.unwrap_or(default_port), transport })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Stun => "stun",
            Scheme::Turn => "turn",
            Scheme::Turns => "turns",
        };
        let t = if self.transport == Transport::Tcp { "tcp" } else { "udp" };
        write!(f, "{scheme}:{}:{}?transport={t}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        let u = ServerUrl::parse("stun:203.0.113.10").expect("stun");
        assert_eq!((u.scheme, u.port, u.transport), (Scheme::Stun, 3478, Transport::Udp));
        let u = ServerUrl::parse("turn:turn.example.org:3479?transport=tcp").expect("turn tcp");
        assert_eq!((u.host.as_str(), u.port, u.transport), ("turn.example.org", 3479, Transport::Tcp));
        let u = ServerUrl::parse("turns:[2001:db8::1]").expect("turns v6");
        assert_eq!((u.host.as_str(), u.port, u.transport), ("2001:db8::1", 5349, Transport::Tcp));
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in
            ["http://x", "stun:", "turn:x:notaport", "turn:x?transport=sctp", "turns:x?transport=udp", "stun:x?a=b"]
        {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
