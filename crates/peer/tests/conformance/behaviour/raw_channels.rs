//! Raw-mode channels as `RTCDataChannel`s: an in-band channel both sides
//! declare is one channel; either side, the answering one too, opens
//! channels on the live link and closes them; both sides hear of each
//! opening and closing, and a send on a closed channel fails.

use switchboard::proto::PeerId;
use switchboard::{ChannelConfig, ChannelError, Event, Message, Node, SendError};

use super::raw_messages::link;
use crate::harness::{Harness, both, next_message, wait_for, within};

/// The next channel opened on `node`.
async fn opened<H: Harness>(h: &H, node: &Node) -> String {
    wait_for(h, node, "a channel opened", |e| match e {
        Event::ChannelOpened { channel, .. } => Some(channel),
        _ => None,
    })
    .await
}

/// The next channel closed on `node`.
async fn closed<H: Harness>(h: &H, node: &Node) -> String {
    wait_for(h, node, "a channel closed", |e| match e {
        Event::ChannelClosed { channel, .. } => Some(channel),
        _ => None,
    })
    .await
}

/// Sends `text` from `from` on `channel` and returns what `to` got.
async fn pass<H: Harness>(h: &H, from: &Node, peer: PeerId, to: &Node, channel: &str, text: &str) -> Message {
    within(h, "send", from.send_text(peer, channel, text)).await.expect("sent");
    next_message(h, to).await
}

pub async fn run<H: Harness>(h: &H) {
    let raw = || h.serverless().raw_messages(true).channel(ChannelConfig::reliable("chat").in_band());
    let a = within(h, "a starts", raw().start()).await.expect("a starts");
    let b = within(h, "b starts", raw().start()).await.expect("b starts");
    let (b_on_a, offer) = within(h, "offer", a.create_offer()).await.expect("offer");
    let (a_on_b, answer) = within(h, "answer", b.accept_offer(&offer)).await.expect("answer");
    a.accept_answer(b_on_a, &answer).expect("answer applied");
    let (on_a, on_b) = both(link(h, &a, &b, a_on_b), link(h, &b, &a, b_on_a)).await;
    assert_eq!((on_a, on_b), (vec!["chat".to_owned()], vec!["chat".to_owned()]), "one chat channel");
    // The answering side sends on the channel the offering side opened.
    let m = pass(h, &b, a_on_b, &a, "chat", "from b").await;
    assert_eq!((&*m.channel, m.text()), ("chat", Some("from b")));

    // The answering side opens a channel of its own.
    b.open_channel(a_on_b, ChannelConfig::unreliable("b-side")).expect("b opens");
    assert_eq!(
        b.open_channel(a_on_b, ChannelConfig::reliable("b-side")),
        Err(ChannelError::LabelTaken("b-side".into()))
    );
    assert_eq!(both(opened(h, &a), opened(h, &b)).await, ("b-side".to_owned(), "b-side".to_owned()));
    let m = pass(h, &b, a_on_b, &a, "b-side", "b to a").await;
    assert_eq!((&*m.channel, m.text()), ("b-side", Some("b to a")));
    let m = pass(h, &a, b_on_a, &b, "b-side", "a to b").await;
    assert_eq!((&*m.channel, m.text()), ("b-side", Some("a to b")));

    // The offering side opens one on the live link.
    a.open_channel(b_on_a, ChannelConfig::reliable("a-side")).expect("a opens");
    assert_eq!(both(opened(h, &a), opened(h, &b)).await, ("a-side".to_owned(), "a-side".to_owned()));
    let m = pass(h, &a, b_on_a, &b, "a-side", "on a-side").await;
    assert_eq!((&*m.channel, m.text()), ("a-side", Some("on a-side")));

    // The answering side closes its channel: both hear it, sends on it
    // fail, and the link goes on.
    b.close_channel(a_on_b, "b-side").expect("b closes");
    assert_eq!(both(closed(h, &a), closed(h, &b)).await, ("b-side".to_owned(), "b-side".to_owned()));
    let refused = within(h, "send on closed", a.send_text(b_on_a, "b-side", "late")).await;
    assert_eq!(refused, Err(SendError::ChannelClosed("b-side".into())));
    assert_eq!(b.close_channel(a_on_b, "b-side"), Err(ChannelError::UnknownChannel("b-side".into())));
    let m = pass(h, &a, b_on_a, &b, "chat", "still here").await;
    assert_eq!((&*m.channel, m.text()), ("chat", Some("still here")));
    // A label closed may be opened again.
    a.open_channel(b_on_a, ChannelConfig::reliable("b-side")).expect("a opens b-side again");
    assert_eq!(both(opened(h, &a), opened(h, &b)).await, ("b-side".to_owned(), "b-side".to_owned()));
    let m = pass(h, &b, a_on_b, &a, "b-side", "again").await;
    assert_eq!((&*m.channel, m.text()), ("b-side", Some("again")));

    // Framed nodes have no run-time channels.
    let framed = within(h, "framed starts", h.serverless().start()).await.expect("framed starts");
    let (peer, _) = within(h, "framed offer", framed.create_offer()).await.expect("framed offer");
    assert_eq!(framed.open_channel(peer, ChannelConfig::reliable("x")), Err(ChannelError::NotRaw));
    framed.close().await;
    a.close().await;
    b.close().await;
}
