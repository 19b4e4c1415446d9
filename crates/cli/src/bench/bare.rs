//! The second baseline of `bench p2p`: two bare str0m instances on loopback
//! UDP sockets, one data channel between them, each driven by one task that
//! echoes (or times) 64-byte messages itself. What a link costs beyond it is
//! Switchboard's own: the node and link cores, the lock, the task hop to
//! the application.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::local::PATIENCE;

/// One side: its str0m instance, socket and channel.
struct Side {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    channel: Option<ChannelId>,
}

impl Side {
    async fn new() -> anyhow::Result<Side> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        Ok(Side { rtc, socket, local, channel: None })
    }

    /// Sends what str0m has to send; returns its next timeout and the
    /// events it reported.
    fn drain(&mut self, events: &mut Vec<Event>) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => events.push(e),
            }
        }
    }

    /// Waits for a datagram or the timeout, and hands it to str0m.
    async fn step(&mut self, timeout: Instant, buf: &mut [u8]) -> anyhow::Result<()> {
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout));
        tokio::select! {
            r = self.socket.recv_from(buf) => {
                let (n, source) = r?;
                let receive = Receive::new(Protocol::Udp, source, self.local, &buf[..n])?;
                self.rtc.handle_input(Input::Receive(Instant::now(), receive))?;
            }
            () = sleep => self.rtc.handle_input(Input::Timeout(Instant::now()))?,
        }
        Ok(())
    }
}

/// Round trips of 64-byte messages between two bare str0m instances.
pub(crate) async fn round_trips(n: usize) -> anyhow::Result<Vec<Duration>> {
    let (mut a, mut b) = (Side::new().await?, Side::new().await?);
    let mut api = a.rtc.sdp_api();
    let channel = api.add_channel("bench".into());
    let Some((offer, pending)) = api.apply() else { bail!("str0m made no offer") };
    let answer = b.rtc.sdp_api().accept_offer(offer)?;
    a.rtc.sdp_api().accept_answer(pending, answer)?;
    a.channel = Some(channel);
    let echo = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut echoed = 0;
        let until = Instant::now() + PATIENCE;
        while echoed < n && Instant::now() < until {
            let mut events = Vec::new();
            let timeout = b.drain(&mut events)?;
            let wrote = events.iter().any(|e| matches!(e, Event::ChannelData(_)));
            for e in events {
                match e {
                    Event::ChannelOpen(id, _) => b.channel = Some(id),
                    Event::ChannelData(d) => {
                        if let Some(mut ch) = b.rtc.channel(d.id) {
                            ch.write(true, &d.data)?;
                        }
                        echoed += 1;
                    }
                    _ => {}
                }
            }
            // An echo written goes out before the next wait.
            if echoed < n && !wrote {
                b.step(timeout, &mut buf).await?;
            }
        }
        // Lets the last echo go out.
        let mut events = Vec::new();
        b.drain(&mut events)?;
        anyhow::Ok(())
    });
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(n);
    let payload = [0u8; 64];
    let mut open = false;
    let mut sent_at: Option<Instant> = None;
    let until = Instant::now() + PATIENCE;
    while out.len() < n {
        if Instant::now() > until {
            bail!("the bare str0m pair did not finish within {PATIENCE:?}");
        }
        if open && sent_at.is_none() {
            let mut ch = a.rtc.channel(channel).context("channel")?;
            ch.write(true, &payload)?;
            sent_at = Some(Instant::now());
        }
        let mut events = Vec::new();
        let timeout = a.drain(&mut events)?;
        for e in events {
            match e {
                Event::ChannelOpen(..) => open = true,
                Event::ChannelData(_) => {
                    if let Some(t) = sent_at.take() {
                        out.push(t.elapsed());
                    }
                }
                _ => {}
            }
        }
        if open && sent_at.is_none() {
            continue;
        }
        a.step(timeout, &mut buf).await?;
    }
    echo.await??;
    out.sort();
    Ok(out)
}
