//! The page's files, embedded in the binary (the dashboard works offline and
//! from one file), and the static report: the same page with its scripts,
//! styles and one analysis inlined.

use serde_json::Value;

pub const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
/// Apache ECharts 5.6.0 from npm, unmodified (assets/vendor/README.md).
const ECHARTS_JS: &str = include_str!("../assets/vendor/echarts.min.js");

/// An asset by its name under `/assets/`, with its MIME type.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "app.js" => Some((APP_JS, "text/javascript; charset=utf-8")),
        "app.css" => Some((APP_CSS, "text/css; charset=utf-8")),
        "echarts.min.js" => Some((ECHARTS_JS, "text/javascript; charset=utf-8")),
        _ => None,
    }
}

/// JSON safe inside a `<script>` element: `<` never appears raw, so neither
/// `</script>` nor `<!--` in a flow field can end or bend the element.
fn script_json(v: &Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

/// A script's text safe inside `<script>`: the only sequence that can end
/// the element early is `</script`, which a minified library may contain in
/// a string.
fn script_text(js: &str) -> String {
    js.replace("</script", "<\\/script")
}

/// The page as one self-contained HTML file showing `data` (see the report
/// mode in app.js: `{"analysis", "anomalies", "incidents"}`).
pub fn report_html(data: &Value) -> String {
    let mut html = INDEX_HTML.to_string();
    html = html.replace(r#"<link rel="stylesheet" href="/assets/app.css">"#, &format!("<style>\n{APP_CSS}\n</style>"));
    html = html.replace(
        r#"<script src="/assets/echarts.min.js"></script>"#,
        &format!("<script>\n{}\n</script>", script_text(ECHARTS_JS)),
    );
    html = html.replace(
        r#"<script src="/assets/app.js"></script>"#,
        &format!(
            "<script type=\"application/json\" id=\"flowhound-report\">{}</script>\n<script>\n{}\n</script>",
            script_json(data),
            script_text(APP_JS)
        ),
    );
    html
}

/// What a static report shows of an analysis: its summary and charts, the
/// `max_anomalies` most severe flagged flows (highest score first) and every
/// incident, in the shapes the API serves.
pub fn report_data(name: &str, a: &crate::Analysis, max_anomalies: usize) -> Value {
    let mut member = std::collections::HashMap::new();
    for i in &a.incidents {
        for f in &i.members {
            member.insert(*f, i.id);
        }
    }
    let mut order: Vec<&crate::analysis::Anomaly> = a.anomalies.iter().collect();
    order.sort_by(|x, y| y.severity.cmp(&x.severity).then(y.score.total_cmp(&x.score)).then(x.flow.cmp(&y.flow)));
    let anomalies: Vec<Value> = order
        .into_iter()
        .take(max_anomalies)
        .map(|x| {
            let mut j = x.json.clone();
            j.insert("incident".into(), member.get(&x.flow).copied().into());
            Value::Object(j)
        })
        .collect();
    serde_json::json!({
        "analysis": {
            "id": 1,
            "name": name,
            "status": "done",
            "model_version": a.summary["model_version"],
            "summary": a.summary,
            "charts": a.charts,
        },
        "anomalies": anomalies,
        "incidents": a.incidents.iter().map(|i| i.json.clone()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_inlines_everything_and_cannot_be_broken_out_of() {
        let data = serde_json::json!({"analysis": {"name": "</script><img src=x onerror=alert(1)>"}});
        let html = report_html(&data);
        assert!(!html.contains("src=\"/assets/"), "no external asset left");
        assert!(!html.contains("href=\"/assets/"), "no external stylesheet left");
        assert!(!html.contains("</script><img"), "a field cannot close the data element");
        assert!(html.contains("\\u003c/script>\\u003cimg src=x onerror=alert(1)>"));
        // One data element, then the app.
        assert_eq!(html.matches("id=\"flowhound-report\"").count(), 1);
        assert!(html.len() > ECHARTS_JS.len());
    }
}
