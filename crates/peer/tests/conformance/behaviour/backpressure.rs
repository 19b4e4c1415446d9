//! `send` waits while the link's buffer is above the high watermark, so a
//! fast sender cannot pile up memory; `try_send` says `Full` instead of
//! waiting; everything still arrives, in order.

use switchboard::SendError;

use crate::harness::{Harness, both, next_message, number_of, numbered, pair, within};

const HIGH: usize = 256 << 10;
const LOW: usize = 64 << 10;
const MESSAGE: usize = 64 << 10;
const COUNT: u32 = 128; // 8 MiB in all
/// What a WebRTC stack's channels may hold on top of the node's outbox (a
/// browser's channel takes chunks up to 1 MiB of bufferedAmount).
const CHANNEL_ALLOWANCE: usize = (1 << 20) + (64 << 10);

pub async fn run<H: Harness>(h: &H) {
    let (a, b, _room) = pair(h, || h.node().watermarks(HIGH, LOW)).await;
    let to = b.id();
    let send = async {
        let mut most = 0;
        let mut full = false;
        for i in 0..COUNT {
            match a.try_send(to, "reliable", numbered(i, MESSAGE)) {
                Ok(()) => {}
                Err(SendError::Full) => {
                    full = true;
                    a.send(to, "reliable", numbered(i, MESSAGE)).await.expect("send");
                }
                Err(e) => panic!("try_send: {e}"),
            }
            most = most.max(a.buffered_amount(to));
        }
        (most, full)
    };
    let receive = async {
        for i in 0..COUNT {
            let m = next_message(h, &b).await;
            assert_eq!(m.data.len(), MESSAGE);
            assert_eq!(number_of(&m), i, "in order");
        }
    };
    let ((most, full), ()) = within(h, "8 MiB across", both(send, receive)).await;
    assert!(full, "the sender outran the link, so try_send said Full");
    assert!(most >= LOW, "backpressure had work to do (most {most})");
    assert!(most <= HIGH + MESSAGE + CHANNEL_ALLOWANCE, "buffered {most} bytes at most; without backpressure 8 MiB");
    a.close().await;
    b.close().await;
}
