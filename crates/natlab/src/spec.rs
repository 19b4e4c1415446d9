//! What a lab is made of: sites, each behind one kind of NAT.

use std::fmt;

use crate::LabError;

/// The most sites one lab holds (router WAN addresses 203.0.113.21–.50, LANs 10.1–10.30).
pub const MAX_SITES: usize = 30;
/// The most peers behind one NAT router (10.k.0.2–10.k.0.201).
pub const MAX_PEERS_PER_SITE: usize = 200;
/// The most [`NatKind::Open`] peers in one lab, over all sites (203.0.113.101–.254).
pub const MAX_OPEN_PEERS: usize = 154;

/// How a site's peers reach the public segment. The names follow RFC 3489; RFC 4787 terms
/// (mapping and filtering behaviour) are given for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// No NAT: the peers sit on the public segment with public addresses.
    Open,
    /// Endpoint-independent mapping and filtering: once a peer has sent from a port, anyone may
    /// send to the mapped port. The mapping keeps the peer's port when it is free.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering: inbound packets to a mapping
    /// are let in only from IP addresses the mapping has sent to (any port of theirs).
    Restricted,
    /// Endpoint-independent mapping, address-and-port-dependent filtering: only replies from
    /// exactly the address and port a peer sent to get in. Linux `masquerade`, which keeps the
    /// peer's port when it is free.
    PortRestricted,
    /// Endpoint-dependent mapping: every new destination gets a new, random public port; only
    /// replies get in. Linux `masquerade random`.
    Symmetric,
    /// Like [`NatKind::PortRestricted`] for TCP, but the router drops all forwarded UDP, so only
    /// TCP (for example TURN over TCP or a relay) gets through.
    UdpBlocked,
}

impl NatKind {
    /// Every kind, in declaration order.
    pub const ALL: [NatKind; 6] = [
        NatKind::Open,
        NatKind::FullCone,
        NatKind::Restricted,
        NatKind::PortRestricted,
        NatKind::Symmetric,
        NatKind::UdpBlocked,
    ];

    /// Whether the site has a NAT router (every kind but [`NatKind::Open`]).
    pub fn has_router(self) -> bool {
        self != NatKind::Open
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatKind::Open => "open",
            NatKind::FullCone => "full-cone",
            NatKind::Restricted => "restricted",
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
            NatKind::UdpBlocked => "udp-blocked",
        })
    }
}

/// One site of a [`LabSpec`]: a kind of NAT and how many peers sit behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SiteSpec {
    /// The site's NAT.
    pub kind: NatKind,
    /// How many peers; at least one. Peers of one site share a LAN (a bridge in the router's
    /// namespace) and reach each other directly.
    pub peers: usize,
}

/// The list of sites to build; sites are numbered from 0 in the order they are added.
///
/// ```
/// use switchboard_natlab::{LabSpec, NatKind};
///
/// let spec = LabSpec::new().site(NatKind::FullCone, 1).site(NatKind::Symmetric, 1).same_lan();
/// assert_eq!(spec.sites().len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabSpec {
    sites: Vec<SiteSpec>,
}

impl LabSpec {
    /// A spec with no sites (the lab then holds only the server).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a site of `kind` with `peers` peers.
    pub fn site(mut self, kind: NatKind, peers: usize) -> Self {
        self.sites.push(SiteSpec { kind, peers });
        self
    }

    /// Adds the "same LAN" site: one [`NatKind::PortRestricted`] router with two peers.
    pub fn same_lan(self) -> Self {
        self.site(NatKind::PortRestricted, 2)
    }

    /// The sites, in order.
    pub fn sites(&self) -> &[SiteSpec] {
        &self.sites
    }

    pub(crate) fn validate(&self) -> Result<(), LabError> {
        if self.sites.len() > MAX_SITES {
            return Err(LabError::InvalidSpec(format!("{} sites, at most {MAX_SITES}", self.sites.len())));
        }
        let mut open = 0;
        for (index, site) in self.sites.iter().enumerate() {
            if site.peers == 0 {
                return Err(LabError::InvalidSpec(format!("site {index} ({}) has no peers", site.kind)));
            }
            if site.peers > MAX_PEERS_PER_SITE {
                return Err(LabError::InvalidSpec(format!(
                    "site {index} ({}) has {} peers, at most {MAX_PEERS_PER_SITE}",
                    site.kind, site.peers
                )));
            }
            if site.kind == NatKind::Open {
                open += site.peers;
            }
        }
        if open > MAX_OPEN_PEERS {
            return Err(LabError::InvalidSpec(format!("{open} open peers, at most {MAX_OPEN_PEERS}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sites_and_oversized_labs_are_refused() {
        assert!(LabSpec::new().site(NatKind::FullCone, 0).validate().is_err());
        assert!(LabSpec::new().site(NatKind::Symmetric, MAX_PEERS_PER_SITE + 1).validate().is_err());
        assert!(LabSpec::new().site(NatKind::Open, MAX_OPEN_PEERS + 1).validate().is_err());
        let crowded = (0..=MAX_SITES).fold(LabSpec::new(), |spec, _| spec.site(NatKind::Open, 1));
        assert!(crowded.validate().is_err());
    }

    #[test]
    fn a_lab_of_every_kind_is_valid() {
        let spec = NatKind::ALL.iter().fold(LabSpec::new(), |spec, kind| spec.site(*kind, 1)).same_lan();
        assert!(spec.validate().is_ok());
        assert_eq!(spec.sites()[6], SiteSpec { kind: NatKind::PortRestricted, peers: 2 });
    }
}
