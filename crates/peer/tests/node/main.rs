//! Integration tests of `Node`: real signaling server, real UDP on 127.0.0.1.
//! One behaviour per file.
#![allow(missing_docs, unreachable_pub)]

mod common;
mod coturn;

mod direct_before_relay;
mod eight_peer_mesh;
mod large_message;
mod link_quality;
mod multi_room;
mod relay_credentials_refresh;
mod relay_only_embedded_turn;
mod relay_over_tcp;
mod relay_survives_credential_expiry;
mod relay_through_coturn;
mod relay_through_coturn_tls;
mod reliable_order;
mod request_response;
mod request_topology;
mod server_relay_ciphertext;
mod signaling_resume;
mod simultaneous_joins;
mod stalled_reader;
mod turn_quota;
mod unordered_channel;
