//! A room's host (its oldest member) leaves: the others hear who hosts now.

use switchboard::proto::RoomCode;
use switchboard::{Event, Node};

use crate::harness::{Harness, start, wait_for, within};

async fn host_changed<H: Harness>(h: &H, node: &Node) -> (RoomCode, switchboard::proto::PeerId) {
    wait_for(h, node, "host changed", |e| match e {
        Event::HostChanged { room, host } => Some((room, host)),
        _ => None,
    })
    .await
}

pub async fn run<H: Harness>(h: &H) {
    let a = start(h, h.node()).await;
    let room = within(h, "create", a.create_room(None, None)).await.expect("room");
    let joined = within(h, "a joins", a.join(room)).await.expect("a joins");
    assert_eq!(joined.host, a.id(), "the first member hosts");
    let b = start(h, h.node()).await;
    within(h, "b joins", b.join(room)).await.expect("b joins");
    let c = start(h, h.node()).await;
    within(h, "c joins", c.join(room)).await.expect("c joins");

    within(h, "a leaves", a.leave(room)).await.expect("a leaves");
    assert_eq!(host_changed(h, &b).await, (room, b.id()), "b is the oldest member left");
    assert_eq!(host_changed(h, &c).await, (room, b.id()));
    for n in [a, b, c] {
        n.close().await;
    }
}
