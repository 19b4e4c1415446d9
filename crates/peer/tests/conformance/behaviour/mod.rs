//! The behaviours every backend must show, one per file, each an async
//! function over a [`Harness`](super::harness::Harness).

pub mod backpressure;
pub mod bad_settings;
pub mod byo_identity;
pub mod byo_signaling;
pub mod host_change;
pub mod large_message;
pub mod lost_path;
pub mod mail;
pub mod non_trickle;
pub mod presence;
pub mod raw_channels;
pub mod raw_messages;
pub mod relay_first;
pub mod request_response;
pub mod request_topology;
pub mod server_restart;
pub mod trusted_devices;
pub mod two_nodes;

/// Calls `$m!` with the name of every behaviour, so that each harness
/// makes one test of each.
#[macro_export]
macro_rules! for_each_behaviour {
    ($m:ident) => {
        $m!(
            backpressure,
            bad_settings,
            byo_identity,
            byo_signaling,
            host_change,
            large_message,
            lost_path,
            mail,
            non_trickle,
            presence,
            raw_channels,
            raw_messages,
            relay_first,
            request_response,
            request_topology,
            server_restart,
            trusted_devices,
            two_nodes
        );
    };
}
