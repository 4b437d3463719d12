//! The client side of the job HTTP API (docs/ops-api.md): finding the serving processes and
//! calling them, for `weir jobs`, `status`, `cancel` and `savepoint`.

use super::exit::Exit;
use serde_json::Value;
use std::time::Duration;

/// A process serving the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The token of mutating calls, when known.
    pub token: Option<String>,
    /// Its process id, when known.
    pub pid: Option<u32>,
}

/// A call that did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No process could be reached at the URL.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No serving process knows the job.
    #[error("no job {0:?} found (weir jobs lists the running ones)")]
    NotFound(String),
    /// Several processes run a job of that name or number.
    #[error("job {job:?} is ambiguous: it names runs at {urls}; pick one with --url")]
    Ambiguous {
        /// The job asked for.
        job: String,
        /// The URLs that know it.
        urls: String,
    },
    /// The token was missing or wrong (HTTP 401).
    #[error("refused by {url}: {message}")]
    Refused {
        /// The URL.
        url: String,
        /// The server's message.
        message: String,
    },
    /// Any other error answer.
    #[error("{url} answered {status}: {message}")]
    Api {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer was not the documented JSON.
    #[error("{url} answered something that is not the API's JSON: {reason}")]
    BadResponse {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl ClientError {
    /// The exit code of this error.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Unreachable { .. } | Self::NotFound(_) => Exit::NotFound,
            Self::Refused { .. } => Exit::Refused,
            Self::Ambiguous { .. } => Exit::Usage,
            Self::Api { .. } | Self::BadResponse { .. } => Exit::Failed,
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Sends one request; the status and the JSON body.
fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), ClientError> {
    let a = agent();
    let unreachable = |e: ureq::Error| ClientError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let auth = token.map(|t| format!("Bearer {t}"));
    let resp = if method == "POST" {
        let mut r = a.post(url);
        if let Some(h) = &auth {
            r = r.header("Authorization", h);
        }
        match body {
            Some(b) => r
                .content_type("application/json")
                .send(b.to_string())
                .map_err(unreachable)?,
            None => r.send_empty().map_err(unreachable)?,
        }
    } else {
        let mut r = a.get(url);
        if let Some(h) = &auth {
            r = r.header("Authorization", h);
        }
        r.call().map_err(unreachable)?
    };
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| ClientError::BadResponse {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| ClientError::BadResponse {
        url: url.to_owned(),
        reason: format!("{e} in {text:?}"),
    })?;
    Ok((status, v))
}

fn message(v: &Value) -> String {
    v.get("error")
        .and_then(Value::as_str)
        .map_or_else(|| v.to_string(), str::to_owned)
}

/// Turns an answer that is not 2xx into its error.
fn ok(url: &str, job: &str, (status, v): (u16, Value)) -> Result<Value, ClientError> {
    match status {
        200..=299 => Ok(v),
        401 | 403 => Err(ClientError::Refused {
            url: url.to_owned(),
            message: message(&v),
        }),
        404 => Err(ClientError::NotFound(job.to_owned())),
        s => Err(ClientError::Api {
            url: url.to_owned(),
            status: s,
            message: message(&v),
        }),
    }
}

fn encode(job: &str) -> String {
    job.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The runs of every target (`GET /api/v1/jobs`), each run object with `url` added; targets
/// that cannot be reached are skipped when `skip_unreachable`.
pub fn jobs(targets: &[Target], skip_unreachable: bool) -> Result<Vec<Value>, ClientError> {
    let mut all = Vec::new();
    for t in targets {
        let url = format!("{}/api/v1/jobs", t.url);
        let got = call("GET", &url, None, None).and_then(|r| ok(&url, "", r));
        let list = match got {
            Ok(v) => v,
            Err(ClientError::Unreachable { .. }) if skip_unreachable => continue,
            Err(e) => return Err(e),
        };
        let Value::Array(runs) = list else {
            return Err(ClientError::BadResponse {
                url,
                reason: "expected a list of jobs".into(),
            });
        };
        for mut r in runs {
            if let Value::Object(o) = &mut r {
                o.insert("url".into(), Value::String(t.url.clone()));
            }
            all.push(r);
        }
    }
    Ok(all)
}

/// The target running `job` (a run's number or name) and its detail (`GET /api/v1/jobs/{id}`).
pub fn find(targets: &[Target], job: &str) -> Result<(Target, Value), ClientError> {
    let mut found = Vec::new();
    let mut unreachable = None;
    for t in targets {
        let url = format!("{}/api/v1/jobs/{}", t.url, encode(job));
        match call("GET", &url, None, None).and_then(|r| ok(&url, job, r)) {
            Ok(v) => found.push((t.clone(), v)),
            Err(ClientError::NotFound(_)) => {}
            Err(e @ ClientError::Unreachable { .. }) if targets.len() > 1 => unreachable = Some(e),
            Err(e) => return Err(e),
        }
    }
    match found.len() {
        0 => Err(unreachable.unwrap_or_else(|| ClientError::NotFound(job.to_owned()))),
        1 => Ok(found.remove(0)),
        _ => Err(ClientError::Ambiguous {
            job: job.to_owned(),
            urls: found
                .iter()
                .map(|(t, _)| t.url.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The id the API knows the found run by.
fn id_of(job: &str, detail: &Value) -> String {
    match detail.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => job.to_owned(),
    }
}

/// Asks the run to cancel (`POST .../cancel`); the answer.
pub fn cancel(t: &Target, job: &str, detail: &Value) -> Result<Value, ClientError> {
    let url = format!(
        "{}/api/v1/jobs/{}/cancel",
        t.url,
        encode(&id_of(job, detail))
    );
    call("POST", &url, t.token.as_deref(), None).and_then(|r| ok(&url, job, r))
}

/// Takes a savepoint of the run into `dir` (`POST .../savepoint`); the answer once written.
pub fn savepoint(t: &Target, job: &str, detail: &Value, dir: &str) -> Result<Value, ClientError> {
    let url = format!(
        "{}/api/v1/jobs/{}/savepoint",
        t.url,
        encode(&id_of(job, detail))
    );
    let body = serde_json::json!({ "dir": dir });
    call("POST", &url, t.token.as_deref(), Some(&body)).and_then(|r| ok(&url, job, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_percent_encoded_in_paths() {
        assert_eq!(encode("word-count_1.x~"), "word-count_1.x~");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn error_answers_map_to_their_exit_codes() {
        let refused = ok("u", "j", (401, serde_json::json!({"error": "bad token"})));
        assert!(
            matches!(&refused, Err(ClientError::Refused { message, .. }) if message == "bad token")
        );
        assert_eq!(refused.unwrap_err().exit(), Exit::Refused);
        let missing = ok("u", "j", (404, serde_json::json!({"error": "no job"})));
        assert_eq!(missing.unwrap_err().exit(), Exit::NotFound);
        let conflict = ok(
            "u",
            "j",
            (409, serde_json::json!({"error": "no checkpoints"})),
        );
        assert!(
            matches!(&conflict, Err(ClientError::Api { status: 409, message, .. }) if message == "no checkpoints")
        );
        assert_eq!(
            ok("u", "j", (202, serde_json::json!({"id": 1}))).unwrap(),
            serde_json::json!({"id": 1})
        );
    }

    #[test]
    fn an_unreachable_process_is_exit_3() {
        // Port 9 on loopback (discard) is closed on test machines.
        let e = jobs(
            &[Target {
                url: "http://127.0.0.1:9".into(),
                token: None,
                pid: None,
            }],
            false,
        )
        .unwrap_err();
        assert!(matches!(e, ClientError::Unreachable { .. }), "{e}");
        assert_eq!(e.exit(), Exit::NotFound);
    }
}
