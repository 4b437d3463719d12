//! A client of the coordinator: submits a job and follows it, asks for the status, cancels,
//! takes a savepoint.

use super::proto::{self, CoordinatorStatus, JobEnd, JobSpec, ProtoError, Reply, Request};
use crate::control::ClusterSavepoint;
use crate::transport::Transport;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a request to the coordinator failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator could not be reached or the stream broke.
    #[error("coordinator {coordinator}: {source}")]
    Unreachable {
        /// Its name.
        coordinator: String,
        /// What failed.
        source: ProtoError,
    },
    /// The coordinator refused the request.
    #[error("the coordinator refused: {0}")]
    Refused(String),
    /// The coordinator answered something else than the request's reply.
    #[error("the coordinator answered {0}")]
    Unexpected(String),
}

/// A client of one coordinator.
pub struct Client {
    transport: Arc<dyn Transport>,
    coordinator: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("coordinator", &self.coordinator)
            .finish()
    }
}

impl Client {
    /// A client reaching the coordinator named `coordinator` over `transport`.
    pub fn new(transport: Arc<dyn Transport>, coordinator: impl Into<String>) -> Self {
        Self {
            transport,
            coordinator: coordinator.into(),
        }
    }

    fn err(&self, source: ProtoError) -> ClientError {
        ClientError::Unreachable {
            coordinator: self.coordinator.clone(),
            source,
        }
    }

    /// Sends one request and reads its one reply.
    async fn ask(&self, req: &Request) -> Result<Reply, ClientError> {
        let mut ch = proto::open(Arc::clone(&self.transport), &self.coordinator)
            .await
            .map_err(|e| self.err(e))?;
        proto::send(&mut ch.tx, req)
            .await
            .map_err(|e| self.err(e))?;
        let reply = proto::recv::<Reply>(&mut ch.rx)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| ClientError::Unexpected("nothing".into()))?;
        let _ = ch.tx.finish().await;
        match reply {
            Reply::Refused(r) => Err(ClientError::Refused(r)),
            r => Ok(r),
        }
    }

    /// The coordinator's status.
    pub async fn status(&self) -> Result<CoordinatorStatus, ClientError> {
        match self.ask(&Request::Status).await? {
            Reply::Status(s) => Ok(s),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Cancels the job (`None`: the one running) and waits until its nodes stopped; the job's
    /// name and end.
    pub async fn cancel(&self, job: Option<String>) -> Result<(String, JobEnd), ClientError> {
        match self.ask(&Request::Cancel { job }).await? {
            Reply::Cancelled { job, end } => Ok((job, end)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Copies the job's newest complete checkpoint into `target` (a folder the coordinator
    /// reaches).
    pub async fn savepoint(
        &self,
        job: Option<String>,
        target: PathBuf,
    ) -> Result<ClusterSavepoint, ClientError> {
        match self.ask(&Request::Savepoint { job, target }).await? {
            Reply::Saved(s) => Ok(s),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Submits `spec` and follows the job to its end, calling `progress` with each message.
    pub async fn run(
        &self,
        spec: JobSpec,
        mut progress: impl FnMut(&str),
    ) -> Result<JobEnd, ClientError> {
        let mut ch = proto::open(Arc::clone(&self.transport), &self.coordinator)
            .await
            .map_err(|e| self.err(e))?;
        proto::send(&mut ch.tx, &Request::Submit(spec))
            .await
            .map_err(|e| self.err(e))?;
        loop {
            let reply = proto::recv::<Reply>(&mut ch.rx)
                .await
                .map_err(|e| self.err(e))?;
            match reply {
                Some(Reply::Accepted { job }) => progress(&format!("job {job} accepted")),
                Some(Reply::Progress(p)) => progress(&p),
                Some(Reply::Ended(end)) => {
                    let _ = ch.tx.finish().await;
                    return Ok(end);
                }
                Some(Reply::Refused(r)) => return Err(ClientError::Refused(r)),
                Some(other) => return Err(ClientError::Unexpected(format!("{other:?}"))),
                None => {
                    return Err(ClientError::Unexpected(
                        "the end of the stream before the job's end".into(),
                    ));
                }
            }
        }
    }

    /// Submits `spec` and returns once it was accepted (the job runs on).
    pub async fn submit(&self, spec: JobSpec) -> Result<String, ClientError> {
        match self.ask(&Request::Submit(spec)).await? {
            Reply::Accepted { job } => Ok(job),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}
