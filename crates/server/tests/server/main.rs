//! Integration tests of the signaling server: a real server on 127.0.0.1 port 0 and real clients.
//! One behaviour per file; all of them link into one test binary.
#![allow(missing_docs, unreachable_pub)]

mod common;

mod auth_tokens;
mod bad_input;
mod graceful_shutdown;
mod hello_deadline;
mod http_endpoints;
mod identity_proof;
mod limits;
mod mail_lockout;
mod mailbox_batches;
mod nat_detect_loopback;
mod presence;
mod relay_frames;
mod resume_session;
mod room_code_guessing;
mod room_squatting;
mod rooms_by_code;
mod signal_expiry;
mod signal_flood;
mod signal_relay;
mod signaling_flood_paced;
mod slow_reader;
mod slowloris;
mod tenant_isolation;
