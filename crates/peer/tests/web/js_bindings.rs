//! The JavaScript bindings: options are checked before connecting, with a
//! message naming the option; an identity can be passed in, or kept in the
//! page's IndexedDB under a name, and comes back the same on the next start.

use js_sys::{JSON, Reflect};
use switchboard::SwitchboardNode;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::signaling;

async fn start(options: &str) -> Result<SwitchboardNode, String> {
    let options = JSON::parse(options).expect("json");
    match JsFuture::from(SwitchboardNode::start(Some(signaling().into()), options)).await {
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
