//! A message far larger than a data-channel message goes out in chunks and
//! arrives whole; one above the node's limit is refused before it is sent.

use switchboard::{Node, SendError};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{next_message, pair, within};

const LIMIT: usize = 4 << 20;

#[wasm_bindgen_test]
async fn large_messages_arrive_whole_and_oversized_ones_are_refused() {
    let (a, b, _room) = pair(|| Node::builder().max_message_size(LIMIT)).await;
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    within("send 3 MiB", a.send(b.id(), "reliable", big.clone())).await.expect("sends");
    let m = next_message(&b).await;
    assert_eq!(m.data.len(), big.len());
    assert!(m.data[..] == big[..], "3 MiB arrive byte for byte");

    let too_big = vec![0u8; LIMIT + 1];
    let refused = a.send(b.id(), "reliable", too_big).await;
    assert!(
        matches!(refused, Err(SendError::TooLarge { size, max }) if size == LIMIT + 1 && max == LIMIT),
        "{refused:?}"
    );
    within("send after refusal", a.send(b.id(), "reliable", &b"still here"[..])).await.expect("sends");
    assert_eq!(&next_message(&b).await.data[..], b"still here");
    a.close().await;
    b.close().await;
}
