//! A request gets its answer, an error answer or a timeout; a request to an
//! unknown peer fails at once; and an answer from a peer other than the
//! one asked is refused, even with the right request id.

use std::time::Duration;

use switchboard::proto::PeerId;
use switchboard::{Event, Identity, Node, Request, RequestFailed, SendError};

use crate::harness::{Harness, both, connected_all, start, wait_for, within};

/// Answers "ping" with "pong" and "fail" with an error, until "stop".
async fn responder<H: Harness>(h: &H, node: &Node) {
    loop {
        let r = wait_for(h, node, "a request", |e| match e {
            Event::Request(r) => Some(r),
            _ => None,
        })
        .await;
        match &r.data[..] {
            b"ping" => node.respond(&r, &b"pong"[..]).await.expect("respond"),
            b"fail" => node.respond_error(&r, "no such thing").await.expect("respond error"),
            b"stop" => return node.respond(&r, &b"bye"[..]).await.expect("respond"),
            _ => {}
        }
    }
}

pub async fn run<H: Harness>(h: &H) {
    let (a, b, c) = (start(h, h.node()).await, start(h, h.node()).await, start(h, h.node()).await);
    let room = within(h, "room", a.create_room(None, None)).await.expect("room");
    for n in [&a, &b, &c] {
        within(h, "join", n.join(room)).await.expect("join");
    }
    for (n, others) in [(&a, [b.id(), c.id()]), (&b, [a.id(), c.id()]), (&c, [a.id(), b.id()])] {
        connected_all(h, n, &others).await;
    }

    let patience = Duration::from_secs(10);
    let asks = async {
        let answer = a.request(b.id(), "reliable", &b"ping"[..], patience).await;
        assert_eq!(answer.expect("answered").as_ref(), b"pong");
        let error = a.request(b.id(), "reliable", &b"fail"[..], patience).await;
        assert_eq!(error, Err(RequestFailed::Remote("no such thing".into())));
        let short = Duration::from_millis(300);
        let silent = a.request(b.id(), "reliable", &b"silence"[..], short).await;
        assert_eq!(silent, Err(RequestFailed::Timeout(short)));
        let stranger: PeerId = Identity::generate().peer_id();
        let unknown = a.request(stranger, "reliable", &b"ping"[..], patience).await;
        assert_eq!(unknown, Err(RequestFailed::Send(SendError::UnknownPeer(stranger))));
        assert_eq!(a.pending_requests(), 0, "no request is left waiting");
        a.request(b.id(), "reliable", &b"stop"[..], patience).await.expect("stopped");
    };
    within(h, "requests", both(asks, responder(h, &b))).await;

    // c got a request of its own from a, so it knows a's request ids: the
    // next one goes to b. c answers that id first; a must not take it.
    let to_c = async {
        let r = a.request(c.id(), "reliable", &b"first"[..], Duration::from_millis(500)).await;
        assert_eq!(r, Err(RequestFailed::Timeout(Duration::from_millis(500))));
    };
    let held: Request = within(h, "c's request", async {
        let (_, r) = both(
            to_c,
            wait_for(h, &c, "the request to c", |e| match e {
                Event::Request(r) => Some(r),
                _ => None,
            }),
        )
        .await;
        r
    })
    .await;
    let mut forged = held.clone();
    forged.id = held.id + 1;
    let ask_b = a.request(b.id(), "reliable", &b"to b"[..], patience);
    let answer_from_b = async {
        let r = wait_for(h, &b, "the request to b", |e| match e {
            Event::Request(r) => Some(r),
            _ => None,
        })
        .await;
        assert_eq!(r.id, forged.id, "c guessed the id");
        // c answers first, with the id of b's request.
        c.respond(&forged, &b"forged"[..]).await.expect("c sends its answer");
        h.sleep(Duration::from_millis(300)).await;
        b.respond(&r, &b"genuine"[..]).await.expect("b answers");
    };
    let (answer, ()) = within(h, "b's answer", both(ask_b, answer_from_b)).await;
    assert_eq!(answer.expect("answered").as_ref(), b"genuine", "only the peer asked may answer");
    for n in [&a, &b, &c] {
        n.close().await;
    }
}
