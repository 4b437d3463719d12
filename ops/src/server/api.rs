//! The handlers of `/api/v1` and `/metrics`; errors are `{"error": "..."}` with 400, 401, 404,
//! 409 or 500.

use super::{AppState, METRICS_CONTENT_TYPE, auth, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use weir_engine::RunView;

/// An error answer: a status and a message.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn find(st: &AppState, id: &str) -> Result<RunView, ApiError> {
    st.registry
        .find(id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id:?}")))
}

fn check_token(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if auth::authorized(headers, &st.token) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this call needs `Authorization: Bearer <token>` with the job's token".into(),
        ))
    }
}

/// Any path the server does not serve.
pub(crate) async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such endpoint".into())
}

/// A known path called with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed (see docs/ops-api.md)".into(),
    )
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(st): State<AppState>) -> Response {
    let body = crate::prom::render(&st.registry.runs());
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response()
}

/// `GET /api/v1/jobs`.
pub(crate) async fn jobs(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        st.registry
            .runs()
            .iter()
            .map(|r| views::summary(r, st.pid))
            .collect(),
    ))
}

/// `GET /api/v1/cluster`: the coordinator's nodes and jobs; 404 where no coordinator runs.
pub(crate) async fn cluster(State(st): State<AppState>) -> ApiResult {
    match &st.cluster {
        Some(c) => Ok(Json(c.view().await).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "this process coordinates no cluster".into(),
        )),
    }
}

/// The query of `GET /api/v1/jobs/{id}`.
#[derive(serde::Deserialize)]
pub(crate) struct DetailQuery {
    /// Whether each stage carries its sampled history.
    #[serde(default)]
    history: bool,
}

/// `GET /api/v1/jobs/{id}[?history=true]`.
pub(crate) async fn job(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<DetailQuery>, QueryRejection>,
) -> ApiResult {
    let q = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let run = find(&st, &id)?;
    let history = q.history;
    Ok(Json(views::detail(&st.registry, &run, st.pid, history)).into_response())
}

/// `GET /api/v1/jobs/{id}/plan`.
pub(crate) async fn plan(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let run = find(&st, &id)?;
    let Some(p) = run.plan() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("job {id:?} did not keep its plan"),
        ));
    };
    Ok(Json(views::plan(&run, p)).into_response())
}

/// `GET /api/v1/jobs/{id}/checkpoints`.
pub(crate) async fn checkpoints(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let run = find(&st, &id)?;
    Ok(Json(views::checkpoints(&run)).into_response())
}

/// `GET /api/v1/jobs/{id}/errors`.
pub(crate) async fn errors(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let run = find(&st, &id)?;
    Ok(Json(views::errors(&run)).into_response())
}

/// `POST /api/v1/jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    check_token(&st, &headers)?;
    let run = find(&st, &id)?;
    if run.is_finished() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("job {id:?} has already ended ({})", views::state(&run).0),
        ));
    }
    tracing::info!(
        job = run.id(),
        name = run.name(),
        "cancelled over the ops API"
    );
    run.cancel();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": run.id(), "state": "cancelling"})),
    )
        .into_response())
}

/// The body of `POST /api/v1/jobs/{id}/savepoint`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SavepointBody {
    /// Absolute path of the directory to write.
    dir: std::path::PathBuf,
}

/// `POST /api/v1/jobs/{id}/savepoint` with `{"dir": "/absolute/path"}`.
pub(crate) async fn savepoint(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    check_token(&st, &headers)?;
    let run = find(&st, &id)?;
    let req: SavepointBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"dir\": \"/absolute/path\"}}: {e}"),
        )
    })?;
    if !req.dir.is_absolute() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("the savepoint dir {:?} must be an absolute path", req.dir),
        ));
    }
    if run.checkpoints().is_none() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("job {id:?} runs without checkpoints: it cannot take a savepoint"),
        ));
    }
    if run.is_finished() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("job {id:?} has already ended ({})", views::state(&run).0),
        ));
    }
    let r2 = run.clone();
    let dir = req.dir.clone();
    // The savepoint's barriers travel on the run's own runtime.
    let written = run
        .runtime()
        .spawn(async move { r2.savepoint(dir).await })
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the savepoint task ended: {e}"),
            )
        })?
        .map_err(|e| ApiError(StatusCode::CONFLICT, format!("savepoint failed: {e}")))?;
    tracing::info!(job = run.id(), path = %written.display(), "savepoint over the ops API");
    Ok(Json(json!({"id": run.id(), "path": written.display().to_string()})).into_response())
}
