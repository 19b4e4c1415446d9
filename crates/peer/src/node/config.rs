//! A node's settings, checked once for both backends.

use std::collections::HashSet;
use std::time::Duration;

use crate::channel::ChannelConfig;
use crate::ice::{IcePolicy, IceServer};
use crate::link::LinkConfig;
use crate::link::{MAX_CHANNELS, MAX_LABEL};

/// Which links a node opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// A link to every peer of every room (full mesh).
    #[default]
    Mesh,
    /// A link only after one side asks ([`Node::request_link`](crate::Node::request_link))
    /// and the other accepts.
    OnRequest,
}

/// Which local addresses become host candidates (native nodes; a browser
/// chooses its own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostCandidates {
    /// Every interface address except loopback and link-local ones (loopback
    /// when there is no other).
    #[default]
    All,
    /// Only 127.0.0.1 (tests, one-machine demos).
    Loopback,
    /// Exactly these addresses.
    Only(Vec<std::net::IpAddr>),
}

/// Every setting of a node.
#[derive(Clone, Debug)]
pub(crate) struct NodeConfig {
    pub(crate) signaling: Option<String>,
    pub(crate) auth_token: Option<String>,
    pub(crate) topology: Topology,
    pub(crate) max_links: usize,
    pub(crate) high_watermark: usize,
    pub(crate) low_watermark: usize,
    pub(crate) link: LinkConfig,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) ice_policy: IcePolicy,
    pub(crate) relay_delay: Duration,
    pub(crate) server_relay: Option<Duration>,
    pub(crate) reconnect_attempts: u32,
    pub(crate) hosts: HostCandidates,
    pub(crate) tls_roots: Vec<Vec<u8>>,
    /// Where the trust book is kept: a file natively, an IndexedDB key in
    /// the browser.
    pub(crate) trust_store: Option<String>,
}

/// Default delay before relayed candidates join direct checks.
pub(crate) const RELAY_DELAY: Duration = Duration::from_millis(250);

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            signaling: None,
            auth_token: None,
            topology: Topology::Mesh,
            max_links: 64,
            high_watermark: 16 << 20,
            low_watermark: 1 << 20,
            link: LinkConfig { channels: Vec::new(), ..LinkConfig::default() },
            ice_servers: Vec::new(),
            ice_policy: IcePolicy::All,
            relay_delay: RELAY_DELAY,
            server_relay: Some(Duration::from_secs(5)),
            reconnect_attempts: u32::MAX,
            hosts: HostCandidates::All,
            tls_roots: Vec::new(),
            trust_store: None,
        }
    }
}

impl NodeConfig {
    /// Checks the settings and fills in the default channels; the same
    /// rules and messages on both backends. `browser`: the settings only a
    /// native node can honour are refused.
    pub(crate) fn validate(&mut self, browser: bool) -> Result<(), String> {
        let link = &mut self.link;
        if self.low_watermark > self.high_watermark {
            return Err("low watermark above high watermark".into());
        }
        if self.high_watermark == 0 {
            return Err("high watermark must be above 0".into());
        }
        if !(1024..=64 << 10).contains(&link.chunk_size) {
            return Err("chunk size must be between 1 KiB and 64 KiB".into());
        }
        if link.sctp_buffer < link.chunk_size + 1024 {
            return Err("SCTP send buffer must hold a whole chunk".into());
        }
        if link.window < 4 * link.chunk_size {
            return Err("receive window must hold at least 4 chunks".into());
        }
        if link.max_message == 0 {
            return Err("the largest message must be at least 1 byte".into());
        }
        if link.connect_timeout.is_zero() || link.reconnect_timeout.is_zero() || link.dead_after.is_zero() {
            return Err("timeouts must be above zero".into());
        }
        if self.max_links == 0 {
            return Err("a node needs at least one link".into());
        }
        if link.channels.is_empty() && !link.raw {
            link.channels = vec![ChannelConfig::reliable("reliable"), ChannelConfig::unreliable("unreliable")];
        }
        let mut names = HashSet::new();
        for c in &link.channels {
            if !names.insert(c.label.as_str()) {
                return Err(format!("channel {:?} declared twice", c.label));
            }
            if c.label.len() > MAX_LABEL {
                return Err(format!("channel label of {} bytes: at most {MAX_LABEL}", c.label.len()));
            }
            if c.label.starts_with("switchboard-") {
                return Err(format!("channel {:?}: names starting with switchboard- are the link's own", c.label));
            }
        }
        if link.channels.len() > MAX_CHANNELS {
            return Err(format!("at most {MAX_CHANNELS} channels"));
        }
        for server in &self.ice_servers {
            server.validate().map_err(|e| e.to_string())?;
        }
        if browser {
            if self.hosts != HostCandidates::All {
                return Err("host candidates: the browser chooses its own addresses".into());
            }
            if self.relay_delay != RELAY_DELAY {
                return Err("relay delay: the browser gathers relayed candidates itself".into());
            }
            if !self.tls_roots.is_empty() {
                return Err("TURN root certificates: the browser trusts its own roots".into());
            }
            if link.sctp_buffer != LinkConfig::default().sctp_buffer {
                return Err("SCTP send buffer: the browser sizes its own".into());
            }
        }
        Ok(())
    }
}
