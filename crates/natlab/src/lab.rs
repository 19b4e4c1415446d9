//! Building, inspecting, shaping and removing a lab.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::cmd::{self, exec_in, ip, ip_in};
use crate::delay::Delayer;
use crate::nft::router_ruleset;
use crate::{LabError, LabSpec, NatKind, Netns};

/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Every lab namespace's name starts with this, then the owning process's pid and a dash.
const NAME_LEAD: &str = "sbl";
/// The two addresses of the server.
const SERVER_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(203, 0, 113, 10), Ipv4Addr::new(203, 0, 113, 11)];
/// Open peers take consecutive addresses from here.
const FIRST_OPEN_HOST: u8 = 101;
/// The most packets a netem qdisc holds (its default, 1000, drops packets at high rates).
const NETEM_LIMIT: &str = "100000";

/// Labs made by this process so far; keeps the prefixes of one process's labs apart.
static LABS_MADE: AtomicUsize = AtomicUsize::new(0);

/// The server: one namespace on the public segment with two addresses, as RFC 5780 NAT
/// behaviour discovery needs.
#[derive(Debug, Clone)]
pub struct Server {
    netns: Netns,
    ips: [Ipv4Addr; 2],
}

impl Server {
    /// The server's namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The primary address, 203.0.113.10.
    pub fn ip(&self) -> Ipv4Addr {
        self.ips[0]
    }

    /// The alternate address, 203.0.113.11.
    pub fn alt_ip(&self) -> Ipv4Addr {
        self.ips[1]
    }

    /// Both addresses, primary first.
    pub fn ips(&self) -> [Ipv4Addr; 2] {
        self.ips
    }
}

/// A NAT router: its own namespace, with `wan` on the public segment and a bridge `lan`.
#[derive(Debug, Clone)]
pub struct Router {
    netns: Netns,
    kind: NatKind,
    wan_ip: Ipv4Addr,
    lan_ip: Ipv4Addr,
}

impl Router {
    /// The router's namespace (its nftables ruleset is the table `ip natlab` there).
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The NAT it performs.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// The public address, 203.0.113.(20+k) for the site numbered k from 1.
    pub fn wan_ip(&self) -> Ipv4Addr {
        self.wan_ip
    }

    /// The LAN address, 10.k.0.1; the default gateway of the site's peers.
    pub fn lan_ip(&self) -> Ipv4Addr {
        self.lan_ip
    }
}

/// A peer: a namespace with one interface, `eth0`.
#[derive(Debug, Clone)]
pub struct Peer {
    netns: Netns,
    kind: NatKind,
    site: usize,
    ip: Ipv4Addr,
    public_ip: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
}

impl Peer {
    /// The peer's namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The NAT its site is behind.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// The index of its site in the [`LabSpec`].
    pub fn site(&self) -> usize {
        self.site
    }

    /// Its own address: 10.k.0.(2+i) behind a router, a public 203.0.113.x on an open site.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The address others see it at: the router's WAN address, or its own on an open site.
    pub fn public_ip(&self) -> Ipv4Addr {
        self.public_ip
    }

    /// Its default gateway, the router's LAN address; `None` on an open site, whose peers have
    /// no default route (they reach only the public /24).
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }
}

/// One site of a built lab.
#[derive(Debug, Clone)]
pub struct Site {
    kind: NatKind,
    router: Option<Router>,
    peers: Vec<Peer>,
}

impl Site {
    /// The site's NAT.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// Its router; `None` for [`NatKind::Open`].
    pub fn router(&self) -> Option<&Router> {
        self.router.as_ref()
    }

    /// Its peers, in order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }
}

/// A built lab: namespaces wired into a public segment with NAT routers. Dropping it deletes
/// every namespace it made.
///
/// Layout, for the site with index `s` in the spec and `k = s + 1`:
///
/// - the public segment: namespace `<prefix>pub` holding the bridge `br0`, 203.0.113.0/24;
/// - the server: `<prefix>srv`, 203.0.113.10 and 203.0.113.11 on `eth0`;
/// - a router: `<prefix>s<s>r`, `wan` = 203.0.113.(20+k)/24, bridge `lan` = 10.k.0.1/24,
///   forwarding on, the nftables table `ip natlab` for its [`NatKind`];
/// - its peers: `<prefix>s<s>p<i>`, `eth0` = 10.k.0.(2+i)/24, default route via 10.k.0.1;
/// - an open site's peers: `<prefix>s<s>p<i>`, `eth0` on the public bridge with consecutive
///   addresses from 203.0.113.101, no default route.
///
/// Nothing has a route out of the lab: the routers only know their two connected networks.
/// The lab is IPv4 only (IPv6 is off in its namespaces).
/// The prefix is `sbl<pid>-<n>-` (pid of this process, n counting its labs), so parallel runs
/// never collide, and [`sweep_stale`] can tell which namespaces a dead process left behind.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    public: Netns,
    server: Server,
    sites: Vec<Site>,
    owned: Owned,
    /// NFQUEUE delayers, where the kernel has no netem.
    delayers: Mutex<Vec<Delayer>>,
}

impl Lab {
    /// Builds the lab `spec` describes. Checks first that the process is root and that `ip`,
    /// `nft` and `sysctl` are installed, and deletes namespaces left by dead processes
    /// ([`sweep_stale`]). On failure, whatever was made is deleted again.
    pub fn build(spec: &LabSpec) -> Result<Lab, LabError> {
        spec.validate()?;
        preflight()?;
        sweep_stale()?;
        let seq = LABS_MADE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NAME_LEAD}{}-{seq}-", std::process::id());
        let mut owned = Owned(Vec::new());

        let public = owned.create(&prefix, "pub")?;
        ip_in(public.name(), &["link", "add", "br0", "type", "bridge"])?;
        ip_in(public.name(), &["link", "set", "br0", "up"])?;

        let server_ns = owned.create(&prefix, "srv")?;
        plug(&public, "srv", &server_ns, "eth0")?;
        for address in SERVER_IPS {
            add_address(&server_ns, address, "eth0")?;
        }
        let server = Server { netns: server_ns, ips: SERVER_IPS };

        let mut sites = Vec::with_capacity(spec.sites().len());
        let mut next_open_host = FIRST_OPEN_HOST;
        for (index, site) in spec.sites().iter().enumerate() {
            let built = if site.kind.has_router() {
                build_nat_site(&mut owned, &prefix, &public, index, site.kind, site.peers)?
            } else {
                let mut peers = Vec::with_capacity(site.peers);
                for i in 0..site.peers {
                    let name = format!("s{index}p{i}");
                    let netns = owned.create(&prefix, &name)?;
                    let address = Ipv4Addr::new(203, 0, 113, next_open_host);
                    next_open_host += 1;
                    plug(&public, &name, &netns, "eth0")?;
                    add_address(&netns, address, "eth0")?;
                    peers.push(Peer {
                        netns,
                        kind: site.kind,
                        site: index,
                        ip: address,
                        public_ip: address,
                        gateway: None,
                    });
                }
                Site { kind: site.kind, router: None, peers }
            };
            sites.push(built);
        }
        Ok(Lab { prefix, public, server, sites, owned, delayers: Mutex::new(Vec::new()) })
    }

    /// The prefix of every namespace of this lab, `sbl<pid>-<n>-`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The names of every namespace of this lab, in the order they were made.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.owned.0.iter().map(String::as_str)
    }

    /// The namespace of the public segment (the bridge `br0`), e.g. to capture traffic there.
    pub fn public_segment(&self) -> &Netns {
        &self.public
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Every site, in spec order.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The site with index `site` in the spec.
    ///
    /// # Panics
    ///
    /// If there is no such site.
    pub fn site(&self, site: usize) -> &Site {
        match self.sites.get(site) {
            Some(found) => found,
            None => panic!("the lab has {} sites, no site {site}", self.sites.len()),
        }
    }

    /// Peer `i` (from 0) of site `site`.
    ///
    /// # Panics
    ///
    /// If there is no such site or peer.
    pub fn peer(&self, site: usize, i: usize) -> &Peer {
        let found = self.site(site);
        match found.peers.get(i) {
            Some(peer) => peer,
            None => panic!("site {site} has {} peers, no peer {i}", found.peers.len()),
        }
    }

    /// Gives peer `i` of NAT site `site` a new address, as a laptop that moves
    /// to another network (or gets another DHCP lease) would see it: the old
    /// address 10.k.0.h is deleted, so sockets bound to it and connections
    /// from it go dead, and 10.k.0.(h+100) takes its place; its router maps
    /// the new address afresh (a new public port). Returns the new address.
    pub fn renumber_peer(&mut self, site: usize, i: usize) -> Result<Ipv4Addr, LabError> {
        let found = self.sites.get_mut(site).ok_or_else(|| LabError::InvalidSpec(format!("no site {site}")))?;
        if found.router.is_none() {
            return Err(LabError::InvalidSpec(format!("site {site} is open: its peers keep their public addresses")));
        }
        let peer =
            found.peers.get_mut(i).ok_or_else(|| LabError::InvalidSpec(format!("site {site} has no peer {i}")))?;
        let [a, b, c, h] = peer.ip.octets();
        let h = h
            .checked_add(100)
            .filter(|h| *h < 255)
            .ok_or_else(|| LabError::InvalidSpec(format!("peer {i} of site {site} has no free address to move to")))?;
        let new = Ipv4Addr::new(a, b, c, h);
        let gateway = peer.gateway.map(|g| g.to_string());
        ip_in(peer.netns.name(), &["addr", "del", &format!("{}/24", peer.ip), "dev", "eth0"])?;
        ip_in(peer.netns.name(), &["addr", "add", &format!("{new}/24"), "dev", "eth0"])?;
        if let Some(gateway) = &gateway {
            ip_in(peer.netns.name(), &["route", "replace", "default", "via", gateway])?;
        }
        peer.ip = new;
        Ok(new)
    }

    /// Delays every packet leaving a site or the server for the public segment by `delay`,
    /// with a `netem` qdisc on each router's `wan`, each open peer's `eth0` and the server's
    /// `eth0`. The round trip between any two of them (the server, a peer of one site, a peer of
    /// another) then grows by `2 × delay`; peers of one site still reach each other at once.
    /// `Duration::ZERO` removes the delay.
    ///
    /// Where the kernel was built without netem, an NFQUEUE rule on each of those interfaces
    /// hands packets to a thread in its namespace that lets each go `delay` after it came
    /// (0.5 ms granularity; needs `iptables`).
    pub fn set_delay(&self, delay: Duration) -> Result<(), LabError> {
        if let Ok(mut d) = self.delayers.lock() {
            d.clear();
        }
        if self.set_netem_delay(delay)? || delay.is_zero() {
            return Ok(());
        }
        let mut started = Vec::new();
        for (netns, device) in self.delay_points() {
            started.push(Delayer::start(netns, device, delay)?);
        }
        if let Ok(mut d) = self.delayers.lock() {
            *d = started;
        }
        Ok(())
    }

    /// Sets the delay with netem qdiscs; `false` when the kernel has no netem.
    fn set_netem_delay(&self, delay: Duration) -> Result<bool, LabError> {
        cmd::require("tc", "iproute2")?;
        let micros = format!("{}us", delay.as_micros());
        for (netns, device) in self.delay_points() {
            let result = if delay.is_zero() {
                match exec_in(netns.name(), "tc", &["qdisc", "del", "dev", device, "root"], None) {
                    // Nothing to remove: the interface has its default qdisc.
                    Err(LabError::Command { stderr, .. }) if stderr.contains("handle of zero") => Ok(String::new()),
                    other => other,
                }
            } else {
                let args = ["qdisc", "replace", "dev", device, "root", "netem", "delay", &micros, "limit", NETEM_LIMIT];
                match exec_in(netns.name(), "tc", &args, None) {
                    Err(LabError::Command { stderr, .. }) if stderr.contains("kind is unknown") => return Ok(false),
                    other => other,
                }
            };
            result?;
        }
        Ok(true)
    }

    /// Where [`Lab::set_delay`] puts its qdiscs: every interface that sends onto the bridge.
    pub(crate) fn delay_points(&self) -> Vec<(&Netns, &'static str)> {
        let mut points = vec![(&self.server.netns, "eth0")];
        for site in &self.sites {
            match &site.router {
                Some(router) => points.push((&router.netns, "wan")),
                None => points.extend(site.peers.iter().map(|peer| (&peer.netns, "eth0"))),
            }
        }
        points
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Delayer threads live in the namespaces: stop them first.
        if let Ok(mut d) = self.delayers.lock() {
            d.clear();
        }
        self.owned.delete_all();
    }
}

/// Deletes the namespaces of labs whose process is gone (`sbl<pid>-…` with no `/proc/<pid>`),
/// left behind by a run that was killed. Returns the names it deleted. [`Lab::build`] calls it.
pub fn sweep_stale() -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(LabError::Spawn { command: format!("read_dir {NETNS_DIR}"), source: error });
        }
    };
    let mut deleted = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else { continue };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        // Another process may be sweeping the same name; only what we removed is reported.
        if ip(&["netns", "delete", &name]).is_ok() {
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// The pid in a lab namespace's name `sbl<pid>-…`, or `None` for other names.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(NAME_LEAD)?.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn preflight() -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    cmd::require("ip", "iproute2")?;
    cmd::require("nft", "nftables")?;
    cmd::require("sysctl", "procps")
}

/// A site behind a router: the router, its LAN bridge, its peers and its ruleset.
fn build_nat_site(
    owned: &mut Owned,
    prefix: &str,
    public: &Netns,
    index: usize,
    kind: NatKind,
    peer_count: usize,
) -> Result<Site, LabError> {
    // Validation keeps index below 30 and peer_count at most 200, so these fit in a u8.
    let k = u8::try_from(index + 1).map_err(|_| LabError::InvalidSpec(format!("site index {index}")))?;
    let wan_ip = Ipv4Addr::new(203, 0, 113, 20 + k);
    let lan_ip = Ipv4Addr::new(10, k, 0, 1);
    let router_name = format!("s{index}r");
    let netns = owned.create(prefix, &router_name)?;
    plug(public, &router_name, &netns, "wan")?;
    add_address(&netns, wan_ip, "wan")?;
    ip_in(netns.name(), &["link", "add", "lan", "type", "bridge"])?;
    ip_in(netns.name(), &["link", "set", "lan", "up"])?;
    add_address(&netns, lan_ip, "lan")?;
    exec_in(netns.name(), "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"], None)?;
    if let Some(rules) = router_ruleset(kind, wan_ip) {
        exec_in(netns.name(), "nft", &["-f", "-"], Some(&rules))?;
    }
    let router = Router { netns, kind, wan_ip, lan_ip };

    let mut peers = Vec::with_capacity(peer_count);
    for i in 0..peer_count {
        let host = u8::try_from(i + 2).map_err(|_| LabError::InvalidSpec(format!("peer {i} of site {index}")))?;
        let address = Ipv4Addr::new(10, k, 0, host);
        let port = format!("p{i}");
        let peer_ns = owned.create(prefix, &format!("s{index}p{i}"))?;
        ip_in(
            router.netns.name(),
            &["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", peer_ns.name()],
        )?;
        ip_in(router.netns.name(), &["link", "set", &port, "master", "lan", "up"])?;
        ip_in(peer_ns.name(), &["link", "set", "eth0", "up"])?;
        add_address(&peer_ns, address, "eth0")?;
        ip_in(peer_ns.name(), &["route", "add", "default", "via", &lan_ip.to_string()])?;
        peers.push(Peer { netns: peer_ns, kind, site: index, ip: address, public_ip: wan_ip, gateway: Some(lan_ip) });
    }
    Ok(Site { kind, router: Some(router), peers })
}

/// Connects `netns` to the public bridge: a veth pair made inside the public namespace, with
/// `port` (a bridge port there) and `ifname` (moved into `netns` as it is made). Made inside
/// namespaces, the pair never appears in the root namespace, so names only need to be unique
/// within the lab.
fn plug(public: &Netns, port: &str, netns: &Netns, ifname: &str) -> Result<(), LabError> {
    ip_in(public.name(), &["link", "add", port, "type", "veth", "peer", "name", ifname, "netns", netns.name()])?;
    ip_in(public.name(), &["link", "set", port, "master", "br0", "up"])?;
    ip_in(netns.name(), &["link", "set", ifname, "up"])?;
    Ok(())
}

fn add_address(netns: &Netns, address: Ipv4Addr, device: &str) -> Result<(), LabError> {
    ip_in(netns.name(), &["addr", "add", &format!("{address}/24"), "dev", device])?;
    Ok(())
}

/// The namespaces a lab (or a half-built one) made; deletes them when dropped.
#[derive(Debug)]
struct Owned(Vec<String>);

impl Owned {
    /// Makes the namespace `<prefix><suffix>` with its loopback up.
    fn create(&mut self, prefix: &str, suffix: &str) -> Result<Netns, LabError> {
        let name = format!("{prefix}{suffix}");
        ip(&["netns", "add", &name])?;
        self.0.push(name.clone());
        ip_in(&name, &["link", "set", "lo", "up"])?;
        if Path::new("/proc/sys/net/ipv6").exists() {
            // The lab is IPv4 only: no link-local IPv6 addresses to show up as candidates, and
            // no router solicitations or DAD on the segments.
            let ipv6_off = ["-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"];
            exec_in(&name, "sysctl", &ipv6_off, None)?;
        }
        Ok(Netns::new(name))
    }

    /// Deletes every namespace, newest first. Deleting a namespace removes its interfaces, and
    /// with them the other ends of their veth pairs.
    fn delete_all(&mut self) {
        while let Some(name) = self.0.pop() {
            if let Err(error) = ip(&["netns", "delete", &name]) {
                eprintln!("natlab: could not delete network namespace {name}: {error}");
            }
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.delete_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_come_from_lab_names_only() {
        assert_eq!(owner_pid("sbl1234-0-srv"), Some(1234));
        assert_eq!(owner_pid("sbl1234-"), Some(1234));
        assert_eq!(owner_pid("sbl-0-srv"), None);
        assert_eq!(owner_pid("sbl12a4-0-srv"), None);
        assert_eq!(owner_pid("sbl1234"), None);
        assert_eq!(owner_pid("blue"), None);
        assert_eq!(owner_pid("sblx"), None);
    }
}
