//! A receiver that stops reading makes the sender wait; memory stays bounded
//! on both sides, and everything arrives once it reads again.

use futures_util::FutureExt;

use switchboard::SendError;

use crate::common::*;

const HIGH: usize = 4 << 20;
const LOW: usize = 1 << 20;
const WINDOW: usize = 2 << 20;

#[tokio::test]
async fn stalled_reader_bounds_memory() {
    let server = TestServer::start().await;
    let node = || server.node().watermarks(HIGH, LOW).receive_window(WINDOW);
    let (a, b, _) = pair(&server, node(), node()).await;
    let to = b.id();
    let chunk = vec![7u8; 64 << 10];
    // b reads nothing. a sends until a send has to wait: `send` only awaits
    // when the buffer is over its high watermark, so a send that is not
    // ready at once is one that waits for the buffer to drain.
    let mut sent = 0usize;
    while let Some(r) = a.send(to, "reliable", chunk.clone()).now_or_never() {
        r.expect("send");
        sent += 1;
        assert!(sent < 1000, "64 MiB accepted while the reader is stalled");
    }
    // A blocked `send` waits for the low watermark; `try_send` may still top
    // the buffer up to the high one, then refuses.
    let mut refused = false;
    for _ in 0..100 {
        match a.try_send(to, "reliable", chunk.clone()) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e, SendError::Full);
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "try_send refuses once the buffer is full");
    assert!(a.buffered_amount(to) <= HIGH, "buffered {}", a.buffered_amount(to));
    // The receiver holds at most its window plus what was in flight.
    assert!(b.unread_bytes() <= 2 * WINDOW + (1 << 20), "receiver holds {}", b.unread_bytes());
    let accepted = sent * chunk.len();
    assert!(accepted <= HIGH + 2 * WINDOW + (2 << 20), "accepted {accepted}");
    // Reading again lets everything through.
    for _ in 0..sent {
        let m = next_message(&b).await;
        assert_eq!(m.data.len(), chunk.len());
    }
    a.send(to, "reliable", &b"after"[..]).await.expect("send after");
    assert_eq!(&next_message(&b).await.data[..], b"after");
}
