// The orchestrator daemon's web page in headless Chromium against a real
// `sluice orchestrator serve`: a matrix the API refuses shows its message at
// the field, a tiny run submitted from the form is followed live to its end,
// its tables and report show, a second run of the same matrix gives the
// history a trend, and the two runs compare. No console or page errors.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.js';
import { netnsRefusal } from '../../orchestrator/providers/netns.js';
import { spawnCli } from '../helpers/sink.js';

// One scenario of ~1 s per system, no warm-up: each cell takes 2–3 s with the processes starting.
const TINY = `scenarios:
  - {name: tiny, workers: 4, wait_ms: 10, duration_s: 1}
systems: [baseline, sluice]
warmup_s: 0
`;

async function waitForRunStatus(page: Page, status: string, timeout = 30_000): Promise<void> {
  await page.waitForSelector(`#detail h2 .badge.${status}`, { timeout });
}

t.test('the daemon page: submit, follow, report, history trend, compare', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'sluice-daemon-web-'));
  const daemon = await spawnCli(t, ['orchestrator', 'serve', '--port', '0', '--data', data]);
  // Teardowns run last-registered first: a SIGTERM stops the daemon and whatever it started before spawnCli's SIGKILL.
  t.teardown(async () => {
    if (daemon.proc.exitCode === null && daemon.proc.signalCode === null) {
      daemon.proc.kill('SIGTERM');
      await Promise.race([daemon.exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    rmSync(data, { recursive: true, force: true });
  });
  const origin = `http://127.0.0.1:${daemon.ready.port as number}`;

  const browser = await launchChromium(t, { width: 1440, height: 900 });
  const page = await browser.newPage();
  const problems: string[] = [];
  const consoleErrors: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  const refused: string[] = [];
  page.on('response', (r) => {
    if (r.status() >= 400) refused.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('requestfailed', (r) => {
    // The page aborts an event stream it no longer needs; anything else failing is a fault.
    if (!/\/events$/.test(r.url())) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });

  await page.goto(`${origin}/`);
  t.equal(await page.evaluate(() => typeof (window as unknown as { uPlot?: unknown }).uPlot), 'function', 'uPlot is served by the daemon');
  await page.waitForSelector('#scenario-picks input[name=scenario]');
  t.equal(await page.locator('#scenario-picks input[name=scenario]').count(), 5, 'the default matrix’s scenarios are offered');
  t.ok(await page.locator('#system-picks input[value=baseline]').isDisabled(), 'Baseline always runs');
  t.match(await page.textContent('#estimate'), /25 cells, about \d+ min/, 'the form estimates the default run');
  t.match(await page.textContent('#daemon-state'), /Idle/);
  await page.waitForSelector('#provider option[value=gcp]', { state: 'attached' });
  t.same(
    await page.$$eval('#provider option', (os) => os.map((o) => [(o as HTMLOptionElement).value, (o as HTMLOptionElement).disabled])),
    [['local', false], ['netns', netnsRefusal() !== null], ['gcp', true]],
    'where a run goes: gcp offered but disabled (this daemon was not started with --allow-gcp)',
  );
  t.ok(await page.isVisible('#runs-empty'), 'an empty history says so');
  await page.screenshot({ path: '/tmp/daemon-page-start.png', fullPage: true });

  await t.test('a matrix the API refuses: its message next to the YAML', async (t) => {
    // The radio is drawn as a segmented control: a user clicks its label.
    await page.locator('label', { has: page.locator('#mode-yaml') }).click();
    t.ok(await page.isChecked('#mode-yaml'));
    t.match(await page.inputValue('#yaml'), /scenarios:/, 'the textarea starts from the default matrix');
    await page.fill('#yaml', TINY.replace('wait_ms: 10', 'wait_ms: -1'));
    await page.click('#submit-run');
    await page.waitForSelector('#yaml-error:not(:empty)');
    t.match(await page.textContent('#yaml-error'), /scenarios\.0\.wait_ms: must be >= 0/);
    t.equal(await page.getAttribute('#yaml', 'aria-invalid'), 'true');
  });

  await t.test('a schedule from the same form, listed and deleted', async (t) => {
    await page.click('#schedule-box summary');
    // Once a year at midnight on 1 January: it will not fire during the test.
    await page.fill('#cron', 'not a cron');
    await page.click('#schedule-run');
    await page.waitForSelector('#cron-error:not(:empty)');
    t.match(await page.textContent('#cron-error'), /not a valid cron expression/);
    await page.fill('#cron', '0 0 1 1 *');
    await page.fill('#yaml', TINY);
    await page.fill('#label', 'nightly');
    await page.click('#schedule-run');
    await page.waitForSelector('#schedule-list li');
    t.match(await page.textContent('#schedule-list li'), /0 0 1 1 \*\s*nightly/);
    t.match(await page.textContent('#schedule-list li'), /1 scenario × 2 systems · next /);
    page.once('dialog', (d) => void d.accept());
    await page.click('#schedule-list li button');
    await page.waitForSelector('#schedule-list li', { state: 'detached' });
    t.ok(await page.isVisible('#schedules-empty'));
    await page.click('#schedule-box summary');
  });

  let first = '';
  await t.test('a tiny run from the form, followed live to its end', async (t) => {
    await page.fill('#yaml', TINY);
    await page.fill('#label', 'tiny <b>one</b>');
    await page.click('#submit-run');
    await page.waitForFunction(() => location.hash.startsWith('#run/'));
    first = decodeURIComponent((await page.evaluate(() => location.hash)).slice('#run/'.length));
    t.match(first, /^run_/);
    t.equal(await page.textContent('#yaml-error'), '', 'the earlier error is gone');
    // Live: the cell under way and its requests per second arrive over the event stream.
    await page.waitForFunction(() => /tiny · (baseline|sluice)/.test(document.getElementById('live-cell')?.textContent ?? ''), null, { timeout: 15_000 });
    await page.waitForFunction(() => Number((document.getElementById('live-rps')?.textContent ?? '').replace(/,/g, '')) > 0, null, { timeout: 15_000 });
    t.ok(await page.$(`#runs-body tr[data-id="${first}"] progress`), 'the history row shows a progress bar while it runs');
    t.ok(await page.$('#live-chart .uplot canvas'), 'the live req/s chart is drawn');
    await page.screenshot({ path: '/tmp/daemon-page-live.png', fullPage: true });
    await waitForRunStatus(page, 'completed');
    t.equal(await page.textContent('#detail-title'), 'tiny <b>one</b> completed', 'the label is text, not markup');
    t.equal(await page.getAttribute('#live-bar', 'value'), '1', 'the progress bar is full');
    t.equal(await page.textContent('#live-done'), '2 of 2');
    await page.waitForSelector(`#runs-body tr[data-id="${first}"] .badge.completed`);
    t.match(await page.textContent('#daemon-state'), /Idle/);

    // The tables, from the run's markdown.
    const tables = page.locator('#tab-panel table.results');
    t.equal(await tables.count(), 1, 'one table per scenario');
    t.same(await tables.locator('thead th').allTextContents(), ['', 'Theoretical', 'Baseline', 'sluice']);
    t.match(await tables.locator('tbody tr').first().textContent(), /Requests\/sec/);
    t.match(await page.textContent('#tab-panel'), /sluice: .* of Baseline throughput/);
    t.match(await page.textContent('.ratio-value'), /^\d\.\d{3}×$/, 'throughput over Baseline in the header');
  });

  await t.test('the report, in the page', async (t) => {
    await page.click('#tab-report');
    const frame = page.frameLocator('#report-frame');
    await frame.locator('.chart canvas').first().waitFor({ timeout: 10_000 });
    const box = await frame.locator('.chart canvas').first().boundingBox();
    t.ok(box && box.width > 200 && box.height > 100, 'the report drew its latency chart');
    t.match(await frame.locator('h1').first().textContent(), /./, 'the report has its title');
    t.equal(await page.getAttribute('#report-link', 'href'), `/v1/runs/${first}/report`, 'a link opens it on its own');
    await page.screenshot({ path: '/tmp/daemon-page-report.png', fullPage: false });
  });

  let second = '';
  await t.test('a second run of the same matrix: the history shows the trend', async (t) => {
    await page.click('#run-again');
    await page.waitForFunction((id) => location.hash.startsWith('#run/') && !location.hash.endsWith(id), first);
    second = decodeURIComponent((await page.evaluate(() => location.hash)).slice('#run/'.length));
    await waitForRunStatus(page, 'completed');
    await page.waitForSelector(`#runs-body tr[data-id="${second}"] .badge.completed`);
    t.equal(await page.locator('#runs-body tr').count(), 2);
    t.equal(await page.locator('#runs-body .spark canvas').count(), 2, 'a sparkline of sluice ÷ Baseline per run');
    t.equal(await page.locator('#trend-chart canvas').count() > 0, true, 'the run shows its matrix’s trend');
    t.ok(await page.isEnabled('#compare-previous'), 'the previous run of the matrix is there to compare with');
    await page.locator('#detail').scrollIntoViewIfNeeded();
    await page.screenshot({ path: '/tmp/daemon-page-trend.png', fullPage: false });
  });

  await t.test('compare the two runs', async (t) => {
    await page.check(`#runs-body tr[data-id="${first}"] td.pick input`);
    await page.check(`#runs-body tr[data-id="${second}"] td.pick input`);
    t.equal(await page.textContent('#compare-picked'), 'Compare the 2 selected');
    await page.click('#compare-picked');
    await page.waitForSelector('#compare-result table.comparison-table');
    t.equal(await page.evaluate(() => location.hash), `#compare/${first}/${second}`, 'the older run is the base');
    t.equal(await page.inputValue('#compare-base'), first);
    t.equal(await page.inputValue('#compare-head'), second);
    const rows = page.locator('#compare-result table.comparison-table tbody tr');
    t.ok((await rows.count()) >= 10, 'metric × system rows');
    t.match(await rows.first().textContent(), /Requests\/sec/);
    t.match(await page.textContent('#compare-regressions'), /^▲ \d+ regressions?$/);
    t.match(await page.textContent('#compare-improvements'), /^▼ \d+ improvements?$/);
    // Whatever the noise decided, every marked row says which way it went.
    for (const cls of ['regression', 'improvement']) {
      const marked = page.locator(`#compare-result tr.${cls}`);
      for (let i = 0; i < (await marked.count()); i++) t.match(await marked.nth(i).locator('.mark').textContent(), cls === 'regression' ? /▲/ : /▼/);
    }
    await page.screenshot({ path: '/tmp/daemon-page.png', fullPage: true });
  });

  // The deliberate 400 is logged by Chromium as a failed resource; nothing else may be.
  t.same(refused, ['400 POST /v1/runs', '400 POST /v1/schedules'], 'the refused requests are the bad matrix and the bad cron');
  const unexpected = consoleErrors.filter((m) => !/status of 400 \(Bad Request\)/.test(m));
  t.same(unexpected, [], 'no console errors');
  t.same(problems, [], 'no page errors or failed requests');
});

t.test('with a token: the page asks once, keeps it for the tab, follows and cancels a run', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'sluice-daemon-web-'));
  const daemon = await spawnCli(t, ['orchestrator', 'serve', '--port', '0', '--data', data, '--token-env', 'SLUICE_WEB_TEST_TOKEN'], { SLUICE_WEB_TEST_TOKEN: 'right-token' });
  t.teardown(async () => {
    if (daemon.proc.exitCode === null && daemon.proc.signalCode === null) {
      daemon.proc.kill('SIGTERM');
      await Promise.race([daemon.exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    rmSync(data, { recursive: true, force: true });
  });
  const origin = `http://127.0.0.1:${daemon.ready.port as number}`;
  const browser = await launchChromium(t, { width: 1366, height: 768 });
  const page = await browser.newPage();
  const problems: string[] = [];
  const statuses: number[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // Chromium logs each 401 as a failed resource: those are the page asking for the token.
    if (m.type() === 'error' && !/status of 401 \(Unauthorized\)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => statuses.push(r.status()));

  await page.goto(`${origin}/`);
  await page.waitForSelector('#token-dialog[open]');
  await page.fill('#token-input', 'wrong-token');
  await page.click('#token-submit');
  await page.waitForFunction(() => (document.getElementById('token-error')?.textContent ?? '') !== '');
  t.match(await page.textContent('#token-error'), /refused/, 'a wrong token is refused and asked for again');
  await page.fill('#token-input', 'right-token');
  await page.click('#token-submit');
  await page.waitForSelector('#token-dialog', { state: 'hidden' });
  await page.waitForSelector('#scenario-picks input[name=scenario]');
  await page.waitForSelector('#runs-empty:not([hidden])');
  t.equal(await page.evaluate(() => sessionStorage.getItem('sluice.orchestrator.token')), 'right-token', 'kept for this tab only');
  t.ok(await page.isVisible('#token-button'), 'the token can be changed');

  // A run picked from the default matrix, followed over the event stream (fetch with the token), then cancelled from the page.
  for (const name of ['100u-1kb-wait500', '50u-1kb-wait2000', '100u-1kb-stream', 'capacity-wait20']) await page.uncheck(`#scenario-picks input[value="${name}"]`);
  for (const name of ['sluice', 'sluice-redis', 'nginx', 'portkey']) await page.uncheck(`#system-picks input[value="${name}"]`);
  t.match(await page.textContent('#estimate'), /^1 cell, about 1[0-9] s\.$/, 'one cell of the 10 s scenario');
  await page.fill('#label', 'picked');
  await page.click('#submit-run');
  await page.waitForFunction(() => /100u-1kb-wait100 · baseline/.test(document.getElementById('live-cell')?.textContent ?? ''), null, { timeout: 15_000 });
  t.match(await page.textContent('#detail-title'), /^picked running/);
  const submitted = await page.evaluate(() => [...document.querySelectorAll('#detail dl.meta .chip')].map((c) => c.textContent));
  t.same(submitted, ['100u-1kb-wait100', 'Baseline'], 'the run has the picked scenario and system');
  t.match(await page.textContent('#daemon-state'), /Running/);
  page.once('dialog', (d) => void d.accept());
  await page.click('#cancel-run');
  await waitForRunStatus(page, 'canceled', 15_000);
  await page.waitForSelector('#runs-body .badge.canceled');
  t.notOk(await page.$('#cancel-run'), 'no cancel button on a finished run');
  await page.waitForFunction(() => /Idle/.test(document.getElementById('daemon-state')?.textContent ?? ''));
  t.equal(await page.textContent('#runs-body .trend-cell'), 'Baseline only', 'a run of Baseline alone has no ratio');
  await page.screenshot({ path: '/tmp/daemon-page-token.png', fullPage: true });
  t.equal(statuses.filter((s) => s === 401).length > 0, true, 'the first requests were refused');
  t.same(statuses.filter((s) => s >= 400 && s !== 401), [], 'nothing else was');
  t.same(problems, [], 'no console or page errors');
});
