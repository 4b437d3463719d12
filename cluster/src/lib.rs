//! # weir-cluster: one graph over many nodes
//!
//! A protocol core without I/O (framing, credit grants, membership decisions, epochs,
//! replicated state), with adapters for an in-memory transport and QUIC with mutual TLS. Design
//! in `docs/adr/0003-operations-and-cluster.md`.
//!
//! The data plane: [`frame`] (the wire format and its decoder), [`credit`] (per-edge flow
//! control), [`transport`] (in-memory, QUIC with mutual TLS, and a plain TCP baseline),
//! [`tls`] (the cluster CA, node certificates, rustls configurations) and [`edge`] (remote
//! sink and source stages).

pub mod commit;
pub mod control;
pub mod coord;
/// The object store interface the commit log (and, later, checkpoints) use.
pub use object_store;
pub mod crdt;
pub mod credit;
pub mod edge;
pub mod epoch;
pub mod exchange;
pub mod frame;
pub mod job;
pub mod lease;
pub mod load;
pub mod membership;
mod metrics;
pub mod mirror;
pub mod placement;
pub mod remote;
pub mod sim;
pub mod singleton;
pub mod split_brain;
pub mod tls;
pub mod topic;
pub mod transport;
