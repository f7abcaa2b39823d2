// The loadgen web page: starts a run through the REST API, follows its
// progress over SSE, and draws the latency-by-percentile curve with uPlot.
'use strict';
const $ = (id) => document.getElementById(id);
let current = null;
let source = null;
let chart = null;
let rateChart = null;
let rateData = [[], []];

// Live requests per second against seconds since the start.
function plotRate(p) {
  if (p.phase !== 'running') return;
  rateData[0].push(p.elapsedS);
  rateData[1].push(p.rps);
  if (!rateChart) {
    rateChart = new uPlot(
      {
        width: 600,
        height: 180,
        scales: { x: { time: false } },
        axes: [{ label: 'seconds' }, { label: 'req/s' }],
        series: [{ label: 's' }, { label: 'req/s', stroke: '#2e7d32', width: 2 }],
      },
      rateData,
      $('rate-chart'),
    );
  } else rateChart.setData(rateData);
}

function specFromForm() {
  const spec = { url: $('url').value.trim(), workers: Number($('workers').value), stream: $('stream').checked };
  const num = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
  if ($('key').value) spec.key = $('key').value;
  if ($('model').value.trim()) spec.model = $('model').value.trim();
  if (num('requests') !== undefined) spec.requests = num('requests');
  else if (num('durationS') !== undefined) spec.durationS = num('durationS');
  if (num('requestBytes') !== undefined) spec.requestBytes = num('requestBytes');
  if (num('rate')) spec.rate = num('rate');
  if (num('threads') !== undefined) spec.threads = num('threads');
  return spec;
}

function say(text, error = false) {
  $('message').textContent = text;
  $('message').className = error ? 'error' : '';
}

function showProgress(p) {
  $('live').hidden = false;
  const bar = $('bar');
  if (p.total !== null) {
    bar.max = p.total;
    bar.value = p.done;
  } else {
    bar.max = p.durationS || 1;
    bar.value = Math.min(p.elapsedS, bar.max);
  }
  plotRate(p);
  $('progress-text').textContent = `${p.phase}: ${p.done}${p.total !== null ? '/' + p.total : ''} requests, ${Math.round(p.rps)} req/s, ${p.errors} errors`;
}

const fmt = (v) => (typeof v === 'number' ? v.toFixed(2) : '');

function showResult(b) {
  $('result').hidden = false;
  $('status').textContent = `(${b.status})`;
  $('cancel').disabled = true;
  $('start').disabled = false;
  if (b.error) say(b.error, true);
  const r = b.result;
  if (!r) return;
  const rows = [
    ['requests', r.requests], ['ok', r.ok], ['errors', r.errors], ['duration (s)', fmt(r.durationS)], ['req/s', fmt(r.rps)],
  ];
  let html = rows.map(([k, v]) => `<tr><th>${k}</th><td class="${k.replace(/\W/g, '')}">${v}</td></tr>`).join('');
  html += '<tr><th>latency (ms)</th><th>avg</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>';
  const lat = (name, s) => s ? `<tr><th>${name}</th>${['avg', 'p50', 'p90', 'p99', 'p999', 'max'].map((k) => `<td>${fmt(s[k])}</td>`).join('')}</tr>` : '';
  html += lat('end to end', r.latencyMs) + lat('first token', r.ttftMs) + lat('inter-token', r.itlMs);
  for (const [kind, n] of Object.entries(r.errorsByKind)) if (n) html += `<tr><th>errors: ${kind}</th><td>${n}</td></tr>`;
  $('summary').innerHTML = html;
  drawChart(b.percentiles || []);
}

// x: the percentile on a log scale of 1/(1-p) ("nines"), as HdrHistogram plots do.
function drawChart(points) {
  const pts = points.filter((q) => q.p < 100);
  const xs = pts.map((q) => Math.log10(100 / (100 - q.p)));
  const ys = pts.map((q) => q.ms);
  if (chart) chart.destroy();
  const el = $('chart');
  chart = new uPlot(
    {
      width: Math.min(900, el.clientWidth || 800),
      height: 320,
      scales: { x: { time: false } },
      axes: [
        { label: 'percentile', values: (u, vals) => vals.map((v) => (100 - 100 / Math.pow(10, v)).toPrecision(6).replace(/\.?0+$/, '') + '%') },
        { label: 'latency (ms)' },
      ],
      series: [{ label: 'percentile', value: (u, v) => (v == null ? '' : (100 - 100 / Math.pow(10, v)).toFixed(3) + '%') }, { label: 'latency ms', stroke: '#1565c0', width: 2, points: { show: true } }],
    },
    [xs, ys],
    el,
  );
}

function follow(id) {
  if (source) source.close();
  source = new EventSource(`/v1/benchmarks/${id}/events`);
  source.addEventListener('progress', (e) => showProgress(JSON.parse(e.data)));
  source.addEventListener('done', (e) => {
    source.close();
    source = null;
    const b = JSON.parse(e.data);
    if (b.progress) showProgress(b.progress);
    say(`Benchmark ${b.id} ${b.status}.`);
    showResult(b);
  });
}

$('spec').addEventListener('submit', async (e) => {
  e.preventDefault();
  say('Starting…');
  $('result').hidden = true;
  const res = await fetch('/v1/benchmarks', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(specFromForm()) });
  const body = await res.json();
  if (!res.ok) {
    say(body.error ? body.error.message : `HTTP ${res.status}`, true);
    return;
  }
  current = body.id;
  if (rateChart) rateChart.destroy();
  rateChart = null;
  rateData = [[], []];
  say(`Benchmark ${current} running.`);
  $('start').disabled = true;
  $('cancel').disabled = false;
  follow(current);
});

$('cancel').addEventListener('click', async () => {
  if (current) await fetch(`/v1/benchmarks/${current}`, { method: 'DELETE' });
});

// The page's own origin is a good guess of where a sink is not; keep the default URL unless the query says otherwise.
const q = new URLSearchParams(location.search);
if (q.get('url')) $('url').value = q.get('url');
