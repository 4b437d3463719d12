//! Checkpointed actors: an actor stage whose actors opted in with [`Props::checkpointed`]
//! saves its whole tree at every checkpoint barrier (each actor by path: its instance, the
//! messages in its local queue and its stash) and gives each actor its saved state back when a
//! restored run starts it again.
//!
//! What is saved is what the stream's elements before the barrier made: the stage handles every
//! message before the barrier (the root's, then every actor with work, until none has any)
//! before it snapshots. Senders and reply slots are not saved (a restored message has no
//! sender), nor are timers and `become` behaviours (`pre_start` runs again on the restored
//! instance and may re-arm them). Messages told to a ref from outside the stage since the last
//! checkpoint are not replayable: a restored run does not see them again unless the sender
//! retries (ADR 0001); feed a checkpointed actor through a replayable source instead.

use super::props::{Actor, Props};
use super::system::System;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use weir_graph::{AsyncIo, Control, Output, Snapshot, SnapshotError, StageError};

/// How a checkpointed actor's cell is saved and loaded (set by [`Props::checkpointed`]).
pub(crate) struct CellCodec<A: Actor> {
    /// Encodes the instance, its local queue and its stash.
    pub(crate) save: SaveFn<A>,
    /// Decodes what `save` wrote.
    pub(crate) load: LoadFn<A>,
}

/// Encodes an actor with the messages of its local queue and of its stash.
pub(crate) type SaveFn<A> = Arc<
    dyn Fn(&A, &[&<A as Actor>::Msg], &[&<A as Actor>::Msg]) -> Result<Vec<u8>, SnapshotError>
        + Send
        + Sync,
>;

/// Decodes an actor with its local queue and its stash.
pub(crate) type LoadFn<A> = Arc<dyn Fn(&[u8]) -> Result<Saved<A>, SnapshotError> + Send + Sync>;

impl<A: Actor> Clone for CellCodec<A> {
    fn clone(&self) -> Self {
        Self {
            save: Arc::clone(&self.save),
            load: Arc::clone(&self.load),
        }
    }
}

/// One actor as a checkpoint saved it.
pub(crate) struct Saved<A: Actor> {
    pub(crate) actor: A,
    pub(crate) local: Vec<A::Msg>,
    pub(crate) stash: Vec<A::Msg>,
}

fn save<A>(actor: &A, local: &[&A::Msg], stash: &[&A::Msg]) -> Result<Vec<u8>, SnapshotError>
where
    A: Actor + Serialize,
    A::Msg: Serialize,
{
    postcard::to_allocvec(&(actor, local, stash)).map_err(|e| SnapshotError::Encode(e.to_string()))
}

fn load<A>(bytes: &[u8]) -> Result<Saved<A>, SnapshotError>
where
    A: Actor + DeserializeOwned,
    A::Msg: DeserializeOwned,
{
    let (actor, local, stash): (A, Vec<A::Msg>, Vec<A::Msg>) = postcard::from_bytes(bytes)
        .map_err(|e| SnapshotError::Decode {
            ty: std::any::type_name::<A>(),
            reason: e.to_string(),
        })?;
    Ok(Saved {
        actor,
        local,
        stash,
    })
}

impl<A: Actor> Props<A> {
    /// These props with the actor checkpointed: at every checkpoint barrier its instance and the
    /// messages queued in its stage (local queue, stash) are saved under its path, and a restored
    /// run starts it with them (before `pre_start`). Every actor of a checkpointed stage (the
    /// root and each child) needs it; a child's path (`with_name`) must be unique.
    pub fn checkpointed(self) -> Self
    where
        A: Serialize + DeserializeOwned,
        A::Msg: Serialize + DeserializeOwned,
    {
        self.with_codec(CellCodec {
            save: Arc::new(save::<A>),
            load: Arc::new(load::<A>),
        })
    }
    /// [`Props::checkpointed`] for an actor whose instance is not its serde state (one hosting
    /// a foreign object, such as a Python instance): `encode` writes the instance's state and
    /// `decode` makes an instance from it; the messages queued for it (local queue, stash) are
    /// saved with serde as in `checkpointed`.
    pub fn checkpointed_with(
        self,
        encode: impl Fn(&A) -> Result<Vec<u8>, SnapshotError> + Send + Sync + 'static,
        decode: impl Fn(&[u8]) -> Result<A, SnapshotError> + Send + Sync + 'static,
    ) -> Self
    where
        A::Msg: Serialize + DeserializeOwned,
    {
        let save: SaveFn<A> = Arc::new(move |actor, local, stash| {
            let state = encode(actor)?;
            postcard::to_allocvec(&(state, local, stash))
                .map_err(|e| SnapshotError::Encode(e.to_string()))
        });
        let load: LoadFn<A> = Arc::new(move |bytes| {
            let (state, local, stash): (Vec<u8>, Vec<A::Msg>, Vec<A::Msg>) =
                postcard::from_bytes(bytes).map_err(|e| SnapshotError::Decode {
                    ty: std::any::type_name::<A>(),
                    reason: e.to_string(),
                })?;
            Ok(Saved {
                actor: decode(&state)?,
                local,
                stash,
            })
        });
        self.with_codec(CellCodec { save, load })
    }
    /// These props saved and loaded by `codec` at checkpoints (an actor whose instance is made
    /// from more than its serde state, such as a shard region's root).
    pub(crate) fn with_codec(mut self, codec: CellCodec<A>) -> Self {
        self.codec = Some(Arc::new(codec));
        self
    }
    /// Whether these props were made with [`Props::checkpointed`].
    pub fn is_checkpointed(&self) -> bool {
        self.codec.is_some()
    }
    /// The codec `checkpointed()` set.
    pub(crate) fn cell_codec(&self) -> Option<&CellCodec<A>> {
        self.codec.as_ref()?.downcast_ref()
    }
}

/// What a checkpoint holds for one actor stage: each actor's bytes by path.
#[derive(Serialize, Deserialize)]
struct SavedTree {
    cells: Vec<(String, Vec<u8>)>,
}

/// The saved actors of a restored stage, by path, waiting for their actor to start again.
#[derive(Default)]
pub(crate) struct Restored(HashMap<String, Vec<u8>>);

impl Restored {
    /// Decodes a stage's snapshot, checking that the root at `root` loads (its props must be
    /// checkpointed to take it).
    pub(crate) fn decode<A: Actor>(
        snapshot: &Snapshot,
        props: &Props<A>,
        root: &str,
    ) -> Result<Self, StageError> {
        if props.codec.is_none() {
            return Err(not_checkpointed(root));
        }
        let tree: SavedTree = snapshot.decode()?;
        let cells: HashMap<String, Vec<u8>> = tree.cells.into_iter().collect();
        if let Some(bytes) = cells.get(root) {
            load_cell(props.cell_codec(), root, bytes)?;
        }
        Ok(Self(cells))
    }
    /// Takes the saved bytes of the actor at `path`.
    pub(crate) fn take(&mut self, path: &str) -> Option<Vec<u8>> {
        if self.0.is_empty() {
            return None;
        }
        self.0.remove(path)
    }
    /// Saved actors not started again yet (a child its parent spawns later), by path.
    fn unclaimed(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.0.iter()
    }
}

/// Loads `bytes` saved for the actor at `path` with `codec`.
pub(crate) fn load_cell<A: Actor>(
    codec: Option<&CellCodec<A>>,
    path: &str,
    bytes: &[u8],
) -> Result<Saved<A>, StageError> {
    let codec = codec.ok_or_else(|| not_checkpointed(path))?;
    (codec.load)(bytes).map_err(|e| {
        StageError::internal(format!(
            "actor '{path}': cannot restore its saved state: {e}"
        ))
    })
}

/// Saves an actor's cell with `codec` (an error naming it when it is not checkpointed).
pub(crate) fn save_cell<A: Actor>(
    codec: Option<&CellCodec<A>>,
    path: &str,
    actor: &A,
    local: &[&A::Msg],
    stash: &[&A::Msg],
) -> Result<Vec<u8>, StageError> {
    let codec = codec.ok_or_else(|| not_checkpointed(path))?;
    (codec.save)(actor, local, stash)
        .map_err(|e| StageError::internal(format!("actor '{path}': cannot save its state: {e}")))
}

/// The error of an actor whose state a checkpoint cannot hold.
pub(crate) fn not_checkpointed(actor: &str) -> StageError {
    StageError::internal(format!(
        "actor '{actor}' is not checkpointed, so a checkpoint would lose its state: build its \
         props with `Props::checkpointed()` (its state and messages serde; from Python, \
         `checkpointed=True`)"
    ))
}

/// Refuses a stage whose root is not checkpointed in a run that checkpoints.
pub(crate) fn check_start<A: Actor>(
    props: &Props<A>,
    io: &AsyncIo,
    root: &str,
) -> Result<(), StageError> {
    if io.checkpoint.is_some() && props.codec.is_none() {
        return Err(not_checkpointed(root).with_stage(&io.info.path));
    }
    Ok(())
}

/// Saves every actor of the stage (the whole tree, by path).
fn save_tree<O: Send + 'static>(sys: &System<O>) -> Result<Snapshot, StageError> {
    let mut cells: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in sys.cells() {
        let path = c.meta().path.to_string();
        let Some(bytes) = c.save()? else { continue };
        if !seen.insert(path.clone()) {
            return Err(StageError::internal(format!(
                "two actors have the path '{path}', so a checkpoint cannot tell them apart: \
                 give children distinct names with `Props::with_name`"
            )));
        }
        cells.push((path, bytes));
    }
    // A restored actor not started again since keeps its saved state for the next restore.
    for (path, bytes) in sys.restored.unclaimed() {
        if !seen.contains(path) {
            cells.push((path.clone(), bytes.clone()));
        }
    }
    cells.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Snapshot::encode(&SavedTree { cells })?)
}

/// A control that reached the stage after every message before it was handled and the rows
/// they emitted were sent: a barrier is acknowledged with the saved tree, then the control goes
/// downstream.
pub(crate) fn on_control<O: Send + 'static>(
    sys: &System<O>,
    io: &AsyncIo,
    output: Option<&mut Output<O>>,
    control: Control,
) -> Result<(), StageError> {
    if let Control::Barrier { id } = control {
        let snap = save_tree(sys).map_err(|e| e.with_stage(&io.info.path))?;
        if let Some(ck) = &io.checkpoint {
            ck.ack(id, Some(snap));
        }
    }
    if let Some(out) = output {
        out.control(control);
    }
    Ok(())
}

/// A source actor cannot be checkpointed: its messages come from refs, which do not replay.
pub(crate) fn refuse_source<A: Actor>(props: &Props<A>, stage: &str) -> Result<(), StageError> {
    if props.codec.is_some() {
        return Err(StageError::user(format!(
            "actor '{}': a `Source::actor` is not checkpointed (what is told to its ref is not \
             replayable): feed a checkpointed actor through `Flow::actor` from a replayable source",
            props.name()
        ))
        .with_stage(stage));
    }
    Ok(())
}
