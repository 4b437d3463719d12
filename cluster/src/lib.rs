//! # weir-cluster: one graph over many nodes
//!
//! A protocol core without I/O (framing, credit grants, membership decisions, epochs,
//! replicated state), with adapters for an in-memory transport and QUIC with mutual TLS. Design
//! in `docs/adr/0003-operations-and-cluster.md`.

pub mod crdt;
pub mod epoch;
pub mod membership;
pub mod placement;
pub mod sim;
pub mod split_brain;
