//! One 64 MiB message arrives whole, chunked below the SCTP message size.

use sha2::{Digest, Sha256};

use crate::common::*;

#[tokio::test]
async fn sixty_four_mib_in_one_message() {
    let server = TestServer::start().await;
    let (a, b, _) = pair(&server, server.node(), server.node()).await;
    let data: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let digest = Sha256::digest(&data);
    let to = b.id();
    let (sent, m) = tokio::join!(a.send(to, "reliable", data), next_message(&b));
    sent.expect("send");
    assert_eq!(m.data.len(), 64 << 20);
    assert_eq!(Sha256::digest(&m.data), digest);
    // Anything above the maximum is refused up front.
    let err = a.send(to, "reliable", vec![0u8; (64 << 20) + 1]).await.expect_err("too large");
    assert!(matches!(err, switchboard::SendError::TooLarge { .. }));
}
