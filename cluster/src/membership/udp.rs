//! Membership over a UDP socket on tokio, for real nodes.

use super::{
    Membership, MembershipConfig, MembershipError, MembershipTimer, MembershipView, NodeIdentity,
    Output, Seeds,
};
use crate::split_brain::SplitBrainResolver;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The largest datagram read (foca's packets stay under its `max_packet_size`).
const RECV_BUF: usize = 64 * 1024;

/// A node's membership on a UDP socket: a tokio task drives a [`Membership`] and publishes
/// its view; [`UdpMembership::leave`] leaves gracefully and stops the task.
pub struct UdpMembership {
    me: NodeIdentity,
    view: watch::Receiver<MembershipView>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), MembershipError>>,
}

impl std::fmt::Debug for UdpMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpMembership")
            .field("me", &self.me)
            .finish()
    }
}

impl UdpMembership {
    /// Binds `bind`, names this node `name` (started now) and joins through `seeds` (a list of
    /// addresses, or a DNS name looked up at each attempt); runs on the current tokio runtime.
    pub async fn start(
        name: impl Into<String>,
        bind: SocketAddr,
        seeds: impl Into<Seeds>,
        config: MembershipConfig,
        resolver: Option<SplitBrainResolver>,
    ) -> Result<Self, MembershipError> {
        let socket = UdpSocket::bind(bind).await?;
        let addr = socket.local_addr()?;
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let me = NodeIdentity::new(name, addr, started_ms);
        let seed = started_ms ^ u64::from(addr.port());
        let mut membership = Membership::new(me.clone(), &config, seed);
        if let Some(r) = resolver {
            membership = membership.with_split_brain(r);
        }
        let (tx, view) = watch::channel(membership.view());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(drive(
            socket,
            membership,
            seeds.into(),
            config.tick,
            tx,
            stopped,
        ));
        Ok(Self {
            me,
            view,
            stop: Some(stop),
            task,
        })
    }

    /// This node's identity.
    pub fn me(&self) -> &NodeIdentity {
        &self.me
    }

    /// The current view.
    pub fn view(&self) -> MembershipView {
        self.view.borrow().clone()
    }

    /// A receiver of every new view.
    pub fn subscribe(&self) -> watch::Receiver<MembershipView> {
        self.view.clone()
    }

    /// Leaves the cluster gracefully and waits for the task to stop.
    pub async fn leave(mut self) -> Result<(), MembershipError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(res) => res,
            Err(e) => Err(MembershipError::Io(std::io::Error::other(e))),
        }
    }
}

impl Drop for UdpMembership {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

async fn drive(
    socket: UdpSocket,
    mut m: Membership,
    seeds: Seeds,
    tick: Duration,
    view: watch::Sender<MembershipView>,
    mut stopped: oneshot::Receiver<()>,
) -> Result<(), MembershipError> {
    let start = Instant::now();
    let mut timers: BTreeMap<(Instant, u64), MembershipTimer> = BTreeMap::new();
    let mut seq = 0u64;
    let mut buf = vec![0u8; RECV_BUF];
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let local = m.me().addr;
    if let Err(e) = m.join(&seeds.resolve(local).await) {
        tracing::warn!(error = %e, "membership join");
    }
    loop {
        flush(&socket, &mut m, &mut timers, &mut seq).await;
        view.send_if_modified(|v| {
            let now = m.view();
            let changed = *v != now;
            *v = now;
            changed
        });
        if m.has_left() {
            return Ok(());
        }
        let next = timers.first_key_value().map(|(k, _)| k.0);
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if let Err(e) = m.handle_datagram(&buf[..n]) {
                        tracing::debug!(%from, error = %e, "membership datagram refused");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "membership socket receive"),
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while let Some(entry) = timers.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let timer = entry.remove();
                    if let Err(e) = m.handle_timer(timer) {
                        tracing::debug!(error = %e, "membership timer refused");
                    }
                }
            }
            _ = ticker.tick() => {
                m.tick(start.elapsed());
                if m.is_alone() && !m.has_left() {
                    let found = seeds.resolve(local).await;
                    if let Err(e) = m.join(&found) {
                        tracing::debug!(error = %e, "membership re-join");
                    }
                }
            }
            _ = &mut stopped => {
                let res = m.leave();
                flush(&socket, &mut m, &mut timers, &mut seq).await;
                view.send_replace(m.view());
                return res;
            }
        }
    }
}

async fn flush(
    socket: &UdpSocket,
    m: &mut Membership,
    timers: &mut BTreeMap<(Instant, u64), MembershipTimer>,
    seq: &mut u64,
) {
    let outputs: Vec<Output> = m.drain_outputs().collect();
    for o in outputs {
        match o {
            Output::Send { to, data } => {
                if let Err(e) = socket.send_to(&data, to).await {
                    tracing::debug!(%to, error = %e, "membership send");
                }
            }
            Output::Timer { after, timer } => {
                *seq += 1;
                timers.insert((Instant::now() + after, *seq), timer);
            }
        }
    }
    for e in m.drain_events() {
        tracing::debug!(event = ?e, "membership");
    }
}
