//! Kill switches: stop a running graph from outside, gracefully (`shutdown`: complete downstream,
//! cancel upstream) or with an error (`abort`).

use futures::FutureExt;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use weir_graph::{AsyncFn, Event, Flow, StageError};

#[derive(Debug, Default)]
struct KsState {
    token: CancellationToken,
    reason: Mutex<Option<StageError>>,
}

impl KsState {
    fn trigger(&self, reason: Option<StageError>) {
        if self.token.is_cancelled() {
            return;
        }
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        self.token.cancel();
    }
}

/// A kill switch controlling one materialization of a `KillSwitches::single()` flow.
#[derive(Debug, Clone)]
pub struct UniqueKillSwitch(Arc<KsState>);

impl UniqueKillSwitch {
    /// Completes downstream and cancels upstream.
    pub fn shutdown(&self) {
        self.0.trigger(None);
    }
    /// Fails downstream with `error` and cancels upstream.
    pub fn abort(&self, error: StageError) {
        self.0.trigger(Some(error));
    }
}

/// A kill switch shared by any number of flows and materializations.
#[derive(Debug, Clone)]
pub struct SharedKillSwitch {
    name: Arc<str>,
    state: Arc<KsState>,
}

impl SharedKillSwitch {
    /// Completes every stream passing through this switch.
    pub fn shutdown(&self) {
        self.state.trigger(None);
    }
    /// Fails every stream passing through this switch.
    pub fn abort(&self, error: StageError) {
        self.state.trigger(Some(error));
    }
    /// A flow controlled by this switch.
    pub fn flow<T: Send + 'static>(&self) -> Flow<T, T, ()> {
        let st = Arc::clone(&self.state);
        switch_flow::<T, ()>(&format!("kill-switch({})", self.name), move || {
            (Arc::clone(&st), ())
        })
    }
}

/// Creates kill switches.
#[derive(Debug, Clone, Copy)]
pub struct KillSwitches;

impl KillSwitches {
    /// A flow materializing a [`UniqueKillSwitch`] for that one run.
    pub fn single<T: Send + 'static>() -> Flow<T, T, UniqueKillSwitch> {
        switch_flow::<T, UniqueKillSwitch>("kill-switch", || {
            let st = Arc::new(KsState::default());
            (Arc::clone(&st), UniqueKillSwitch(st))
        })
    }
    /// A named switch whose `flow()`s can be placed in many graphs.
    pub fn shared(name: &str) -> SharedKillSwitch {
        SharedKillSwitch {
            name: Arc::from(name),
            state: Arc::new(KsState::default()),
        }
    }
}

fn switch_flow<T: Send + 'static, M: Send + 'static>(
    name: &str,
    make: impl Fn() -> (Arc<KsState>, M) + Send + Sync + 'static,
) -> Flow<T, T, M> {
    Flow::from_async(name, move |_info| {
        let (st, mat) = make();
        let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
            async move {
                let mut input = io.input::<T>(0)?;
                let mut output = io.output::<T>(0)?;
                loop {
                    let ev = tokio::select! {
                        biased;
                        _ = st.token.cancelled() => None,
                        ev = input.recv() => Some(ev),
                    };
                    let Some(ev) = ev else {
                        let reason = st.reason.lock().ok().and_then(|r| r.clone());
                        return match reason {
                            None => Ok(()),
                            Some(e) => Err(e),
                        };
                    };
                    match ev {
                        Event::Batch(b) => {
                            let sent = tokio::select! {
                                biased;
                                _ = st.token.cancelled() => continue,
                                r = output.send(b) => r,
                            };
                            if sent.is_err() {
                                return Ok(());
                            }
                        }
                        Event::End => return Ok(()),
                        Event::Error(e) => return Err(e),
                    }
                }
            }
            .boxed()
        });
        Ok((logic, mat))
    })
}
