//! The page's files, embedded in the binary (the dashboard works offline and
//! from one file), and the static report: the same page with its scripts,
//! styles and one analysis inlined.

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
fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// A script's text safe inside `<script>`: the only sequence that can end
/// the element early is `</script`, which a minified library may contain in
/// a string.
fn script_text(js: &str) -> String {
    js.replace("</script", "<\\/script")
}

const CSS_TAG: &str = r#"<link rel="stylesheet" href="/assets/app.css">"#;
const ECHARTS_TAG: &str = r#"<script src="/assets/echarts.min.js"></script>"#;
const APP_TAG: &str = r#"<script src="/assets/app.js"></script>"#;

/// The page as one self-contained HTML file showing `data_json` (see the
/// report mode in app.js: `{"analysis", "anomalies", "incidents"}`).
pub fn report_html(data_json: &str) -> String {
    let data = script_json(data_json);
    let echarts = script_text(ECHARTS_JS);
    let app = script_text(APP_JS);
    let mut out =
        String::with_capacity(INDEX_HTML.len() + APP_CSS.len() + echarts.len() + app.len() + data.len() + 200);
    let mut rest = INDEX_HTML;
    for (tag, with) in [
        (CSS_TAG, format!("<style>\n{APP_CSS}\n</style>")),
        (ECHARTS_TAG, format!("<script>\n{echarts}\n</script>")),
        (
            APP_TAG,
            format!(
                "<script type=\"application/json\" id=\"flowhound-report\">{data}</script>\n<script>\n{app}\n</script>"
            ),
        ),
    ] {
        // The tags are in index.html (a unit test checks): copy up to each,
        // then its inlined replacement.
        let (head, tail) = rest.split_once(tag).unwrap_or((rest, ""));
        out.push_str(head);
        out.push_str(&with);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// What a static report shows of an analysis, as JSON text: its summary and
/// charts, the `max_anomalies` most severe flagged flows (highest score
/// first) and every incident, in the shapes the API serves. Composed from
/// the already serialized flows: parsing 100k of them back into trees would
/// cost gigabytes.
pub fn report_data(name: &str, a: &crate::Analysis, max_anomalies: usize) -> String {
    let member = a.incident_of();
    let mut order: Vec<&crate::analysis::Anomaly> = a.anomalies.iter().collect();
    order.sort_by(|x, y| y.severity.cmp(&x.severity).then(y.score.total_cmp(&x.score)).then(x.flow.cmp(&y.flow)));
    let analysis = serde_json::json!({
        "id": 1,
        "name": name,
        "status": "done",
        "model_version": a.summary["model_version"],
        "summary": a.summary,
        "charts": a.charts,
    });
    let mut out = format!("{{\"analysis\":{analysis},\"anomalies\":[");
    for (k, x) in order.into_iter().take(max_anomalies).enumerate() {
        if k > 0 {
            out.push(',');
        }
        // Every flow's JSON is an object: add its incident before the `}`.
        let body = x.json.strip_suffix('}').unwrap_or(&x.json);
        let incident = member.get(&x.flow).map_or("null".to_string(), u64::to_string);
        out.push_str(body);
        out.push_str(&format!(",\"incident\":{incident}}}"));
    }
    out.push_str("],\"incidents\":[");
    for (k, i) in a.incidents.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str(&i.json);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_inlines_everything_and_cannot_be_broken_out_of() {
        for tag in [CSS_TAG, ECHARTS_TAG, APP_TAG] {
            assert_eq!(INDEX_HTML.matches(tag).count(), 1, "{tag} in index.html once");
        }
        let data = serde_json::json!({"analysis": {"name": "</script><img src=x onerror=alert(1)>"}});
        let html = report_html(&data.to_string());
        assert!(!html.contains("src=\"/assets/"), "no external asset left");
        assert!(!html.contains("href=\"/assets/"), "no external stylesheet left");
        assert!(!html.contains("</script><img"), "a field cannot close the data element");
        assert!(html.contains("\\u003c/script>\\u003cimg src=x onerror=alert(1)>"));
        // One data element, then the app.
        assert_eq!(html.matches("id=\"flowhound-report\"").count(), 1);
        assert!(html.len() > ECHARTS_JS.len());
    }
}
