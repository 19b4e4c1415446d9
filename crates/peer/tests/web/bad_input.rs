//! Bad settings and bad calls get clear errors, and the node stays usable.

use switchboard::proto::RoomCode;
use switchboard::{ChannelConfig, Node, RoomError, SendError, StartError, SwitchboardNode};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{signaling, start, within};

#[wasm_bindgen_test]
async fn bad_settings_and_calls_get_errors() {
    let no_server = Node::builder().start().await;
    assert!(matches!(no_server, Err(StartError::Config(_))), "{no_server:?}");

    let in_band = Node::builder().channel(ChannelConfig::reliable("x").in_band()).signaling("ws://127.0.0.1:9/ws");
    let in_band = in_band.start().await;
    assert!(matches!(in_band, Err(StartError::Config(ref e)) if e.contains("in-band")), "{in_band:?}");

    // Nothing listens on the discard port of loopback.
    let refused = within("refused start", Node::builder().signaling("ws://127.0.0.1:9/ws").start()).await;
    assert!(matches!(refused, Err(StartError::Signaling(_))), "{refused:?}");

    // The JavaScript bindings check their options before connecting.
    let options = js_sys::JSON::parse(r#"{"serverRelayMs": "soon"}"#).expect("json");
    let started = wasm_bindgen_futures::JsFuture::from(SwitchboardNode::start(Some(signaling().into()), options)).await;
    let error = started.expect_err("a bad option is refused");
    let message = js_sys::Reflect::get(&error, &"message".into()).ok().and_then(|m| m.as_string()).unwrap_or_default();
    assert!(message.contains("serverRelayMs"), "{message}");

    let node = start(Node::builder()).await;
    let missing: RoomCode = "ZZZZZZ".parse().expect("a well-formed code");
    let join = within("join missing room", node.join(missing)).await;
    assert!(matches!(join, Err(RoomError::Request(_))), "{join:?}");
    let stranger = switchboard::Identity::generate().peer_id();
    let send = node.send(stranger, "nope", &b"x"[..]).await;
    assert!(matches!(send, Err(SendError::UnknownChannel(ref c)) if c == "nope"), "{send:?}");

    let room = within("create room", node.create_room(None, None)).await.expect("the node still works");
    within("join", node.join(room)).await.expect("joins its own room");
    node.close().await;
}
