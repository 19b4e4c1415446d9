//! Bring-your-own signaling with the peer known: a description that does
//! not prove the expected peer's identity (swapped DTLS fingerprint, or
//! another peer's) is refused with `SignalError::Unverified`, a link whose
//! answer does not prove it ends so, and the right descriptions link.

use switchboard::{DisconnectReason, Event, SignalError};

use super::byo_signaling::trickle;
use crate::harness::{Harness, both, next_message, wait_for, within};

/// `sdp` with its DTLS fingerprint's digest changed (as a man in the
/// middle would, for his own certificate's).
fn swapped(sdp: &str) -> String {
    let at = sdp.find("a=fingerprint:sha-256 ").expect("a sha-256 fingerprint") + "a=fingerprint:sha-256 ".len();
    let old = &sdp[at..at + 2];
    let new = if old == "00" { "11" } else { "00" };
    format!("{}{new}{}", &sdp[..at], &sdp[at + 2..])
}

pub async fn run<H: Harness>(h: &H) {
    let start = |what: &'static str| async move { within(h, what, h.serverless().start()).await.expect(what) };
    let (a, b, c) = (start("a starts").await, start("b starts").await, start("c starts").await);

    let (_, offer) = within(h, "offer", a.create_offer_for(b.id())).await.expect("offer");
    let refused = within(h, "swapped", b.accept_offer_from(&swapped(&offer), a.id())).await;
    assert!(matches!(refused, Err(SignalError::Unverified(_))), "{refused:?}");
    let refused = within(h, "another peer's", b.accept_offer_from(&offer, c.id())).await;
    assert!(matches!(&refused, Err(SignalError::Unverified(e)) if e.contains(&c.id().to_string())), "{refused:?}");

    // An answer from someone else than the peer the offer is for.
    let (b_on_a, offer) = within(h, "offer", a.create_offer_for(b.id())).await.expect("offer");
    let (_, answer) = within(h, "c answers", c.accept_offer(&offer)).await.expect("c answers");
    assert!(matches!(a.accept_answer(b_on_a, &answer), Err(SignalError::Unverified(_))));
    let reason = wait_for(h, &a, "the link ends", |e| match e {
        Event::PeerDisconnected { peer, reason } if peer == b_on_a => Some(reason),
        _ => None,
    })
    .await;
    assert!(matches!(reason, DisconnectReason::Unverified(_)), "{reason:?}");

    // The right ones link.
    let (b_on_a, offer) = within(h, "offer", a.create_offer_for(b.id())).await.expect("offer");
    let (a_on_b, answer) = within(h, "answer", b.accept_offer_from(&offer, a.id())).await.expect("b answers");
    a.accept_answer(b_on_a, &answer).expect("a takes it");
    both(trickle(h, &a, &b, a_on_b), trickle(h, &b, &a, b_on_a)).await;
    within(h, "a sends", a.send(b_on_a, "reliable", &b"proven"[..])).await.expect("sent");
    assert_eq!(&next_message(h, &b).await.data[..], b"proven");
    for n in [a, b, c] {
        n.close().await;
    }
}
