//! Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeLabel {
    pub(crate) r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabel {
    pub(crate) code: &'static str,
}

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) connections: Gauge,
    pub(crate) connections_total: Counter,
    pub(crate) sessions: Gauge,
    pub(crate) rooms: Gauge,
    pub(crate) messages: Family<TypeLabel, Counter>,
    pub(crate) errors: Family<CodeLabel, Counter>,
    pub(crate) relay_bytes: Counter,
    pub(crate) mailbox_depth: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Self {
            registry: Registry::default(),
            connections: Gauge::default(),
            connections_total: Counter::default(),
            sessions: Gauge::default(),
            rooms: Gauge::default(),
            messages: Family::default(),
            errors: Family::default(),
            relay_bytes: Counter::default(),
            mailbox_depth: Gauge::default(),
        };
        registry.register("connections", "Open WebSocket connections", m.connections.clone());
        registry.register("connections_accepted", "WebSocket connections accepted", m.connections_total.clone());
        registry.register("sessions", "Peer sessions, live or awaiting resume", m.sessions.clone());
        registry.register("rooms", "Rooms that exist", m.rooms.clone());
        registry.register("messages", "Client messages handled, by type", m.messages.clone());
        registry.register("errors", "Error answers sent, by code", m.errors.clone());
        registry.register("relay_bytes", "Relay payload bytes forwarded", m.relay_bytes.clone());
        registry.register("mailbox_depth", "Mail messages waiting for their recipients", m.mailbox_depth.clone());
        Self { registry, ..m }
    }

    pub(crate) fn message(&self, kind: &'static str) {
        self.messages.get_or_create(&TypeLabel { r#type: kind }).inc();
    }

    pub(crate) fn error(&self, code: &'static str) {
        self.errors.get_or_create(&CodeLabel { code }).inc();
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
