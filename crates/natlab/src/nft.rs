//! The nftables ruleset of a NAT router, one per [`NatKind`].
//!
//! Every router has an interface `wan` on the public segment and a bridge `lan` holding its
//! peers. All kinds share an input chain that drops new connections from the WAN side to the
//! router itself. Besides being what real routers do, this matters for conntrack: an inbound
//! packet that reached the router's own stack would leave a conntrack entry (remote → WAN port)
//! behind, and a later outbound packet from the peer to that remote would then find its port
//! taken and be mapped to a new one, breaking the endpoint-independent mapping. A packet dropped
//! before conntrack confirms it leaves no entry.
//!
//! The cone kinds (full cone, restricted) cannot be had from `masquerade`, which only lets
//! replies in. They `snat` (which keeps the source port when it is free) and learn, after the
//! translation, which public port belongs to which LAN address in a dynamic map; the restricted
//! cone also learns which remote addresses each public port has sent to. A prerouting `dnat`
//! through that map then opens the mapping to anyone (full cone) or to those addresses only.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::NatKind;

/// How long a learned cone mapping lasts after its last outbound packet (conntrack keeps a
/// replied UDP flow for 120 s by default).
const MAPPING_TIMEOUT: &str = "120s";

/// The ruleset for a router of `kind` whose WAN address is `wan`; `None` for [`NatKind::Open`].
pub(crate) fn router_ruleset(kind: NatKind, wan: Ipv4Addr) -> Option<String> {
    let snat = match kind {
        NatKind::Open => return None,
        NatKind::FullCone | NatKind::Restricted => format!("snat to {wan}"),
        NatKind::PortRestricted | NatKind::UdpBlocked => "masquerade".to_owned(),
        NatKind::Symmetric => "masquerade random".to_owned(),
    };
    let mut out = String::from("table ip natlab {\n");
    let cone = matches!(kind, NatKind::FullCone | NatKind::Restricted);
    if cone {
        let _ = writeln!(
            out,
            "  map cone {{ typeof udp dport : ip daddr; flags dynamic,timeout; timeout {MAPPING_TIMEOUT}; }}"
        );
    }
    if kind == NatKind::Restricted {
        let _ = writeln!(
            out,
            "  set contacted {{ typeof ip daddr . udp sport; flags dynamic,timeout; timeout {MAPPING_TIMEOUT}; }}"
        );
    }
    out.push_str(
        "  chain input {\n    type filter hook input priority filter; policy accept;\n    \
         iifname \"wan\" meta l4proto != icmp ct state new,invalid drop\n  }\n",
    );
    let _ = writeln!(
        out,
        "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    \
         oifname \"wan\" {snat}\n  }}"
    );
    if cone {
        // After srcnat the packet carries its public port. The LAN address is the original
        // source for flows the peer opened, and the reply source for flows let in by the dnat.
        out.push_str(
            "  chain learn {\n    type filter hook postrouting priority srcnat + 10; policy accept;\n    \
             oifname \"wan\" ct direction original update @cone { udp sport : ct original ip saddr }\n    \
             oifname \"wan\" ct direction reply update @cone { udp sport : ct reply ip saddr }\n",
        );
        if kind == NatKind::Restricted {
            out.push_str("    oifname \"wan\" update @contacted { ip daddr . udp sport }\n");
        }
        out.push_str("  }\n");
        let guard = if kind == NatKind::Restricted { "ip saddr . udp dport @contacted " } else { "" };
        // Only the first packet of a flow passes nat chains; replies follow conntrack.
        let _ = writeln!(
            out,
            "  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
             iifname \"wan\" {guard}dnat to udp dport map @cone\n  }}"
        );
    }
    if kind == NatKind::UdpBlocked {
        out.push_str(
            "  chain forward {\n    type filter hook forward priority filter; policy accept;\n    \
             iifname \"wan\" meta l4proto udp drop\n    oifname \"wan\" meta l4proto udp drop\n  }\n",
        );
    }
    out.push_str("}\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 21);

    #[test]
    fn open_sites_have_no_router() {
        assert_eq!(router_ruleset(NatKind::Open, WAN), None);
    }

    #[test]
    fn each_kind_gets_its_translation() {
        let rules = |kind| router_ruleset(kind, WAN).expect("a router kind");
        assert!(rules(NatKind::PortRestricted).contains("oifname \"wan\" masquerade\n"));
        assert!(rules(NatKind::Symmetric).contains("masquerade random"));
        assert!(rules(NatKind::FullCone).contains("snat to 203.0.113.21"));
        assert!(rules(NatKind::FullCone).contains("iifname \"wan\" dnat to udp dport map @cone"));
        assert!(rules(NatKind::Restricted).contains("ip saddr . udp dport @contacted dnat"));
        assert!(rules(NatKind::UdpBlocked).contains("oifname \"wan\" meta l4proto udp drop"));
        for kind in NatKind::ALL.into_iter().filter(|kind| kind.has_router()) {
            assert!(rules(kind).contains("ct state new,invalid drop"), "{kind}");
        }
    }
}
