//! The control plane over the network: a coordinator ([`Coordinator`]) that long-running node
//! agents ([`agent::run_agent`]) join and clients ([`Client`]) submit jobs to, over the cluster
//! transport (QUIC with mutual TLS between machines, the memory transport in tests). Each job
//! runs restart-all, an epoch per attempt, as [`crate::job::LocalCluster`] runs it on one
//! machine. Design in `docs/architecture.md`, "A coordinator over the network".

pub mod agent;
pub mod client;
pub mod coordinator;
pub mod proto;

pub use agent::{AgentConfig, AgentError, run_agent};
pub use client::{Client, ClientError};
pub use coordinator::{Coordinator, CoordinatorConfig};
pub use proto::{CONTROL_EDGE, CoordinatorStatus, JobEnd, JobInfo, JobSpec, NodeInfo};
