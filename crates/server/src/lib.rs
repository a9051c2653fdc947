//! flowhound-server: the dashboard. An axum HTTP API (`docs/api.md`), the
//! page itself (embedded in the binary, no CDN), a SQLite store of analyses
//! and analyst feedback, retraining with that feedback, and the same page as
//! a self-contained static report.
//!
//! ```text
//! upload ─▶ analysis (background, analysis.rs) ─▶ store (SQLite) ─▶ API ─▶ page
//!                                   feedback ─▶ allowlist suggestions, engine::retrain ─▶ new model version
//! serve --watch: watch loop ─▶ live.rs ─▶ store + server-sent events ─▶ page
//! ```

pub mod analysis;
pub mod api;
pub mod assets;
pub mod charts;
pub mod live;
pub mod metrics;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use flowhound_detect::bundle::Bundle;

pub use analysis::{analyze, Analysis, AnalysisParams, Progress};
pub use store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot use model {path}: {source}")]
    Model { path: String, source: flowhound_detect::BundleError },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub model_dir: PathBuf,
    pub db: PathBuf,
    /// Bearer token every API call must carry; required off loopback.
    pub token: Option<String>,
    /// Largest upload accepted, bytes.
    pub max_upload: usize,
    /// Analyses run at once (more wait, `queued`).
    pub workers: usize,
    /// Rows each feedback verdict counts as when retraining.
    pub feedback_weight: usize,
    /// Finished analyses kept; older ones are deleted (feedback stays).
    pub keep: usize,
    /// Most bytes the database may hold before the oldest finished analyses go.
    pub max_db_bytes: u64,
}

/// Bytes a JSON request body may hold (feedback, allowlist entries): the
/// upload limit is for uploads alone, so a huge JSON body is refused before
/// it is buffered.
pub const MAX_JSON_BODY: usize = 64 << 10;

impl ServerConfig {
    /// Every problem with the settings, at once.
    pub fn check(&self) -> Result<(), ServerError> {
        let mut bad = Vec::new();
        if !self.addr.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            bad.push(format!(
                "{} is reachable from other machines: give --token (every API call must then carry it)",
                self.addr
            ));
        }
        if self.token.as_deref().is_some_and(|t| t.len() < 16) {
            bad.push("--token must be at least 16 characters".to_string());
        }
        if self.max_upload == 0 {
            bad.push("--max-upload must be above 0".to_string());
        }
        if self.workers == 0 {
            bad.push("--workers must be at least 1".to_string());
        }
        if self.keep == 0 {
            bad.push("--keep must be at least 1".to_string());
        }
        if self.max_db_bytes == 0 {
            bad.push("--max-db must be above 0".to_string());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ServerError::Config(bad.join("; ")))
        }
    }
}

/// The model analyses use now.
#[derive(Debug)]
pub struct Model {
    pub version: i64,
    pub path: PathBuf,
    pub bundle: Bundle,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub model: RwLock<Arc<Model>>,
    /// Uploads and retrained models live here (next to the database).
    pub data_dir: PathBuf,
    pub token: Option<String>,
    pub max_upload: usize,
    pub feedback_weight: usize,
    pub keep: usize,
    pub max_db_bytes: u64,
    /// Progress of the analyses in flight.
    pub jobs: Mutex<HashMap<i64, Arc<Progress>>>,
    pub workers: tokio::sync::Semaphore,
    /// One retraining at a time.
    pub retraining: tokio::sync::Mutex<()>,
    /// The live analysis while `serve --watch` watches.
    pub live: RwLock<Option<live::LiveInfo>>,
}

fn load(path: &Path) -> Result<Bundle, ServerError> {
    Bundle::load(path).map_err(|source| ServerError::Model { path: path.display().to_string(), source })
}

impl AppState {
    /// Opens the store and the model. The newest model version registered in
    /// the store is used (a model retrained with feedback survives
    /// restarts), unless `model_dir` is new to the store: then it becomes
    /// the newest version.
    pub fn new(config: &ServerConfig) -> Result<Arc<AppState>, ServerError> {
        config.check()?;
        let store = Store::open(&config.db)?;
        let data_dir = config.db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let given = std::fs::canonicalize(&config.model_dir)
            .map_err(|e| ServerError::Config(format!("model folder {}: {e}", config.model_dir.display())))?;
        let given_str = given.display().to_string();
        let bundle = load(&given)?;
        let model = match (store.model_by_path(&given_str)?, store.latest_model()?) {
            (Some(_), Some((v, p))) if Path::new(&p).join("manifest.json").is_file() => {
                let path = PathBuf::from(p);
                let bundle = if path == given { bundle } else { load(&path)? };
                Model { version: v, path, bundle }
            }
            // The newest version's folder is gone: back to the given model.
            (Some(v), _) => Model { version: v, path: given, bundle },
            _ => {
                let v = store.add_model(&given_str, None, 0, "given with --model")?;
                Model { version: v, path: given, bundle }
            }
        };
        let state = Arc::new(AppState {
            store,
            model: RwLock::new(Arc::new(model)),
            data_dir,
            token: config.token.clone(),
            max_upload: config.max_upload,
            feedback_weight: config.feedback_weight,
            keep: config.keep,
            max_db_bytes: config.max_db_bytes,
            jobs: Mutex::new(HashMap::new()),
            workers: tokio::sync::Semaphore::new(config.workers),
            retraining: tokio::sync::Mutex::new(()),
            live: RwLock::new(None),
        });
        // Uploads of analyses a stopped server left unfinished (now failed).
        if let Ok(dirs) = std::fs::read_dir(state.uploads()) {
            for d in dirs.flatten() {
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
        state.enforce_retention();
        Ok(state)
    }

    /// Where uploads wait for their analysis (removed once it ends).
    pub fn uploads(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }

    /// Deletes finished analyses past `keep` / `max_db_bytes` (logged).
    pub fn enforce_retention(&self) {
        match self.store.retain(self.keep, self.max_db_bytes) {
            Ok(gone) if !gone.is_empty() => tracing::info!(deleted = ?gone, "retention: older analyses deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: {e}"),
        }
    }

    pub fn current_model(&self) -> Arc<Model> {
        self.model.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn set_model(&self, m: Model) {
        *self.model.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(m);
    }
}

/// Serves until SIGINT (Ctrl-C) or SIGTERM (a service manager, `docker
/// stop`): requests in flight are answered before it returns.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    let state = AppState::new(&config)?;
    serve_state(state, config.addr, stop_signal()).await
}

/// Completes at the first SIGINT or SIGTERM.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `state` until `shutdown` completes.
pub async fn serve_state(
    state: Arc<AppState>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Io { what: format!("cannot listen on {addr}"), source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Io { what: "listener".into(), source })?;
    tracing::info!(%addr, model_version = state.current_model().version, "dashboard listening");
    eprintln!("flowhound dashboard on http://{addr}/ (model version {})", state.current_model().version);
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServerError::Io { what: "serving".into(), source })
}
