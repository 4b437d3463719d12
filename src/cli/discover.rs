//! Finding the processes that serve the job API: their job files (`weir_ops::jobfile`).

use super::client::Target;

/// Every live serving process of this user, from the job files (none when the folder cannot be
/// read).
pub fn targets() -> Vec<Target> {
    match weir_ops::jobfile::list() {
        Ok(files) => files
            .into_iter()
            .map(|f| Target {
                url: f.url,
                token: Some(f.token),
                pid: Some(f.pid),
            })
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "no job files");
            Vec::new()
        }
    }
}
