// flowhound dashboard. Every value that comes from a flow record is
// attacker-controlled: it reaches the page only through textContent (el()),
// never innerHTML, and charts draw tooltips as canvas text (renderMode
// 'richText'), not HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const reportEl = document.getElementById('flowhound-report');
  const REPORT = reportEl ? JSON.parse(reportEl.textContent) : null;
  const SEV_RANK = { none: 0, low: 1, medium: 2, high: 3 };
  const PAGE = 100;
  const state = { id: null, offset: 0, total: 0, rows: [], incidents: [], analysis: null, sort: {}, charts: [], poll: null, detail: null, stream: null, fresh: new Set(), reload: null };

  function el(tag, opts, kids) {
    const e = document.createElement(tag);
    if (opts) {
      if (opts.cls) e.className = opts.cls;
      if (opts.text !== undefined && opts.text !== null) e.textContent = String(opts.text);
      if (opts.title) e.title = String(opts.title);
      if (opts.data) for (const k in opts.data) e.dataset[k] = opts.data[k];
    }
    (kids || []).forEach((k) => k && e.appendChild(k));
    return e;
  }
  const clear = (n) => { while (n.firstChild) n.removeChild(n.firstChild); return n; };
  const fmt = (v) => (v === null || v === undefined ? '–' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v));
  const big = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
  const shortTime = (t) => (t ? String(t).replace('T', ' ').replace(/(\.\d+)?Z$/, '').slice(0, 19) : '–');
  const sevBadge = (s) => el('span', { cls: 'sev ' + (SEV_RANK[s] !== undefined ? s : 'none'), text: s || 'none' });

  // ---- API

  function token() { return sessionStorage.getItem('flowhound-token') || ''; }
  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    if (token()) headers.Authorization = 'Bearer ' + token();
    const res = await fetch(path, Object.assign({}, opts, { headers }));
    if (res.status === 401) { showLogin('Sign in to continue.'); throw new Error('unauthorized'); }
    const type = res.headers.get('content-type') || '';
    const body = type.includes('json') ? await res.json() : await res.text();
    if (!res.ok) throw new Error((body && body.error) || res.statusText);
    return body;
  }

  function showLogin(msg) {
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = state.triedToken ? 'That token was not accepted.' : msg || '';
  }

  // ---- analyses list and upload

  async function refreshList() {
    const list = await api('/api/analyses');
    const ul = clear($('analyses'));
    let busy = false;
    list.forEach((a) => {
      busy = busy || a.status === 'queued' || a.status === 'running' || a.status === 'live';
      const counts = big(a.flows) + ' flows · ' + big(a.anomalies) + ' anomalies · model v' + a.model_version;
      const sub = a.status === 'done' ? counts
        : a.status === 'live' ? '● live · ' + counts
          : a.status === 'stopped' ? 'stopped · ' + counts
            : a.status + (a.status === 'running' ? ' ' + Math.round(a.progress * 100) + ' %' : '');
      const li = el('li', { data: { id: a.id } }, [el('span', { text: '#' + a.id + ' ' + a.name }), el('span', { cls: 'small', text: sub })]);
      if (a.id === state.id) li.classList.add('sel');
      li.addEventListener('click', () => select(a.id));
      ul.appendChild(li);
    });
    if (busy) schedule();
    return list;
  }

  function schedule() {
    if (state.poll) return;
    state.poll = setTimeout(async () => {
      state.poll = null;
      await refreshList().catch(() => {});
      if (state.id && state.analysis && (state.analysis.status === 'queued' || state.analysis.status === 'running')) await select(state.id, true).catch(() => {});
    }, 1000);
  }

  function upload(file) {
    if (!file) return;
    const form = new FormData();
    form.append('file', file);
    const labels = $('labels-file').files[0];
    if (labels) form.append('labels', labels);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/analyses');
    if (token()) xhr.setRequestHeader('Authorization', 'Bearer ' + token());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) $('upload-status').textContent = 'uploading ' + Math.round((100 * e.loaded) / e.total) + ' %'; };
    xhr.onload = async () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) {
        $('upload-status').textContent = 'uploaded: analysis #' + body.id + ' queued';
        $('labels-file').value = '';
        await refreshList();
        select(body.id);
      } else if (xhr.status === 401) {
        showLogin('Sign in to upload.');
      } else {
        $('upload-status').textContent = 'upload failed: ' + (body.error || xhr.statusText);
      }
    };
    xhr.onerror = () => { $('upload-status').textContent = 'upload failed: network error'; };
    xhr.send(form);
  }

  // ---- one analysis

  async function select(id, quiet) {
    state.id = id;
    document.querySelectorAll('#analyses li').forEach((li) => li.classList.toggle('sel', Number(li.dataset.id) === id));
    const a = REPORT ? REPORT.analysis : await api('/api/analyses/' + id);
    state.analysis = a;
    $('empty').hidden = true;
    $('analysis').hidden = false;
    $('analysis-title').textContent = '#' + a.id + ' ' + a.name + ' · model v' + a.model_version + (a.status === 'live' ? ' · ● live' : a.status === 'stopped' ? ' · stopped' : '');
    if (a.status === 'live') startStream(id); else stopStream();
    $('analysis-error').textContent = a.status === 'failed' ? 'Failed: ' + (a.error || 'unknown error') : '';
    $('delete-analysis').hidden = !!REPORT || ['queued', 'running', 'live'].includes(a.status);
    const running = a.status === 'queued' || a.status === 'running';
    $('analysis-progress').hidden = !running;
    if (running) {
      $('progress-bar').style.width = Math.round(a.progress * 100) + '%';
      $('progress-text').textContent = a.status + ' ' + Math.round(a.progress * 100) + ' %';
      clear($('cards'));
      schedule();
      return;
    }
    if (!hasFindings(a)) { clear($('cards')); return; }
    if (quiet && state.rendered === id) return;
    state.rendered = id;
    renderCards(a.summary);
    fillClassFilter(a.summary);
    state.offset = 0;
    await loadAnomalies();
    await loadIncidents();
    renderTruth(a.summary);
    if (!$('tab-charts').hidden) renderCharts();
  }

  function card(k, v, cls) {
    return el('div', { cls: 'card ' + (cls || '') }, [el('div', { cls: 'v', text: v }), el('div', { cls: 'k', text: k })]);
  }

  function renderCards(s) {
    const c = clear($('cards'));
    c.appendChild(card('flows', big(s.flows)));
    c.appendChild(card('anomalies', big(s.anomalies) + (s.flows ? ' (' + ((100 * s.anomalies) / s.flows).toFixed(2) + ' %)' : '')));
    ['high', 'medium', 'low'].forEach((k) => c.appendChild(card(k, big(s.by_severity[k]), k)));
    c.appendChild(card('incidents', big(s.incidents.total)));
    if (s.incidents.digest) c.appendChild(card('single low flows (digest, in Flows)', big(s.incidents.digest)));
    if (s.suppressed) c.appendChild(card('suppressed (allowlist)', big(s.suppressed)));
    const classes = Object.entries(s.by_class || {}).sort((a, b) => b[1] - a[1]).slice(0, 4);
    classes.forEach(([k, v]) => c.appendChild(card(k, big(v))));
    if (s.time_span) c.appendChild(card('time span', shortTime(s.time_span.first) + ' → ' + shortTime(s.time_span.last)));
    if (s.rejected_lines) c.appendChild(card('rejected lines', big(s.rejected_lines)));
    if (s.order_warning) c.appendChild(el('div', { cls: 'card warn', title: s.order_warning }, [el('div', { cls: 'v', text: 'not in time order' }), el('div', { cls: 'k', text: s.order_warning })]));
  }

  function fillClassFilter(s) {
    const sel = clear($('f-class'));
    sel.appendChild(el('option', { text: 'all' })).value = '';
    Object.keys(s.by_class || {}).sort().forEach((k) => { sel.appendChild(el('option', { text: k })).value = k; });
  }

  async function loadAnomalies() {
    const sev = $('f-severity').value;
    const cls = $('f-class').value;
    let page;
    if (REPORT) {
      const all = REPORT.anomalies.filter((r) => (!sev || SEV_RANK[r.severity] >= SEV_RANK[sev]) && (!cls || r.threat_class === cls));
      page = { total: all.length, items: all.slice(state.offset, state.offset + PAGE) };
    } else {
      const q = new URLSearchParams({ limit: PAGE, offset: state.offset });
      // A live analysis reads like a feed: newest first.
      if (isLive(state.analysis)) q.set('order', 'newest');
      if (sev) q.set('severity', sev);
      if (cls) q.set('class', cls);
      page = await api('/api/analyses/' + state.id + '/anomalies?' + q);
    }
    state.total = page.total;
    state.rows = page.items;
    drawCount();
    drawAnomalies();
  }

  function drawCount() {
    $('anomaly-count').textContent = state.total
      ? (state.offset + 1) + '–' + Math.min(state.offset + state.rows.length, state.total) + ' of ' + big(state.total)
      : 'no anomalies';
    $('prev').disabled = state.offset === 0;
    $('next').disabled = state.offset + PAGE >= state.total;
  }

  // ---- the live analysis of `serve --watch`: server-sent events read with
  // fetch (EventSource cannot send the bearer token).

  const hasFindings = (a) => a && (a.status === 'done' || a.status === 'live' || a.status === 'stopped');
  const isLive = (a) => a && (a.status === 'live' || a.status === 'stopped');

  function stopStream() {
    if (state.stream) state.stream.ctl.abort();
    state.stream = null;
  }

  async function startStream(id) {
    if (REPORT || (state.stream && state.stream.id === id)) return;
    stopStream();
    const ctl = new AbortController();
    const me = { id, ctl };
    state.stream = me;
    try {
      const res = await fetch('/api/live/events', { headers: token() ? { Authorization: 'Bearer ' + token() } : {}, signal: ctl.signal });
      if (!res.ok || !res.body) throw new Error(res.statusText);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let kind = 'message', data = '';
          block.split('\n').forEach((l) => {
            if (l.startsWith('event:')) kind = l.slice(6).trim();
            else if (l.startsWith('data:')) data += l.slice(5).replace(/^ /, '');
          });
          if (data && state.stream === me) onLive(me, kind, JSON.parse(data));
        }
      }
    } catch (e) { /* aborted, or the server went away */ }
    if (state.stream === me) {
      state.stream = null;
      // Dropped while still live: look again shortly (select reconnects).
      setTimeout(() => { if (state.id === id && !state.stream) select(id).catch(() => {}); }, 2000);
    }
  }

  function onLive(me, kind, d) {
    if (state.id !== me.id) return;
    if (kind === 'hello' && d.analysis_id !== me.id) { stopStream(); return; }
    if (kind === 'anomaly') {
      const sev = $('f-severity').value, cls = $('f-class').value;
      if ((sev && SEV_RANK[d.severity] < SEV_RANK[sev]) || (cls && d.threat_class !== cls)) return;
      state.total += 1;
      if (state.offset !== 0) { drawCount(); return; }
      state.fresh.add(d.flow);
      setTimeout(() => state.fresh.delete(d.flow), 3000);
      state.rows.unshift(d);
      if (state.rows.length > PAGE) state.rows.pop();
      drawCount();
      drawAnomalies();
    } else if (kind === 'incident') {
      const at = state.incidents.findIndex((i) => i.incident === d.incident);
      if (at >= 0) { d.feedback = state.incidents[at].feedback; state.incidents[at] = d; } else state.incidents.push(d);
      drawIncidents();
    } else if (kind === 'summary') {
      state.analysis.summary = d;
      renderCards(d);
      // Only the newest flows of a batch are pushed: the first page is read
      // again (at most twice a second) so that it and its count are exact.
      if (state.offset === 0 && !state.reload) state.reload = setTimeout(() => { state.reload = null; loadAnomalies(); }, 500);
      const have = [...$('f-class').options].map((o) => o.value).filter(Boolean).sort().join();
      if (have !== Object.keys(d.by_class || {}).sort().join()) { const keep = $('f-class').value; fillClassFilter(d); $('f-class').value = keep; }
    } else if (kind === 'lagged') {
      loadAnomalies();
      loadIncidents();
    } else if (kind === 'end') {
      state.analysis.status = d.status;
      stopStream();
      select(me.id).catch(() => {});
      refreshList().catch(() => {});
    }
  }

  function sortRows(rows, table) {
    const s = state.sort[table];
    if (!s) return rows;
    const key = (r) => (s.key === 'severity' ? SEV_RANK[r.severity] : r[s.key]);
    return rows.slice().sort((a, b) => {
      const x = key(a), y = key(b);
      const c = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
      return s.asc ? c : -c;
    });
  }

  function feedbackCell(v) {
    return v ? el('span', { cls: 'fbv ' + v, text: v.replace('_', ' ') }) : el('span', { cls: 'tag', text: '' });
  }

  function drawAnomalies() {
    const tb = clear(document.querySelector('#anomaly-table tbody'));
    sortRows(state.rows, 'anomaly').forEach((r) => {
      const tr = el('tr', { cls: state.fresh.has(r.flow) ? 'fresh' : '', data: { flow: r.flow } }, [
        el('td', { text: shortTime(r.time) }),
        el('td', null, [sevBadge(r.severity)]),
        el('td', { text: fmt(r.score) }),
        el('td', { text: r.threat_class || '' }),
        el('td', { text: (r.src || '–') + (r.src_port !== null && r.src_port !== undefined ? ':' + r.src_port : '') }),
        el('td', { text: r.dst || '–' }),
        el('td', { text: fmt(r.dst_port) }),
        el('td', { cls: 'reason', text: (r.suppressed ? '[suppressed] ' : '') + (r.reason || '') }),
        el('td', null, [feedbackCell(r.feedback)]),
      ]);
      tr.addEventListener('click', () => openFlow(r));
      tb.appendChild(tr);
    });
  }

  async function loadReview() {
    if (REPORT || !state.id) return;
    const q = await api('/api/analyses/' + state.id + '/review?n=20');
    const tb = clear(document.querySelector('#review-table tbody'));
    q.items.forEach((r) => {
      const tr = el('tr', { data: { flow: r.flow } }, [
        el('td', { text: r.review }),
        el('td', null, [sevBadge(r.severity)]),
        el('td', { text: fmt(r.score) }),
        el('td', { text: r.threat_class || '' }),
        el('td', { text: r.src || '–' }),
        el('td', { text: r.dst || '–' }),
        el('td', { text: fmt(r.dst_port) }),
        el('td', { cls: 'reason', text: r.reason || '' }),
        el('td', null, [feedbackCell(r.feedback)]),
      ]);
      tr.addEventListener('click', () => openFlow(r));
      tb.appendChild(tr);
    });
  }

  async function loadIncidents() {
    state.incidents = REPORT ? REPORT.incidents : await api('/api/analyses/' + state.id + '/incidents');
    drawIncidents();
  }

  // Worst first until the analyst sorts: severity, then a named threat
  // before a weak one (unknown_ip, other_anomaly), then more flows.
  const WEAK = { unknown_ip: 1, other_anomaly: 1 };
  function worstFirst(rows) {
    return rows.slice().sort((a, b) =>
      (SEV_RANK[b.severity] - SEV_RANK[a.severity]) ||
      ((WEAK[a.threat_class] ? 1 : 0) - (WEAK[b.threat_class] ? 1 : 0)) ||
      (b.flows - a.flows) || (a.incident - b.incident));
  }

  function drawIncidents() {
    const tb = clear(document.querySelector('#incident-table tbody'));
    // Single low-severity flows no rule names are the digest: counted here,
    // listed on demand, never in the way of the incidents.
    const digest = state.incidents.filter((i) => i.digest);
    const shown = state.showDigest ? state.incidents : state.incidents.filter((i) => !i.digest);
    $('digest-count').textContent = digest.length
      ? 'Digest: ' + big(digest.length) + ' single low-severity flows no rule names' + (state.showDigest ? ' (listed above)' : '')
      : '';
    $('digest-toggle').hidden = !digest.length;
    $('digest-toggle').textContent = state.showDigest ? 'hide' : 'show';
    (state.sort.incident ? sortRows(shown, 'incident') : worstFirst(shown)).forEach((i) => {
      const tr = el('tr', null, [
        el('td', { text: i.incident }),
        el('td', null, [sevBadge(i.severity)]),
        el('td', { text: i.threat_class + (i.threat_variant ? ' / ' + i.threat_variant : '') }),
        el('td', { text: (i.actor || '–') + ' (' + i.actor_role + ')' }),
        el('td', { text: big(i.flows) }),
        el('td', { text: big(i.distinct_targets) }),
        el('td', { text: shortTime(i.first_seen) }),
        el('td', { cls: 'reason', text: i.reason }),
        el('td', null, [feedbackCell(i.feedback)]),
      ]);
      tr.addEventListener('click', () => openIncident(i));
      tb.appendChild(tr);
    });
  }

  // ---- detail panel

  function fields(pairs) {
    const dl = clear($('detail-fields'));
    pairs.forEach(([k, v]) => {
      if (v === null || v === undefined || v === '') return;
      dl.appendChild(el('dt', { text: k }));
      dl.appendChild(el('dd', { text: typeof v === 'object' ? JSON.stringify(v) : v }));
    });
  }

  function explanation(list) {
    const tb = clear(document.querySelector('#detail-explanation tbody'));
    (list || []).forEach((c) => {
      const share = el('span', { cls: 'share' });
      share.style.width = Math.max(2, Math.round(c.contribution * 120)) + 'px';
      tb.appendChild(el('tr', null, [
        el('td', { text: c.feature }), el('td', { text: fmt(c.value) }), el('td', { text: fmt(c.baseline) }),
        el('td', { text: fmt(c.z) }), el('td', null, [share, el('span', { text: Math.round(c.contribution * 100) + ' %' })]),
      ]));
    });
  }

  function flowRows(list) {
    const tb = clear(document.querySelector('#detail-flows tbody'));
    list.forEach((f) => tb.appendChild(el('tr', null, [
      el('td', { text: f.flow }), el('td', { text: shortTime(f.time) }),
      el('td', { text: (f.src || '–') + (f.src_port !== null && f.src_port !== undefined ? ':' + f.src_port : '') }),
      el('td', { text: f.dst || '–' }), el('td', { text: fmt(f.dst_port) }), el('td', { text: fmt(f.score) }),
    ])));
  }

  function openPanel(kind, item) {
    state.detail = { kind, item };
    $('detail').hidden = false;
    $('fb-note').value = '';
    $('fb-status').textContent = item.feedback ? 'Marked ' + item.feedback.replace('_', ' ') + '.' : '';
    $('fb-suggestion').hidden = true;
    $('feedback-box').hidden = !!REPORT;
  }

  function openFlow(r) {
    openPanel('flow', r);
    $('detail-title').textContent = 'Flow ' + r.flow + ' · ' + (r.threat_class || 'anomaly');
    $('detail-reason').textContent = r.reason || '';
    const d = r.details || {};
    const models = Object.entries(r.models || {}).map(([k, m]) => k + ' ' + fmt(m.score) + (m.flagged ? ' ⚑' : '')).join(', ');
    fields([
      ['severity', r.severity + ' (' + r.votes + ' votes, confidence ' + fmt(r.confidence) + ')'], ['score', fmt(r.score)],
      ['time', r.time], ['source', r.src + (r.src_port !== null && r.src_port !== undefined ? ':' + r.src_port : '')],
      ['destination', r.dst + (r.dst_port !== null && r.dst_port !== undefined ? ':' + r.dst_port : '')], ['protocol', r.protocol],
      ['variant', r.threat_variant], ['ATT&CK', r.attack_technique], ['models', models], ['bytes', d.bytes], ['packets', d.packets],
      ['duration (s)', d.duration_s], ['action', d.action], ['TCP flags', d.tcp_flags], ['state', d.state], ['service', d.service],
      ['interface', d.interface_id], ['account', d.account_id], ['VPC', d.vpc_id], ['instance', d.instance_id],
      ['suppressed', r.suppressed ? r.suppressed_reason || 'yes' : null], ['incident', r.incident],
      ['ground truth', r.label ? r.label + (r.category ? ' / ' + r.category : '') : null], ['predicted category', r.predicted_category],
    ]);
    explanation(r.explanation);
    $('detail-flows-title').textContent = 'Flow';
    flowRows([r]);
  }

  function openIncident(i) {
    openPanel('incident', i);
    $('detail-title').textContent = 'Incident ' + i.incident + ' · ' + i.threat_class;
    $('detail-reason').textContent = i.reason || '';
    const absorbed = Object.entries(i.absorbed || {}).map(([k, v]) => k + ' ' + v).join(', ');
    fields([
      ['severity', i.severity + ' (confidence ' + fmt(i.confidence) + ')'], ['max score', fmt(i.score)],
      ['actor', (i.actor || '–') + ' (' + i.actor_role + ')'], ['variant', i.threat_variant], ['ATT&CK', i.attack_technique],
      ['first seen', i.first_seen], ['last seen', i.last_seen], ['flows', big(i.flows)], ['distinct targets', big(i.distinct_targets)],
      ['distinct ports', big(i.distinct_ports)], ['bytes', big(i.bytes)], ['suppressed flows', i.suppressed_flows || null], ['absorbed', absorbed || null],
    ]);
    explanation(i.explanation);
    $('detail-flows-title').textContent = 'Sample flows';
    flowRows(i.samples || []);
  }

  async function giveFeedback(verdict) {
    const d = state.detail;
    if (!d) return;
    const body = { analysis_id: state.id, verdict, note: $('fb-note').value };
    if (d.kind === 'flow') body.flow_id = d.item.flow; else body.incident_id = d.item.incident;
    try {
      const res = await api('/api/feedback', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      d.item.feedback = verdict;
      $('fb-status').textContent = 'Marked ' + verdict.replace('_', ' ') + ' (' + res.flows + ' flow' + (res.flows === 1 ? '' : 's') + '). Retrain to let the model learn from it.';
      if (res.allowlist_suggestion) {
        state.suggestion = { entry: res.allowlist_suggestion, feedback_id: res.id };
        $('fb-suggestion-text').textContent = Object.entries(res.allowlist_suggestion).map(([k, v]) => k + ' = ' + JSON.stringify(v)).join('\n');
        $('fb-suggestion').hidden = false;
      }
      drawAnomalies();
      drawIncidents();
      loadFeedback();
    } catch (e) {
      $('fb-status').textContent = 'Could not save: ' + e.message;
    }
  }

  async function addSuggestion() {
    if (!state.suggestion) return;
    try {
      await api('/api/allowlist', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(state.suggestion) });
      $('fb-status').textContent = 'Added to the allowlist: matching flows are marked suppressed in the next analyses.';
      $('fb-suggestion').hidden = true;
      loadFeedback();
    } catch (e) {
      $('fb-status').textContent = 'Could not add: ' + e.message;
    }
  }

  // ---- feedback, allowlist, models

  async function loadFeedback() {
    if (REPORT) return;
    const fb = await api('/api/feedback');
    const tb = clear(document.querySelector('#feedback-table tbody'));
    fb.forEach((f) => tb.appendChild(el('tr', null, [
      el('td', { text: f.id }), el('td', { text: '#' + f.analysis_id }),
      el('td', { text: f.flow_id !== null ? 'flow ' + f.flow_id : 'incident ' + f.incident_id }),
      el('td', null, [feedbackCell(f.verdict)]), el('td', { text: f.threat_class || '' }), el('td', { text: f.flows }),
      el('td', { text: f.note }), el('td', { text: shortTime(f.created) }),
    ])));
    const allow = await api('/api/allowlist');
    const ab = clear(document.querySelector('#allow-table tbody'));
    allow.forEach((a) => {
      const rm = el('button', { text: 'remove' });
      rm.addEventListener('click', async () => { await api('/api/allowlist/' + a.id, { method: 'DELETE' }); loadFeedback(); });
      ab.appendChild(el('tr', null, [el('td', { text: a.id }), el('td', null, [el('pre', { text: a.entry })]), el('td', { text: shortTime(a.created) }), el('td', null, [rm])]));
    });
  }

  async function loadModels() {
    const m = await api('/api/models');
    $('model-version').textContent = 'model v' + m.current;
    const box = clear($('models'));
    m.versions.forEach((v) => box.appendChild(el('div', { cls: 'small' + (v.version === m.current ? ' sel' : ''), text: 'v' + v.version + (v.version === m.current ? ' (in use)' : '') + ' · ' + v.note + ' · ' + shortTime(v.created) })));
  }

  async function retrain() {
    $('retrain').disabled = true;
    $('retrain-status').textContent = 'retraining…';
    try {
      const r = await api('/api/models/retrain', { method: 'POST' });
      // The version list first, so that when the status says "trained" the header already names it.
      await loadModels();
      $('retrain-status').textContent = 'model v' + r.version + ' trained with ' + r.feedback.benign + ' false and ' + r.feedback.attacks + ' true positives; new uploads use it.';
    } catch (e) {
      $('retrain-status').textContent = 'retrain failed: ' + e.message;
    } finally {
      $('retrain').disabled = false;
    }
  }

  async function download(path, name) {
    const res = await fetch(path, { headers: token() ? { Authorization: 'Bearer ' + token() } : {} });
    if (!res.ok) return;
    const url = URL.createObjectURL(await res.blob());
    const a = el('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    URL.revokeObjectURL(url);
  }

  // ---- charts

  const TEXT = '#d9e1e8', MUTED = '#8a97a5', GRID = '#2a333d';
  const SEVC = { none: '#4ea1ff', low: '#e8d44d', medium: '#f5a524', high: '#e5484d' };
  function base(extra) {
    return Object.assign({
      backgroundColor: 'transparent', textStyle: { color: TEXT },
      tooltip: { trigger: 'axis', renderMode: 'richText', confine: true },
      grid: { left: 50, right: 30, top: 30, bottom: 45 },
      legend: { textStyle: { color: MUTED }, top: 0 },
    }, extra);
  }
  const axis = (o) => Object.assign({ axisLine: { lineStyle: { color: GRID } }, axisLabel: { color: MUTED }, splitLine: { lineStyle: { color: GRID } } }, o);

  function chart(id, option) {
    const node = $(id);
    if (!node || typeof echarts === 'undefined') return;
    const old = echarts.getInstanceByDom(node);
    if (old) old.dispose();
    const c = echarts.init(node, null, { renderer: 'canvas' });
    c.setOption(option);
    state.charts.push(c);
    return c;
  }

  function renderCharts() {
    const a = state.analysis;
    if (!a || !a.charts) return;
    const ch = a.charts;
    state.charts.forEach((c) => c.dispose());
    state.charts = [];
    const tl = ch.timeline;
    chart('c-timeline', base({
      xAxis: axis({ type: 'time' }),
      yAxis: [axis({ type: 'value', name: 'score', min: 0, max: 2 }), axis({ type: 'value', name: 'anomalies', splitLine: { show: false } })],
      dataZoom: [{ type: 'inside' }, { type: 'slider', height: 16, bottom: 4 }],
      grid: { left: 50, right: 60, top: 30, bottom: 50 },
      series: [
        { name: 'max score', type: 'line', showSymbol: false, data: tl.bins.map((b) => [b.t * 1000, b.max_score]),
          markLine: { symbol: 'none', lineStyle: { type: 'dashed', color: SEVC.high }, data: [{ yAxis: tl.threshold, name: 'threshold' }], label: { color: MUTED } } },
        { name: 'mean score', type: 'line', showSymbol: false, data: tl.bins.map((b) => [b.t * 1000, b.mean_score]) },
        { name: 'anomalies', type: 'bar', yAxisIndex: 1, data: tl.bins.map((b) => [b.t * 1000, b.anomalies]), itemStyle: { color: SEVC.medium } },
      ],
    }));
    const d = ch.distributions;
    ['bytes', 'packets'].forEach((k) => chart('c-' + k, base({
      xAxis: axis({ type: 'category', data: d.log_bins }), yAxis: axis({ type: 'log', name: 'flows', min: 1 }),
      series: [{ name: 'normal', type: 'bar', data: d[k].normal.map((v) => v || null) }, { name: 'anomalous', type: 'bar', data: d[k].anomalous.map((v) => v || null), itemStyle: { color: SEVC.high } }],
    })));
    chart('c-ports', base({
      xAxis: axis({ type: 'category', data: d.ports.map((p) => String(p.port)), axisLabel: { color: MUTED, rotate: 45 } }), yAxis: axis({ type: 'log', min: 1 }),
      series: [{ name: 'normal', type: 'bar', stack: 'p', data: d.ports.map((p) => p.normal || null) }, { name: 'anomalous', type: 'bar', stack: 'p', data: d.ports.map((p) => p.anomalous || null), itemStyle: { color: SEVC.high } }],
    }));
    chart('c-protocols', base({
      xAxis: axis({ type: 'category', data: d.protocols.map((p) => p.protocol) }), yAxis: axis({ type: 'log', min: 1 }),
      series: [{ name: 'normal', type: 'bar', data: d.protocols.map((p) => p.normal || null) }, { name: 'anomalous', type: 'bar', data: d.protocols.map((p) => p.anomalous || null), itemStyle: { color: SEVC.high } }],
    }));
    const h = ch.heatmap;
    const hmax = Math.max(1, ...h.cells.map((c) => c[2]));
    chart('c-heatmap', base({
      tooltip: { renderMode: 'richText', formatter: (p) => 'hour ' + p.value[0] + ', port ' + h.ports[p.value[1]] + ': ' + p.value[2] + ' flows, ' + p.value[3] + ' anomalies' },
      grid: { left: 70, right: 20, top: 10, bottom: 60 },
      xAxis: axis({ type: 'category', data: [...Array(24).keys()].map(String), name: 'hour (UTC)', nameLocation: 'middle', nameGap: 24 }), yAxis: axis({ type: 'category', data: h.ports.map(String) }),
      visualMap: { min: 0, max: hmax, type: 'continuous', orient: 'horizontal', left: 'center', bottom: 0, textStyle: { color: MUTED }, inRange: { color: ['#16212c', '#4ea1ff', '#e5484d'] } },
      series: [{ type: 'heatmap', data: h.cells }],
    }));
    const pts = ch.pca.points || [];
    const bySev = (s) => pts.filter((p) => p[2] === s).map((p) => [p[0], p[1], p[3]]);
    chart('c-pca', base({
      tooltip: { trigger: 'item', renderMode: 'richText', formatter: (p) => 'flow ' + p.value[2] + ' (' + p.seriesName + ')' },
      xAxis: axis({ type: 'value', name: 'PC1' + (ch.pca.explained ? ' ' + Math.round(ch.pca.explained[0] * 100) + ' %' : ''), nameLocation: 'middle', nameGap: 26 }),
      yAxis: axis({ type: 'value', name: 'PC2' + (ch.pca.explained ? ' ' + Math.round(ch.pca.explained[1] * 100) + ' %' : '') }),
      series: ['none', 'low', 'medium', 'high'].map((s) => ({ name: s === 'none' ? 'normal' : s, type: 'scatter', symbolSize: 4, data: bySev(s), itemStyle: { color: SEVC[s], opacity: 0.7 } })),
    }));
    const co = ch.correlation;
    chart('c-corr', base({
      tooltip: { renderMode: 'richText', formatter: (p) => co.features[p.value[0]] + ' × ' + co.features[p.value[1]] + ': ' + p.value[2] },
      grid: { left: 150, right: 10, top: 10, bottom: 120 },
      xAxis: axis({ type: 'category', data: co.features, axisLabel: { color: MUTED, rotate: 60, fontSize: 10 } }),
      yAxis: axis({ type: 'category', data: co.features, axisLabel: { color: MUTED, fontSize: 10 } }),
      visualMap: { min: -1, max: 1, show: false, inRange: { color: ['#4ea1ff', '#16212c', '#e5484d'] } },
      series: [{ type: 'heatmap', data: co.matrix }],
    }));
    const m = ch.models;
    chart('c-models', base({
      xAxis: axis({ type: 'category', data: m.names.concat(m.votes.map((v) => v[0] + ' votes')) }), yAxis: axis({ type: 'log', min: 1 }),
      series: [{ name: 'flagged', type: 'bar', data: m.flagged.map((v) => v || null).concat(m.votes.map(() => null)) },
        { name: 'flows with N votes', type: 'bar', data: m.names.map(() => null).concat(m.votes.map((v) => v[1] || null)), itemStyle: { color: SEVC.medium } }],
    }));
    const agree = [];
    m.agreement.forEach((row, i) => row.forEach((v, j) => agree.push([i, j, v])));
    chart('c-agree', base({
      tooltip: { renderMode: 'richText', formatter: (p) => m.names[p.value[0]] + ' & ' + m.names[p.value[1]] + ': ' + p.value[2] },
      grid: { left: 90, right: 10, top: 10, bottom: 40 },
      xAxis: axis({ type: 'category', data: m.names }), yAxis: axis({ type: 'category', data: m.names }),
      visualMap: { min: 0, max: Math.max(1, ...agree.map((v) => v[2])), show: false, inRange: { color: ['#16212c', '#4ea1ff'] } },
      series: [{ type: 'heatmap', data: agree, label: { show: true, color: TEXT } }],
    }));
  }

  function renderTruth(s) {
    const g = s.ground_truth;
    $('truth-none').hidden = !!g;
    const c = clear($('truth-metrics'));
    if (!g) return;
    const q = g.quality;
    [['labeled flows', big(g.labeled)], ['malicious', big(g.malicious)], ['ROC-AUC', fmt(q.roc_auc)], ['PR-AUC', fmt(q.pr_auc)],
      ['precision', fmt(q.precision)], ['recall', fmt(q.recall)], ['F1', fmt(q.f1)], ['false-positive rate', fmt(q.fpr)]]
      .forEach(([k, v]) => c.appendChild(card(k, v)));
    if ($('tab-truth').hidden) return;
    // Every detector's curve beside the ensemble's (older analyses: the ensemble's alone).
    const scorers = g.detectors || [{ name: 'ensemble', roc: g.roc, pr: g.pr }];
    const line = (id, key, xn, yn) => chart(id, base({
      tooltip: { trigger: 'axis', renderMode: 'richText' },
      grid: { left: 56, right: 16, top: 36, bottom: 44 },
      xAxis: axis({ type: 'value', min: 0, max: 1, name: xn, nameLocation: 'middle', nameGap: 26 }), yAxis: axis({ type: 'value', min: 0, max: 1, name: yn, nameLocation: 'middle', nameGap: 34 }),
      series: scorers.map((d) => ({ name: d.name, type: 'line', showSymbol: false, data: d[key],
        lineStyle: { width: d.name === 'ensemble' ? 3 : 1.5 }, areaStyle: d.name === 'ensemble' ? { opacity: 0.12 } : undefined })),
    }));
    line('c-roc', 'roc', 'false-positive rate', 'true-positive rate');
    line('c-pr', 'pr', 'recall', 'precision');
    renderDetectors(g);
    const cf = q.confusion;
    chart('c-confusion', base({
      tooltip: { renderMode: 'richText', formatter: (p) => p.value[2] + ' flows' },
      grid: { left: 90, right: 10, top: 10, bottom: 50 },
      xAxis: axis({ type: 'category', data: ['flagged', 'not flagged'] }), yAxis: axis({ type: 'category', data: ['malicious', 'benign'] }),
      visualMap: { min: 0, max: Math.max(cf.tp, cf.fp, cf.tn, cf.fn, 1), show: false, inRange: { color: ['#16212c', '#4ea1ff'] } },
      series: [{ type: 'heatmap', data: [[0, 0, cf.tp], [1, 0, cf.fn], [0, 1, cf.fp], [1, 1, cf.tn]], label: { show: true, color: TEXT } }],
    }));
    const cats = [...new Set(g.class_confusion.map((r) => r.category))];
    const cls = [...new Set(g.class_confusion.map((r) => r.class))];
    chart('c-classes', base({
      tooltip: { renderMode: 'richText', formatter: (p) => cats[p.value[1]] + ' → ' + cls[p.value[0]] + ': ' + p.value[2] },
      grid: { left: 140, right: 10, top: 10, bottom: 110 },
      xAxis: axis({ type: 'category', data: cls, axisLabel: { color: MUTED, rotate: 45 } }), yAxis: axis({ type: 'category', data: cats }),
      visualMap: { min: 0, max: Math.max(1, ...g.class_confusion.map((r) => r.flows)), show: false, inRange: { color: ['#16212c', '#4ea1ff'] } },
      series: [{ type: 'heatmap', data: g.class_confusion.map((r) => [cls.indexOf(r.class), cats.indexOf(r.category), r.flows]), label: { show: true, color: TEXT } }],
    }));
  }

  // Per detector and the ensemble: the numbers `flowhound evaluate` prints,
  // flows detected per attack category, and the forest's classification.
  function renderDetectors(g) {
    const box = clear($('truth-detectors'));
    if (!g.detectors) return;
    const grid = (head, rows) => el('table', { cls: 'grid' }, [
      el('thead', null, [el('tr', null, head.map((h) => el('th', { text: h })))]),
      el('tbody', null, rows.map((r) => el('tr', null, r.map((v) => el('td', { text: v }))))),
    ]);
    const n4 = (v) => (v === null || v === undefined ? '–' : Number(v).toFixed(4));
    box.appendChild(el('h3', { text: 'Per detector (at each calibrated threshold; the ensemble at its vote)' }));
    box.appendChild(grid(['model', 'precision', 'recall', 'F1', 'accuracy', 'FPR', 'ROC-AUC', 'PR-AUC', 'TP', 'FP', 'TN', 'FN'],
      g.detectors.map((d) => { const q = d.quality, c = q.confusion;
        return [d.name, n4(q.precision), n4(q.recall), n4(q.f1), n4(q.accuracy), n4(q.fpr), n4(q.roc_auc), n4(q.pr_auc), big(c.tp), big(c.fp), big(c.tn), big(c.fn)]; })));
    const cats = Object.keys(g.quality.per_category || {});
    if (cats.length) {
      box.appendChild(el('h3', { text: 'Detected per attack category (flows flagged / flows)' }));
      box.appendChild(grid(['category', 'flows'].concat(g.detectors.map((d) => d.name)), cats.map((cat) => {
        const n = g.quality.per_category[cat].n;
        return [cat, big(n)].concat(g.detectors.map((d) => { const hit = (d.quality.per_category[cat] || {}).detected || 0;
          return big(hit) + ' (' + Math.round((100 * hit) / Math.max(n, 1)) + ' %)'; }));
      })));
    }
    const c = g.classification;
    if (c) {
      box.appendChild(el('h3', { text: 'Random Forest: attack categories — accuracy ' + n4(c.accuracy) + ', macro-F1 ' + n4(c.macro_f1) + ', weighted F1 ' + n4(c.weighted_f1) }));
      box.appendChild(grid(['class', 'precision', 'recall', 'F1', 'flows'],
        Object.entries(c.per_class).map(([k, q]) => [k, n4(q.precision), n4(q.recall), n4(q.f1), big(q.support)])));
    }
  }

  async function deleteAnalysis() {
    const id = state.id;
    if (!id || !window.confirm('Delete analysis #' + id + '? Flows and incidents you gave feedback on are kept for retraining.')) return;
    try {
      await api('/api/analyses/' + id, { method: 'DELETE' });
    } catch (e) {
      $('analysis-error').textContent = 'Not deleted: ' + e.message;
      return;
    }
    state.id = null;
    stopStream();
    $('analysis').hidden = true;
    $('empty').hidden = false;
    await refreshList();
  }

  // ---- wiring

  function showTab(name) {
    document.querySelectorAll('.tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === name));
    document.querySelectorAll('.tab').forEach((t) => { t.hidden = t.id !== 'tab-' + name; });
    if (name === 'charts') renderCharts();
    if (name === 'truth' && state.analysis && state.analysis.summary) renderTruth(state.analysis.summary);
    if (name === 'feedback') loadFeedback();
    if (name === 'review') loadReview();
  }

  function wire() {
    document.querySelectorAll('.tabs button').forEach((b) => b.addEventListener('click', () => showTab(b.dataset.tab)));
    $('digest-toggle').addEventListener('click', () => { state.showDigest = !state.showDigest; drawIncidents(); });
    document.querySelectorAll('th[data-sort]').forEach((th) => th.addEventListener('click', () => {
      const table = th.closest('table').id === 'anomaly-table' ? 'anomaly' : 'incident';
      const cur = state.sort[table];
      state.sort[table] = { key: th.dataset.sort, asc: cur && cur.key === th.dataset.sort ? !cur.asc : false };
      th.closest('tr').querySelectorAll('th').forEach((x) => x.classList.remove('sorted', 'asc'));
      th.classList.add('sorted');
      if (state.sort[table].asc) th.classList.add('asc');
      if (table === 'anomaly') drawAnomalies(); else drawIncidents();
    }));
    $('f-severity').addEventListener('change', () => { state.offset = 0; loadAnomalies(); });
    $('f-class').addEventListener('change', () => { state.offset = 0; loadAnomalies(); });
    $('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE); loadAnomalies(); });
    $('next').addEventListener('click', () => { state.offset += PAGE; loadAnomalies(); });
    $('detail-close').addEventListener('click', () => { $('detail').hidden = true; });
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') $('detail').hidden = true; });
    window.addEventListener('resize', () => state.charts.forEach((c) => c.resize()));
    if (REPORT) return;
    $('fb-tp').addEventListener('click', () => giveFeedback('true_positive'));
    $('fb-fp').addEventListener('click', () => giveFeedback('false_positive'));
    $('fb-allow').addEventListener('click', addSuggestion);
    $('retrain').addEventListener('click', retrain);
    $('delete-analysis').addEventListener('click', deleteAnalysis);
    $('export-csv').addEventListener('click', (e) => { e.preventDefault(); download('/api/feedback/export?format=csv', 'feedback.csv'); });
    $('export-jsonl').addEventListener('click', (e) => { e.preventDefault(); download('/api/feedback/export?format=jsonl', 'feedback.jsonl'); });
    const drop = $('drop');
    drop.addEventListener('click', (e) => { if (e.target === drop) $('file').click(); });
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); upload(e.dataTransfer.files[0]); });
    $('file').addEventListener('change', () => { upload($('file').files[0]); $('file').value = ''; });
    $('login-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      sessionStorage.setItem('flowhound-token', $('login-token').value);
      state.triedToken = true;
      start();
    });
  }

  async function start() {
    if (REPORT) {
      $('app').hidden = false;
      document.querySelector('.side').hidden = true;
      document.querySelector('main').style.gridTemplateColumns = '1fr';
      $('report-note').hidden = false;
      $('model-version').textContent = 'model v' + REPORT.analysis.model_version;
      document.querySelector('[data-tab="feedback"]').hidden = true;
      document.querySelector('[data-tab="review"]').hidden = true;
      await select(REPORT.analysis.id);
      return;
    }
    try {
      await loadModels();
    } catch (e) {
      if (e.message !== 'unauthorized') { $('app').hidden = false; $('upload-status').textContent = e.message; }
      return;
    }
    $('login').hidden = true;
    $('app').hidden = false;
    const list = await refreshList();
    const wanted = Number(new URLSearchParams(location.hash.slice(1)).get('analysis'));
    const first = list.find((a) => a.id === wanted) || list[0];
    if (first) await select(first.id);
  }

  wire();
  start();
})();
