//! Python stages: synchronous logics (and a few asynchronous ones) over [`PyObj`](crate::PyObj)
//! that the engine runs in the islands of a Python run, polled on the run's dispatcher.
//!
//! Layout: [`core`] (the `PyOp` trait and [`py_flow`], which makes one a fusable flow logic),
//! [`convert`] (conversions between Python objects and what Rust operators carry),
//! [`element`] (the C-speed element-wise loops), [`keyed`] (`key_by` keys and per-key
//! aggregates over `operators::keyed`), [`iter`] / [`source`] (`from_iter` over containers and
//! over iterators, the latter pulled on a thread of their own), [`sinks`] (over the Rust sinks)
//! and [`external`] (asyncio / interpreter pools).
//!
//! # Adding a new Python-calling stage
//!
//! * First look for the Rust operator in `weir_operators` (or add its fallible `try_*` form
//!   there, with tests and the five-rule docs) and use it over [`PyObj`](crate::PyObj) with
//!   closures calling Python through [`crate::pyfn::PyFn`] / [`crate::pyfn::attempt`]: an
//!   exception becomes the stage error naming the element, and supervision, dead letters and
//!   Restart are the Rust operator's. Convert `Vec`s and pairs the Rust operator emits with a
//!   [`convert`] stage (`ops::list_flow`, `ops::tuple_flow`).
//! * Only a loop that must run at C speed over a whole batch (`map`, `filter`) is a [`PyOp`]:
//!   `on_batch` runs with the GIL held; report per-element failures with [`element_failed`];
//!   keep state in the op (`reset` for Restart). Wrap it with [`py_flow`] and an [`OpFactory`].
//!   Never call Python from tokio code: `crate::gil::with` counts that as a violation.

pub(crate) mod cloop;
pub mod convert;
pub mod core;
pub mod element;
pub mod external;
pub mod iter;
pub mod keyed;
pub mod sinks;
pub mod source;

pub use self::core::{Batch, OpFactory, PyOp, StageEnv, element_failed, py_flow, unit_mat};
pub use convert::{Convert, convert};
pub use element::{ListOp, MapBatchesOp};
pub use external::{BatchDone, external_flow};
pub use iter::{container_source, is_container};
pub use keyed::PyKey;
pub use source::{factory_source, iter_source};
