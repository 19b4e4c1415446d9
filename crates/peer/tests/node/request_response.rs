//! Requests get their answers; timeouts and dropped requests leave no entry behind.

use std::time::Duration;

use switchboard::{Event, RequestFailed};

use crate::common::*;

#[tokio::test]
async fn requests_answers_and_timeouts() {
    let server = TestServer::start().await;
    let (a, b, _) = pair(&server, server.node(), server.node()).await;
    let to = b.id();
    let answering = async {
        for _ in 0..2 {
            let req = wait_for(&b, |ev| match ev {
                Event::Request(r) => Some(r),
                _ => None,
            })
            .await;
            if &req.data[..] == b"fail" {
                b.respond_error(&req, "no such thing").await.expect("respond");
            } else {
                let mut answer = req.data.to_vec();
                answer.reverse();
                b.respond(&req, answer).await.expect("respond");
            }
        }
    };
    let asking = async {
        let answer = a.request(to, "reliable", &b"abc"[..], Duration::from_secs(5)).await.expect("answer");
        assert_eq!(&answer[..], b"cba");
        let err = a.request(to, "reliable", &b"fail"[..], Duration::from_secs(5)).await.expect_err("error");
        assert_eq!(err, RequestFailed::Remote("no such thing".into()));
    };
    tokio::join!(answering, asking);
    // Nobody answers this one.
    let err = a.request(to, "reliable", &b"silence"[..], Duration::from_millis(200)).await.expect_err("timeout");
    assert_eq!(err, RequestFailed::Timeout(Duration::from_millis(200)));
    assert_eq!(a.pending_requests(), 0);
    // A request future dropped midway leaves nothing behind either.
    let dropped =
        tokio::time::timeout(Duration::from_millis(50), a.request(to, "reliable", &b"x"[..], Duration::from_secs(60)));
    assert!(dropped.await.is_err());
    assert_eq!(a.pending_requests(), 0);
}
