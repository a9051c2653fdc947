//! S3 as a source: `s3://bucket/prefix/` (every object below it), an object's
//! key, or a glob over keys (`s3://b/AWSLogs/*/vpcflowlogs/us-east-1/2024/*`).
//! Objects are listed and streamed with the official SDK, so credentials and
//! region come from the standard AWS chain and `AWS_ENDPOINT_URL` points it at
//! any S3-compatible endpoint (path-style addressing then, as such endpoints
//! expect).

use std::io::Read;
use std::sync::OnceLock;

use crate::input::DayRange;

/// The runtime that drives S3 I/O and the client, made on first use. A
/// multi-thread runtime (one worker): the synchronous reader bridges block
/// on its handle, which only such a runtime drives.
struct S3 {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
}

static CLIENT: OnceLock<Result<S3, String>> = OnceLock::new();

fn s3() -> Result<&'static S3, String> {
    CLIENT
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("flowhound-s3")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the S3 runtime: {e}"))?;
            let conf = rt.block_on(aws_config::defaults(aws_config::BehaviorVersion::latest()).load());
            let mut b = aws_sdk_s3::config::Builder::from(&conf);
            if conf.endpoint_url().is_some() {
                b = b.force_path_style(true);
            }
            Ok(S3 { rt, client: aws_sdk_s3::Client::from_conf(b.build()) })
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn err<E: std::error::Error + 'static>(e: E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

/// `s3://bucket/rest` → (bucket, rest).
pub(crate) fn split(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, key))
}

/// One object: key and size.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub key: String,
    pub size: u64,
}

/// Objects an `s3://` argument names, sorted by key, within `days`:
/// the key itself when it is an object, else everything below the prefix;
/// a key with `*?[` is a glob listed from its literal prefix.
pub(crate) fn list(url: &str, days: &DayRange) -> Result<Vec<Object>, String> {
    let (bucket, key) = split(url).ok_or_else(|| format!("{url}: expected s3://BUCKET/PREFIX"))?;
    let s3 = s3()?;
    let glob_at = key.find(['*', '?', '[']);
    let prefix = glob_at.map_or(key, |i| &key[..i]);
    let pattern = match glob_at {
        Some(_) => Some(glob::Pattern::new(key).map_err(|e| format!("{url}: bad pattern: {e}"))?),
        None => None,
    };
    let mut out = Vec::new();
    s3.rt.block_on(async {
        let mut token = None;
        loop {
            let page = s3
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| format!("{url}: cannot list: {}", err(e)))?;
            for o in page.contents() {
                let Some(k) = o.key() else { continue };
                let wanted = match &pattern {
                    Some(p) => {
                        p.matches_with(k, glob::MatchOptions { require_literal_separator: true, ..Default::default() })
                    }
                    // A prefix that is a whole key names that object; otherwise a "folder".
                    None => {
                        k == prefix
                            || prefix.is_empty()
                            || prefix.ends_with('/')
                            || k.starts_with(&format!("{prefix}/"))
                    }
                };
                if wanted && !k.ends_with('/') && days.contains_key(k) {
                    out.push(Object {
                        key: k.to_string(),
                        size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    });
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok::<(), String>(())
    })?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Streams an object's bytes.
pub(crate) fn open(bucket: &str, key: &str) -> Result<Box<dyn Read + Send>, String> {
    let s3 = s3()?;
    let obj = s3
        .rt
        .block_on(s3.client.get_object().bucket(bucket).key(key).send())
        .map_err(|e| format!("cannot get the object: {}", err(e)))?;
    let body = obj.body.into_async_read();
    Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(body, s3.rt.handle().clone())))
}

/// Copies every object below an `s3://` prefix into `dir`, keys relative to
/// the prefix (a model folder kept in S3 for the Lambda handler); returns
/// the number of files written. Keys that would leave `dir` are refused.
pub fn fetch(url: &str, dir: &std::path::Path) -> Result<usize, String> {
    let (bucket, key) = split(url).ok_or_else(|| format!("{url}: expected s3://BUCKET/PREFIX"))?;
    let prefix = if key.is_empty() || key.ends_with('/') { key.to_string() } else { format!("{key}/") };
    let objects = list(&format!("s3://{bucket}/{prefix}"), &DayRange::default())?;
    if objects.is_empty() {
        return Err(format!("{url}: no objects"));
    }
    for o in &objects {
        let rel = &o.key[prefix.len()..];
        let safe = std::path::Path::new(rel).components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(format!("s3://{bucket}/{}: key does not stay inside the folder", o.key));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut body = open(bucket, &o.key)?;
        let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::io::copy(&mut body, &mut f).map_err(|e| format!("s3://{bucket}/{}: {e}", o.key))?;
    }
    Ok(objects.len())
}
