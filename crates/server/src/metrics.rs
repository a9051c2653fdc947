//! `GET /metrics` for a live run (`flowhound watch --metrics ADDR`), on axum
//! like the dashboard: Prometheus text from the engine's
//! [`Monitor`](flowhound_engine::watch::monitor::Monitor).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use flowhound_engine::watch::monitor::Monitor;

use crate::ServerError;

/// The endpoint's routes: `/metrics`, and a 404 that says so elsewhere.
pub fn router(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&monitor);
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.prometheus()) }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is here\n").into_response() })
}

/// Listens on `addr` (a bind error is returned at once) and serves the
/// metrics on a thread of its own for the rest of the process.
pub fn spawn(addr: SocketAddr, monitor: Arc<Monitor>) -> Result<(), ServerError> {
    let io = |what: String| move |source| ServerError::Io { what, source };
    let listener = std::net::TcpListener::bind(addr).map_err(io(format!("--metrics {addr}: cannot listen")))?;
    listener.set_nonblocking(true).map_err(io("the metrics listener".into()))?;
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io("the metrics runtime".into()))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, router(monitor)).await {
                            tracing::error!("metrics endpoint: {e}");
                        }
                    }
                    Err(e) => tracing::error!("metrics endpoint: {e}"),
                }
            });
        })
        .map_err(io("the metrics thread".into()))?;
    Ok(())
}
