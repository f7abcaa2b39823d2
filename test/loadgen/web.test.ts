import t from 'tap';
import { spawnCli, startSink } from '../helpers/sink.js';
import { launchChromium } from '../helpers/chromium.js';

t.test('the web page starts a run, shows progress, the result and the percentile chart', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '10']);
  const lg = await spawnCli(t, ['loadgen', 'serve', '--port', '0']);
  const origin = `http://127.0.0.1:${lg.ready.port as number}`;
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  const failed: string[] = [];
  page.on('requestfailed', (r) => {
    // The page closes its event stream on the 'done' event; a close that beats the server's end of
    // the stream is reported as aborted, and is not a failure.
    if (r.url().endsWith('/events') && r.failure()?.errorText === 'net::ERR_ABORTED') return;
    failed.push(`${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  page.on('pageerror', (e) => failed.push(e.message));
  await page.goto(`${origin}/`);
  t.equal(await page.evaluate(() => typeof (window as unknown as { uPlot?: unknown }).uPlot), 'function', 'uPlot is served locally');

  await page.fill('#url', sink.url);
  await page.fill('#workers', '5');
  await page.fill('#requests', '300');
  await page.fill('#durationS', '');
  await page.click('#start');
  await page.waitForSelector('#live:not([hidden])');
  await page.waitForSelector('#result:not([hidden])', { timeout: 30_000 });
  t.equal(await page.textContent('#status'), '(completed)');
  t.equal(await page.textContent('td.requests'), '300', 'the result table shows 300 requests');
  t.equal(await page.textContent('td.ok'), '300');
  t.equal(await page.getAttribute('#bar', 'value'), '300', 'the progress bar is full');
  const canvas = await page.$('#chart .uplot canvas');
  t.ok(canvas, 'uPlot drew the chart');
  const size = await canvas!.boundingBox();
  t.ok(size && size.width > 100 && size.height > 100, 'the chart has a size');
  t.ok(await page.$('#rate-chart .uplot canvas'), 'the live rate chart was drawn');
  t.same(failed, [], 'no failed requests or page errors');

  // A spec the API rejects (the form allows it) shows the API's message.
  await page.fill('#requestBytes', '5');
  await page.click('#start');
  await page.waitForSelector('#message.error');
  t.match(await page.textContent('#message'), /requestBytes/);

  const stats = await sink.stats();
  t.equal(stats.requests, 300, 'the sink saw the run');
});
