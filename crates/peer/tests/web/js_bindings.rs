//! The JavaScript bindings: options are checked before connecting, with a
//! message naming the option; an identity can be passed in, or kept in the
//! page's IndexedDB under a name, and comes back the same on the next start;
//! raw links made by hand, to a peer named, open and close channels at run
//! time, with text arriving as strings.

use js_sys::{JSON, Reflect};
use switchboard::SwitchboardNode;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::signaling;

async fn start(options: &str) -> Result<SwitchboardNode, String> {
    start_with(Some(signaling().into()), options).await
}

async fn start_with(url: Option<String>, options: &str) -> Result<SwitchboardNode, String> {
    let options = JSON::parse(options).expect("json");
    match JsFuture::from(SwitchboardNode::start(url, options)).await {
        Ok(node) => Ok(wasm_bindgen::convert::TryFromJsValue::try_from_js_value(node).expect("a SwitchboardNode")),
        Err(e) => {
            Err(Reflect::get(&e, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()).unwrap_or_default())
        }
    }
}

#[wasm_bindgen_test]
async fn options_are_checked_and_identities_are_kept() {
    for (options, named) in [
        (r#"{"serverRelayMs": "soon"}"#, "serverRelayMs"),
        (r#"{"topology": "ring"}"#, "topology"),
        (r#"{"identity": "not base64!"}"#, "identity"),
        (r#"{"icePolicy": "sometimes"}"#, "icePolicy"),
        (r#"{"log": "loud"}"#, "log"),
    ] {
        let error = start(options).await.err().unwrap_or_else(|| panic!("{options} was accepted"));
        assert!(error.contains(named), "{options}: {error}");
    }

    let secret = SwitchboardNode::new_identity();
    let given = start(&format!(r#"{{"identity": "{secret}"}}"#)).await.expect("starts with a given identity");
    let again = start(&format!(r#"{{"identity": "{secret}"}}"#)).await.expect("starts again");
    assert_eq!(given.id(), again.id(), "the same secret is the same peer");

    let name = format!("test-{}", js_sys::Math::random());
    let first = start(&format!(r#"{{"identityStore": "{name}"}}"#)).await.expect("starts with a stored identity");
    let second = start(&format!(r#"{{"identityStore": "{name}"}}"#)).await.expect("starts again");
    assert_eq!(first.id(), second.id(), "the identity came back from IndexedDB");
    assert_ne!(first.id(), given.id());
    for node in [given, again, first, second] {
        JsFuture::from(node.close()).await.expect("closed");
    }
}

fn field(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).expect("an object")
}

fn text(v: &JsValue, key: &str) -> String {
    field(v, key).as_string().unwrap_or_else(|| panic!("{key} is not a string"))
}

/// The next event of `node` whose type is `kind`, handing `node`'s
/// candidates to `other` (for its link `other_link`) meanwhile.
async fn until(node: &SwitchboardNode, other: &SwitchboardNode, other_link: &str, kind: &str) -> JsValue {
    loop {
        let e = JsFuture::from(node.next_event()).await.expect("an event");
        assert!(!e.is_null(), "the node closed while waiting for {kind}");
        match text(&e, "type").as_str() {
            t if t == kind => return e,
            "local_candidate" => {
                other.add_remote_candidate(other_link.into(), text(&e, "candidate")).expect("candidate taken");
            }
            "peer_disconnected" => panic!("the link ended while waiting for {kind}"),
            _ => {}
        }
    }
}

#[wasm_bindgen_test]
async fn raw_links_made_by_hand_open_and_close_channels_from_javascript() {
    let options = r#"{"rawMessages": true, "channels": [{"label": "chat", "inBand": true}]}"#;
    let a = start_with(None, options).await.expect("a starts");
    let b = start_with(None, options).await.expect("b starts");
    // Each side names the peer the other's description must prove.
    let offer = JsFuture::from(a.create_offer(Some(b.id()))).await.expect("offer");
    let wrong = JsFuture::from(b.accept_offer(text(&offer, "sdp"), Some(b.id()))).await;
    assert!(wrong.is_err(), "an offer that does not prove the peer named is refused");
    let answer = JsFuture::from(b.accept_offer(text(&offer, "sdp"), Some(a.id()))).await.expect("answer");
    let (b_on_a, a_on_b) = (text(&offer, "peer"), text(&answer, "peer"));
    a.accept_answer(b_on_a.clone(), text(&answer, "sdp")).expect("answer taken");
    crate::harness::both(until(&a, &b, &a_on_b, "peer_connected"), until(&b, &a, &b_on_a, "peer_connected")).await;

    // The answering side opens a channel; a string goes as text.
    let js = JSON::parse(r#"{"label": "js", "reliable": false}"#).expect("json");
    b.open_channel(a_on_b.clone(), js.clone()).expect("b opens");
    assert!(b.open_channel(a_on_b.clone(), js).is_err(), "the label is taken");
    let opened = until(&a, &b, &a_on_b, "channel_opened").await;
    assert_eq!(text(&opened, "channel"), "js");
    JsFuture::from(b.send(a_on_b.clone(), "js".into(), "hi from b".into())).await.expect("sent");
    let m = until(&a, &b, &a_on_b, "message").await;
    assert_eq!((text(&m, "channel"), text(&m, "data")), ("js".to_owned(), "hi from b".to_owned()));

    b.close_channel(a_on_b.clone(), "js".into()).expect("b closes");
    let closed = until(&a, &b, &a_on_b, "channel_closed").await;
    assert_eq!(text(&closed, "channel"), "js");
    assert!(JsFuture::from(b.send(a_on_b, "js".into(), "late".into())).await.is_err(), "the channel is closed");
    for node in [a, b] {
        JsFuture::from(node.close()).await.expect("closed");
    }
}
