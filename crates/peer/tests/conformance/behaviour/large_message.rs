//! A message far larger than a data-channel message arrives whole; one over
//! the largest message size is refused before it leaves, and the link goes on.

use switchboard::SendError;

use crate::harness::{Harness, next_message, pair, within};

pub async fn run<H: Harness>(h: &H) {
    let max = 4 << 20;
    let (a, b, _room) = pair(h, || h.node().max_message_size(max)).await;
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    within(h, "a sends 3 MiB", a.send(b.id(), "reliable", big.clone())).await.expect("a sends");
    let m = next_message(h, &b).await;
    assert_eq!(m.data.len(), big.len());
    assert!(m.data[..] == big[..], "the message arrives whole and unchanged");

    let too_big = vec![0u8; max + 1];
    let refused = a.send(b.id(), "reliable", too_big).await;
    assert_eq!(refused, Err(SendError::TooLarge { size: max + 1, max }));
    within(h, "a sends after", a.send(b.id(), "reliable", &b"still here"[..])).await.expect("a sends");
    assert_eq!(&next_message(h, &b).await.data[..], b"still here");
    a.close().await;
    b.close().await;
}
