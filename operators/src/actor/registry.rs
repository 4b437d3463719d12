//! [`ActorRegistry`]: a run service mapping paths (`/svc/payments/one`) to actor refs, so one
//! part of a run finds an actor another part started.
//!
//! Add one to the run with `Materializer::with_service(Arc::new(ActorRegistry::new()))`; actors
//! register with [`Props::register_as`] (when their stage materializes, or when their parent
//! spawns them) or [`Ctx::register`]. The registry holds no actor alive: an entry whose actor
//! stopped is gone (lookups miss it, its path can be registered again).

use super::ctx::Ctx;
use super::mailbox::{ActorRef, Mailbox};
use super::props::{Actor, Props};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use weir_graph::StageError;

/// Why a registration or a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Another live actor is registered under the path.
    #[error("registry path '{path}' is taken by actor '{actor}'")]
    Taken {
        /// The path.
        path: String,
        /// The actor registered under it.
        actor: String,
    },
    /// The actor under the path takes another message type than the lookup asked for.
    #[error(
        "registry path '{path}' holds actor '{actor}' taking {actual} messages, not {expected}"
    )]
    WrongType {
        /// The path.
        path: String,
        /// The actor registered under it.
        actor: String,
        /// The message type the lookup asked for.
        expected: &'static str,
        /// The message type the actor takes.
        actual: &'static str,
    },
    /// The path does not start with `/` or has an empty segment.
    #[error("'{path}' is not a registry path: it starts with '/' and has non-empty segments")]
    BadPath {
        /// The path.
        path: String,
    },
    /// An actor registers but the run has no registry.
    #[error(
        "actor '{actor}' registers as '{path}', but the run has no ActorRegistry: add one with \
         `Materializer::with_service(Arc::new(ActorRegistry::new()))`"
    )]
    NoRegistry {
        /// The actor.
        actor: String,
        /// The path it registers under.
        path: String,
    },
}

impl From<RegistryError> for StageError {
    fn from(e: RegistryError) -> Self {
        StageError::user(e.to_string())
    }
}

/// An entry: a weak ref, so the registry never keeps an actor's mailbox open.
trait Entry: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn alive(&self) -> bool;
    fn actor(&self) -> &str;
    fn msg_type(&self) -> &'static str;
}

struct WeakRef<M> {
    mailbox: Weak<Mailbox<M>>,
    actor: Arc<str>,
}

impl<M: Send + 'static> Entry for WeakRef<M> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn alive(&self) -> bool {
        self.mailbox.upgrade().is_some_and(|m| !m.is_closed())
    }
    fn actor(&self) -> &str {
        &self.actor
    }
    fn msg_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}

/// Actor refs of a run by path (a run service: `StageInfo::services`).
#[derive(Default)]
pub struct ActorRegistry {
    entries: Mutex<Entries>,
}

/// The entries, and the size at which stopped actors' entries are swept out.
#[derive(Default)]
struct Entries {
    map: HashMap<String, Box<dyn Entry>>,
    sweep_at: usize,
}

/// Entries a registry holds before its first sweep.
const FIRST_SWEEP: usize = 64;

impl std::fmt::Debug for ActorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ActorRegistry").field(&self.paths()).finish()
    }
}

impl ActorRegistry {
    /// `Ok` when `path` is a registry path (`/a/b`: a leading `/`, no empty segment).
    pub fn check_path(path: &str) -> Result<(), RegistryError> {
        check_path(path)
    }
}

fn check_path(path: &str) -> Result<(), RegistryError> {
    let ok = path
        .strip_prefix('/')
        .is_some_and(|rest| rest.split('/').all(|s| !s.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadPath {
            path: path.to_owned(),
        })
    }
}

impl ActorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `r` under `path`; registering the same actor again is a no-op, another live
    /// actor under `path` is an error.
    pub fn register<M: Send + 'static>(
        &self,
        path: &str,
        r: &ActorRef<M>,
    ) -> Result<(), RegistryError> {
        check_path(path)?;
        let mut guard = self.lock();
        if guard.map.len() >= guard.sweep_at.max(FIRST_SWEEP) {
            // Amortised: stopped actors' entries do not pile up.
            guard.map.retain(|_, e| e.alive());
            guard.sweep_at = guard.map.len() * 2;
        }
        let entries = &mut guard.map;
        if let Some(e) = entries.get(path)
            && e.alive()
        {
            let same = e
                .as_any()
                .downcast_ref::<WeakRef<M>>()
                .is_some_and(|w| std::ptr::eq(w.mailbox.as_ptr(), Arc::as_ptr(&r.0)));
            if same {
                return Ok(());
            }
            return Err(RegistryError::Taken {
                path: path.to_owned(),
                actor: e.actor().to_owned(),
            });
        }
        entries.insert(
            path.to_owned(),
            Box::new(WeakRef {
                mailbox: Arc::downgrade(&r.0),
                actor: Arc::clone(r.0.path()),
            }),
        );
        Ok(())
    }

    /// Removes the entry under `path`; `true` when a live actor was registered there.
    pub fn unregister(&self, path: &str) -> bool {
        self.lock().map.remove(path).is_some_and(|e| e.alive())
    }

    /// The ref registered under `path` (`None` when nothing live is), an error naming the path
    /// when its actor takes another message type than `M`.
    pub fn lookup<M: Send + 'static>(
        &self,
        path: &str,
    ) -> Result<Option<ActorRef<M>>, RegistryError> {
        let mut guard = self.lock();
        let entries = &mut guard.map;
        let Some(e) = entries.get(path) else {
            return Ok(None);
        };
        if !e.alive() {
            entries.remove(path);
            return Ok(None);
        }
        let Some(w) = e.as_any().downcast_ref::<WeakRef<M>>() else {
            return Err(RegistryError::WrongType {
                path: path.to_owned(),
                actor: e.actor().to_owned(),
                expected: std::any::type_name::<M>(),
                actual: e.msg_type(),
            });
        };
        Ok(w.mailbox.upgrade().map(ActorRef::new))
    }

    /// The paths of the live entries, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut guard = self.lock();
        let entries = &mut guard.map;
        entries.retain(|_, e| e.alive());
        let mut v: Vec<String> = entries.keys().cloned().collect();
        v.sort();
        v
    }
}

impl<A: Actor> Props<A> {
    /// These props registering the actor's ref in the run's [`ActorRegistry`] under `path`
    /// (`/svc/payments/one`) when its stage materializes (a root) or its parent spawns it; a
    /// taken path or a run without a registry is an error naming the actor (one actor per
    /// path: a root stage at a parallelism above 1 cannot take one path).
    pub fn register_as(mut self, path: &str) -> Self {
        self.register_as = Some(Arc::from(path));
        self
    }
}

/// Registers a new actor's ref when its props ask for it.
pub(crate) fn register_new<A: Actor>(
    registry: Option<&ActorRegistry>,
    props: &Props<A>,
    r: &ActorRef<A::Msg>,
) -> Result<(), StageError> {
    let Some(path) = props.register_as.as_deref() else {
        return Ok(());
    };
    register_in(registry, path, r)
}

fn register_in<M: Send + 'static>(
    registry: Option<&ActorRegistry>,
    path: &str,
    r: &ActorRef<M>,
) -> Result<(), StageError> {
    let registry = registry.ok_or_else(|| RegistryError::NoRegistry {
        actor: r.path().to_owned(),
        path: path.to_owned(),
    })?;
    registry
        .register(path, r)
        .map_err(|e| StageError::user(format!("actor '{}': {e}", r.path())))
}

impl<A: Actor> Ctx<'_, A> {
    /// Registers this actor's ref in the run's [`ActorRegistry`] under `path`.
    pub fn register(&mut self, path: &str) -> Result<(), StageError> {
        let me = self.self_ref();
        register_in(self.sys.registry.as_deref(), path, &me)
    }
    /// The run's [`ActorRegistry`], when it has one.
    pub fn registry(&self) -> Option<&Arc<ActorRegistry>> {
        self.sys.registry.as_ref()
    }
}
