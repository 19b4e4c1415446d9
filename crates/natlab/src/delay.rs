//! Delay without netem: packets leaving an interface go to an NFQUEUE (an
//! `iptables` rule in the namespace) and a thread inside that namespace gives
//! each its verdict `delay` after it arrived. Kernels built without
//! `CONFIG_NET_SCH_NETEM` still have netfilter queues.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};

use crate::cmd::{self, exec_in};
use crate::{LabError, Netns};

/// The queue number every delayer uses (one queue per namespace).
const QUEUE_NUM: u16 = 7;
/// [`QUEUE_NUM`] as `iptables` takes it.
const QUEUE: &str = "7";
/// Packets the kernel holds for the delayer before it lets new ones pass undelayed.
const QUEUE_LEN: u32 = 65_536;
/// Longest nap of the delayer thread: the delay's granularity.
const TICK: Duration = Duration::from_micros(500);

/// One namespace's delayed interface; stops (rule removed, packets let go) on drop.
#[derive(Debug)]
pub(crate) struct Delayer {
    netns: Netns,
    device: &'static str,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Delays every packet leaving `device` in `netns` by `delay`.
    pub(crate) fn start(netns: &Netns, device: &'static str, delay: Duration) -> Result<Self, LabError> {
        cmd::require("iptables", "iptables")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let flag = stop.clone();
        let thread = netns.spawn(move || {
            let mut queue = match open_queue() {
                Ok(q) => {
                    let _ = ready_tx.send(Ok(()));
                    q
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            hold_and_release(&mut queue, delay, &flag);
        })?;
        let delayer = Delayer { netns: netns.clone(), device, stop, thread: Some(thread) };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(LabError::Delay { netns: netns.name().to_owned(), reason: format!("NFQUEUE: {e}") });
            }
            Err(_) => return Err(LabError::Delay { netns: netns.name().to_owned(), reason: "thread ended".into() }),
        }
        // `--queue-bypass`: should the thread be gone, packets pass instead of being dropped.
        exec_in(netns.name(), "iptables", &delayer.rule("-A"), None)?;
        Ok(delayer)
    }

    fn rule<'a>(&'a self, action: &'a str) -> [&'a str; 11] {
        [
            "-t",
            "mangle",
            action,
            "POSTROUTING",
            "-o",
            self.device,
            "-j",
            "NFQUEUE",
            "--queue-num",
            QUEUE,
            "--queue-bypass",
        ]
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        // The namespace may be gone already (lab torn down): nothing to undo then.
        let _ = exec_in(self.netns.name(), "iptables", &self.rule("-D"), None);
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_queue() -> std::io::Result<Queue> {
    let mut queue = Queue::open()?;
    queue.bind(QUEUE_NUM)?;
    queue.set_copy_range(QUEUE_NUM, 0)?;
    queue.set_queue_max_len(QUEUE_NUM, QUEUE_LEN)?;
    queue.set_fail_open(QUEUE_NUM, true)?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// Takes packets as they come and accepts each `delay` later, in order,
/// until `stop`; then lets every held packet go.
fn hold_and_release(queue: &mut Queue, delay: Duration, stop: &AtomicBool) {
    let mut held = VecDeque::new();
    while !stop.load(Ordering::Acquire) {
        // Until nothing waits; other errors (ENOBUFS after an overflow) lose
        // nothing either: the queue fails open.
        while let Ok(mut msg) = queue.recv() {
            msg.set_verdict(Verdict::Accept);
            held.push_back((Instant::now() + delay, msg));
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, msg)) = held.pop_front() {
                let _ = queue.verdict(msg);
            }
        }
        let nap = held.front().map_or(TICK, |(due, _)| due.saturating_duration_since(now).min(TICK));
        std::thread::sleep(nap);
    }
    for (_, msg) in held {
        let _ = queue.verdict(msg);
    }
}
