//! Faults on a running lab: random loss on the public segment, a site cut
//! off from it, and a site whose UDP is blocked. Each is one nftables table in the namespaces concerned,
//! added or deleted as a whole.

use crate::cmd::{exec_in, run};
use crate::{Lab, LabError, Netns};

/// The table that drops a share of the packets leaving for the public segment.
const LOSS_TABLE: &str = "natlab_loss";
/// The table that cuts a site off.
const CUT_TABLE: &str = "natlab_cut";
/// The table that blocks a site's UDP.
const UDP_TABLE: &str = "natlab_udp";
/// The table that blocks every UDP datagram a namespace sends.
const ALL_UDP_TABLE: &str = "natlab_all_udp";

/// The rules that drop every UDP datagram leaving anything in a namespace,
/// loopback included.
fn all_udp_rules() -> String {
    format!(
        "table inet {ALL_UDP_TABLE} {{\n  chain out {{\n    type filter hook output priority 0;\n    \
         meta l4proto udp drop\n  }}\n}}\n"
    )
}

/// Blocks every UDP datagram sent in the calling thread's network namespace
/// (`true`), loopback included, or lets UDP pass again (`false`): no
/// WebRTC path is left between the programs in it, while TCP goes on.
/// Meant for a namespace a test made itself (it needs root).
pub fn block_udp_here(blocked: bool) -> Result<(), LabError> {
    let _ = run("nft", &["delete", "table", "inet", ALL_UDP_TABLE], None);
    if blocked {
        run("nft", &["-f", "-"], Some(&all_udp_rules()))?;
    }
    Ok(())
}

impl Netns {
    /// [`block_udp_here`] for this namespace.
    pub fn set_udp_blocked(&self, blocked: bool) -> Result<(), LabError> {
        drop_table(self, ALL_UDP_TABLE)?;
        if blocked {
            exec_in(self.name(), "nft", &["-f", "-"], Some(&all_udp_rules()))?;
        }
        Ok(())
    }
}

impl Lab {
    /// Drops `percent` % of the packets entering the public segment, at random, at the same
    /// places [`Lab::set_delay`] delays them; 0 removes the loss.
    pub fn set_loss(&self, percent: u8) -> Result<(), LabError> {
        if percent > 100 {
            return Err(LabError::InvalidSpec(format!("loss of {percent} % is more than all packets")));
        }
        for (netns, device) in self.delay_points() {
            drop_table(netns, LOSS_TABLE)?;
            if percent > 0 {
                let rules = format!(
                    "table inet {LOSS_TABLE} {{\n  chain out {{\n    type filter hook postrouting priority 0;\n    \
                     oifname \"{device}\" numgen random mod 100 < {percent} drop\n  }}\n}}\n"
                );
                exec_in(netns.name(), "nft", &["-f", "-"], Some(&rules))?;
            }
        }
        Ok(())
    }

    /// Cuts `site` off the public segment (`true`: nothing passes its router or, for an open
    /// site, its peers' public interfaces, either way) or joins it again (`false`). Existing
    /// NAT mappings survive a short cut, as on a real link that goes down.
    pub fn set_cut(&self, site: usize, cut: bool) -> Result<(), LabError> {
        self.block_site(site, CUT_TABLE, "", cut)
    }

    /// Blocks all UDP between `site` and the public segment (`true`), as a
    /// firewall that lets only TCP out would, or lets it pass again (`false`).
    /// TCP (the signaling connection, TURN over TCP) goes on.
    pub fn set_udp_blocked(&self, site: usize, blocked: bool) -> Result<(), LabError> {
        self.block_site(site, UDP_TABLE, "meta l4proto udp ", blocked)
    }

    /// Drops what matches `filter` (all traffic when empty) at `site`'s
    /// public side, in table `table`, or deletes the table.
    fn block_site(&self, site: usize, table: &str, filter: &str, on: bool) -> Result<(), LabError> {
        let found = self.sites().get(site).ok_or_else(|| LabError::InvalidSpec(format!("no site {site}")))?;
        let points: Vec<(&Netns, &str)> = match found.router() {
            Some(router) => vec![(router.netns(), "wan")],
            None => found.peers().iter().map(|p| (p.netns(), "eth0")).collect(),
        };
        for (netns, device) in points {
            drop_table(netns, table)?;
            if on {
                let rules = format!(
                    "table inet {table} {{\n  chain in {{\n    type filter hook prerouting priority -300;\n    \
                     iifname \"{device}\" {filter}drop\n  }}\n  chain out {{\n    type filter hook postrouting priority 300;\n    \
                     oifname \"{device}\" {filter}drop\n  }}\n}}\n"
                );
                exec_in(netns.name(), "nft", &["-f", "-"], Some(&rules))?;
            }
        }
        Ok(())
    }
}

/// Deletes table `name` (family inet) in `netns` if it is there.
fn drop_table(netns: &Netns, name: &str) -> Result<(), LabError> {
    match exec_in(netns.name(), "nft", &["delete", "table", "inet", name], None) {
        Ok(_) => Ok(()),
        Err(LabError::Command { stderr, .. }) if stderr.contains("No such file") => Ok(()),
        Err(e) => Err(e),
    }
}
