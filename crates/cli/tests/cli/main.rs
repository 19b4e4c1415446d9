//! Tests that run the real `switchboard` binary: processes, browsers, the NAT lab.
//! One behaviour per file; all of them link into one test binary.
#![allow(missing_docs, unreachable_pub)]

mod common;

mod browser_firefox_page;
mod browser_native_chat_and_file;
mod browser_page_hostile_link;
mod browser_page_hostile_peer;
mod browser_relay_only;
mod browser_relay_then_webrtc;
mod browser_to_browser;
mod browser_udp_blocked;
mod chaos_address_change;
mod chaos_cut_ten_seconds;
mod chaos_loss_and_delay;
mod chaos_quiet_send_recv;
mod chaos_recovery_bench;
mod chaos_udp_blocked;
mod chat_two_processes;
mod cli_errors;
mod file_two_processes;
mod interop_aiortc;
mod interop_browser_rtcpeerconnection;
mod mailbox_survives_kill9;
mod mitm_signaling;
mod nat_command;
mod nat_lab_matrix;
mod nat_lab_types;
mod server_kill9_room_survives;
mod tls_serve;
