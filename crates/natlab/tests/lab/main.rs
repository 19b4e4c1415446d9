//! Tests of the NAT lab: real network namespaces, veth links and nftables routers.
//! One behaviour per file; all of them link into one test binary.
#![allow(missing_docs, unreachable_pub)]

mod common;

mod cleanup_after_panic;
mod cone_mapping_is_endpoint_independent;
mod entering_namespaces;
mod every_kind_reaches_the_server;
mod full_cone_filtering;
mod loss_and_cut;
mod open_maps_to_itself;
mod port_restricted_filtering;
mod restricted_filtering;
mod same_lan_peers_talk_directly;
mod set_delay;
mod stale_sweep;
mod symmetric_mapping_depends_on_destination;
mod udp_blocked;
