//! Runnable weir examples. Each module is one example with a `run` function; the binaries under
//! `examples/` call it and `tests/examples.rs` runs every one, so they never rot.

pub mod actors;
pub mod cluster_ledger;
pub mod cluster_word_count;
pub mod event_time_windows;
pub mod fan_out_fan_in;
pub mod file_etl;
pub mod hello;
pub mod parquet_etl;
pub mod persistent_account;
pub mod sharded_counter;
pub mod word_count;

/// The error type examples return.
pub type ExampleError = Box<dyn std::error::Error + Send + Sync>;
