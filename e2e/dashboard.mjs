// End-to-end test of the dashboard in real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; no browser download).
//
// generate → train → `flowhound serve` → upload a generated day with ground
// truth through the page → wait for the analysis → open a detail panel →
// mark a false positive and add its allowlist suggestion → reload and see the
// feedback kept → retrain with feedback → screenshots into docs/screenshots/.
// The ground-truth category of every attack is `<img src=x onerror=alert(1)>`
// and every flow's interface id `eni-<img/src=x/onerror=alert(2)>`: they must
// show as text and never run. Then the static report, opened from a
// file, must render the same page. Last, a server with a token that also
// watches a growing log (`serve --watch`): the live analysis fills in on the
// open page as lines are appended (server-sent events read with the bearer
// token), and its flows open and take feedback like an upload's.
//
//   node e2e/dashboard.mjs      (FLOWHOUND_BIN, CHROMIUM override the paths)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = process.env.FLOWHOUND_BIN || join(root, 'target/debug/flowhound');
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = join(root, 'docs/screenshots');
const PAYLOAD = '<img src=x onerror=alert(1)>';
const ENI = 'eni-<img/src=x/onerror=alert(2)>';
const work = mkdtempSync(join(tmpdir(), 'flowhound-e2e-'));
const run = (...args) => execFileSync(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
let server;
let failures = 0;

function check(ok, what) {
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
  if (!ok) failures++;
}

async function main() {
  run('generate', '-o', join(work, 'train.log'), '--flows', '30000', '--seed', '11', '--start', '2026-11-02T00:00:00Z', '-q');
  run('generate', '-o', join(work, 'day.log'), '--flows', '12000', '--seed', '11', '--start', '2026-11-03T00:00:00Z', '-q');
  run('train', '-m', join(work, 'model'), join(work, 'train.log'), '--labels', join(work, 'train.log.labels.csv'), '--benign-only', '-q');
  // Hostile ground truth: every attack's category is an HTML payload.
  const labels = readFileSync(join(work, 'day.log.labels.csv'), 'utf8')
    .split('\n')
    .map((l, i) => (i > 0 && l.includes(',true,') ? l.replace(/,true,.*$/, ',true,' + PAYLOAD) : l))
    .join('\n');
  writeFileSync(join(work, 'hostile.labels.csv'), labels);
  // And a hostile flow field: every record's interface id carries markup
  // (no spaces: VPC fields are space-separated).
  const day = readFileSync(join(work, 'day.log'), 'utf8')
    .split('\n')
    .map((l) => { const f = l.split(' '); if (/^\d/.test(l) && f.length > 3) f[2] = ENI; return f.join(' '); })
    .join('\n');
  writeFileSync(join(work, 'day.log'), day);

  const port = 18000 + Math.floor(Math.random() * 2000);
  server = spawn(bin, ['serve', '-m', join(work, 'model'), '--db', join(work, 'data/flowhound.db'), '--addr', '127.0.0.1:' + port], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  server.stderr.on('data', (d) => { log += d; });
  const base = 'http://127.0.0.1:' + port;
  for (let i = 0; ; i++) {
    try { if ((await fetch(base + '/api/health')).ok) break; } catch (e) { /* not yet */ }
    if (i > 100) throw new Error('server did not start: ' + log);
    await new Promise((r) => setTimeout(r, 100));
  }

  const browser = await chromium.launch({
    executablePath: browserPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  const dialogs = [];
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  await page.goto(base + '/');
  await page.waitForSelector('#drop');
  await page.setInputFiles('#labels-file', join(work, 'hostile.labels.csv'));
  await page.setInputFiles('#file', join(work, 'day.log'));
  await page.waitForSelector('#cards .card', { timeout: 120000 });
  // The page opens on the incidents, worst first: severity never rises down the list.
  await page.waitForSelector('#incident-table tbody tr');
  const sevs = await page.locator('#incident-table tbody tr td:nth-child(2)').allTextContents();
  const rank = { low: 1, medium: 2, high: 3 };
  check(sevs.length > 0 && sevs.every((v, i) => i === 0 || rank[v.trim()] <= rank[sevs[i - 1].trim()]),
    'the dashboard opens on the incidents, worst first (' + sevs.slice(0, 5).join(', ') + ' …)');
  await page.screenshot({ path: join(shots, 'dashboard-incidents.png') });
  await page.click('[data-tab="anomalies"]');
  await page.waitForSelector('#anomaly-table tbody tr');
  const flows = await page.textContent('#cards .card:first-child .v');
  check(flows.replace(/,/g, '') === '12000', 'summary shows the 12 000 uploaded flows (' + flows + ')');
  const rows = await page.locator('#anomaly-table tbody tr').count();
  check(rows === 100, 'anomalies table shows the first page of 100 (' + rows + ')');
  await page.screenshot({ path: join(shots, 'dashboard-anomalies.png') });

  // Detail panel of the top flow: explanation, fields, the hostile category as text.
  await page.click('#anomaly-table tbody tr:first-child');
  await page.waitForSelector('#detail:not([hidden])');
  const reason = await page.textContent('#detail-reason');
  check(reason.length > 10, 'detail panel gives a reason: ' + reason);
  const expl = await page.locator('#detail-explanation tbody tr').count();
  check(expl >= 3, 'detail panel lists the top features (' + expl + ')');
  const fields = await page.textContent('#detail-fields');
  check(fields.includes(PAYLOAD), 'the hostile category is shown literally as text');
  check(fields.includes(ENI), 'the hostile interface id (a flow field) is shown literally as text');
  check((await page.locator('img').count()) === 0, 'no <img> element was created from flow data');
  await page.fill('#fb-note', 'known load test');
  await page.screenshot({ path: join(shots, 'dashboard-detail.png') });
  const flowId = (await page.textContent('#detail-title')).match(/Flow (\d+)/)[1];

  // Feedback with a note, then its allowlist suggestion.
  await page.click('#fb-fp');
  await page.waitForFunction(() => document.getElementById('fb-status').textContent.startsWith('Marked false positive'));
  await page.waitForSelector('#fb-suggestion:not([hidden])');
  const sugg = await page.textContent('#fb-suggestion-text');
  check(sugg.includes('src =') && sugg.includes('reason ='), 'a false positive suggests an allowlist entry');
  await page.click('#fb-allow');
  await page.waitForFunction(() => document.getElementById('fb-status').textContent.startsWith('Added to the allowlist'));

  // Reload: the verdict is kept (from SQLite) and shown on the row and in the feedback tab.
  await page.reload();
  await page.waitForSelector('#incident-table tbody tr');
  await page.click('[data-tab="anomalies"]');
  await page.waitForSelector('#anomaly-table tbody tr');
  const kept = await page.locator(`#anomaly-table tbody tr[data-flow="${flowId}"] .fbv`).textContent();
  check(kept === 'false positive', 'after a reload the flow still shows its verdict (' + kept + ')');
  await page.click('[data-tab="feedback"]');
  await page.waitForSelector('#feedback-table tbody tr');
  const fbText = await page.textContent('#feedback-table');
  check(fbText.includes('known load test') && fbText.includes('flow ' + flowId), 'the feedback tab lists the verdict with its note');
  check((await page.locator('#allow-table tbody tr').count()) === 1, 'the allowlist holds the added entry');

  // The review queue: flows to judge, none judged already, each saying why it is there.
  await page.click('[data-tab="review"]');
  await page.waitForSelector('#review-table tbody tr');
  const whys = await page.locator('#review-table tbody tr td:first-child').allTextContents();
  const queued = await page.locator('#review-table tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.flow));
  check(whys.length > 0 && whys.length <= 20 && whys.every((w) => w === 'most anomalous' || w === 'at the operating point'),
    'the review queue lists up to 20 flows with why (' + whys.length + ')');
  check(!queued.includes(String(flowId)), 'the flow already judged is not in the review queue');
  await page.screenshot({ path: join(shots, 'dashboard-review.png') });
  await page.screenshot({ path: join(shots, 'dashboard-feedback.png') });

  // Incidents, charts, ground truth.
  await page.click('[data-tab="incidents"]');
  await page.waitForSelector('#incident-table tbody tr');
  const top = (await page.textContent('#incident-table tbody tr:first-child td:first-child')).trim();
  await page.click('#incident-table tbody tr:first-child');
  await page.waitForSelector('#detail-flows tbody tr');
  check((await page.textContent('#detail-title')).startsWith('Incident ' + top), 'an incident opens with its sample flows (incident ' + top + ')');
  await page.screenshot({ path: join(shots, 'dashboard-incident.png') });
  await page.click('#detail-close');
  await page.click('[data-tab="charts"]');
  await page.waitForSelector('#c-timeline canvas');
  const canvases = await page.locator('#tab-charts canvas').count();
  check(canvases >= 10, 'every chart draws (' + canvases + ' canvases)');
  await page.waitForTimeout(800);
  await page.screenshot({ path: join(shots, 'dashboard-charts.png'), fullPage: true });
  await page.click('[data-tab="truth"]');
  await page.waitForSelector('#c-roc canvas');
  const auc = await page.textContent('#truth-metrics');
  check(/ROC-AUC/.test(auc), 'ground truth metrics are shown');
  const scorers = await page.$$eval('#truth-detectors table:first-of-type tbody tr', (rows) => rows.map((r) => r.cells[0].textContent));
  check(scorers.join(',') === 'iforest,lof,ocsvm,autoencoder,ensemble', 'every detector is measured on the page (' + scorers.join(',') + ')');
  // Hostile category names are table text here too.
  const cats = await page.$$eval('#truth-detectors table:nth-of-type(2) tbody tr td:first-child', (c) => c.map((x) => x.textContent));
  check(cats.some((c) => c.includes('<img')), 'attack categories are shown as text (' + cats.length + ' rows)');
  await page.waitForTimeout(800);
  await page.screenshot({ path: join(shots, 'dashboard-truth.png'), fullPage: true });

  // Retrain with feedback: a new model version, named on the page.
  await page.click('#retrain');
  await page.waitForFunction(() => /model v2 trained/.test(document.getElementById('retrain-status').textContent), null, { timeout: 120000 });
  // Wait for the header too rather than read it once: CI machines differ in how fast the version list comes back.
  await page.waitForFunction(() => document.getElementById('model-version').textContent === 'model v2', null, { timeout: 10000 }).catch(() => {});
  check((await page.textContent('#model-version')) === 'model v2', 'the page shows model v2 after retraining');

  // Delete the analysis from the page (the confirmation answered yes): gone from the list.
  const listed = await page.locator('#analyses li').count();
  await page.evaluate(() => { window.confirm = () => true; });
  await page.click('#delete-analysis');
  await page.waitForFunction((n) => document.querySelectorAll('#analyses li').length === n - 1, listed, { timeout: 10000 }).catch(() => {});
  check((await page.locator('#analyses li').count()) === listed - 1 && (await page.isVisible('#empty')), 'Delete analysis removes it from the list');

  // The static report, from a file: same page, no server.
  const report = join(work, 'report.html');
  run('report', '-m', join(work, 'model'), join(work, 'day.log'), '--labels', join(work, 'hostile.labels.csv'), '-o', report, '-q');
  const rp = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  rp.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  rp.on('pageerror', (e) => errors.push(String(e)));
  await rp.goto('file://' + report);
  await rp.waitForSelector('#incident-table tbody tr');
  check((await rp.textContent('#cards .card:first-child .v')).replace(/,/g, '') === '12000', 'the static report renders the analysis offline');
  await rp.click('[data-tab="charts"]');
  await rp.waitForSelector('#c-pca canvas');
  await rp.waitForTimeout(800);
  await rp.screenshot({ path: join(shots, 'report-charts.png') });

  // With a token: the page asks for it, refuses a wrong one, opens with the right one.
  const tport = port + 1;
  const token = 'e2e-token-0123456789abcdef';
  const liveLog = join(work, 'live.log');
  const dayLines = readFileSync(join(work, 'day.log'), 'utf8').split('\n').filter((l) => l.length);
  writeFileSync(liveLog, dayLines[0] + '\n');
  const tserver = spawn(bin, ['serve', '-m', join(work, 'model'), '--db', join(work, 'data2/flowhound.db'), '--addr', '127.0.0.1:' + tport, '--token', token,
    '--watch', 'file:' + liveLog, '--state-dir', join(work, 'watch-state')], { stdio: 'ignore' });
  try {
    for (let i = 0; ; i++) {
      try { if ((await fetch('http://127.0.0.1:' + tport + '/api/health')).ok) break; } catch (e) { /* not yet */ }
      if (i > 100) throw new Error('token server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const lp = await browser.newPage();
    lp.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    lp.on('pageerror', (e) => errors.push(String(e)));
    await lp.goto('http://127.0.0.1:' + tport + '/');
    await lp.waitForSelector('#login:not([hidden])');
    await lp.fill('#login-token', 'wrong-token-wrong-token');
    await lp.click('#login-form button');
    await lp.waitForFunction(() => document.getElementById('login-error').textContent.includes('not accepted'));
    check(await lp.isHidden('#app'), 'a wrong token keeps the dashboard closed');
    await lp.fill('#login-token', token);
    await lp.click('#login-form button');
    await lp.waitForSelector('#app:not([hidden])');
    check((await lp.textContent('#model-version')) === 'model v1', 'the right token opens the dashboard');

    // The live analysis is open; flows arrive while the page watches.
    await lp.setViewportSize({ width: 1500, height: 950 });
    await lp.waitForFunction(() => /● live/.test(document.getElementById('analysis-title').textContent));
    await lp.click('[data-tab="anomalies"]');
    check((await lp.locator('#anomaly-table tbody tr').count()) === 0, 'the live analysis starts empty');
    const body = dayLines.slice(1);
    for (let i = 0; i < body.length; i += 3000) {
      appendFileSync(liveLog, body.slice(i, i + 3000).join('\n') + '\n');
      await lp.waitForTimeout(700);
    }
    await lp.waitForSelector('#anomaly-table tbody tr.fresh', { timeout: 60000 });
    await lp.waitForFunction(() => document.querySelector('#cards .card:first-child .v').textContent.replace(/,/g, '') === '12000', null, { timeout: 60000 });
    check(true, 'the live summary reaches the 12 000 appended flows without a reload');
    // The first page is read again after each batch: its count is the summary's.
    await lp.waitForFunction(() => {
      const n = document.querySelectorAll('#cards .card')[1].querySelector('.v').textContent.split(' ')[0];
      return document.getElementById('anomaly-count').textContent.endsWith('of ' + n);
    }, null, { timeout: 10000 }).then(() => check(true, 'the live table counts every flagged flow, as the summary does'),
      async () => check(false, 'live count ' + (await lp.textContent('#anomaly-count')) + ' vs summary ' + (await lp.textContent('#cards'))));
    const liveRows = await lp.locator('#anomaly-table tbody tr').count();
    check(liveRows === 100, 'pushed flows fill the first page, newest first (' + liveRows + ')');
    const firstFlow = Number(await lp.getAttribute('#anomaly-table tbody tr:first-child', 'data-flow'));
    const secondFlow = Number(await lp.getAttribute('#anomaly-table tbody tr:nth-child(2)', 'data-flow'));
    check(firstFlow > secondFlow, 'newest flow on top (' + firstFlow + ' > ' + secondFlow + ')');
    await lp.click('#anomaly-table tbody tr:first-child');
    await lp.waitForSelector('#detail:not([hidden])');
    check((await lp.locator('#detail-explanation tbody tr').count()) >= 3, 'a live flow opens with its explanation');
    check((await lp.textContent('#detail-fields')).includes(ENI), 'the live flow\'s hostile interface id is shown as text');
    await lp.click('#fb-tp');
    await lp.waitForFunction(() => document.getElementById('fb-status').textContent.startsWith('Marked true positive'));
    check(true, 'feedback on a live flow is saved');
    await lp.screenshot({ path: join(shots, 'dashboard-live.png') });
    await lp.click('[data-tab="incidents"]');
    await lp.waitForSelector('#incident-table tbody tr');
    check((await lp.locator('#incident-table tbody tr').count()) >= 3, 'live incidents are listed');
  } finally {
    tserver.kill('SIGINT');
  }

  check(dialogs.length === 0, 'no script from flow data ran (dialogs: ' + JSON.stringify(dialogs) + ')');
  check(errors.length === 0, 'no page errors ' + JSON.stringify(errors));
  await browser.close();
}

try {
  await main();
} catch (e) {
  console.error(e);
  failures++;
} finally {
  if (server) server.kill('SIGINT');
  rmSync(work, { recursive: true, force: true });
}
console.log(failures ? failures + ' check(s) failed' : 'all dashboard checks passed');
process.exit(failures ? 1 : 0);
