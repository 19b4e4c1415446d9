//! `send` waits while the link's outbox is above the high watermark, so a
//! fast sender cannot pile up memory; everything still arrives, in order.

use switchboard::Node;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{next_message, pair, within};

const HIGH: usize = 256 << 10;
const LOW: usize = 64 << 10;
const MESSAGE: usize = 64 << 10;
const COUNT: u32 = 128; // 8 MiB in all
/// What the browser's channels may hold on top of the outbox (the backend
/// stops feeding a channel at 1 MiB of bufferedAmount, plus one chunk).
const CHANNEL_ALLOWANCE: usize = (1 << 20) + (64 << 10);

#[wasm_bindgen_test]
async fn send_waits_above_the_high_watermark() {
    let (a, b, _room) = pair(|| Node::builder().watermarks(HIGH, LOW)).await;
    let to = b.id();
    let (done_tx, done_rx) = futures_channel::oneshot::channel();
    wasm_bindgen_futures::spawn_local(async move {
        let mut most = 0;
        for i in 0..COUNT {
            let mut data = vec![(i % 251) as u8; MESSAGE];
            data[..4].copy_from_slice(&i.to_be_bytes());
            a.send(to, "reliable", data).await.expect("send");
            most = most.max(a.buffered_amount(to));
        }
        let _ = done_tx.send((most, a));
    });

    for i in 0..COUNT {
        let m = next_message(&b).await;
        assert_eq!(m.data.len(), MESSAGE);
        assert_eq!(u32::from_be_bytes(m.data[..4].try_into().expect("4 bytes")), i, "in order");
        assert!(m.data[4..].iter().all(|&x| x == (i % 251) as u8), "message {i} intact");
    }
    let (most, a) = within("sender done", done_rx).await.expect("sender finished");
    assert!(most >= HIGH, "the sender outran the link, so backpressure had work to do (most {most})");
    assert!(
        most <= HIGH + MESSAGE + CHANNEL_ALLOWANCE,
        "buffered {most} bytes at most; without backpressure 8 MiB would sit there"
    );
    a.close().await;
    b.close().await;
}
