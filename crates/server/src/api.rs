//! The JSON API (`docs/api.md`) and the routes of the page. Errors are JSON
//! `{"error": message}`; internal details go to the log, not the client.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use flowhound_explain::allow::now_secs;
use flowhound_explain::Allowlist;
use flowhound_flow::labels::LabelTable;
use flowhound_source::{Input, ScanOptions};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::analysis::{AnalysisError, AnalysisParams, Progress};
use crate::{assets, AppState, Model};
use flowhound_engine::feedback::Judgement;
use flowhound_engine::{retrain, review};

type St = State<Arc<AppState>>;

/// An API error: status and a message meant for the user.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
    fn not_found(what: &str) -> Self {
        ApiError(StatusCode::NOT_FOUND, format!("no such {what}"))
    }
    /// Logs the details; the client hears only that it failed.
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("{e:#}");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error (details in the server log)".into())
    }
}

impl<E: std::error::Error> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.max_upload;
    Router::new()
        .route("/", get(page))
        .route("/assets/{name}", get(asset))
        .route("/api/health", get(health))
        // The multipart reader enforces the upload cap on the streamed body;
        // a few KiB above it leave room for the form's own framing.
        .route(
            "/api/analyses",
            get(list_analyses).post(upload).layer(DefaultBodyLimit::max(limit.saturating_add(64 << 10))),
        )
        .route("/api/analyses/{id}", get(show_analysis).delete(delete_analysis))
        .route("/api/analyses/{id}/anomalies", get(anomalies))
        .route("/api/analyses/{id}/anomalies/{flow}", get(anomaly))
        .route("/api/analyses/{id}/incidents", get(incidents))
        .route("/api/analyses/{id}/review", get(review_queue))
        .route("/api/live", get(live_info))
        .route("/api/live/events", get(live_events))
        .route("/api/feedback", get(list_feedback).post(add_feedback))
        .route("/api/feedback/export", get(export_feedback))
        .route("/api/allowlist", get(list_allow).post(add_allow))
        .route("/api/allowlist/{id}", delete(remove_allow))
        .route("/api/models", get(models))
        .route("/api/models/retrain", post(retrain_model))
        .fallback(|| async { ApiError::not_found("page") })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        // Every other body is a small JSON document; the upload route's own
        // limit (inner, so it wins) is the only large one.
        .layer(DefaultBodyLimit::max(crate::MAX_JSON_BODY))
        .with_state(state)
}

/// Compares without stopping at the first difference (no timing hint).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The credentials of an `Authorization: Bearer …` value; the scheme name
/// is case-insensitive (RFC 9110 §11.1), as are the spaces after it.
fn bearer(v: &str) -> Option<&str> {
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim_start_matches(' '))
}

/// With a token, every API call but the health check must carry it.
async fn auth(State(s): St, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if let (Some(token), true) = (&s.token, path.starts_with("/api/") && path != "/api/health") {
        let given =
            req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer).unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            return ApiError(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into()).into_response();
        }
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    res
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], assets::INDEX_HTML).into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match assets::get(&name) {
        Some((bytes, mime)) => {
            ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")], Body::from(bytes)).into_response()
        }
        None => ApiError::not_found("asset").into_response(),
    }
}

async fn health(State(s): St) -> Json<Value> {
    let m = s.current_model();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "model_version": m.version,
        "auth": s.token.is_some(),
        "max_upload": s.max_upload,
    }))
}

async fn list_analyses(State(s): St) -> ApiResult {
    Ok(Json(json!(s.store.analyses()?)))
}

async fn show_analysis(State(s): St, Path(id): Path<i64>) -> ApiResult {
    let mut v = s.store.analysis(id)?.ok_or_else(|| ApiError::not_found("analysis"))?;
    let live = s.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned();
    if let Some(p) = live {
        v.progress = (p.fraction() * 1000.0).round() / 1000.0;
    }
    Ok(Json(json!(v)))
}

#[derive(Debug, Deserialize)]
struct AnomalyQuery {
    severity: Option<String>,
    class: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    /// `rank` (most severe first, the default) or `newest`.
    order: Option<String>,
}

fn severity_rank(s: &str) -> Option<i64> {
    match s {
        "low" => Some(1),
        "medium" => Some(2),
        "high" => Some(3),
        _ => None,
    }
}

async fn anomalies(State(s): St, Path(id): Path<i64>, Query(q): Query<AnomalyQuery>) -> ApiResult {
    if !s.store.analysis_exists(id)? {
        return Err(ApiError::not_found("analysis"));
    }
    let sev = match q.severity.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => Some(severity_rank(v).ok_or_else(|| ApiError::bad("severity: expected low, medium or high"))?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::bad("limit: expected 1 to 5000"));
    }
    let offset = q.offset.unwrap_or(0).max(0);
    let class = q.class.as_deref().filter(|c| !c.is_empty());
    let newest = match q.order.as_deref().unwrap_or("rank") {
        "rank" | "" => false,
        "newest" => true,
        _ => return Err(ApiError::bad("order: expected rank or newest")),
    };
    let (total, items) = s.store.anomalies(id, sev, class, limit, offset, newest)?;
    Ok(Json(json!({"total": total, "offset": offset, "limit": limit, "items": items})))
}

#[derive(Debug, serde::Deserialize)]
struct ReviewQuery {
    n: Option<usize>,
}

/// The analysis' review queue ([`review`]): flagged flows not judged
/// yet, half from the top, half nearest the operating point (the lowest
/// scores that were still flagged), two per incident (or source, outside
/// incidents) while others are left.
async fn review_queue(State(s): St, Path(id): Path<i64>, Query(q): Query<ReviewQuery>) -> ApiResult {
    if !s.store.analysis_exists(id)? {
        return Err(ApiError::not_found("analysis"));
    }
    let n = q.n.unwrap_or(20);
    if !(1..=500).contains(&n) {
        return Err(ApiError::bad("n: expected 1 to 500"));
    }
    let (_, items) = s.store.anomalies(id, None, None, i64::MAX, 0, false)?;
    let seen: Vec<review::Candidate> = items
        .iter()
        .filter_map(|v| {
            Some(review::Candidate {
                flow: v["flow"].as_u64()?,
                score: v["score"].as_f64().unwrap_or(f64::NAN) as f32,
                anomalous: true,
                // Spread over incidents (a DDoS has a new source per flow);
                // unnamed flows over their target (the same flood's flows
                // the rules did not name).
                key: review::diversity_key(
                    match (v["incident"].as_i64(), v["threat_class"].as_str()) {
                        (Some(i), Some(c)) if c != flowhound_explain::OTHER => Some(format!("incident {i}")),
                        _ => v["dst"].as_str().or(v["src"].as_str()).map(|a| format!("target {a}")),
                    }
                    .as_deref(),
                    (v["protocol"].as_u64().and_then(|p| u8::try_from(p).ok()), None, None),
                ),
            })
        })
        .collect();
    let judged: std::collections::HashSet<u64> =
        items.iter().filter(|v| !v["feedback"].is_null()).filter_map(|v| v["flow"].as_u64()).collect();
    let level = seen.iter().map(|c| c.score).filter(|x| x.is_finite()).fold(f32::INFINITY, f32::min);
    let chosen = review::pick(&seen, level, n, &|f| judged.contains(&f));
    let out: Vec<serde_json::Value> = items
        .into_iter()
        .filter_map(|mut v| {
            let why = chosen.get(&v["flow"].as_u64()?)?;
            v["review"] = (*why).into();
            Some(v)
        })
        .collect();
    Ok(Json(json!({"items": out})))
}

async fn anomaly(State(s): St, Path((id, flow)): Path<(i64, i64)>) -> ApiResult {
    Ok(Json(s.store.anomaly(id, flow)?.ok_or_else(|| ApiError::not_found("flagged flow"))?))
}

async fn incidents(State(s): St, Path(id): Path<i64>) -> ApiResult {
    if !s.store.analysis_exists(id)? {
        return Err(ApiError::not_found("analysis"));
    }
    Ok(Json(Value::Array(s.store.incidents(id)?)))
}

/// The live analysis of `serve --watch`; `analysis_id` null when not watching.
async fn live_info(State(s): St) -> Json<Value> {
    let live = s.live.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    Json(live.as_ref().map_or_else(|| json!({"analysis_id": null}), crate::live::LiveInfo::json))
}

/// Server-sent events of the live analysis: `hello` (its id), then
/// `anomaly`, `incident` and `summary` as batches are scored, `lagged` when
/// this client fell behind (reload from the API), `end` when the watch
/// stopped.
async fn live_events(State(s): St) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (id, rx) = {
        let live = s.live.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let l = live.as_ref().ok_or_else(|| ApiError::not_found("live analysis (start serve with --watch)"))?;
        (l.analysis_id, l.tx.subscribe())
    };
    let hello = Event::default().event("hello").data(json!({"analysis_id": id}).to_string());
    let rest = futures_util::stream::unfold((rx, false), |(mut rx, done)| async move {
        use tokio::sync::broadcast::error::RecvError;
        if done {
            return None;
        }
        let (ev, done) = match rx.recv().await {
            Ok(e) => (Event::default().event(e.kind).data(&*e.data), e.kind == "end"),
            Err(RecvError::Lagged(n)) => {
                (Event::default().event("lagged").data(json!({"missed": n}).to_string()), false)
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(ev), (rx, done)))
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(hello) }), rest);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// `DELETE /api/analyses/{id}`: the analysis, its flagged flows and
/// incidents (those feedback names stay, for retraining). 409 while it is
/// queued, running or live.
async fn delete_analysis(State(s): St, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    match s.store.status(id)?.as_deref() {
        None => Err(ApiError::not_found("analysis")),
        Some(st @ ("queued" | "running" | "live")) => {
            Err(ApiError(StatusCode::CONFLICT, format!("analysis {id} is {st}: it can be deleted once it ends")))
        }
        Some(_) => {
            s.store.delete_analysis(id)?;
            let _ = std::fs::remove_dir_all(s.uploads().join(id.to_string()));
            tracing::info!(analysis = id, "analysis deleted");
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Keeps a file name's safe characters: it becomes part of a path.
fn safe_name(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect::<String>()
        .trim_start_matches('.')
        .chars()
        .take(100)
        .collect();
    if n.is_empty() {
        "upload".into()
    } else {
        n
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the upload is larger than this server accepts ({})", human_size(max as u64)),
    )
}

/// `512 MiB`, `4 KiB`, `700 B`.
fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// A JSON body that could not be taken: too large (413, with the limit)
/// or not the JSON expected (400).
fn json_rejection(e: axum::extract::rejection::JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {}", human_size(crate::MAX_JSON_BODY as u64)),
        )
    } else {
        ApiError::bad(e.body_text())
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError, max: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::bad(format!("unreadable upload: {}", e.body_text()))
    }
}

/// `POST /api/analyses`: multipart with `file` (any format `detect` reads,
/// gzip too) and optionally `labels` (ground truth as `generate` writes it).
async fn upload(State(s): St, mut mp: Multipart) -> Result<(StatusCode, Json<Value>), ApiError> {
    let dir = s.uploads();
    tokio::fs::create_dir_all(&dir).await?;
    let mut name: Option<String> = None;
    let mut labels: Option<Vec<u8>> = None;
    let mut size = 0usize;
    // Removed on drop: whatever goes wrong before the analysis owns it.
    let tmp = tempfile::Builder::new().prefix(".incoming-").tempdir_in(&dir)?;
    while let Some(mut field) = mp.next_field().await.map_err(|e| multipart_error(e, s.max_upload))? {
        match field.name() {
            Some("file") => {
                let n = safe_name(field.file_name().unwrap_or("upload"));
                let mut out = tokio::fs::File::create(tmp.path().join(&n)).await?;
                while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, s.max_upload))? {
                    size += chunk.len();
                    if size > s.max_upload {
                        return Err(too_large(s.max_upload));
                    }
                    tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await?;
                }
                tokio::io::AsyncWriteExt::flush(&mut out).await?;
                name = Some(n);
            }
            Some("labels") => {
                let b = field.bytes().await.map_err(|e| multipart_error(e, s.max_upload))?;
                labels = Some(b.to_vec());
            }
            _ => {}
        }
    }
    let Some(name) = name else {
        return Err(ApiError::bad("no `file` field in the upload"));
    };
    if size == 0 {
        return Err(ApiError::bad("the uploaded file is empty"));
    }
    let labels = match labels {
        Some(b) => Some(Arc::new(LabelTable::parse(&b).map_err(|e| ApiError::bad(format!("labels: {e}")))?)),
        None => None,
    };
    let model = s.current_model();
    let id = s.store.create_analysis(&name, model.version)?;
    let home = dir.join(id.to_string());
    let _ = std::fs::remove_dir_all(&home);
    std::fs::rename(tmp.path(), &home)?;
    // Moved: nothing left to remove.
    let _ = tmp.keep();
    let input = home.join(&name);
    let progress = Arc::new(Progress::default());
    s.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, progress.clone());
    tokio::spawn(run_analysis(s.clone(), id, model, input, labels, progress));
    Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "status": "queued"}))))
}

/// Waits for a worker, then analyzes on a blocking thread (the async
/// runtime keeps answering meanwhile) and stores the result.
async fn run_analysis(
    s: Arc<AppState>,
    id: i64,
    model: Arc<Model>,
    input: PathBuf,
    labels: Option<Arc<LabelTable>>,
    progress: Arc<Progress>,
) {
    let permit = s.workers.acquire().await;
    let home = input.parent().map(std::path::Path::to_path_buf);
    let _ = s.store.set_status(id, "running", None);
    let allow_text = s.store.allow_toml().unwrap_or_default();
    let s2 = s.clone();
    let result = tokio::task::spawn_blocking(move || {
        // Entries were checked when added; one that no longer parses (an
        // edited database) is logged and the list left empty rather than
        // failing the analysis.
        let allow = Allowlist::parse(&allow_text, now_secs()).unwrap_or_else(|e| {
            tracing::warn!("allowlist not applied: {e}");
            Allowlist::default()
        });
        let params = AnalysisParams { allow, model_version: model.version, ..Default::default() };
        let opts = ScanOptions { labels, ..Default::default() };
        let a = crate::analyze(&model.bundle, &[Input::Path(input)], &opts, &params, &progress)?;
        s2.store.finish_analysis(id, &a).map_err(|e| AnalysisError::Input(format!("storing the results: {e}")))?;
        Ok::<_, AnalysisError>(a.anomalies.len())
    })
    .await;
    drop(permit);
    match result {
        Ok(Ok(n)) => tracing::info!(analysis = id, anomalies = n, "analysis done"),
        Ok(Err(e)) => {
            let msg = match &e {
                AnalysisError::Input(m) => m.clone(),
                other => {
                    tracing::error!(analysis = id, "analysis failed: {other}");
                    format!("analysis failed: {other}")
                }
            };
            let _ = s.store.set_status(id, "failed", Some(&msg));
        }
        Err(e) => {
            tracing::error!(analysis = id, "analysis crashed: {e}");
            let _ = s.store.set_status(id, "failed", Some("internal error (details in the server log)"));
        }
    }
    s.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    // The upload served this analysis alone: done or failed, it goes.
    if let Some(dir) = home {
        let _ = std::fs::remove_dir_all(dir);
    }
    s.enforce_retention();
}

#[derive(Debug, Deserialize)]
struct FeedbackBody {
    analysis_id: i64,
    flow_id: Option<i64>,
    incident_id: Option<i64>,
    verdict: String,
    #[serde(default)]
    note: String,
}

async fn add_feedback(
    State(s): St,
    body: Result<Json<FeedbackBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body.map_err(json_rejection)?;
    let verdict = Judgement::parse(&b.verdict)
        .ok_or_else(|| ApiError::bad("verdict: expected true_positive or false_positive"))?;
    if b.flow_id.is_some() == b.incident_id.is_some() {
        return Err(ApiError::bad("give flow_id or incident_id (one of them)"));
    }
    if b.note.len() > 4000 {
        return Err(ApiError::bad("note: at most 4000 bytes"));
    }
    let (id, flows) = s
        .store
        .add_feedback(b.analysis_id, b.flow_id, b.incident_id, verdict, &b.note)?
        .ok_or_else(|| ApiError::not_found("flagged flow or incident in that analysis"))?;
    let suggestion = match verdict {
        Judgement::FalsePositive => suggestion(&s, id)?,
        Judgement::TruePositive => Value::Null,
    };
    Ok((StatusCode::CREATED, Json(json!({"id": id, "flows": flows, "allowlist_suggestion": suggestion}))))
}

/// The allowlist entry a false positive suggests: for a flow, its source,
/// destination, port and protocol; for an incident, its actor.
fn suggestion(s: &AppState, feedback: i64) -> Result<Value, ApiError> {
    let Some((v, incident)) = s.store.judged_item(feedback)? else { return Ok(Value::Null) };
    let class = v["threat_class"].as_str().unwrap_or("anomaly");
    let reason = format!("false positive ({class}), feedback #{feedback}");
    Ok(if incident {
        match (v["actor"].as_str(), v["actor_role"].as_str()) {
            (Some(a), Some("destination")) => json!({"dst": a, "reason": reason}),
            (Some(a), _) => json!({"src": a, "reason": reason}),
            _ => Value::Null,
        }
    } else {
        let mut e = serde_json::Map::new();
        for k in ["src", "dst"] {
            if let Some(a) = v[k].as_str() {
                e.insert(k.into(), a.into());
            }
        }
        if let Some(p) = v["dst_port"].as_u64() {
            e.insert("ports".into(), json!([p]));
        }
        if let Some(p) = v["protocol"].as_u64() {
            e.insert("protocol".into(), p.into());
        }
        e.insert("reason".into(), reason.into());
        Value::Object(e)
    })
}

async fn list_feedback(State(s): St) -> ApiResult {
    Ok(Json(json!(s.store.feedback()?)))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

fn csv_cell(v: &Value) -> String {
    let t = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // A leading =+-@ would be a formula in a spreadsheet: the flow fields
    // are attacker-controlled.
    let t = if t.starts_with(['=', '+', '-', '@']) && t.parse::<f64>().is_err() { format!("'{t}") } else { t };
    let mut out = Vec::with_capacity(t.len() + 2);
    flowhound_flow::write::csv_field(&mut out, &t);
    String::from_utf8_lossy(&out).into_owned()
}

async fn export_feedback(State(s): St, Query(q): Query<ExportQuery>) -> Result<Response, ApiError> {
    let rows: Vec<Value> = s.store.feedback()?.iter().map(|r| json!(r)).collect();
    match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => {
            let mut out = String::new();
            for r in rows {
                out.push_str(&r.to_string());
                out.push('\n');
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-ndjson"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"feedback.jsonl\""),
                ],
                out,
            )
                .into_response())
        }
        "csv" => {
            let cols =
                ["id", "analysis_id", "flow_id", "incident_id", "verdict", "threat_class", "flows", "note", "created"];
            let keys = ["time", "src", "dst", "src_port", "dst_port", "protocol", "score", "reason"];
            let mut out = cols.iter().chain(&keys).copied().collect::<Vec<_>>().join(",");
            out.push('\n');
            for r in rows {
                let item = if r["flow"].is_object() { &r["flow"] } else { &r["incident"] };
                let mut cells: Vec<String> = cols.iter().map(|c| csv_cell(&r[*c])).collect();
                cells.extend(keys.iter().map(|k| csv_cell(&item[*k])));
                out.push_str(&cells.join(","));
                out.push('\n');
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"feedback.csv\""),
                ],
                out,
            )
                .into_response())
        }
        other => Err(ApiError::bad(format!("format {other:?}: expected csv or jsonl"))),
    }
}

async fn list_allow(State(s): St) -> ApiResult {
    let items: Vec<Value> = s
        .store
        .allow_entries()?
        .into_iter()
        .map(|(id, entry, created, fb)| json!({"id": id, "entry": entry, "created": created, "feedback_id": fb}))
        .collect();
    Ok(Json(Value::Array(items)))
}

#[derive(Debug, Deserialize)]
struct AllowBody {
    /// Fields of one `[[allow]]` entry (docs/explain.md).
    entry: serde_json::Map<String, Value>,
    feedback_id: Option<i64>,
}

/// One `[[allow]]` table's body as TOML, from JSON fields.
fn entry_toml(m: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    let mut out = String::new();
    for (k, v) in m {
        if !k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(ApiError::bad(format!("entry: unknown field {k:?}")));
        }
        let text = match v {
            // serde_json's string escaping is valid TOML basic-string escaping.
            Value::String(s) => Value::String(s.clone()).to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) if items.iter().all(Value::is_number) => Value::Array(items.clone()).to_string(),
            _ => return Err(ApiError::bad(format!("entry: {k} must be a string, a number or a list of numbers"))),
        };
        out.push_str(&format!("{k} = {text}\n"));
    }
    Ok(out)
}

async fn add_allow(
    State(s): St,
    body: Result<Json<AllowBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body.map_err(json_rejection)?;
    let text = entry_toml(&b.entry)?;
    let list = Allowlist::parse(&format!("[[allow]]\n{text}"), now_secs()).map_err(|e| ApiError::bad(e.to_string()))?;
    if list.is_empty() && list.expired().is_empty() {
        return Err(ApiError::bad("the entry matches nothing"));
    }
    let id = s.store.add_allow(&text, b.feedback_id)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "entry": text}))))
}

async fn remove_allow(State(s): St, Path(id): Path<i64>) -> ApiResult {
    if s.store.remove_allow(id)? {
        Ok(Json(json!({"removed": id})))
    } else {
        Err(ApiError::not_found("allowlist entry"))
    }
}

async fn models(State(s): St) -> ApiResult {
    let cur = s.current_model();
    Ok(Json(json!({"current": cur.version, "versions": s.store.models()?})))
}

/// `POST /api/models/retrain`: refits the root model with every verdict so
/// far; the new version is used for the analyses that follow.
async fn retrain_model(State(s): St) -> Result<(StatusCode, Json<Value>), ApiError> {
    let _one = s.retraining.lock().await;
    let cur = s.current_model();
    let examples = s.store.training_examples()?;
    if examples.is_empty() {
        return Err(ApiError::bad("no feedback yet: mark some flagged flows or incidents first"));
    }
    let (root_v, root_path) =
        s.store.root_model(cur.version)?.ok_or_else(|| ApiError::internal("model chain broken"))?;
    let root_path = PathBuf::from(root_path);
    let dir = s.data_dir.join("models");
    let weight = s.feedback_weight;
    let s2 = s.clone();
    let made = tokio::task::spawn_blocking(move || -> Result<(Model, retrain::FeedbackUse), ApiError> {
        let root = if root_path == cur.path {
            None
        } else {
            Some(
                flowhound_detect::Bundle::load(&root_path)
                    .map_err(|e| ApiError::internal(format!("root model v{root_v}: {e}")))?,
            )
        };
        let root = root.as_ref().unwrap_or(&cur.bundle);
        let (bundle, used) = retrain::retrain(root, &examples, weight).map_err(|e| match e {
            flowhound_detect::BundleError::NoSample => ApiError(StatusCode::CONFLICT, e.to_string()),
            other => ApiError::internal(other),
        })?;
        let note = format!("root v{root_v} + {} false positives, {} true positives", used.benign, used.attacks);
        let n = s2.store.latest_model()?.map_or(1, |(v, _)| v + 1);
        let path = dir.join(format!("v{n}-{}", std::process::id()));
        bundle.save(&path).map_err(ApiError::internal)?;
        let version =
            s2.store.add_model(&path.display().to_string(), Some(cur.version), examples.len() as u64, &note)?;
        Ok((Model { version, path, bundle }, used))
    })
    .await
    .map_err(ApiError::internal)??;
    let (model, used) = made;
    let version = model.version;
    s.set_model(model);
    Ok((StatusCode::CREATED, Json(json!({"version": version, "feedback": used}))))
}
