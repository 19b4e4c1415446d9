//! The browser backend (`crates/peer/src/web`) in real headless Chromium,
//! through wasm-bindgen-test, against a real `switchboard serve` on
//! 127.0.0.1. `scripts/web-test` starts the server and builds these tests
//! with its address in `SWITCHBOARD_TEST_SIGNALING`. One behaviour per file.
//! Native builds compile this crate to nothing.
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, unreachable_pub)]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod common;

mod backpressure;
mod bad_input;
mod disconnect;
mod large_message;
mod relay_first;
mod request_response;
mod two_nodes;
