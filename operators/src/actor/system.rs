//! The actors of one stage: a slab of cells forming a supervision tree, the structural
//! operations their handlers ask for (stop, watch), failures decided by parents' strategies,
//! and the timers of every actor.

use super::cell::{AnyCell, Cell, Meta};
use super::mailbox::{ActorRef, Mailbox, StageShared};
use super::props::{Actor, ActorId, Props};
use super::supervisor::{ActorDirective, Scope};
use super::timers::{TimerKind, Timers};
use std::sync::Arc;
use weir_graph::{Clock, StageError};

/// Passes over the ready actors per call of [`System::run_ready`].
const MAX_PASSES: usize = 8;

/// A structural change a handler asked for, applied after its turn.
#[derive(Debug)]
pub(crate) enum Op {
    Start(ActorId),
    Stop(ActorId),
    StopWhenIdle(ActorId),
    Watch { watcher: ActorId, target: ActorId },
    Unwatch { watcher: ActorId, target: ActorId },
}

struct Slot<O> {
    generation: u32,
    cell: Option<Box<dyn AnyCell<O>>>,
}

/// The actors of one stage and what they share.
pub(crate) struct System<O> {
    slots: Vec<Slot<O>>,
    free: Vec<u32>,
    /// Elements emitted and not sent yet.
    pub(crate) out: Vec<O>,
    pub(crate) ops: Vec<Op>,
    /// Actors with messages in their local queue (timers fired, unstashed, left over).
    pub(crate) runnable: Vec<ActorId>,
    /// Actors parked now (`Ctx::park`): the stage neither completes nor checkpoints meanwhile.
    pub(crate) parked: usize,
    pub(crate) timers: Timers,
    pub(crate) clock: Arc<dyn Clock>,
    shared: Arc<StageShared>,
    stage: Arc<str>,
    live: usize,
    /// Messages handled per actor turn before others get theirs.
    pub(crate) throughput: usize,
    /// Most actors the stage may hold (the root included).
    pub(crate) max_actors: usize,
    /// `run_ready` returns after a round that left at least this many elements to send, so
    /// the stage flushes them (with credit) before more messages are handled.
    pub(crate) out_limit: usize,
    /// Failures of actors waiting for a delayed restart.
    pending_errors: Vec<(ActorId, StageError)>,
    /// Actors to stop once they have nothing queued.
    retiring: Vec<ActorId>,
    /// Actors a restored checkpoint saved, by path, until they start again.
    pub(crate) restored: super::checkpoint::Restored,
    /// The run's actor registry, when it has one.
    pub(crate) registry: Option<Arc<super::registry::ActorRegistry>>,
    /// Where the stage publishes values about itself, when the run collects them.
    pub(crate) gauges: Option<Arc<weir_graph::StageGauges>>,
    /// The stage's subtask index.
    pub(crate) subtask: usize,
}

impl<O: Send + 'static> System<O> {
    pub(crate) fn new(stage: Arc<str>, shared: Arc<StageShared>, clock: Arc<dyn Clock>) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            out: Vec::new(),
            ops: Vec::new(),
            runnable: Vec::new(),
            parked: 0,
            timers: Timers::default(),
            clock,
            shared,
            stage,
            live: 0,
            throughput: 256,
            max_actors: usize::MAX,
            out_limit: usize::MAX,
            pending_errors: Vec::new(),
            retiring: Vec::new(),
            restored: Default::default(),
            registry: None,
            gauges: None,
            subtask: 0,
        }
    }

    /// The stage's path.
    pub(crate) fn stage_path(&self) -> &str {
        &self.stage
    }

    pub(crate) fn shared(&self) -> &StageShared {
        &self.shared
    }

    /// The slot and generation the next actor gets.
    fn next_id(&mut self) -> ActorId {
        match self.free.pop() {
            Some(slot) => ActorId {
                slot,
                generation: self.slots[slot as usize].generation,
            },
            None => {
                let slot = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Slot {
                    generation: 0,
                    cell: None,
                });
                ActorId {
                    slot,
                    generation: 0,
                }
            }
        }
    }

    /// The mailbox for the root actor, made before the stage runs (its ref is materialized).
    pub(crate) fn root_mailbox<A: Actor>(
        stage: &str,
        props: &Props<A>,
        shared: &Arc<StageShared>,
    ) -> Result<Arc<Mailbox<A::Msg>>, StageError> {
        let path: Arc<str> = Arc::from(format!("{stage}/{}", props.name()));
        Mailbox::new(&props.mailbox, ActorId::ROOT, path, Arc::clone(shared))
    }

    /// Installs the root actor with its premade mailbox and starts it.
    pub(crate) fn start_root<A: Actor<Out = O>>(
        &mut self,
        props: Props<A>,
        mailbox: Arc<Mailbox<A::Msg>>,
    ) -> Result<(), StageError> {
        let id = self.next_id();
        debug_assert_eq!(id, ActorId::ROOT);
        let meta = Meta {
            id,
            path: Arc::clone(mailbox.path()),
            parent: None,
            children: Vec::new(),
            watchers: Vec::new(),
            restarts: Default::default(),
            suspended: false,
            stopping: false,
        };
        self.insert(id, Box::new(Cell::new(meta, props, mailbox)));
        self.ops.push(Op::Start(id));
        Ok(())
    }

    fn insert(&mut self, id: ActorId, cell: Box<dyn AnyCell<O>>) {
        self.slots[id.slot as usize].cell = Some(cell);
        self.live += 1;
    }

    /// Makes a child cell (started after the current turn) and returns its ref.
    pub(crate) fn spawn_cell<C: Actor<Out = O>>(
        &mut self,
        props: Props<C>,
        parent: Option<ActorId>,
        parent_path: &str,
    ) -> Result<ActorRef<C::Msg>, StageError> {
        if self.live >= self.max_actors {
            return Err(StageError::user(format!(
                "actor '{parent_path}': cannot spawn '{}': the stage holds its maximum of {} actors",
                props.name(),
                self.max_actors
            )));
        }
        let id = self.next_id();
        let path: Arc<str> = Arc::from(format!("{parent_path}/{}", props.name()));
        let mailbox = Mailbox::new(
            &props.mailbox,
            id,
            Arc::clone(&path),
            Arc::clone(&self.shared),
        )?;
        let meta = Meta {
            id,
            path,
            parent,
            children: Vec::new(),
            watchers: Vec::new(),
            restarts: Default::default(),
            suspended: false,
            stopping: false,
        };
        let r = ActorRef::new(Arc::clone(&mailbox));
        if let Err(e) = super::registry::register_new(self.registry.as_deref(), &props, &r) {
            self.free.push(id.slot);
            return Err(e);
        }
        self.insert(id, Box::new(Cell::new(meta, props, mailbox)));
        self.ops.push(Op::Start(id));
        Ok(r)
    }

    fn take(&mut self, id: ActorId) -> Option<Box<dyn AnyCell<O>>> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.cell.take()
    }

    fn put(&mut self, id: ActorId, cell: Box<dyn AnyCell<O>>) {
        if let Some(slot) = self.slots.get_mut(id.slot as usize)
            && slot.generation == id.generation
        {
            slot.cell = Some(cell);
        }
    }

    fn get(&self, id: ActorId) -> Option<&dyn AnyCell<O>> {
        let slot = self.slots.get(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.cell.as_deref()
    }

    fn get_mut(&mut self, id: ActorId) -> Option<&mut Box<dyn AnyCell<O>>> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.cell.as_mut()
    }

    /// Whether actor `id` is alive.
    pub(crate) fn is_alive(&self, id: ActorId) -> bool {
        self.get(id).is_some()
    }

    /// Runs `f` on the root cell as its concrete type.
    pub(crate) fn with_root<A: Actor<Out = O>, R>(
        &mut self,
        f: impl FnOnce(&mut Cell<A>, &mut Self) -> R,
    ) -> Option<R> {
        let mut cell = self.take(ActorId::ROOT)?;
        let r = cell
            .as_any_mut()
            .downcast_mut::<Cell<A>>()
            .map(|c| f(c, self));
        self.put(ActorId::ROOT, cell);
        r
    }

    /// Runs `f` on cell `id` (taken out of its slot meanwhile).
    fn with_cell<R>(
        &mut self,
        id: ActorId,
        f: impl FnOnce(&mut dyn AnyCell<O>, &mut Self) -> R,
    ) -> Option<R> {
        let mut cell = self.take(id)?;
        let r = f(&mut *cell, self);
        self.put(id, cell);
        Some(r)
    }

    /// Gives every ready actor a turn, applies what the turns asked for, and decides about
    /// failures; `Err` is a failure of the root actor (the stage's supervision decides).
    pub(crate) fn run_ready(&mut self, ready: &mut Vec<ActorId>) -> Result<(), StageError> {
        self.apply_ops()?;
        // A bounded number of passes, so actors telling each other forever still let the stage
        // flush its output and yield.
        for _ in 0..MAX_PASSES {
            self.shared.take(ready);
            ready.append(&mut self.runnable);
            if ready.is_empty() {
                if !self.stop_idle_retiring()? {
                    return Ok(());
                }
                continue;
            }
            let mut i = 0;
            while i < ready.len() {
                let id = ready[i];
                i += 1;
                let budget = self.throughput;
                let r = self
                    .with_cell(id, |c, sys| c.turn(sys, budget))
                    .unwrap_or(Ok(()))
                    .and_then(|()| self.apply_ops());
                let r = match r {
                    Err(e) => self.failed(id, e).and_then(|()| self.apply_ops()),
                    ok => ok,
                };
                if let Err(e) = r {
                    // The root failed: the actors not served yet keep their turn.
                    self.runnable.extend(ready.drain(i..));
                    ready.clear();
                    return Err(e);
                }
            }
            ready.clear();
            if self.out.len() >= self.out_limit {
                // The rest stays on the ready lists until the output has room.
                return Ok(());
            }
        }
        Ok(())
    }

    /// Stops the retiring actors that have nothing queued; whether it stopped any.
    fn stop_idle_retiring(&mut self) -> Result<bool, StageError> {
        if self.retiring.is_empty() {
            return Ok(false);
        }
        let retiring = std::mem::take(&mut self.retiring);
        let mut stopped = false;
        for id in retiring {
            match self.get(id).map(|c| c.is_idle()) {
                Some(true) => {
                    self.stop(id)?;
                    stopped = true;
                }
                Some(false) => self.retiring.push(id),
                None => {}
            }
        }
        self.apply_ops()?;
        Ok(stopped)
    }

    /// Whether an actor has messages waiting (in its local queue or its mailbox).
    pub(crate) fn has_ready(&self) -> bool {
        !self.runnable.is_empty() || self.shared.has_ready()
    }

    /// Applies queued structural operations.
    pub(crate) fn apply_ops(&mut self) -> Result<(), StageError> {
        while !self.ops.is_empty() {
            let ops = std::mem::take(&mut self.ops);
            for op in ops {
                match op {
                    Op::Start(id) => {
                        if let Some(Err(e)) = self.with_cell(id, |c, sys| c.start(sys)) {
                            self.start_failed(id, e)?;
                        }
                    }
                    Op::Stop(id) => self.stop(id)?,
                    Op::StopWhenIdle(id) => {
                        if self.is_alive(id) && !self.retiring.contains(&id) {
                            self.retiring.push(id);
                        }
                    }
                    Op::Watch { watcher, target } => {
                        if let Some(t) = self.get_mut(target) {
                            if !t.meta().watchers.contains(&watcher) {
                                t.meta_mut().watchers.push(watcher);
                            }
                        } else {
                            self.notify_terminated(watcher, target)?;
                        }
                    }
                    Op::Unwatch { watcher, target } => {
                        if let Some(t) = self.get_mut(target) {
                            t.meta_mut().watchers.retain(|w| *w != watcher);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn notify_terminated(&mut self, watcher: ActorId, who: ActorId) -> Result<(), StageError> {
        if let Some(Err(e)) = self.with_cell(watcher, |c, sys| c.terminated(sys, who)) {
            self.failed(watcher, e)?;
        }
        Ok(())
    }

    /// Stops `id`: its children first, then `post_stop`; watchers are told; the root's stop
    /// ends the stage.
    pub(crate) fn stop(&mut self, id: ActorId) -> Result<(), StageError> {
        let Some(cell) = self.get_mut(id) else {
            return Ok(());
        };
        cell.meta_mut().stopping = true;
        // Taken, not cloned: each child's stop then finds nothing to remove from this list
        // (removing them one by one made stopping n children O(n^2)).
        let children = std::mem::take(&mut cell.meta_mut().children);
        for child in children {
            self.stop(child)?;
        }
        let Some(mut cell) = self.take(id) else {
            return Ok(());
        };
        cell.stop(self);
        let meta = cell.meta();
        let (parent, watchers) = (meta.parent, meta.watchers.clone());
        drop(cell);
        let slot = &mut self.slots[id.slot as usize];
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.slot);
        self.live -= 1;
        if let Some(p) = parent.and_then(|p| self.get_mut(p)) {
            p.meta_mut().children.retain(|c| *c != id);
        }
        for w in watchers {
            self.notify_terminated(w, id)?;
        }
        Ok(())
    }

    /// Stops every actor (the root and its tree).
    pub(crate) fn stop_all(&mut self) -> Result<(), StageError> {
        self.stop(ActorId::ROOT)?;
        self.apply_ops()
    }

    /// Decides about a failure of `id` in a handler with its parent's strategy.
    fn failed(&mut self, id: ActorId, error: StageError) -> Result<(), StageError> {
        self.decide(id, error, false)
    }

    /// Decides about a failure of `id` in its `pre_start` (the strategy's start-failure
    /// directive applies, and a restart is never run recursively).
    fn start_failed(&mut self, id: ActorId, error: StageError) -> Result<(), StageError> {
        let wrapped = StageError::new(
            error.kind(),
            format!("pre_start failed: {}", error.message()),
        );
        let wrapped = match error.stage() {
            Some(path) => wrapped.with_stage(path),
            None => wrapped,
        };
        self.decide(id, wrapped, true)
    }

    fn decide(&mut self, id: ActorId, error: StageError, at_start: bool) -> Result<(), StageError> {
        let Some(parent) = self.get(id).map(|c| c.meta().parent) else {
            return Ok(());
        };
        let Some(parent) = parent else {
            // The root: the stage's supervision decides.
            return Err(error);
        };
        let Some(strategy) = self.get(parent).map(|p| p.strategy()) else {
            return self.stop(id);
        };
        let directive = if at_start {
            strategy.start_failure
        } else {
            strategy.decide(&error)
        };
        tracing::debug!(stage = %self.stage, actor = %id, ?directive, %error, "actor failed");
        let targets = match strategy.scope {
            Scope::OneForOne => vec![id],
            Scope::AllForOne => self
                .get(parent)
                .map(|p| p.meta().children.clone())
                .unwrap_or_default(),
        };
        match directive {
            // After a failed pre_start the actor runs from where it stopped.
            ActorDirective::Resume => Ok(()),
            ActorDirective::Stop => {
                for t in targets {
                    self.stop(t)?;
                }
                Ok(())
            }
            ActorDirective::Escalate => {
                let e = StageError::new(error.kind(), format!("escalated from child: {error}"));
                self.failed(parent, e)
            }
            ActorDirective::Restart => {
                let now = self.clock.now();
                for t in targets {
                    let Some(cell) = self.get_mut(t) else {
                        continue;
                    };
                    let meta = cell.meta_mut();
                    meta.restarts.reset_if_quiet(now, strategy.reset_after);
                    let allowed = meta.restarts.allow(now, strategy.budget);
                    let attempt = meta.restarts.attempts.saturating_sub(1);
                    let path = Arc::clone(&meta.path);
                    if !allowed {
                        tracing::warn!(stage = %self.stage, actor = %path, "restart budget exceeded: stopping");
                        self.stop(t)?;
                        continue;
                    }
                    let delay = match strategy.backoff {
                        Some(b) => Some(b.delay(attempt, u64::from(t.slot))),
                        // A failed pre_start restarts on the stage's next loop, not from here.
                        None if at_start => Some(std::time::Duration::ZERO),
                        None => None,
                    };
                    match delay {
                        Some(delay) => {
                            let children = match self.get_mut(t) {
                                Some(c) => {
                                    c.meta_mut().suspended = true;
                                    c.meta().children.clone()
                                }
                                None => continue,
                            };
                            let generation = self.timers.next_generation();
                            self.timers
                                .push(now + delay, t, generation, TimerKind::Restart);
                            // Children stop now; the actor restarts when the delay is over.
                            for c in children {
                                self.stop(c)?;
                            }
                            self.pending_errors.retain(|(a, _)| *a != t);
                            self.pending_errors.push((t, error.clone()));
                        }
                        None => self.restart(t, &error)?,
                    }
                }
                Ok(())
            }
        }
    }

    fn restart(&mut self, id: ActorId, error: &StageError) -> Result<(), StageError> {
        let children = self
            .get(id)
            .map(|c| c.meta().children.clone())
            .unwrap_or_default();
        for c in children {
            self.stop(c)?;
        }
        let now = self.clock.now();
        match self.with_cell(id, |c, sys| c.restart(sys, error)) {
            Some(Err(e)) => self.start_failed(id, e)?,
            Some(Ok(())) => {
                if let Some(c) = self.get_mut(id) {
                    c.meta_mut().restarts.running_since = now;
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Restarts the root after its failure (the stage's supervision said restart).
    pub(crate) fn restart_root(&mut self, error: &StageError) -> Result<(), StageError> {
        self.restart(ActorId::ROOT, error)?;
        self.apply_ops()
    }

    /// Delivers every timer due at `now` (user timers to local queues, delayed restarts).
    pub(crate) fn fire_timers(&mut self) -> Result<(), StageError> {
        let now = self.clock.now();
        while let Some(due) = self.timers.pop_due(now) {
            match due.kind {
                TimerKind::User(key) => {
                    let next = self
                        .get_mut(due.actor)
                        .and_then(|c| c.fire(&key, due.generation, due.at));
                    if self.get(due.actor).is_some_and(|c| c.has_local_work()) {
                        self.runnable.push(due.actor);
                    }
                    if let Some(at) = next {
                        self.timers.push(
                            at.max(now),
                            due.actor,
                            due.generation,
                            TimerKind::User(key),
                        );
                    }
                }
                TimerKind::Receive => {
                    if self
                        .get_mut(due.actor)
                        .is_some_and(|c| c.receive_timed_out(due.generation))
                    {
                        self.runnable.push(due.actor);
                    }
                }
                TimerKind::Restart => {
                    let pos = self
                        .pending_errors
                        .iter()
                        .position(|(a, _)| *a == due.actor);
                    if let Some(i) = pos {
                        let (_, error) = self.pending_errors.swap_remove(i);
                        self.restart(due.actor, &error)?;
                        self.runnable.push(due.actor);
                    }
                }
            }
        }
        self.apply_ops()
    }

    /// Whether any actor has work now or a delayed restart pending.
    pub(crate) fn has_work(&self) -> bool {
        // A cell left with local work is on `runnable` (its turn puts it back), and a suspended
        // one waits for its restart timer: no scan over every cell per loop.
        self.has_ready() || !self.ops.is_empty() || self.timers.restart_pending() || self.parked > 0
    }

    /// Whether any actor has an active timer.
    pub(crate) fn has_timers(&self) -> bool {
        self.cells().any(|c| c.has_timers())
    }

    pub(crate) fn cells(&self) -> impl Iterator<Item = &dyn AnyCell<O>> {
        self.slots.iter().filter_map(|s| s.cell.as_deref())
    }

    /// Whether the root actor takes the next stream batch now.
    pub(crate) fn root_accepts<A: Actor<Out = O>>(&self) -> bool {
        if self.shared.is_overfull() {
            return false;
        }
        let slot = &self.slots[0];
        slot.cell
            .as_deref()
            .and_then(|c| {
                let any: &dyn std::any::Any = c.as_any();
                any.downcast_ref::<Cell<A>>()
            })
            .is_some_and(Cell::accepts)
    }

    /// Refs to the root's mailbox held outside the stage's cells.
    pub(crate) fn root_outside_refs(&self) -> usize {
        self.get(ActorId::ROOT).map_or(0, |c| c.outside_refs())
    }
}

/// A dropped stage (a cancelled run) closes every mailbox: senders waiting for room wake up
/// with `Stopped`, and no actor, timer or reply slot outlives the run.
impl<O> Drop for System<O> {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(c) = slot.cell.as_mut() {
                c.close();
            }
        }
    }
}
