import t from 'tap';
import { runCli, startSink } from '../helpers/sink.js';
import { closedPort, loadgen } from './fixtures/loadgen.js';

t.test('refused connections are counted as refused', async (t) => {
  const port = await closedPort();
  const r = await loadgen(`http://127.0.0.1:${port}/v1`, ['--requests', '12', '--workers', '3']);
  t.equal(r.requests, 12);
  t.equal(r.ok, 0);
  t.equal(r.errors, 12);
  t.equal(r.errorsByKind.refused, 12);
});

t.test('timeouts are counted as timeout', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '5000']);
  const r = await loadgen(sink.url, ['--requests', '4', '--workers', '4', '--timeout', '300ms']);
  t.equal(r.errorsByKind.timeout, 4);
  t.equal(r.ok, 0);
});

t.test('4xx and 5xx responses are counted by kind and status, matching the sink', async (t) => {
  const s429 = await startSink(t, ['--error-rate', '1', '--error-status', '429']);
  const a = await loadgen(s429.url, ['--requests', '30', '--workers', '5']);
  t.equal(a.errorsByKind['4xx'], 30);
  t.same(a.errorsByStatus, { '429': 30 });

  const s503 = await startSink(t, ['--error-rate', '0.4', '--error-status', '503', '--seed', '3']);
  const b = await loadgen(s503.url, ['--requests', '200', '--workers', '8', '--threads', '2']);
  const stats = await s503.stats();
  t.ok(stats.errorsInjected > 0, `${stats.errorsInjected} errors injected`);
  t.equal(b.errorsByKind['5xx'], stats.errorsInjected, '5xx count equals what the sink injected');
  t.equal(b.errorsByStatus['503'], stats.errorsInjected);
  t.equal(b.ok, 200 - stats.errorsInjected);
  t.equal(b.requests, 200);
});

t.test('dropped connections are counted as reset', async (t) => {
  const sink = await startSink(t, ['--drop-rate', '0.3', '--seed', '9']);
  const r = await loadgen(sink.url, ['--requests', '150', '--workers', '6']);
  const stats = await sink.stats();
  t.ok(stats.dropsInjected > 0);
  t.equal(r.errorsByKind.reset, stats.dropsInjected, 'resets equal the connections the sink dropped');
  t.equal(r.ok + r.errorsByKind.reset, 150);
  t.equal(stats.byPath['/v1/chat/completions'], 150, 'no request was retried');
});

t.test('bad flags: one line naming the flag, exit 2', async (t) => {
  const url = 'http://127.0.0.1:9/v1';
  const cases: [string[], RegExp][] = [
    [['loadgen', 'run'], /--url/],
    [['loadgen', 'run', '--url', url, '--workers', '0'], /--workers/],
    [['loadgen', 'run', '--url', url, '--requests', 'many'], /--requests/],
    [['loadgen', 'run', '--url', url, '--requests', '5', '--duration', '1'], /--requests/],
    [['loadgen', 'run', '--url', url, '--duration', 'soon'], /--duration/],
    [['loadgen', 'run', '--url', url, '--request-bytes', '10'], /--request-bytes/],
    [['loadgen', 'run', '--url', url, '--rate', '-1'], /--rate/],
    [['loadgen', 'run', '--url', url, '--arrival', 'bursty'], /--arrival/],
    [['loadgen', 'run', '--url', url, '--header', 'no-colon'], /--header/],
    [['loadgen', 'run', '--url', url, '--timeout', '0'], /--timeout/],
    [['loadgen', 'run', '--url', 'not a url'], /--url/],
    [['loadgen', 'run', '--url', 'ftp://127.0.0.1/v1'], /--url/],
    [['loadgen', 'run', '--url', 'file:///etc/passwd'], /--url/],
    [['loadgen', 'run', '--url', 'mailto:x@y'], /--url/],
    [['loadgen', 'run', '--url', `${url}?api-version=1`], /--url/],
    [['loadgen', 'run', '--url', url, '--model', ''], /--model/],
    [['loadgen', 'run', '--url', url, '--key', 'sk-a\nb'], /--key/],
    [['loadgen', 'run', '--url', url, '--header', 'x-a:b\nc'], /--header/],
    [['loadgen', 'run', '--url', url, '--header', 'x-a:b\rX-Injected: 1'], /--header/],
    [['loadgen', 'run', '--url', url, '--header', 'content-length:5'], /--header/],
    [['loadgen', 'run', '--url', url, '--header', 'Connection: close'], /--header/],
    [['loadgen', 'run', '--url', url, '--key', 'k', '--header', 'authorization: Bearer x'], /--header/],
    [['loadgen', 'run', '--url', url, '--duration', '2500000s'], /--duration/],
    [['loadgen', 'run', '--url', url, '--duration', '1000h'], /--duration/],
    [['loadgen', 'run', '--url', url, '--warmup', '2500000s'], /--warmup/],
    [['loadgen', 'run', '--url', url, '--timeout', '2500000s'], /--timeout/],
    [['loadgen', 'run', '--url', url, '--rate', '1e12', '--duration', '1s'], /--rate/],
    [['loadgen', 'run', '--url', url, '--requests', '3000000000'], /--requests/],
    [['loadgen', 'run', '--url', url, '--threads', '17', '--workers', '17', '--request-bytes', String(64 * 1024 * 1024)], /--request-bytes.*--threads/],
    [['loadgen', 'serve', '--port', '70000'], /--port/],
    [['loadgen', 'run', '--url', url, '--bogus'], /--bogus/],
  ];
  for (const [args, flag] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 2, `${args.slice(2).join(' ')}: exit 2`);
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
    t.match(r.stderr, flag, 'names the flag');
  }
});
