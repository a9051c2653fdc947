//! The dashboard's SQLite database: analyses with their summaries, flagged
//! flows and incidents, analyst feedback, allowlist entries and model
//! versions. One file, surviving restarts; `flowhound train --feedback DB`
//! reads the feedback straight from it.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::analysis::{Analysis, Anomaly, IncidentRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("stored JSON is unreadable: {0}")]
    Json(#[from] serde_json::Error),
}

/// Version of the tables this build creates.
const SCHEMA: i64 = 1;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
  version INTEGER PRIMARY KEY, path TEXT NOT NULL, created TEXT NOT NULL,
  parent INTEGER, feedback INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS analyses (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, created TEXT NOT NULL, status TEXT NOT NULL,
  progress REAL NOT NULL DEFAULT 0, error TEXT, model_version INTEGER, summary TEXT, charts TEXT);
CREATE TABLE IF NOT EXISTS anomalies (
  analysis_id INTEGER NOT NULL, flow INTEGER NOT NULL, severity INTEGER NOT NULL, class TEXT NOT NULL,
  score REAL NOT NULL, suppressed INTEGER NOT NULL, json TEXT NOT NULL, raw BLOB NOT NULL, external TEXT NOT NULL,
  incident INTEGER, PRIMARY KEY (analysis_id, flow));
CREATE INDEX IF NOT EXISTS anomalies_rank ON anomalies (analysis_id, severity DESC, score DESC);
CREATE TABLE IF NOT EXISTS incidents (
  analysis_id INTEGER NOT NULL, incident INTEGER NOT NULL, severity INTEGER NOT NULL, class TEXT NOT NULL,
  score REAL NOT NULL, json TEXT NOT NULL, PRIMARY KEY (analysis_id, incident));
CREATE TABLE IF NOT EXISTS feedback (
  id INTEGER PRIMARY KEY, analysis_id INTEGER NOT NULL, flow INTEGER, incident INTEGER,
  verdict TEXT NOT NULL, note TEXT NOT NULL, created TEXT NOT NULL, class TEXT, flows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS allowlist (
  id INTEGER PRIMARY KEY, entry TEXT NOT NULL, created TEXT NOT NULL, feedback_id INTEGER);
";

use flowhound_engine::feedback::{Judgement, TrainingExample};

/// (id, entry, created, feedback id) of an allowlist entry.
pub type AllowRow = (i64, String, String, Option<i64>);

/// One model version, as the API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelRow {
    pub version: i64,
    pub created: String,
    /// The version it was retrained from.
    pub parent: Option<i64>,
    /// Feedback entries it learned from.
    pub feedback: i64,
    pub note: String,
}

/// One analysis: its state, and (when done) its headline counts in the
/// list, its summary and charts alone.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AnalysisRow {
    pub id: i64,
    pub name: String,
    pub created: String,
    /// queued, running, done, failed, live, stopped.
    pub status: String,
    pub progress: f64,
    pub error: Option<String>,
    pub model_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_severity: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charts: Option<Value>,
}

/// One analyst verdict, with the flagged flow or incident it names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedbackRow {
    pub id: i64,
    pub analysis_id: i64,
    pub flow_id: Option<i64>,
    pub incident_id: Option<i64>,
    pub verdict: String,
    pub note: String,
    pub created: String,
    pub threat_class: Option<String>,
    /// Flows it covers (an incident's all).
    pub flows: i64,
    /// The flow as stored (`detect`'s JSON), when given on a flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<Value>,
    /// The incident as stored, when given on an incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<Value>,
}

#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

/// Seconds since the epoch as RFC 3339.
pub fn now() -> String {
    flowhound_flow::Timestamp::from_secs(flowhound_explain::allow::now_secs())
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn raw_bytes(raw: &[f32]) -> Vec<u8> {
    raw.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn put_incidents<'a>(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    rows: impl IntoIterator<Item = &'a IncidentRow>,
) -> Result<(), StoreError> {
    let mut ins = tx.prepare(
        "INSERT INTO incidents (analysis_id, incident, severity, class, score, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for i in rows {
        ins.execute(params![id, i.id as i64, i.severity as i64, i.class, f64::from(i.score), &*i.json])?;
    }
    Ok(())
}

/// Flagged flows, each with the incident `incident_of` gives it.
fn put_anomalies(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    rows: &[Anomaly],
    incident_of: impl Fn(u64) -> Option<i64>,
) -> Result<(), StoreError> {
    let mut ins = tx.prepare(
        "INSERT INTO anomalies (analysis_id, flow, severity, class, score, suppressed, json, raw, external, incident)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for x in rows {
        let external: Vec<String> = x.external.iter().map(ToString::to_string).collect();
        ins.execute(params![
            id,
            x.flow as i64,
            x.severity as i64,
            x.class,
            f64::from(x.score),
            x.suppressed,
            &*x.json,
            raw_bytes(&x.raw),
            external.join(" "),
            incident_of(x.flow)
        ])?;
    }
    Ok(())
}

fn raw_floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Store {
    /// Opens (creating) the database; analyses left `queued`/`running` by a
    /// stopped server are marked failed, since their work is gone.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |reason: String| StoreError::Open { path: path.display().to_string(), reason };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        Self::init(conn).map_err(|e| open_err(e.to_string()))
    }

    /// Opens an existing database read-only (for `train --feedback`).
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StoreError::Open { path: path.display().to_string(), reason: e.to_string() })?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
            .optional()
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: format!("not a flowhound dashboard database ({e})"),
            })?;
        if version.as_deref() != Some(&SCHEMA.to_string()) {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                reason: format!("schema version {version:?}, this flowhound reads {SCHEMA}"),
            });
        }
        Ok(Store { conn: Mutex::new(conn) })
    }

    /// An in-memory database (tests).
    pub fn memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.execute_batch(TABLES)?;
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?1)", [SCHEMA.to_string()])?;
        conn.execute(
            "UPDATE analyses SET status = 'failed', error = 'the server stopped before it finished' WHERE status IN ('queued', 'running')",
            [],
        )?;
        // A live analysis ends with the server that watched: what it found stays.
        conn.execute("UPDATE analyses SET status = 'stopped' WHERE status = 'live'", [])?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    /// Runs an INSERT; returns the new row's id.
    fn insert(&self, sql: &str, p: impl rusqlite::Params) -> Result<i64, StoreError> {
        let db = self.db();
        db.execute(sql, p)?;
        Ok(db.last_insert_rowid())
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves a usable connection: SQLite
        // rolls back whatever transaction was open.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- models

    /// Registers a model folder as a new version; returns the version.
    pub fn add_model(&self, path: &str, parent: Option<i64>, feedback: u64, note: &str) -> Result<i64, StoreError> {
        self.insert(
            "INSERT INTO models (path, created, parent, feedback, note) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![path, now(), parent, feedback as i64, note],
        )
    }

    /// The version registered for a model folder, if any.
    pub fn model_by_path(&self, path: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT version FROM models WHERE path = ?1 ORDER BY version DESC LIMIT 1", [path], |r| r.get(0))
            .optional()?)
    }

    /// The root of a version (following `parent` to the model given with
    /// `--model`) and its folder.
    pub fn root_model(&self, version: i64) -> Result<Option<(i64, String)>, StoreError> {
        let db = self.db();
        let mut v = version;
        for _ in 0..10_000 {
            let row: Option<(Option<i64>, String)> = db
                .query_row("SELECT parent, path FROM models WHERE version = ?1", [v], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match row {
                Some((Some(p), _)) => v = p,
                Some((None, path)) => return Ok(Some((v, path))),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The newest version and its folder.
    pub fn latest_model(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT version, path FROM models ORDER BY version DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    /// Every model version, newest first.
    pub fn models(&self) -> Result<Vec<ModelRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT version, created, parent, feedback, note FROM models ORDER BY version DESC")?;
        let rows = st.query_map([], |r| {
            Ok(ModelRow {
                version: r.get(0)?,
                created: r.get(1)?,
                parent: r.get(2)?,
                feedback: r.get(3)?,
                note: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- analyses

    pub fn create_analysis(&self, name: &str, model_version: i64) -> Result<i64, StoreError> {
        self.insert(
            "INSERT INTO analyses (name, created, status, model_version) VALUES (?1, ?2, 'queued', ?3)",
            params![name, now(), model_version],
        )
    }

    pub fn set_status(&self, id: i64, status: &str, error: Option<&str>) -> Result<(), StoreError> {
        self.db().execute("UPDATE analyses SET status = ?2, error = ?3 WHERE id = ?1", params![id, status, error])?;
        Ok(())
    }

    /// Stores a finished analysis in one transaction and marks it done.
    pub fn finish_analysis(&self, id: i64, a: &Analysis) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let member = a.incident_of();
        put_incidents(&tx, id, &a.incidents)?;
        put_anomalies(&tx, id, &a.anomalies, |f| member.get(&f).map(|i| *i as i64))?;
        tx.execute(
            "UPDATE analyses SET status = 'done', progress = 1, summary = ?2, charts = ?3 WHERE id = ?1",
            params![id, a.summary.to_string(), a.charts.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    // ---- live analyses (`serve --watch`)

    /// A new analysis that grows while `watch` runs (status `live`).
    pub fn create_live(&self, name: &str, model_version: i64) -> Result<i64, StoreError> {
        self.insert(
            "INSERT INTO analyses (name, created, status, model_version) VALUES (?1, ?2, 'live', ?3)",
            params![name, now(), model_version],
        )
    }

    /// Adds what one live batch found, in one transaction: flagged flows,
    /// incidents that grew or ended (replacing their earlier state), the
    /// incident of each member flow from position `from` of the incident's
    /// member list on (members only grow), and the new summary.
    pub fn add_live(
        &self,
        id: i64,
        anomalies: &[Anomaly],
        incidents: &[(IncidentRow, usize)],
        summary: &Value,
        incident_of: impl Fn(u64) -> Option<i64>,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        put_anomalies(&tx, id, anomalies, incident_of)?;
        let mut missing = Vec::new();
        {
            let mut del = tx.prepare("DELETE FROM incidents WHERE analysis_id = ?1 AND incident = ?2")?;
            for (i, _) in incidents {
                del.execute(params![id, i.id as i64])?;
            }
        }
        put_incidents(&tx, id, incidents.iter().map(|(i, _)| i))?;
        {
            let mut set = tx.prepare("UPDATE anomalies SET incident = ?2 WHERE analysis_id = ?1 AND flow = ?3")?;
            for (i, from) in incidents {
                for f in i.members.iter().skip(*from) {
                    if set.execute(params![id, i.id as i64, *f as i64])? == 0 {
                        missing.push((*f, i.id));
                    }
                }
            }
        }
        tx.execute("UPDATE analyses SET summary = ?2 WHERE id = ?1", params![id, summary.to_string()])?;
        tx.commit()?;
        Ok(missing)
    }

    /// Keeps the newest `keep` flagged flows of a live analysis; older ones
    /// go unless feedback names them (or their incident). Returns how many
    /// went.
    pub fn prune_live(&self, id: i64, keep: u64) -> Result<u64, StoreError> {
        let n = self.db().execute(
            "DELETE FROM anomalies WHERE analysis_id = ?1
               AND flow < (SELECT flow FROM anomalies WHERE analysis_id = ?1 ORDER BY flow DESC LIMIT 1 OFFSET ?2)
               AND flow NOT IN (SELECT flow FROM feedback WHERE analysis_id = ?1 AND flow IS NOT NULL)
               AND (incident IS NULL OR incident NOT IN (SELECT incident FROM feedback WHERE analysis_id = ?1 AND incident IS NOT NULL))",
            params![id, keep.saturating_sub(1).min(i64::MAX as u64) as i64],
        )?;
        Ok(n as u64)
    }

    // ---- retention

    /// The analysis's status, `None` when there is no such analysis.
    pub fn status(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(self.db().query_row("SELECT status FROM analyses WHERE id = ?1", [id], |r| r.get(0)).optional()?)
    }

    /// Deletes an analysis with its flagged flows and incidents, except the
    /// flows and incidents feedback names: they stay, as the examples the
    /// next retraining learns from. False when there was no such analysis.
    pub fn delete_analysis(&self, id: i64) -> Result<bool, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM anomalies WHERE analysis_id = ?1
               AND flow NOT IN (SELECT flow FROM feedback WHERE analysis_id = ?1 AND flow IS NOT NULL)
               AND (incident IS NULL OR incident NOT IN (SELECT incident FROM feedback WHERE analysis_id = ?1 AND incident IS NOT NULL))",
            [id],
        )?;
        tx.execute(
            "DELETE FROM incidents WHERE analysis_id = ?1
               AND incident NOT IN (SELECT incident FROM feedback WHERE analysis_id = ?1 AND incident IS NOT NULL)",
            [id],
        )?;
        let n = tx.execute("DELETE FROM analyses WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Bytes the database's pages hold, free pages left out (SQLite reuses
    /// those before the file grows).
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let db = self.db();
        let pages: i64 = db.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = db.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = db.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(((pages - free).max(0) as u64).saturating_mul(size.max(0) as u64))
    }

    /// Enforces retention: the newest `keep` finished analyses (done, failed,
    /// stopped) stay, older ones go; then, while the database holds more
    /// than `max_bytes`, the oldest finished ones go too — never the newest
    /// finished one, nor one queued, running or live. Returns the ids deleted.
    pub fn retain(&self, keep: usize, max_bytes: u64) -> Result<Vec<i64>, StoreError> {
        let finished: Vec<i64> = {
            let db = self.db();
            let mut st =
                db.prepare("SELECT id FROM analyses WHERE status IN ('done', 'failed', 'stopped') ORDER BY id DESC")?;
            let ids = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            ids
        };
        let mut gone = Vec::new();
        for &id in finished.iter().skip(keep.max(1)).rev() {
            if self.delete_analysis(id)? {
                gone.push(id);
            }
        }
        let mut older = finished.iter().take(keep.max(1)).skip(1).rev();
        while self.used_bytes()? > max_bytes {
            let Some(&id) = older.next() else { break };
            if self.delete_analysis(id)? {
                gone.push(id);
            }
        }
        Ok(gone)
    }

    fn analysis_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AnalysisRow> {
        Ok(AnalysisRow {
            id: r.get(0)?,
            name: r.get(1)?,
            created: r.get(2)?,
            status: r.get(3)?,
            progress: r.get(4)?,
            error: r.get(5)?,
            model_version: r.get(6)?,
            ..Default::default()
        })
    }

    /// Every analysis, newest first, with its headline counts when done.
    pub fn analyses(&self) -> Result<Vec<AnalysisRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT id, name, created, status, progress, error, model_version, summary FROM analyses ORDER BY id DESC",
        )?;
        let rows = st.query_map([], |r| {
            let mut v = Self::analysis_row(r)?;
            let summary: Option<String> = r.get(7)?;
            if let Some(s) = summary.and_then(|s| serde_json::from_str::<Value>(&s).ok()) {
                v.flows = Some(s["flows"].clone());
                v.anomalies = Some(s["anomalies"].clone());
                v.by_severity = Some(s["by_severity"].clone());
            }
            Ok(v)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Status, and when done the summary and charts; `None` if unknown.
    pub fn analysis(&self, id: i64) -> Result<Option<AnalysisRow>, StoreError> {
        let db = self.db();
        let row = db
            .query_row(
                "SELECT id, name, created, status, progress, error, model_version, summary, charts FROM analyses WHERE id = ?1",
                [id],
                |r| Ok((Self::analysis_row(r)?, r.get::<_, Option<String>>(7)?, r.get::<_, Option<String>>(8)?)),
            )
            .optional()?;
        let Some((mut v, summary, charts)) = row else { return Ok(None) };
        if let Some(s) = summary {
            v.summary = Some(serde_json::from_str(&s)?);
        }
        if let Some(c) = charts {
            v.charts = Some(serde_json::from_str(&c)?);
        }
        Ok(Some(v))
    }

    pub fn analysis_exists(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.db().query_row("SELECT 1 FROM analyses WHERE id = ?1", [id], |_| Ok(())).optional()?.is_some())
    }

    /// Flagged flows, most severe and highest score first, with the feedback
    /// given on each. `severity`: at least this rank (1 low .. 3 high).
    pub fn anomalies(
        &self,
        id: i64,
        severity: Option<i64>,
        class: Option<&str>,
        limit: i64,
        offset: i64,
        newest: bool,
    ) -> Result<(u64, Vec<Value>), StoreError> {
        let db = self.db();
        let sev = severity.unwrap_or(1);
        let total: i64 = db.query_row(
            "SELECT COUNT(*) FROM anomalies WHERE analysis_id = ?1 AND severity >= ?2 AND (?3 IS NULL OR class = ?3)",
            params![id, sev, class],
            |r| r.get(0),
        )?;
        let order = if newest { "a.flow DESC" } else { "a.severity DESC, a.score DESC, a.flow" };
        let mut st = db.prepare(&format!(
            "SELECT a.json, (SELECT verdict FROM feedback f WHERE f.analysis_id = a.analysis_id AND (f.flow = a.flow OR f.incident = a.incident) ORDER BY f.id DESC LIMIT 1), a.incident
             FROM anomalies a WHERE a.analysis_id = ?1 AND a.severity >= ?2 AND (?3 IS NULL OR a.class = ?3)
             ORDER BY {order} LIMIT ?4 OFFSET ?5"
        ))?;
        let rows = st.query_map(params![id, sev, class, limit, offset], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<i64>>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (j, fb, incident) = row?;
            let mut v: Value = serde_json::from_str(&j)?;
            v["incident"] = incident.into();
            v["feedback"] = fb.into();
            out.push(v);
        }
        Ok((total as u64, out))
    }

    /// One flagged flow, `None` if not flagged in that analysis.
    pub fn anomaly(&self, id: i64, flow: i64) -> Result<Option<Value>, StoreError> {
        let j: Option<String> = self
            .db()
            .query_row("SELECT json FROM anomalies WHERE analysis_id = ?1 AND flow = ?2", params![id, flow], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(j.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    pub fn incidents(&self, id: i64) -> Result<Vec<Value>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT i.json, (SELECT verdict FROM feedback f WHERE f.analysis_id = i.analysis_id AND f.incident = i.incident ORDER BY f.id DESC LIMIT 1)
             FROM incidents i WHERE i.analysis_id = ?1 ORDER BY i.incident",
        )?;
        let rows = st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (j, fb) = row?;
            let mut v: Value = serde_json::from_str(&j)?;
            v["feedback"] = fb.into();
            out.push(v);
        }
        Ok(out)
    }

    // ---- feedback

    /// Records a verdict on a flagged flow or an incident; returns the
    /// feedback id and the number of flows it covers (0: no such item).
    pub fn add_feedback(
        &self,
        analysis: i64,
        flow: Option<i64>,
        incident: Option<i64>,
        verdict: Judgement,
        note: &str,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        let db = self.db();
        let (class, flows): (Option<String>, i64) = match (flow, incident) {
            (Some(f), _) => db
                .query_row("SELECT class, 1 FROM anomalies WHERE analysis_id = ?1 AND flow = ?2", params![analysis, f], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?
                .unwrap_or((None, 0)),
            (None, Some(i)) => db
                .query_row(
                    "SELECT i.class, (SELECT COUNT(*) FROM anomalies a WHERE a.analysis_id = i.analysis_id AND a.incident = i.incident)
                     FROM incidents i WHERE i.analysis_id = ?1 AND i.incident = ?2",
                    params![analysis, i],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .unwrap_or((None, 0)),
            (None, None) => (None, 0),
        };
        if class.is_none() {
            return Ok(None);
        }
        db.execute(
            "INSERT INTO feedback (analysis_id, flow, incident, verdict, note, created, class, flows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![analysis, flow, if flow.is_some() { None } else { incident }, verdict.name(), note, now(), class, flows],
        )?;
        Ok(Some((db.last_insert_rowid(), flows as u64)))
    }

    /// Every feedback entry, newest first, with the flow it names.
    pub fn feedback(&self) -> Result<Vec<FeedbackRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT f.id, f.analysis_id, f.flow, f.incident, f.verdict, f.note, f.created, f.class, f.flows,
                    (SELECT json FROM anomalies a WHERE a.analysis_id = f.analysis_id AND a.flow = f.flow),
                    (SELECT json FROM incidents i WHERE i.analysis_id = f.analysis_id AND i.incident = f.incident)
             FROM feedback f ORDER BY f.id DESC",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                FeedbackRow {
                    id: r.get(0)?,
                    analysis_id: r.get(1)?,
                    flow_id: r.get(2)?,
                    incident_id: r.get(3)?,
                    verdict: r.get(4)?,
                    note: r.get(5)?,
                    created: r.get(6)?,
                    threat_class: r.get(7)?,
                    flows: r.get(8)?,
                    flow: None,
                    incident: None,
                },
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut v, flow, incident) = row?;
            if let Some(f) = flow {
                v.flow = Some(serde_json::from_str(&f)?);
            }
            if let Some(i) = incident {
                v.incident = Some(serde_json::from_str(&i)?);
            }
            out.push(v);
        }
        Ok(out)
    }

    /// The flows feedback covers, one example each (the latest verdict on a
    /// flow wins, whether given on the flow or on its incident), for training.
    pub fn training_examples(&self) -> Result<Vec<TrainingExample>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT a.analysis_id, a.flow, f.verdict, a.class, a.raw, a.external FROM feedback f
             JOIN anomalies a ON a.analysis_id = f.analysis_id
              AND (a.flow = f.flow OR (f.flow IS NULL AND a.incident = f.incident))
             ORDER BY f.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut latest: std::collections::BTreeMap<(i64, i64), TrainingExample> = Default::default();
        for row in rows {
            let (key, verdict, class, raw, external) = row?;
            let Some(verdict) = Judgement::parse(&verdict) else { continue };
            let external = external.split_whitespace().filter_map(|a| a.parse().ok()).collect();
            latest.insert(key, TrainingExample { verdict, class, raw: raw_floats(&raw), external });
        }
        Ok(latest.into_values().collect())
    }

    /// What a feedback entry judged, for an allowlist suggestion: the
    /// flagged flow's JSON (`false`) or the incident's (`true`).
    pub fn judged_item(&self, feedback: i64) -> Result<Option<(Value, bool)>, StoreError> {
        let db = self.db();
        let row: Option<(Option<String>, Option<String>)> = db
            .query_row(
                "SELECT (SELECT json FROM anomalies a WHERE a.analysis_id = f.analysis_id AND a.flow = f.flow),
                        (SELECT json FROM incidents i WHERE i.analysis_id = f.analysis_id AND i.incident = f.incident)
                 FROM feedback f WHERE f.id = ?1",
                [feedback],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((Some(f), _)) => Some((serde_json::from_str(&f)?, false)),
            Some((None, Some(i))) => Some((serde_json::from_str(&i)?, true)),
            _ => None,
        })
    }

    // ---- allowlist

    /// Adds an entry (one `[[allow]]` table's TOML body, already checked).
    pub fn add_allow(&self, entry: &str, feedback: Option<i64>) -> Result<i64, StoreError> {
        self.insert(
            "INSERT INTO allowlist (entry, created, feedback_id) VALUES (?1, ?2, ?3)",
            params![entry, now(), feedback],
        )
    }

    pub fn remove_allow(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.db().execute("DELETE FROM allowlist WHERE id = ?1", [id])? > 0)
    }

    /// Allowlist entries, oldest first.
    pub fn allow_entries(&self) -> Result<Vec<AllowRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT id, entry, created, feedback_id FROM allowlist ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The whole allowlist as one TOML document.
    pub fn allow_toml(&self) -> Result<String, StoreError> {
        Ok(self.allow_entries()?.iter().map(|(_, e, _, _)| format!("[[allow]]\n{e}\n")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhound_detect::Severity;
    use serde_json::json;

    fn row(flow: u64) -> Anomaly {
        Anomaly {
            flow,
            severity: Severity::Low,
            class: "port_scan".into(),
            score: 0.9,
            suppressed: false,
            json: json!({"flow": flow}).to_string().into_boxed_str(),
            raw: vec![1.0, 2.0],
            external: Vec::new(),
        }
    }

    fn incident(id: u64, members: Vec<u64>) -> IncidentRow {
        IncidentRow {
            id,
            severity: Severity::Medium,
            class: "port_scan".into(),
            score: 0.9,
            json: json!({"incident": id, "flows": members.len()}).to_string().into_boxed_str(),
            members,
        }
    }

    fn flows(s: &Store, id: i64) -> Vec<u64> {
        let (_, items) = s.anomalies(id, None, None, 1000, 0, true).expect("anomalies");
        items.iter().map(|v| v["flow"].as_u64().expect("flow")).collect()
    }

    #[test]
    fn a_live_analysis_grows_its_incidents_and_keeps_what_feedback_names() {
        let s = Store::memory().expect("store");
        let id = s.create_live("live: test", 1).expect("live");
        let batch: Vec<Anomaly> = (0..20).map(row).collect();
        let none = |_| None;
        let missing = s.add_live(id, &batch, &[(incident(1, vec![0, 1, 2]), 0)], &json!({"flows": 20}), none);
        assert_eq!(missing.expect("batch 1"), []);
        // The incident grows and is stored once, its new members assigned;
        // one it names has not come yet (flow 31): said, and given its
        // incident when it comes.
        let batch: Vec<Anomaly> = (20..30).map(row).collect();
        let missing = s.add_live(id, &batch, &[(incident(1, vec![0, 1, 2, 25, 31]), 3)], &json!({"flows": 30}), none);
        assert_eq!(missing.expect("batch 2"), [(31, 1)]);
        s.add_live(id, &[row(31)], &[], &json!({"flows": 31}), |f| (f == 31).then_some(1)).expect("batch 3");
        let inc = s.incidents(id).expect("incidents");
        assert_eq!(inc.len(), 1);
        assert_eq!(inc[0]["flows"], 5);
        let (_, items) = s.anomalies(id, None, None, 1000, 0, true).expect("anomalies");
        let of = |f: u64| items.iter().find(|v| v["flow"] == f).map(|v| v["incident"].clone());
        assert_eq!(of(25), Some(json!(1)));
        assert_eq!(of(31), Some(json!(1)));
        assert_eq!(of(2), Some(json!(1)));
        assert_eq!(of(3), Some(Value::Null));
        assert_eq!(s.analysis(id).expect("analysis").expect("exists").summary.expect("summary")["flows"], 31);
        assert_eq!(flows(&s, id)[..3], [31, 29, 28], "newest first");

        // Feedback on flow 5 and on the incident (flows 0, 1, 2, 25, 31) keeps them.
        s.add_feedback(id, Some(5), None, Judgement::FalsePositive, "").expect("feedback").expect("flow 5 exists");
        s.add_feedback(id, None, Some(1), Judgement::TruePositive, "").expect("feedback").expect("incident 1 exists");
        let gone = s.prune_live(id, 10).expect("prune");
        let mut kept = flows(&s, id);
        kept.sort_unstable();
        assert_eq!(kept, [0, 1, 2, 5, 21, 22, 23, 24, 25, 26, 27, 28, 29, 31]);
        assert_eq!(gone, 31 - kept.len() as u64);
        assert_eq!(s.training_examples().expect("examples").len(), 6, "flow 5 and the incident's 5 flows");
    }

    #[test]
    fn retention_keeps_the_newest_and_what_feedback_names_within_a_byte_budget() {
        let s = Store::memory().expect("store");
        let mut ids = Vec::new();
        for _ in 0..4 {
            let id = s.create_live("live: test", 1).expect("analysis");
            let batch: Vec<Anomaly> = (0..2000).map(row).collect();
            s.add_live(id, &batch, &[(incident(1, vec![0, 1]), 0)], &json!({"flows": 2000}), |_| None).expect("batch");
            s.set_status(id, "done", None).expect("done");
            ids.push(id);
        }
        s.add_feedback(ids[0], Some(7), None, Judgement::FalsePositive, "").expect("feedback").expect("flow 7");
        let full = s.used_bytes().expect("bytes");
        // A budget of about two analyses: the two oldest go, the judged flow stays.
        let gone = s.retain(10, full / 2 + full / 8).expect("retain");
        assert_eq!(gone, vec![ids[0], ids[1]]);
        assert!(s.used_bytes().expect("bytes") <= full / 2 + full / 8);
        assert!(!s.analysis_exists(ids[0]).expect("exists") && s.analysis_exists(ids[2]).expect("exists"));
        assert_eq!(s.training_examples().expect("examples").len(), 1, "the judged flow outlives its analysis");
        // A budget nothing fits: the newest finished analysis still stays.
        assert_eq!(s.retain(10, 1).expect("retain"), vec![ids[2]]);
        assert!(s.analysis_exists(ids[3]).expect("exists"));
        // And a count: keep 1 of one is nothing to do.
        assert!(s.retain(1, u64::MAX).expect("retain").is_empty());
    }
}
