//! A request gets its answer, an error answer, or a timeout; a request to
//! an unknown peer fails at once.

use std::time::Duration;

use switchboard::proto::PeerId;
use switchboard::{Event, Identity, Node, RequestFailed, SendError};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{pair, wait_for, within};

#[wasm_bindgen_test]
async fn requests_get_answers_errors_and_timeouts() {
    let (a, b, _room) = pair(Node::builder).await;
    let b = std::rc::Rc::new(b);
    let responder = b.clone();
    wasm_bindgen_futures::spawn_local(async move {
        // Answers "ping" with "pong", "fail" with an error, and leaves the rest unanswered.
        while let Some(event) = responder.next_event().await {
            if let Event::Request(r) = event {
                match &r.data[..] {
                    b"ping" => responder.respond(&r, &b"pong"[..]).await.expect("respond"),
                    b"fail" => responder.respond_error(&r, "no such thing").await.expect("respond error"),
                    _ => {}
                }
            }
        }
    });

    let patience = Duration::from_secs(10);
    let answer = within("answer", a.request(b.id(), "reliable", &b"ping"[..], patience)).await;
    assert_eq!(&answer.expect("answered")[..], b"pong");

    let error = within("error", a.request(b.id(), "reliable", &b"fail"[..], patience)).await;
    assert!(matches!(&error, Err(RequestFailed::Remote(e)) if e == "no such thing"), "{error:?}");

    let short = Duration::from_millis(300);
    let silent = within("timeout", a.request(b.id(), "reliable", &b"silence"[..], short)).await;
    assert!(matches!(silent, Err(RequestFailed::Timeout(d)) if d == short), "{silent:?}");

    let stranger: PeerId = Identity::generate().peer_id();
    let unknown = a.request(stranger, "reliable", &b"ping"[..], patience).await;
    assert!(matches!(unknown, Err(RequestFailed::Send(SendError::UnknownPeer(p))) if p == stranger), "{unknown:?}");

    // The link is still fine after all that.
    let again = within("answer again", a.request(b.id(), "reliable", &b"ping"[..], patience)).await;
    assert_eq!(&again.expect("answered")[..], b"pong");
    b.close().await;
    wait_for(&a, "b gone", |e| matches!(e, Event::PeerDisconnected { .. }).then_some(())).await;
    a.close().await;
}
