//! The run's default sizes: batch, channel capacity in rows and bytes, cancel grace.

use std::time::Duration;

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 1024;
/// Default channel capacity in rows at the default batch size (a channel holds
/// [`crate::plan::BUFFER_BATCHES`] batches).
pub const DEFAULT_BUFFER_ROWS: usize = crate::plan::BUFFER_BATCHES * DEFAULT_BATCH_SIZE;
/// Default channel capacity in bytes (64 MiB): a channel holds at most this many bytes of
/// batches (inline size plus reported heap bytes, [`weir_graph::batch_bytes`]) besides its row
/// capacity, or one batch larger than it.
pub const DEFAULT_BUFFER_BYTES: usize = 64 << 20;
/// Default time a cancelled run gives its stages to stop before `wait()` reports the stuck ones.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(3);
