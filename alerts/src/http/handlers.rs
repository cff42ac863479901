//! The route handlers: authenticate, check the role, parse, ask the store, answer JSON.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Role};
use super::error::ApiError;
use super::{params, AppState};
use crate::deliver::set::{PollRequest, PollResponse};
use crate::incident::Incident;
use crate::model::{Alert, AlertNote, AlertStatus, Decision};

type ApiResult = Result<Response, ApiError>;

/// Decisions listed with one alert.
const DECISIONS_PER_ALERT: usize = 1000;

fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let body = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize an answer");
        ApiError::Internal
    })?;
    Ok((status, [(CONTENT_TYPE, "application/json")], body).into_response())
}

fn ok<T: Serialize>(value: &T) -> ApiResult {
    json(StatusCode::OK, value)
}

/// A JSON body, refused with 400 (naming the problem) when it does not parse.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

/// An alert with what analysts look at beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetail {
    pub alert: Alert,
    pub notes: Vec<AlertNote>,
    pub decisions: Vec<Decision>,
}

/// `PATCH /v1/alerts/{id}`: a new status, a note, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AlertStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `PATCH /v1/incidents/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentPatch {
    pub status: AlertStatus,
}

/// Notes longer than this are refused.
const MAX_NOTE_LEN: usize = 10_000;

pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    caller.require(Role::Analyst)?;
    let q = params::alert_query(raw.as_deref(), state.cfg.max_page)?;
    let alerts = state.store.alerts(&q).await?;
    ok(&serde_json::json!({ "alerts": alerts }))
}

pub(crate) async fn alert_counts(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    caller.require(Role::Analyst)?;
    let q = params::count_query(raw.as_deref())?;
    let buckets = state.store.alert_counts(&q).await?;
    ok(&serde_json::json!({
        "bucket_secs": q.bucket_secs,
        "by_severity": q.by_severity,
        "buckets": buckets,
    }))
}

async fn alert_detail(state: &AppState, id: &str) -> Result<AlertDetail, ApiError> {
    let alert = state
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    let notes = state.store.notes(id).await?;
    let decisions = state.store.decisions(Some(id), DECISIONS_PER_ALERT).await?;
    Ok(AlertDetail {
        alert,
        notes,
        decisions,
    })
}

pub(crate) async fn get_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    caller.require(Role::Analyst)?;
    ok(&alert_detail(&state, &id).await?)
}

pub(crate) async fn patch_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    caller.require(Role::Analyst)?;
    let patch: AlertPatch = body(&bytes)?;
    if patch.status.is_none() && patch.note.is_none() {
        return Err(ApiError::BadRequest(
            "body: give a status, a note, or both".into(),
        ));
    }
    if let Some(note) = &patch.note {
        if note.trim().is_empty() || note.len() > MAX_NOTE_LEN {
            return Err(ApiError::BadRequest(format!(
                "body: a note must have 1 to {MAX_NOTE_LEN} bytes"
            )));
        }
    }
    let now = Utc::now();
    if let Some(status) = patch.status {
        if !state.store.set_alert_status(&id, status).await? {
            return Err(ApiError::NotFound(format!("no alert {id}")));
        }
        tracing::info!(alert = %id, status = status.as_str(), by = %caller.name, "alert status changed");
        if status == AlertStatus::FalsePositive {
            withdraw_decisions(&state, &id, now).await?;
        }
    }
    if let Some(text) = patch.note {
        let note = AlertNote {
            alert_id: id.clone(),
            at: now,
            author: caller.name.clone(),
            text,
        };
        state.store.add_note(&note).await?;
        tracing::info!(alert = %id, by = %caller.name, "note added");
    }
    ok(&alert_detail(&state, &id).await?)
}

/// A false positive's decisions leave the gateways' feed.
async fn withdraw_decisions(
    state: &AppState,
    alert_id: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(feed) = state.feed.clone() else {
        return Ok(());
    };
    let id = alert_id.to_owned();
    let withdrawn = tokio::task::spawn_blocking(move || feed.withdraw_alert(&id, now))
        .await
        .map_err(|e| ApiError::from(crate::Error::Join(e)))??;
    if withdrawn > 0 {
        tracing::info!(alert = %alert_id, withdrawn, "decisions withdrawn from the feed");
    }
    Ok(())
}

pub(crate) async fn list_incidents(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    caller.require(Role::Analyst)?;
    let q = params::incident_query(raw.as_deref(), state.cfg.max_page)?;
    let incidents = state.store.incidents(&q).await?;
    ok(&serde_json::json!({ "incidents": incidents }))
}

async fn find_incident(state: &AppState, id: &str) -> Result<Incident, ApiError> {
    state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))
}

pub(crate) async fn get_incident(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    caller.require(Role::Analyst)?;
    ok(&serde_json::json!({ "incident": find_incident(&state, &id).await? }))
}

pub(crate) async fn patch_incident(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    caller.require(Role::Analyst)?;
    let patch: IncidentPatch = body(&bytes)?;
    if !state.store.set_incident_status(&id, patch.status).await? {
        return Err(ApiError::NotFound(format!("no incident {id}")));
    }
    tracing::info!(incident = %id, status = patch.status.as_str(), by = %caller.name, "incident status changed");
    ok(&serde_json::json!({ "incident": find_incident(&state, &id).await? }))
}

pub(crate) async fn decision_stream(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    caller.require(Role::Gateway)?;
    let Some(feed) = state.feed.clone() else {
        return Err(ApiError::NotFound("no decision feed is configured".into()));
    };
    let req = params::feed_request(raw.as_deref(), state.cfg.max_page)?;
    let now = Utc::now();
    let page = tokio::task::spawn_blocking(move || feed.pull(&req, now))
        .await
        .map_err(|e| ApiError::from(crate::Error::Join(e)))??;
    tracing::debug!(caller = %caller.name, added = page.added.len(), expired = page.expired.len(), "decisions pulled");
    ok(&page)
}

/// RFC 8936: applies `ack` and `setErrs`, then answers queued SETs; with
/// `returnImmediately: false` and nothing queued, waits (up to `poll_wait_ms`) for one.
pub(crate) async fn poll_sets(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> ApiResult {
    caller.require(Role::Gateway)?;
    let Some(receiver) = caller.set_receiver.clone() else {
        return Err(ApiError::Forbidden(
            "this key has no set_receiver: it polls no SET stream".into(),
        ));
    };
    let Some(queue) = state.poll_queue.clone() else {
        return Err(ApiError::NotFound("no SET poll queue is configured".into()));
    };
    let request: PollRequest = if bytes.is_empty() {
        PollRequest::default()
    } else {
        body(&bytes)?
    };
    // Subscribe before the first poll, so a SET queued in between still wakes us.
    let mut changes = queue.subscribe();
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(state.cfg.poll_wait_ms);
    let mut response = poll_once(&queue, &receiver, request.clone()).await?;
    let wants_events = request.max_events != Some(0);
    while response.sets.is_empty() && !request.return_immediately && wants_events {
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the queue is gone: answer what there is (nothing).
            Ok(Err(_)) | Err(_) => break,
        }
        let again = PollRequest {
            ack: Vec::new(),
            set_errs: Default::default(),
            ..request.clone()
        };
        response = poll_once(&queue, &receiver, again).await?;
    }
    ok(&response)
}

async fn poll_once(
    queue: &std::sync::Arc<crate::deliver::set::SetPollQueue>,
    receiver: &str,
    request: PollRequest,
) -> Result<PollResponse, ApiError> {
    let queue = std::sync::Arc::clone(queue);
    let receiver = receiver.to_owned();
    let response = tokio::task::spawn_blocking(move || queue.poll_request(&receiver, &request))
        .await
        .map_err(|e| ApiError::from(crate::Error::Join(e)))??;
    Ok(response)
}

/// The JWKS: public with `public_jwks`, else for any authenticated caller.
pub(crate) async fn jwks(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> ApiResult {
    if !state.cfg.public_jwks {
        caller?;
    }
    match &state.jwks {
        Some(jwks) => ok(jwks),
        None => Err(ApiError::NotFound("no signing keys are configured".into())),
    }
}

/// Unknown routes: 401 for strangers (they learn nothing about the routes), 404 for
/// callers with a key.
pub(crate) async fn not_found(caller: Result<Caller, ApiError>) -> ApiResult {
    caller?;
    Err(ApiError::NotFound("no such route".into()))
}
