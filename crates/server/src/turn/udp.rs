//! The UDP listener the TURN server reads: our STUN responder answers
//! Binding requests first (with RFC 5780 attributes), the quota refuses
//! Allocates over the limit, everything else goes to the `turn` crate.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use webrtc_util::Conn;

use super::auth::{Quota, Verdict};
use super::guard::PeerPolicy;
use crate::stun::StunResponder;

/// The primary STUN/TURN UDP socket as a `Conn` for the TURN server.
pub(crate) struct UdpFront {
    pub(crate) stun: Arc<StunResponder>,
    pub(crate) quota: Arc<Quota>,
    pub(crate) policy: PeerPolicy,
}

#[async_trait]
impl Conn for UdpFront {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("a listener does not connect".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let socket = self.stun.primary();
        loop {
            let (n, from) = socket.recv_from(buf).await?;
            if self.stun.answer_primary(from, &buf[..n]).await {
                continue;
            }
            if let Some(reply) = self.policy.refuse(&buf[..n]) {
                let _ = socket.send_to(&reply, from).await;
                continue;
            }
            match self.quota.check(&buf[..n], from).await {
                Verdict::Pass => {}
                Verdict::Answer(reply) => {
                    let _ = socket.send_to(&reply, from).await;
                    continue;
                }
                Verdict::Drop => continue,
            }
            return Ok((n, from));
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("a listener sends with send_to".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        self.quota.learn(buf);
        Ok(self.stun.primary().send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.stun.primary().local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}
