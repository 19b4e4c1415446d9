//! The conformance suite (`tests/conformance/behaviour`, the same bodies
//! the native backend runs) on the browser backend, in real headless
//! Chromium and Firefox through wasm-bindgen-test. `scripts/web-test`
//! starts `switchboard test-server` (a real server the tests ask, over
//! HTTP, to kill and restart, and to block UDP) and builds these tests with
//! its addresses in `SWITCHBOARD_TEST_SIGNALING` and
//! `SWITCHBOARD_TEST_CONTROL`. Native builds compile this crate to nothing.
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, unreachable_pub)]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "../conformance/behaviour/mod.rs"]
mod behaviour;
#[path = "../conformance/harness.rs"]
mod harness;

mod js_bindings;

use std::future::Future;
use std::time::Duration;

use switchboard::{Node, NodeBuilder};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

use harness::Harness;

/// The signaling URL baked in at build time.
pub fn signaling() -> &'static str {
    match option_env!("SWITCHBOARD_TEST_SIGNALING") {
        Some(url) => url,
        None => panic!("SWITCHBOARD_TEST_SIGNALING is not set: run these tests with scripts/web-test"),
    }
}

fn control() -> &'static str {
    match option_env!("SWITCHBOARD_TEST_CONTROL") {
        Some(url) => url,
        None => panic!("SWITCHBOARD_TEST_CONTROL is not set: run these tests with scripts/web-test"),
    }
}

/// Resolves after `duration` (a browser timer).
pub async fn timer(duration: Duration) {
    let ms = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        web_sys::window()
            .expect("a window")
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .expect("setTimeout");
    });
    JsFuture::from(promise).await.expect("timer");
}

/// Asks `switchboard test-server` to do `what`.
async fn ask(what: &str) {
    let url = format!("{}/{what}", control());
    let response = JsFuture::from(web_sys::window().expect("a window").fetch_with_str(&url))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    let ok = js_sys::Reflect::get(&response, &JsValue::from_str("ok")).ok().and_then(|v| v.as_bool());
    assert_eq!(ok, Some(true), "{url} failed");
}

struct Web;

impl Harness for Web {
    fn node(&self) -> NodeBuilder {
        Node::builder().signaling(signaling())
    }

    fn serverless(&self) -> NodeBuilder {
        Node::builder()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        timer(duration)
    }

    async fn restart_server(&self) {
        ask("restart").await;
    }

    async fn set_udp_blocked(&self, blocked: bool) {
        ask(if blocked { "udp/block" } else { "udp/unblock" }).await;
    }

    fn trust_store(&self, name: &str) -> String {
        format!("test-{name}-{}", js_sys::Math::random())
    }
}

macro_rules! browser {
    ($($name:ident),*) => {
        $(
            #[wasm_bindgen_test]
            async fn $name() {
                behaviour::$name::run(&Web).await;
            }
        )*
    };
}

for_each_behaviour!(browser);
