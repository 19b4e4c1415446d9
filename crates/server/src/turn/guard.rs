//! Which peers a relay may reach, checked before the `turn` crate sees a
//! CreatePermission or ChannelBind: without it, anyone with credentials
//! could make the server send to its own loopback or private network.

use std::net::IpAddr;

use stun_types::attribute::{AttributeFromRaw, AttributeStaticType, ErrorCode};
use stun_types::message::{Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec};
use turn_types::attribute::XorPeerAddress;

/// STUN methods that name peers.
const CREATE_PERMISSION: u16 = 0x0008;
const CHANNEL_BIND: u16 = 0x0009;

/// Where an address lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Loopback,
    Private,
    LinkLocal,
    /// Unspecified, multicast or broadcast: never a peer.
    Never,
    Public,
}

fn scope(ip: IpAddr) -> Scope {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Scope::Loopback,
        IpAddr::V4(v4) if v4.is_private() => Scope::Private,
        IpAddr::V4(v4) if v4.is_link_local() => Scope::LinkLocal,
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() => Scope::Never,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            v6.to_ipv4_mapped().map_or(Scope::Never, |v4| scope(v4.into()))
        }
        IpAddr::V6(v6) if v6.is_loopback() => Scope::Loopback,
        IpAddr::V6(v6) if v6.is_unique_local() => Scope::Private,
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Scope::LinkLocal,
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => Scope::Never,
        _ => Scope::Public,
    }
}

/// The peers this server's relays may reach: public addresses, and
/// addresses of the server's own scope (a server on loopback relays between
/// local peers; one on a private network, within it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerPolicy {
    server: Scope,
    private: bool,
}

impl PeerPolicy {
    /// For a server that peers reach at `advertised`; `private` also lets
    /// relays reach private networks from a public server.
    pub(crate) fn new(advertised: IpAddr, private: bool) -> Self {
        Self { server: scope(advertised), private }
    }

    fn allows(self, peer: IpAddr) -> bool {
        match scope(peer) {
            Scope::Public => true,
            Scope::Never => false,
            Scope::Private if self.private => true,
            s => s == self.server,
        }
    }

    /// If `packet` asks for a permission or channel to a peer the policy
    /// refuses, the 403 answer to send instead of handing it on.
    pub(crate) fn refuse(self, packet: &[u8]) -> Option<Vec<u8>> {
        let msg = Message::from_bytes(packet).ok()?;
        let method = msg.method().value();
        if !(method == CREATE_PERMISSION || method == CHANNEL_BIND) || !msg.has_class(MessageClass::Request) {
            return None;
        }
        let transaction = msg.transaction_id();
        let refused = msg
            .iter_attributes()
            .filter(|(_, raw)| raw.header.get_type() == XorPeerAddress::TYPE)
            .filter_map(|(_, raw)| XorPeerAddress::from_raw_ref(&raw).ok())
            .map(|a| a.addr(transaction).ip())
            .find(|ip| !self.allows(*ip))?;
        tracing::debug!(peer = %refused, "TURN permission to a forbidden address refused");
        let mut reply = Message::builder_error(&msg, MessageWriteVec::new());
        let code = ErrorCode::builder(403).reason("Forbidden: peer address not allowed").build().ok()?;
        reply.add_attribute(&code).ok()?;
        Some(reply.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use stun_types::message::Method;

    use super::*;

    fn permission(peers: &[&str]) -> Vec<u8> {
        let mut msg = Message::builder_request(Method::new(CREATE_PERMISSION), MessageWriteVec::new());
        let transaction = msg.transaction_id();
        for p in peers {
            let addr: SocketAddr = p.parse().expect("address");
            msg.add_attribute(&XorPeerAddress::new(addr, transaction)).expect("attribute");
        }
        msg.finish()
    }

    #[test]
    fn a_public_server_relays_to_public_peers_only() {
        let public = PeerPolicy::new("203.0.113.7".parse().expect("ip"), false);
        assert!(public.refuse(&permission(&["198.51.100.2:5000"])).is_none());
        for forbidden in ["127.0.0.1:22", "10.1.2.3:80", "169.254.169.254:80", "[::1]:80", "[fd00::1]:80", "0.0.0.0:1"]
        {
            let answer = public.refuse(&permission(&["198.51.100.2:5000", forbidden])).expect("refused");
            let answer = Message::from_bytes(&answer).expect("a STUN answer");
            assert!(answer.has_class(MessageClass::Error), "{forbidden}");
            assert_eq!(answer.attribute::<ErrorCode>().map(|c| c.code()).ok(), Some(403), "{forbidden}");
        }
        let private_ok = PeerPolicy::new("203.0.113.7".parse().expect("ip"), true);
        assert!(private_ok.refuse(&permission(&["10.1.2.3:80"])).is_none(), "private networks when asked");
        assert!(private_ok.refuse(&permission(&["127.0.0.1:80"])).is_some(), "loopback never");
    }

    #[test]
    fn a_server_relays_within_its_own_scope() {
        let local = PeerPolicy::new("127.0.0.1".parse().expect("ip"), false);
        assert!(local.refuse(&permission(&["127.0.0.1:5000"])).is_none(), "loopback server, loopback peers");
        let lan = PeerPolicy::new("192.168.1.10".parse().expect("ip"), false);
        assert!(lan.refuse(&permission(&["192.168.1.20:5000"])).is_none());
        assert!(lan.refuse(&permission(&["127.0.0.1:5000"])).is_some());
    }

    #[test]
    fn other_messages_pass() {
        let public = PeerPolicy::new("203.0.113.7".parse().expect("ip"), false);
        let binding = Message::builder_request(Method::new(0x0001), MessageWriteVec::new()).finish();
        assert!(public.refuse(&binding).is_none());
        assert!(public.refuse(b"not stun at all").is_none());
    }
}
