//! `GET /metrics` for a live run (`flowhound watch --metrics ADDR`,
//! `flowhound worker --metrics ADDR`), on axum like the dashboard:
//! Prometheus text made fresh for each request (the engine's
//! [`Monitor`](flowhound_engine::watch::monitor::Monitor), a worker's
//! metrics).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::ServerError;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// What renders the metrics text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The endpoint's routes: `/metrics`, and a 404 that says so elsewhere.
pub fn router(render: Render) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let r = Arc::clone(&render);
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], r()) }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is here\n").into_response() })
}

/// Listens on `addr` (a bind error is returned at once) and serves the
/// metrics on a thread of its own for the rest of the process.
pub fn spawn(addr: SocketAddr, render: Render) -> Result<(), ServerError> {
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
                        if let Err(e) = axum::serve(l, router(render)).await {
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
