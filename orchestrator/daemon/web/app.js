// The orchestrator daemon's page: the run history with a throughput trend per
// system, a form to submit or schedule a run, a run's live progress (SSE read
// through fetch, so that a bearer token can go with it), its tables and
// report, and the comparison of two runs. Plain DOM: every server string is
// set as text, never parsed as HTML. Charts are uPlot, served by the daemon.
'use strict';
(() => {
  const TOKEN_KEY = 'sluice.orchestrator.token';
  const ACTIVE = ['queued', 'running'];
  const BASELINE_COLOUR = '#5f6673';
  // The report's colours (Okabe–Ito), in the default matrix's order, so a system looks the same here and there.
  const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#882255', '#44aa99', '#999933', '#332288'];
  const KNOWN_SYSTEMS = ['sluice', 'sluice-redis', 'nginx', 'portkey'];
  const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const LABEL_FONT = '600 12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

  const $ = (id) => document.getElementById(id);

  const state = {
    runs: [],
    listText: '',
    hasMore: false,
    statusFilter: '',
    running: null,
    queued: 0,
    defaultMatrix: null,
    picked: [],
    view: { kind: 'home' },
    detail: null,
    tab: 'tables',
    skips: new Map(),
    live: null,
    streams: new Map(),
    sparks: [],
    charts: [],
    pollTimer: 0,
    detailRefresh: 0,
    reportUrl: null,
  };

  // ---------------------------------------------------------------------------
  // DOM helpers: text only.

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') el[k] = Boolean(v);
        else if (k === 'value') el.value = String(v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    add(el, children);
    return el;
  }

  function add(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
  }

  // ---------------------------------------------------------------------------
  // Formatting

  const number = (v, digits = 0) => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–');
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const runName = (r) => r.label || r.scenarios.join(', ') || r.id;
  /** A run's throughput ratios, or null when it measured none (Baseline only, or cut off before a pair). */
  const summaryOf = (r) => (r.summary && Object.keys(r.summary).length > 0 ? r.summary : null);
  const systemName = (s) => (s === 'baseline' ? 'Baseline' : s);

  function colourOf(system) {
    if (system === 'baseline') return BASELINE_COLOUR;
    const i = KNOWN_SYSTEMS.indexOf(system);
    if (i >= 0) return PALETTE[i];
    let hash = 0;
    for (const ch of system) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    return PALETTE[KNOWN_SYSTEMS.length + (hash % (PALETTE.length - KNOWN_SYSTEMS.length))];
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long', hourCycle: 'h23' });
  const when = (iso) => (iso ? dateFormat.format(new Date(iso)) : '–');
  const whenFull = (iso) => (iso ? `${fullFormat.format(new Date(iso))} (${iso})` : '');

  function ago(iso) {
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (!Number.isFinite(s)) return '';
    if (s < -30) return `in ${duration(-s * 1000)}`;
    if (s < 45) return 'just now';
    if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
    if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  function duration(ms) {
    const s = ms / 1000;
    if (!Number.isFinite(s) || s < 0) return '–';
    if (s < 60) return `${number(s, s < 10 ? 1 : 0)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }

  const runDuration = (r) => (r.started_at ? duration((r.finished_at ? Date.parse(r.finished_at) : Date.now()) - Date.parse(r.started_at)) : '–');

  function badge(status) {
    return h('span', { class: `badge ${status}` }, status);
  }

  function swatch(system) {
    const s = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    s.style.background = colourOf(system);
    return s;
  }

  /** A matrix scenario in a line, as the tables describe it. */
  function describeScenario(s) {
    const parts = [];
    parts.push(s.sweep ? `≤ ${number(s.workers)} in flight` : s.rate !== undefined ? `${number(s.rate)}/s open loop` : `${number(s.workers)} users`);
    parts.push(s.request_bytes % 1024 === 0 ? `${s.request_bytes / 1024} KB` : `${number(s.request_bytes)} B`);
    if (s.stream) parts.push(`streamed (TTFT ${s.stream.ttft_ms} ms, ITL ${s.stream.itl_ms} ms × ${s.stream.output_tokens})`);
    else parts.push(`wait ${number(s.wait_ms)} ms`);
    if (s.sweep) parts.push(`sweep ${s.sweep.rates.map((r) => number(r)).join(' → ')}/s, ${s.sweep.step_s} s each`);
    else if (s.requests !== undefined) parts.push(`${number(s.requests)} requests`);
    else parts.push(`${s.duration_s ?? 10} s`);
    return parts.join(' · ');
  }

  // ---------------------------------------------------------------------------
  // The API: JSON, a token asked for once on a 401, errors as ApiError.

  class ApiError extends Error {
    constructor(status, error) {
      super(error && typeof error.message === 'string' ? error.message : `The daemon answered ${status}.`);
      this.status = status;
      this.param = error && typeof error.param === 'string' ? error.param : null;
      this.code = error && typeof error.code === 'string' ? error.code : null;
    }
  }

  let tokenPrompt = null;

  function askToken(refused) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const dialog = $('token-dialog');
      $('token-error').textContent = refused ? 'The daemon refused that token; check it and try again.' : '';
      $('token-input').value = '';
      const done = (e) => {
        e.preventDefault();
        const v = $('token-input').value.trim();
        if (!v) return;
        sessionStorage.setItem(TOKEN_KEY, v);
        $('token-form').removeEventListener('submit', done);
        dialog.close();
        tokenPrompt = null;
        $('token-button').hidden = false;
        resolve();
      };
      $('token-form').addEventListener('submit', done);
      if (!dialog.open) dialog.showModal();
      $('token-input').focus();
    });
    return tokenPrompt;
  }

  async function api(path, { method = 'GET', body, signal, raw = false } = {}) {
    for (;;) {
      const headers = { accept: raw ? '*/*' : 'application/json' };
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
      if (res.status === 401) {
        await askToken(Boolean(token));
        continue;
      }
      if (raw && res.ok) return res;
      const text = await res.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = null;
      }
      if (!res.ok) throw new ApiError(res.status, data && data.error);
      return { data, text };
    }
  }

  const runPath = (id, sub = '') => `/v1/runs/${encodeURIComponent(id)}${sub}`;

  // ---------------------------------------------------------------------------
  // Events: `GET /v1/runs/:id/events` read with fetch (EventSource cannot send a token).

  async function readEvents(id, onEvent, signal) {
    const res = await api(runPath(id, '/events'), { raw: true, signal });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let event = 'message';
        const data = [];
        for (const raw of frame.split('\n')) {
          const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
          if (line === '' || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let v = colon < 0 ? '' : line.slice(colon + 1);
          if (v.startsWith(' ')) v = v.slice(1);
          if (field === 'event') event = v;
          else if (field === 'data') data.push(v);
        }
        if (data.length === 0) continue;
        let parsed;
        try {
          parsed = JSON.parse(data.join('\n'));
        } catch {
          continue;
        }
        onEvent(event, parsed);
      }
    }
  }

  /** Follows a queued or running run until its final status; reconnects when the stream drops. */
  function watch(id) {
    if (state.streams.has(id)) return;
    const abort = new AbortController();
    state.streams.set(id, abort);
    (async () => {
      let final = false;
      while (!final && !abort.signal.aborted) {
        try {
          await readEvents(
            id,
            (event, data) => {
              if (event === 'status') {
                if (!ACTIVE.includes(data.status)) final = true;
                onStatus(data);
              } else if (event === 'progress') onProgress(id, data);
              else if (event === 'skip') onSkip(id, data);
            },
            abort.signal,
          );
        } catch (err) {
          if (abort.signal.aborted) break;
          if (err instanceof ApiError && err.status === 404) break;
        }
        if (!final && !abort.signal.aborted) await new Promise((r) => setTimeout(r, 2000));
      }
      state.streams.delete(id);
    })();
  }

  function unwatch(id) {
    const a = state.streams.get(id);
    if (a) a.abort();
    state.streams.delete(id);
  }

  function onStatus(run) {
    if (run.status === 'running') state.running = run;
    else if (state.running && state.running.id === run.id) state.running = null;
    const i = state.runs.findIndex((r) => r.id === run.id);
    const changed = i < 0 || state.runs[i].status !== run.status;
    if (i >= 0) {
      state.runs[i] = run;
      replaceRow(run);
    }
    if (state.detail && state.detail.id === run.id && changed) loadDetail(run.id);
    if (!ACTIVE.includes(run.status)) {
      unwatch(run.id);
      schedulePoll(200);
    } else if (changed) schedulePoll(200);
    updateDaemonState();
  }

  function onProgress(id, e) {
    const r = state.runs.find((x) => x.id === id);
    if (r) {
      r.progress = e.progress;
      patchRowProgress(r);
    }
    if (state.detail && state.detail.id === id) {
      const before = state.detail.progress ? state.detail.progress.done : 0;
      state.detail.progress = e.progress;
      updateLive(e);
      // A cell finished: its numbers are in the results; fetch the tables again.
      if (e.progress.done > before) {
        clearTimeout(state.detailRefresh);
        state.detailRefresh = setTimeout(() => loadDetail(id), 300);
      }
    }
    updateDaemonState();
  }

  function onSkip(id, e) {
    const list = state.skips.get(id) || [];
    list.push(e);
    state.skips.set(id, list);
    if (state.detail && state.detail.id === id) renderSkips();
  }

  // ---------------------------------------------------------------------------
  // The history

  function schedulePoll(ms) {
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    clearTimeout(state.pollTimer);
    try {
      await refreshRuns();
      $('history-error').hidden = true;
    } catch (err) {
      $('history-error').hidden = false;
      $('history-error').textContent = `Cannot read the history: ${err.message}`;
      $('daemon-state').textContent = 'Daemon unreachable';
      $('daemon-state').className = 'daemon-state down';
    }
    const active = state.running !== null || state.queued > 0;
    state.pollTimer = setTimeout(poll, active ? 4000 : 15000);
  }

  async function refreshRuns() {
    const limit = Math.min(100, Math.max(50, state.runs.length));
    const q = new URLSearchParams({ limit: String(limit) });
    if (state.statusFilter) q.set('status', state.statusFilter);
    const [list, running, queued] = await Promise.all([
      api(`/v1/runs?${q}`),
      api('/v1/runs?status=running&limit=1'),
      api('/v1/runs?status=queued&limit=100'),
    ]);
    state.running = running.data.data[0] || null;
    state.queued = queued.data.data.length;
    if (state.running) watch(state.running.id);
    if (list.text !== state.listText) {
      state.listText = list.text;
      state.runs = list.data.data;
      state.hasMore = list.data.has_more;
      renderHistory();
      if (state.view.kind === 'compare') fillCompareSelects();
    } else {
      // Relative times move on even when nothing else did.
      for (const el of document.querySelectorAll('[data-ago]')) el.textContent = ago(el.getAttribute('data-ago'));
    }
    updateDaemonState();
  }

  async function loadMore() {
    const last = state.runs.at(-1);
    if (!last) return;
    const q = new URLSearchParams({ limit: '50', after: last.id });
    if (state.statusFilter) q.set('status', state.statusFilter);
    const { data } = await api(`/v1/runs?${q}`);
    state.runs = state.runs.concat(data.data);
    state.hasMore = data.has_more;
    state.listText = '';
    renderHistory();
  }

  function updateDaemonState() {
    const el = $('daemon-state');
    const r = state.running ? state.runs.find((x) => x.id === state.running.id) || state.running : null;
    el.replaceChildren();
    if (r) {
      const pct = r.progress ? Math.round(r.progress.fraction * 100) : 0;
      el.className = 'daemon-state busy';
      add(el, [h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Running ', h('a', { href: `#run/${encodeURIComponent(r.id)}` }, runName(r)), ` · ${pct}%`]);
    } else {
      el.className = 'daemon-state idle';
      add(el, [h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Idle']);
    }
    if (state.queued > 0) add(el, [` · ${state.queued} queued`]);
  }

  /** Runs of the same matrix, oldest first, with the systems they measured against Baseline. */
  function trendGroups() {
    const groups = new Map();
    for (const r of [...state.runs].reverse()) {
      if (!summaryOf(r)) continue;
      let g = groups.get(r.matrix_key);
      if (!g) groups.set(r.matrix_key, (g = { runs: [], systems: [] }));
      g.runs.push(r);
      for (const s of Object.keys(r.summary)) if (!g.systems.includes(s)) g.systems.push(s);
    }
    return groups;
  }

  function destroyCharts(list) {
    for (const c of list.splice(0)) c.destroy();
  }

  function renderHistory() {
    destroyCharts(state.sparks);
    const groups = trendGroups();
    const body = $('runs-body');
    body.replaceChildren(...state.runs.map((r) => renderRow(r, groups)));
    $('runs-empty').hidden = state.runs.length > 0;
    $('runs-empty').textContent = state.statusFilter ? `No ${state.statusFilter} runs.` : 'No runs yet: submit one with the form.';
    $('load-more').hidden = !state.hasMore;
    updatePicked();
  }

  function replaceRow(run) {
    const old = $('runs-body').querySelector(`tr[data-id="${CSS.escape(run.id)}"]`);
    if (!old) return;
    // The sparklines of a row depend on the others: rebuild them all (a handful of canvases).
    renderHistory();
  }

  function renderRow(r, groups) {
    const picked = state.picked.includes(r.id);
    const tr = h(
      'tr',
      { 'data-id': r.id, 'data-status': r.status, class: state.detail && state.detail.id === r.id && state.view.kind === 'run' ? 'current' : null },
      h(
        'td',
        { class: 'pick' },
        h('input', {
          type: 'checkbox',
          checked: picked,
          'aria-label': `Select ${runName(r)} to compare`,
          onchange: (e) => togglePick(r.id, e.target.checked),
        }),
      ),
      h('td', null, badge(r.status)),
      h(
        'td',
        { class: 'run-cell' },
        h('a', { href: `#run/${encodeURIComponent(r.id)}`, class: r.label ? 'run-link' : 'run-link unlabelled' }, runName(r)),
        h('div', { class: 'sub' }, h('code', null, r.id), ` · ${plural(r.scenarios.length, 'scenario')} × ${plural(r.systems.length, 'system')}`, r.schedule_id ? ' · scheduled' : ''),
      ),
      h('td', { class: 'when', title: whenFull(r.created_at) }, when(r.created_at), h('div', { class: 'sub', 'data-ago': r.created_at }, ago(r.created_at))),
      h('td', { class: 'progress-cell' }, progressCell(r)),
      h('td', { class: 'regressions-cell' }, regressionsCell(r)),
      h('td', { class: 'trend-cell' }, trendCell(r, groups.get(r.matrix_key))),
    );
    tr.addEventListener('click', (e) => {
      if (e.target.closest('a, button, input, label')) return;
      location.hash = `#run/${encodeURIComponent(r.id)}`;
    });
    return tr;
  }

  function progressCell(r) {
    if (r.status === 'running') {
      const p = r.progress;
      return h(
        'div',
        { class: 'row-progress' },
        h('progress', { max: '1', value: p ? String(p.fraction) : '0', 'aria-label': `Progress of ${runName(r)}` }),
        h('div', { class: 'sub progress-text' }, progressText(p)),
      );
    }
    if (r.status === 'queued') return h('span', { class: 'muted' }, 'waiting');
    const span = h('span', null, runDuration(r));
    if (r.progress && r.progress.done < r.progress.total) add(span, [h('div', { class: 'sub' }, `${r.progress.done} of ${plural(r.progress.total, 'cell')}`)]);
    if (r.error) add(span, [h('div', { class: 'sub error-text', title: r.error }, r.error)]);
    return span;
  }

  const progressText = (p) => (p ? `${Math.round(p.fraction * 100)}% · ${p.done} of ${plural(p.total, 'cell')}` : 'starting');

  function patchRowProgress(r) {
    const tr = $('runs-body').querySelector(`tr[data-id="${CSS.escape(r.id)}"]`);
    if (!tr) return;
    const bar = tr.querySelector('progress');
    const text = tr.querySelector('.progress-text');
    if (bar && r.progress) bar.value = r.progress.fraction;
    if (text) text.textContent = progressText(r.progress);
  }

  function regressionsCell(r) {
    if (r.regressions === null || r.regressions === undefined) {
      return h('span', { class: 'muted', title: 'Scheduled runs are compared with the previous run of their schedule' }, '–');
    }
    const compare = r.compared_with ? `#compare/${encodeURIComponent(r.compared_with)}/${encodeURIComponent(r.id)}` : null;
    if (r.regressions === 0) return h('a', { class: 'flag ok', href: compare, title: 'No regression against the previous run of the schedule' }, '✓ none');
    return h('a', { class: 'flag bad', href: compare, title: 'Regressions against the previous run of the schedule' }, `▲ ${r.regressions}`);
  }

  function trendCell(r, group) {
    const systems = r.systems.filter((s) => s !== 'baseline');
    if (systems.length === 0) return h('span', { class: 'muted' }, 'Baseline only');
    if (!summaryOf(r)) return h('span', { class: 'muted', title: ACTIVE.includes(r.status) ? 'Once the run ends' : 'No system was measured beside Baseline' }, ACTIVE.includes(r.status) ? '…' : '–');
    const wrap = h('div', { class: 'sparks' });
    for (const sys of systems) {
      const v = r.summary[sys];
      const item = h('div', { class: 'spark-item' }, h('span', { class: 'spark-name' }, swatch(sys), sys));
      if (v === undefined) {
        add(item, [h('span', { class: 'spark-value muted' }, 'not measured')]);
        wrap.append(item);
        continue;
      }
      const holder = h('span', { class: 'spark' });
      const series = group ? group.runs.map((x) => (x.summary[sys] === undefined ? null : x.summary[sys])) : [v];
      const at = group ? group.runs.findIndex((x) => x.id === r.id) : 0;
      const values = series.filter((x) => x !== null);
      holder.title = `${sys}: ${number(v, 3)} of Baseline's throughput in this run; ${plural(values.length, 'run')} of this matrix${
        values.length > 1 ? `, ${number(Math.min(...values), 3)}–${number(Math.max(...values), 3)}` : ''
      }`;
      holder.setAttribute('role', 'img');
      holder.setAttribute('aria-label', holder.title);
      add(item, [holder, h('span', { class: v < 0.95 ? 'spark-value low' : 'spark-value' }, `${number(v, 2)}×`)]);
      wrap.append(item);
      state.sparks.push(sparkline(holder, series, at, colourOf(sys)));
    }
    return wrap;
  }

  /** A tiny uPlot: the system's ratio over the matrix's runs, Baseline's 1.0 dashed, this run a dot. */
  function sparkline(el, series, at, colour) {
    const xs = series.map((_, i) => i);
    const dot = series.map((v, i) => (i === at ? v : null));
    const one = series.map(() => 1);
    const vals = series.filter((v) => v !== null);
    const lo = Math.min(1, ...vals);
    const hi = Math.max(1, ...vals);
    const pad = Math.max(0.02, (hi - lo) * 0.15);
    return new uPlot(
      {
        width: 84,
        height: 22,
        pxAlign: false,
        cursor: { show: false },
        select: { show: false },
        legend: { show: false },
        padding: [3, 4, 3, 4],
        scales: { x: { time: false, range: series.length === 1 ? [-1, 1] : undefined }, y: { range: [lo - pad, hi + pad] } },
        axes: [{ show: false }, { show: false }],
        series: [
          {},
          { stroke: '#b8bec7', width: 1, dash: [2, 2], points: { show: false } },
          { stroke: colour, width: 1.5, points: { show: series.length === 1, size: 5, fill: colour }, spanGaps: true },
          { stroke: colour, width: 0, points: { show: true, size: 6, fill: colour, stroke: '#fff', width: 1 } },
        ],
      },
      [xs, one, series, dot],
      el,
    );
  }

  // ---------------------------------------------------------------------------
  // Picking two runs to compare

  function togglePick(id, on) {
    state.picked = state.picked.filter((x) => x !== id);
    if (on) state.picked.push(id);
    while (state.picked.length > 2) state.picked.shift();
    for (const box of $('runs-body').querySelectorAll('td.pick input')) {
      box.checked = state.picked.includes(box.closest('tr').getAttribute('data-id'));
    }
    updatePicked();
  }

  function updatePicked() {
    const b = $('compare-picked');
    b.disabled = false;
    b.textContent = state.picked.length === 2 ? 'Compare the 2 selected' : 'Compare…';
  }

  function comparePicked() {
    if (state.picked.length === 2) {
      // The older run is the base.
      const seq = (id) => {
        const i = state.runs.findIndex((r) => r.id === id);
        return i < 0 ? Infinity : i;
      };
      const [a, b] = [...state.picked].sort((x, y) => seq(y) - seq(x));
      location.hash = `#compare/${encodeURIComponent(a)}/${encodeURIComponent(b)}`;
    } else location.hash = '#compare';
  }

  // ---------------------------------------------------------------------------
  // The submit form

  function mode() {
    return $('mode-yaml').checked ? 'yaml' : 'pick';
  }

  function setMode() {
    const yaml = mode() === 'yaml';
    $('yaml-fields').hidden = !yaml;
    $('pick-fields').hidden = yaml;
    if (yaml && $('yaml').value.trim() === '' && state.defaultMatrix) $('yaml').value = state.defaultMatrix.yaml;
  }

  async function loadDefaultMatrix() {
    try {
      const { data } = await api('/v1/matrix/default');
      state.defaultMatrix = data;
      renderPicks();
    } catch (err) {
      $('scenario-picks').replaceChildren(h('legend', null, 'Scenarios'), h('p', { class: 'field-error' }, `Cannot read the default matrix: ${err.message}`));
    }
  }

  const PROVIDER_TEXT = {
    local: 'local: processes on this machine, on loopback',
    netns: 'netns: a network namespace per role, on CPUs of its own',
    gcp: 'gcp: three VMs (e2-medium by default; they cost money)',
  };

  /** The providers this daemon runs; the ones it does not are shown disabled, saying why. */
  async function loadProviders() {
    try {
      const { data } = await api('/v1/providers');
      $('provider').replaceChildren(
        ...data.data.map((p) =>
          h('option', { value: p.id, disabled: !p.available, title: p.reason || null }, `${PROVIDER_TEXT[p.id] || p.id}${p.available ? '' : ' (not here)'}`),
        ),
      );
    } catch {
      /* an older daemon: local only */
    }
  }

  function renderPicks() {
    const m = state.defaultMatrix.matrix;
    $('scenario-picks').replaceChildren(
      h('legend', null, 'Scenarios'),
      ...m.scenarios.map((s, i) =>
        h(
          'label',
          { class: 'pick-item' },
          h('input', { type: 'checkbox', name: 'scenario', value: s.name, checked: true, id: `scenario-${i}`, onchange: updateEstimate }),
          h('span', null, h('span', { class: 'pick-name' }, s.name), h('span', { class: 'pick-desc' }, describeScenario(s))),
        ),
      ),
    );
    const systems = [...new Set([...m.systems, ...Object.keys(m.custom)])];
    $('system-picks').replaceChildren(
      h('legend', null, 'Systems'),
      h(
        'div',
        { class: 'system-grid' },
        systems.map((s) =>
          h(
            'label',
            { class: 'pick-item system', title: s === 'baseline' ? 'The reference every table is read against: it always runs' : null },
            h('input', { type: 'checkbox', name: 'system', value: s, checked: true, disabled: s === 'baseline', onchange: updateEstimate }),
            swatch(s),
            h('span', { class: 'pick-name' }, systemName(s)),
            s === 'baseline' ? h('span', { class: 'pick-desc' }, 'always') : null,
          ),
        ),
      ),
    );
    $('repetitions').value = String(m.repetitions);
    $('warmup').value = String(m.warmup_s);
    updateEstimate();
  }

  function pickedMatrix() {
    const m = structuredClone(state.defaultMatrix.matrix);
    const scenarios = [...document.querySelectorAll('input[name=scenario]:checked')].map((i) => i.value);
    const systems = [...document.querySelectorAll('input[name=system]:checked')].map((i) => i.value);
    m.scenarios = m.scenarios.filter((s) => scenarios.includes(s.name));
    m.systems = m.systems.filter((s) => systems.includes(s));
    const reps = $('repetitions').value.trim();
    const warm = $('warmup').value.trim();
    if (reps !== '') m.repetitions = Number(reps);
    if (warm !== '') m.warmup_s = Number(warm);
    return m;
  }

  /** The runner's own estimate (orchestrator/runner.ts cellSeconds), roughly. */
  function estimateSeconds(m) {
    let total = 0;
    for (const s of m.scenarios) {
      let cell;
      if (s.sweep) cell = s.sweep.rates.length * (s.sweep.step_s + 0.5) + Math.min(2, s.sweep.step_s) + 2;
      else {
        const latency = s.stream ? s.wait_ms + s.stream.ttft_ms + Math.max(0, s.stream.output_tokens - 1) * s.stream.itl_ms : s.wait_ms;
        const theoretical = s.rate !== undefined ? s.rate : latency > 0 ? (s.workers * 1000) / latency : Infinity;
        const run = s.duration_s ?? (s.requests !== undefined ? s.requests / Math.max(1, theoretical) : 10);
        cell = (s.warmup_s ?? m.warmup_s) + run + 0.5;
      }
      const reps = s.sweep ? 1 : m.repetitions;
      total += m.systems.length * (reps * cell + 2);
    }
    return total;
  }

  function updateEstimate() {
    if (!state.defaultMatrix) return;
    const m = pickedMatrix();
    if (!m.systems.includes('baseline')) m.systems.unshift('baseline');
    let cells = 0;
    for (const s of m.scenarios) cells += m.systems.length * (s.sweep ? 1 : Math.max(1, m.repetitions || 1));
    $('estimate').textContent = m.scenarios.length === 0 ? 'Pick at least one scenario.' : `${plural(cells, 'cell')}, about ${duration(estimateSeconds(m) * 1000)}.`;
  }

  function clearErrors() {
    for (const id of ['yaml-error', 'pick-error', 'label-error', 'cron-error', 'provider-error']) $(id).textContent = '';
    for (const id of ['yaml', 'label', 'cron', 'provider']) $(id).removeAttribute('aria-invalid');
    $('submit-message').textContent = '';
    $('submit-message').className = '';
    $('schedule-message').textContent = '';
    $('schedule-message').className = '';
  }

  /** Shows the API's message next to the field its `param` names. */
  function showFieldError(err, fallback) {
    const p = err.param || '';
    const put = (errorId, fieldId) => {
      $(errorId).textContent = err.message;
      if (fieldId) {
        $(fieldId).setAttribute('aria-invalid', 'true');
        $(fieldId).focus();
      }
    };
    if (p === 'label') put('label-error', 'label');
    else if (p === 'provider') put('provider-error', 'provider');
    else if (p === 'cron') put('cron-error', 'cron');
    else if (p.startsWith('matrix')) {
      if (mode() === 'yaml') put('yaml-error', 'yaml');
      else put('pick-error', null);
    } else {
      $(fallback).textContent = err.message;
      $(fallback).className = 'error-text';
    }
  }

  function formMatrix() {
    if (mode() === 'yaml') {
      const text = $('yaml').value;
      if (text.trim() === '') {
        $('yaml-error').textContent = 'Paste a matrix (YAML or JSON), or start from the default one.';
        return null;
      }
      return text;
    }
    if (!state.defaultMatrix) return null;
    const m = pickedMatrix();
    if (m.scenarios.length === 0) {
      $('pick-error').textContent = 'Pick at least one scenario.';
      return null;
    }
    return m;
  }

  async function submitRun(e) {
    e.preventDefault();
    clearErrors();
    const matrix = formMatrix();
    if (matrix === null) return;
    const body = { matrix };
    const label = $('label').value.trim();
    if (label) body.label = label;
    if ($('provider').value !== 'local') body.provider = $('provider').value;
    const button = $('submit-run');
    button.disabled = true;
    $('submit-message').textContent = 'Submitting…';
    try {
      const { data } = await api('/v1/runs', { method: 'POST', body });
      $('submit-message').textContent = `Queued ${data.id}.`;
      $('submit-message').className = 'ok-text';
      await refreshRuns().catch(() => undefined);
      location.hash = `#run/${encodeURIComponent(data.id)}`;
    } catch (err) {
      $('submit-message').textContent = '';
      if (err instanceof ApiError) showFieldError(err, 'submit-message');
      else {
        $('submit-message').textContent = `Cannot reach the daemon: ${err.message}`;
        $('submit-message').className = 'error-text';
      }
    } finally {
      button.disabled = false;
    }
  }

  async function submitSchedule() {
    clearErrors();
    const cron = $('cron').value.trim();
    if (!cron) {
      $('cron-error').textContent = 'A cron expression, e.g. "0 3 * * *" for every night at 03:00.';
      $('cron').focus();
      return;
    }
    if ($('provider').value !== 'local') {
      // The schedules API takes no provider: say so rather than schedule a local run.
      $('provider-error').textContent = 'Schedules run on this machine (local); choose local to schedule.';
      $('provider').setAttribute('aria-invalid', 'true');
      $('provider').focus();
      return;
    }
    const matrix = formMatrix();
    if (matrix === null) return;
    const body = { cron, matrix };
    const label = $('label').value.trim();
    if (label) body.label = label;
    try {
      const { data } = await api('/v1/schedules', { method: 'POST', body });
      $('schedule-message').textContent = `Scheduled; next run ${when(data.next_run_at)}.`;
      $('schedule-message').className = 'ok-text';
      refreshSchedules();
    } catch (err) {
      if (err instanceof ApiError) showFieldError(err, 'schedule-message');
      else $('schedule-message').textContent = err.message;
    }
  }

  // ---------------------------------------------------------------------------
  // Schedules

  async function refreshSchedules() {
    let data;
    try {
      ({ data } = await api('/v1/schedules'));
    } catch (err) {
      $('schedule-list').replaceChildren(h('li', { class: 'error-text' }, `Cannot read the schedules: ${err.message}`));
      return;
    }
    $('schedules-empty').hidden = data.data.length > 0;
    $('schedule-list').replaceChildren(
      ...data.data.map((s) =>
        h(
          'li',
          null,
          h(
            'div',
            { class: 'sched-main' },
            h('code', { class: 'cron' }, s.cron),
            s.label ? h('span', { class: 'sched-label' }, s.label) : null,
            h('button', { type: 'button', class: 'link danger', 'aria-label': `Delete the schedule ${s.cron}${s.label ? ` (${s.label})` : ''}`, onclick: () => deleteSchedule(s) }, 'Delete'),
          ),
          h(
            'div',
            { class: 'sub' },
            `${plural(s.scenarios.length, 'scenario')} × ${plural(s.systems.length, 'system')}`,
            s.next_run_at ? ` · next ${when(s.next_run_at)}` : '',
            s.last_run_id ? [' · ', h('a', { href: `#run/${encodeURIComponent(s.last_run_id)}` }, 'last run')] : '',
          ),
        ),
      ),
    );
  }

  async function deleteSchedule(s) {
    if (!confirm(`Delete the schedule "${s.cron}"${s.label ? ` (${s.label})` : ''}? Its runs stay in the history.`)) return;
    try {
      await api(`/v1/schedules/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
    } catch (err) {
      alert(err.message);
    }
    refreshSchedules();
  }

  // ---------------------------------------------------------------------------
  // A run

  async function showRun(id, scroll) {
    const first = !state.detail || state.detail.id !== id || state.view.kind !== 'run';
    state.view = { kind: 'run', id };
    $('compare').hidden = true;
    const section = $('detail');
    section.hidden = false;
    if (first) {
      if (state.reportUrl) URL.revokeObjectURL(state.reportUrl);
      state.reportUrl = null;
      state.tab = 'tables';
      state.live = null;
      destroyCharts(state.charts);
      section.replaceChildren(h('h2', { id: 'detail-title' }, 'Run ', h('code', null, id)), h('p', { class: 'muted' }, 'Loading…'));
      for (const tr of $('runs-body').querySelectorAll('tr')) tr.classList.toggle('current', tr.getAttribute('data-id') === id);
    }
    if (scroll) section.scrollIntoView({ block: 'start' });
    await loadDetail(id);
  }

  async function loadDetail(id) {
    let run;
    try {
      ({ data: run } = await api(runPath(id)));
    } catch (err) {
      if (state.view.kind !== 'run' || state.view.id !== id) return;
      $('detail').replaceChildren(h('h2', { id: 'detail-title' }, 'Run ', h('code', null, id)), h('p', { class: 'banner error', role: 'alert' }, err.message));
      return;
    }
    if (state.view.kind !== 'run' || state.view.id !== id) return;
    state.detail = run;
    renderDetail();
    if (ACTIVE.includes(run.status)) watch(id);
  }

  function renderDetail() {
    const r = state.detail;
    destroyCharts(state.charts);
    const active = ACTIVE.includes(r.status);
    const section = $('detail');
    const previous = previousOf(r);
    const actions = h(
      'div',
      { class: 'actions' },
      active ? h('button', { type: 'button', id: 'cancel-run', class: 'danger', onclick: () => cancelRun(r) }, r.status === 'queued' ? 'Cancel' : 'Cancel run') : null,
      h('button', { type: 'button', id: 'run-again', onclick: () => runAgain(r), title: 'Queue a run of the same matrix with the same label' }, 'Run again'),
      h(
        'button',
        {
          type: 'button',
          id: 'compare-previous',
          disabled: !previous || active,
          title: previous ? `Compare with ${runName(previous)} (${when(previous.created_at)}), the previous run of this matrix` : 'No earlier finished run of the same matrix in the history shown',
          onclick: () => (location.hash = `#compare/${encodeURIComponent(previous.id)}/${encodeURIComponent(r.id)}`),
        },
        'Compare with previous',
      ),
      h('a', { href: '#', class: 'close', 'aria-label': 'Close the run', title: 'Close' }, '✕'),
    );
    const title = h(
      'div',
      { class: 'card-head' },
      h('div', { class: 'title-block' }, h('h2', { id: 'detail-title' }, r.label || 'Run', ' ', badge(r.status)), h('div', { class: 'sub' }, h('code', null, r.id))),
      actions,
    );
    const meta = h(
      'dl',
      { class: 'meta' },
      h('dt', null, 'Created'),
      h('dd', { title: whenFull(r.created_at) }, `${when(r.created_at)} (${ago(r.created_at)})`),
      h('dt', null, 'Duration'),
      h('dd', { id: 'detail-duration' }, r.started_at ? `${runDuration(r)}${r.finished_at ? '' : ' so far'}` : 'not started'),
      h('dt', null, 'Scenarios'),
      h('dd', null, r.scenarios.map((s) => h('span', { class: 'chip' }, s))),
      h('dt', null, 'Systems'),
      h('dd', null, r.systems.map((s) => h('span', { class: 'chip' }, swatch(s), systemName(s)))),
      h('dt', null, 'Repetitions'),
      h('dd', null, String(r.matrix.repetitions), h('span', { class: 'muted' }, ` · warm-up ${r.matrix.warmup_s} s · model ${r.matrix.model}`)),
      h('dt', null, 'Where'),
      h('dd', null, r.provider || 'local'),
      r.schedule_id ? [h('dt', null, 'Schedule'), h('dd', null, h('code', null, r.schedule_id))] : null,
    );
    section.replaceChildren(title, h('div', { class: 'detail-grid' }, meta, summaryBlock(r)), progressBlock(r));
    if (r.error) section.append(h('p', { class: 'banner error', role: 'alert' }, r.error));
    section.append(h('div', { id: 'skips' }));
    renderSkips();
    if (r.compared_with && r.regressions !== null) {
      section.append(
        h(
          'p',
          { class: r.regressions > 0 ? 'banner error' : 'banner ok' },
          r.regressions > 0 ? `▲ ${plural(r.regressions, 'regression')} against the previous run of its schedule. ` : '✓ No regression against the previous run of its schedule. ',
          h('a', { href: `#compare/${encodeURIComponent(r.compared_with)}/${encodeURIComponent(r.id)}` }, 'See the comparison'),
        ),
      );
    }
    section.append(tabs(r));
    drawTrend(r);
    if (active) drawLive();
  }

  function previousOf(r) {
    const i = state.runs.findIndex((x) => x.id === r.id);
    const older = i < 0 ? state.runs.filter((x) => x.created_at < r.created_at) : state.runs.slice(i + 1);
    return older.find((x) => x.matrix_key === r.matrix_key && !ACTIVE.includes(x.status) && summaryOf(x)) || null;
  }

  function summaryBlock(r) {
    const box = h('div', { class: 'summary' });
    const systems = r.systems.filter((s) => s !== 'baseline');
    if (!summaryOf(r) || systems.length === 0) return box;
    box.append(h('h3', null, 'Throughput ÷ Baseline', h('span', { class: 'muted' }, ' (closed-loop scenarios)')));
    const list = h('div', { class: 'ratios' });
    for (const s of systems) {
      const v = r.summary[s];
      list.append(
        h(
          'div',
          { class: 'ratio' },
          h('div', { class: 'ratio-name' }, swatch(s), s),
          h('div', { class: v === undefined ? 'ratio-value muted' : v < 0.95 ? 'ratio-value low' : 'ratio-value' }, v === undefined ? '–' : `${number(v, 3)}×`),
        ),
      );
    }
    box.append(list, h('div', { id: 'trend-chart', class: 'trend-chart' }));
    return box;
  }

  /** The run's ratios among the other runs of the same matrix (from the history shown). */
  function drawTrend(r) {
    const el = $('trend-chart');
    if (!el) return;
    const g = trendGroups().get(r.matrix_key);
    if (!g || g.runs.length < 2) {
      el.append(h('p', { class: 'muted small' }, 'The trend appears once the history holds two finished runs of this matrix.'));
      return;
    }
    // x: the runs in order, evenly spaced (a nightly schedule and a burst of reruns read alike), labelled with their time.
    const xs = g.runs.map((_, i) => i);
    const times = g.runs.map((x) => Date.parse(x.created_at));
    const span = times[times.length - 1] - times[0];
    const tickFormat = new Intl.DateTimeFormat(
      undefined,
      span < 3600e3 ? { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' } : span < 86400e3 ? { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' } : { month: 'short', day: 'numeric' },
    );
    const step = Math.max(1, Math.ceil(xs.length / 6));
    const at = g.runs.findIndex((x) => x.id === r.id);
    const series = g.systems.map((s) => g.runs.map((x) => (x.summary[s] === undefined ? null : x.summary[s])));
    const width = Math.max(260, el.clientWidth || 360);
    const chart = new uPlot(
      {
        width,
        height: 150,
        legend: { show: false },
        cursor: { points: { size: 6 } },
        scales: { x: { time: false, range: [-0.25, xs.length - 0.75] }, y: { range: (u, min, max) => [Math.min(min, 1) - 0.03, Math.max(max, 1) + 0.03] } },
        axes: [
          {
            font: FONT,
            stroke: '#3d4451',
            grid: { show: false },
            ticks: { stroke: '#d0d4da' },
            size: 30,
            splits: () => xs.filter((i) => (xs.length - 1 - i) % step === 0),
            values: (u, v) => v.map((i) => (i == null || times[i] === undefined ? '' : tickFormat.format(new Date(times[i])))),
          },
          { font: FONT, stroke: '#3d4451', grid: { stroke: '#eceef1' }, ticks: { stroke: '#d0d4da' }, size: 58, values: (u, v) => v.map((x) => (x == null ? '' : `${number(x, 2)}×`)) },
        ],
        series: [
          {},
          { label: 'Baseline', stroke: BASELINE_COLOUR, width: 1, dash: [4, 4], points: { show: false } },
          ...g.systems.map((s) => ({ label: s, stroke: colourOf(s), width: 2, spanGaps: true, points: { show: true, size: 5, fill: colourOf(s) } })),
          ...g.systems.map((s) => ({ label: `${s} (this run)`, stroke: colourOf(s), width: 0, points: { show: true, size: 9, fill: '#fff', stroke: colourOf(s), width: 2 } })),
        ],
      },
      [xs, xs.map(() => 1), ...series, ...series.map((vals) => vals.map((v, i) => (i === at ? v : null)))],
      el,
    );
    state.charts.push(chart);
    el.append(h('p', { class: 'muted small' }, `${plural(g.runs.length, 'run')} of this matrix; the ringed points are this run, the dashed line Baseline.`));
  }

  function progressBlock(r) {
    const p = r.progress;
    const active = ACTIVE.includes(r.status);
    const block = h('div', { class: active ? 'live active' : 'live', id: 'live' });
    const fraction = p ? p.fraction : 0;
    const bar = h('progress', { id: 'live-bar', max: '1', value: String(fraction), 'aria-label': 'Progress of the run' });
    const stats = h(
      'div',
      { class: 'live-stats' },
      stat('Progress', 'live-pct', `${Math.round(fraction * 100)}%`),
      stat('Cells done', 'live-done', p ? `${p.done} of ${p.total}` : '–'),
      stat(active ? 'Under way' : 'Last cell', 'live-cell', active ? (p && p.label) || (r.status === 'queued' ? 'waiting in the queue' : 'starting') : '–'),
      stat('Requests/sec', 'live-rps', '–'),
      stat('Errors', 'live-errors', '–'),
    );
    block.append(h('div', { class: 'live-head' }, h('h3', null, active ? 'Live' : 'Progress'), bar), stats);
    if (active) block.append(h('div', { id: 'live-chart', class: 'live-chart' }));
    else {
      // A finished run: what it measured in all, instead of the live numbers.
      const cells = r.results ? r.results.cells.filter((c) => c.result) : [];
      const requests = cells.reduce((n, c) => n + c.result.requests, 0);
      const errors = cells.reduce((n, c) => n + c.result.errors, 0);
      stats.querySelector('#live-cell').textContent = r.finished_at ? `${r.status} ${ago(r.finished_at)}` : r.status;
      stats.querySelector('#live-rps').previousSibling.textContent = 'Requests';
      stats.querySelector('#live-rps').textContent = number(requests);
      stats.querySelector('#live-errors').textContent = number(errors);
      stats.querySelector('#live-errors').classList.toggle('bad', errors > 0);
    }
    return block;
  }

  function stat(label, id, value) {
    return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value', id }, value));
  }

  function drawLive() {
    const el = $('live-chart');
    if (!el) return;
    if (!state.live || state.live.id !== state.detail.id) state.live = { id: state.detail.id, t0: Date.now(), xs: [], ys: [], label: null, last: null };
    const chart = new uPlot(
      {
        width: Math.max(300, el.clientWidth || 600),
        height: 140,
        legend: { show: false },
        scales: { x: { time: false, range: (u, min, max) => [0, Math.max(10, Number.isFinite(max) ? max : 0)] }, y: { range: (u, min, max) => [0, Math.max(10, (Number.isFinite(max) ? max : 0) * 1.1)] } },
        axes: [
          {
            font: FONT,
            stroke: '#3d4451',
            grid: { show: false },
            ticks: { stroke: '#d0d4da' },
            size: 28,
            incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
            values: (u, v) => v.map((x) => (x == null ? '' : x < 120 ? `${number(x)} s` : `${number(x / 60)} min`)),
          },
          { font: FONT, labelFont: LABEL_FONT, stroke: '#3d4451', grid: { stroke: '#eceef1' }, ticks: { stroke: '#d0d4da' }, size: 52, label: 'req/s', values: (u, v) => v.map((x) => (x == null ? '' : number(x))) },
        ],
        series: [{}, { label: 'req/s', stroke: '#0b5cad', fill: 'rgba(11,92,173,0.08)', width: 2, spanGaps: false, points: { size: 5, fill: '#0b5cad' } }],
      },
      [state.live.xs, state.live.ys],
      el,
    );
    state.charts.push(chart);
    state.live.chart = chart;
    if (state.live.last) updateLive(state.live.last, true);
  }

  function updateLive(e, replay = false) {
    const p = e.progress;
    const set = (id, text) => {
      const el = $(id);
      if (el) el.textContent = text;
    };
    const bar = $('live-bar');
    if (bar) bar.value = p.fraction;
    set('live-pct', `${Math.round(p.fraction * 100)}%`);
    set('live-done', `${p.done} of ${p.total}`);
    set('live-cell', p.label || '–');
    if (state.detail && state.detail.id === e.runId && state.detail.started_at && !state.detail.finished_at) set('detail-duration', `${runDuration(state.detail)} so far`);
    if (!state.live || state.live.id !== e.runId) return;
    if (!replay) state.live.last = e;
    if (e.detail) {
      set('live-rps', `${number(e.detail.rps)}${e.detail.phase && e.detail.phase !== 'running' ? ` (${e.detail.phase})` : ''}`);
      set('live-errors', number(e.detail.errors));
      const errs = $('live-errors');
      if (errs) errs.classList.toggle('bad', e.detail.errors > 0);
      if (!replay && e.detail.phase === 'running') {
        const live = state.live;
        // A gap between cells: each has its own line.
        if (live.label !== null && live.label !== p.label && live.xs.length) {
          live.xs.push((Date.now() - live.t0) / 1000 - 0.001);
          live.ys.push(null);
        }
        live.label = p.label;
        live.xs.push((Date.now() - live.t0) / 1000);
        live.ys.push(e.detail.rps);
        if (live.chart) live.chart.setData([live.xs, live.ys]);
      }
    }
  }

  function renderSkips() {
    const el = $('skips');
    if (!el || !state.detail) return;
    const list = state.skips.get(state.detail.id) || [];
    el.replaceChildren();
    if (list.length === 0) return;
    el.append(h('ul', { class: 'notes warn' }, list.map((s) => h('li', null, h('b', null, `${s.system}${s.scenario ? ` in ${s.scenario}` : ''} skipped: `), s.reason))));
  }

  const TABS = [
    ['tables', 'Tables'],
    ['report', 'Report'],
    ['matrix', 'Matrix'],
    ['comparison', 'Scheduled comparison'],
  ];

  function tabs(r) {
    const available = TABS.filter(([k]) => k !== 'comparison' || r.comparison);
    if (!available.some(([k]) => k === state.tab)) state.tab = 'tables';
    const wrap = h('div', { class: 'tabs' });
    const list = h('div', { class: 'tab-list', role: 'tablist', 'aria-label': 'Run details' });
    const panel = h('div', { class: 'tab-panel', role: 'tabpanel', id: 'tab-panel', tabindex: '0' });
    for (const [key, text] of available) {
      const selected = key === state.tab;
      list.append(
        h(
          'button',
          {
            type: 'button',
            role: 'tab',
            id: `tab-${key}`,
            'aria-selected': selected ? 'true' : 'false',
            'aria-controls': 'tab-panel',
            tabindex: selected ? '0' : '-1',
            onclick: () => {
              state.tab = key;
              for (const b of list.querySelectorAll('[role=tab]')) {
                const on = b.id === `tab-${key}`;
                b.setAttribute('aria-selected', on ? 'true' : 'false');
                b.tabIndex = on ? 0 : -1;
              }
              fillTab(panel, r, key);
            },
            onkeydown: (e) => {
              if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
              const buttons = [...list.querySelectorAll('[role=tab]')];
              const i = buttons.indexOf(e.currentTarget);
              const next = buttons[(i + (e.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
              next.focus();
              next.click();
            },
          },
          text,
        ),
      );
    }
    panel.setAttribute('aria-labelledby', `tab-${state.tab}`);
    wrap.append(list, panel);
    fillTab(panel, r, state.tab);
    return wrap;
  }

  function fillTab(panel, r, key) {
    panel.setAttribute('aria-labelledby', `tab-${key}`);
    panel.replaceChildren();
    if (key === 'tables') {
      if (!r.tables) panel.append(h('p', { class: 'empty' }, ACTIVE.includes(r.status) ? 'The tables fill in as cells finish.' : 'This run has no results.'));
      else panel.append(markdown(r.tables));
    } else if (key === 'report') reportTab(panel, r);
    else if (key === 'matrix') {
      panel.append(
        h('p', { class: 'muted small' }, 'The matrix as the daemon validated it (JSON is YAML too: paste it into the form to run a variant).'),
        h(
          'div',
          { class: 'actions' },
          h(
            'button',
            {
              type: 'button',
              onclick: () => {
                $('mode-yaml').checked = true;
                setMode();
                $('yaml').value = JSON.stringify(r.matrix, null, 2);
                if (r.label) $('label').value = r.label;
                $('submit').scrollIntoView({ block: 'start' });
                $('yaml').focus();
              },
            },
            'Edit in the form',
          ),
        ),
        h('pre', { class: 'code' }, JSON.stringify(r.matrix, null, 2)),
      );
    } else if (key === 'comparison') panel.append(markdown(r.comparison));
  }

  async function reportTab(panel, r) {
    const hasResults = r.results !== null;
    if (!hasResults) {
      panel.append(h('p', { class: 'empty' }, ACTIVE.includes(r.status) ? 'The report is ready once the first cell finishes.' : 'This run has no results, so no report.'));
      return;
    }
    const link = h('a', { id: 'report-link', target: '_blank', rel: 'noopener' }, 'Open the report in a new tab');
    const frame = h('iframe', { id: 'report-frame', class: 'report-frame', title: `Report of ${runName(r)}`, sandbox: 'allow-scripts', loading: 'eager' });
    panel.append(h('div', { class: 'actions' }, link, h('span', { class: 'muted small' }, 'The report is one self-contained file: save it to share.')), frame);
    try {
      const res = await api(runPath(r.id, '/report'), { raw: true });
      const text = await res.text();
      if (state.reportUrl) URL.revokeObjectURL(state.reportUrl);
      // With a token the plain URL would be refused in a new tab: hand it the document itself.
      state.reportUrl = sessionStorage.getItem(TOKEN_KEY) ? URL.createObjectURL(new Blob([text], { type: 'text/html' })) : null;
      link.href = state.reportUrl || runPath(r.id, '/report');
      frame.srcdoc = text;
    } catch (err) {
      frame.remove();
      panel.append(h('p', { class: 'banner error', role: 'alert' }, err.message));
    }
  }

  /** The subset of Markdown tables.ts and compare.ts write: headings, pipe tables, bullets, paragraphs. */
  function markdown(text) {
    const out = h('div', { class: 'md' });
    const lines = text.split('\n');
    let i = 0;
    const cellsOf = (line) => line.replace(/^\s*\|/, '').replace(/\|\s*$/, '').split('|').map((c) => c.trim());
    while (i < lines.length) {
      const line = lines[i];
      if (line.trim() === '') {
        i++;
        continue;
      }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      if (heading) {
        const level = Math.min(6, heading[1].length + 1);
        const m = /^([^:]+): (.*)$/.exec(heading[2]);
        out.append(m && level >= 4 ? h(`h${level}`, null, m[1], h('span', { class: 'heading-desc' }, m[2])) : h(`h${level}`, null, heading[2]));
        i++;
        continue;
      }
      if (line.trim().startsWith('|')) {
        const rows = [];
        while (i < lines.length && lines[i].trim().startsWith('|')) rows.push(lines[i++]);
        const head = cellsOf(rows[0]);
        const align = rows[1] && /^\s*\|?[\s:|-]+\|?\s*$/.test(rows[1]) ? cellsOf(rows[1]).map((c) => (c.endsWith(':') ? 'right' : 'left')) : null;
        const bodyRows = rows.slice(align ? 2 : 1).map(cellsOf);
        const table = h(
          'table',
          { class: 'results' },
          h('thead', null, h('tr', null, head.map((c, j) => h('th', { scope: 'col', class: align && align[j] === 'right' ? 'num' : null }, c)))),
          h(
            'tbody',
            null,
            bodyRows.map((cells) =>
              h(
                'tr',
                null,
                cells.map((c, j) => {
                  if (j === 0) return h('th', { scope: 'row' }, c);
                  const cls = [align && align[j] === 'right' ? 'num' : '', head[j] === 'Theoretical' ? 'theoretical' : '', c === 'skipped' || c === '–' ? 'muted' : ''].filter(Boolean).join(' ');
                  return h('td', { class: cls || null }, valueCell(c));
                }),
              ),
            ),
          ),
        );
        out.append(h('div', { class: 'table-wrap' }, table));
        continue;
      }
      if (/^\s*- /.test(line)) {
        const ul = h('ul', { class: 'notes' });
        while (i < lines.length && /^\s*- /.test(lines[i])) ul.append(h('li', null, bullet(lines[i++].replace(/^\s*- /, ''))));
        out.append(ul);
        continue;
      }
      const para = [];
      while (i < lines.length && lines[i].trim() !== '' && !/^(#|\s*\||\s*- )/.test(lines[i])) para.push(lines[i++]);
      out.append(h('p', { class: 'md-p' }, para.join(' ')));
    }
    return out;
  }

  /** "69.4 (69.2–69.6)": the spread over repetitions quieter, as in the report. */
  function valueCell(c) {
    const m = /^(.*?) (\(.*\))$/.exec(c);
    if (!m) return c;
    return [m[1], ' ', h('span', { class: 'range' }, m[2])];
  }

  /** "sluice: 0.957 of Baseline throughput, …": the system's name set apart. */
  function bullet(text) {
    const m = /^([^:]{1,80}): (.*)$/.exec(text);
    if (!m) return text;
    return [h('b', null, m[1]), `: ${m[2]}`];
  }

  async function cancelRun(r) {
    if (!confirm(`Cancel ${runName(r)}? The cells it finished are kept.`)) return;
    try {
      const { data } = await api(runPath(r.id), { method: 'DELETE' });
      onStatus(data);
    } catch (err) {
      alert(err.message);
    }
  }

  async function runAgain(r) {
    const button = $('run-again');
    if (button) button.disabled = true;
    try {
      const body = { matrix: r.matrix };
      if (r.label) body.label = r.label;
      const { data } = await api('/v1/runs', { method: 'POST', body });
      await refreshRuns().catch(() => undefined);
      location.hash = `#run/${encodeURIComponent(data.id)}`;
    } catch (err) {
      if (button) button.disabled = false;
      const section = $('detail');
      section.insertBefore(h('p', { class: 'banner error', role: 'alert' }, `Cannot queue it again: ${err.message}`), section.children[1] || null);
    }
  }

  // ---------------------------------------------------------------------------
  // Comparing two runs

  function compareCandidates() {
    return state.runs.filter((r) => r.status !== 'queued');
  }

  function fillCompareSelects(base, head) {
    const b = $('compare-base');
    const hd = $('compare-head');
    const keep = [base ?? b.value, head ?? hd.value];
    const runs = compareCandidates();
    // Runs of the same label an hour apart look alike: the end of the id tells them apart.
    const option = (r) => h('option', { value: r.id }, `${runName(r)} · ${when(r.created_at)} · …${r.id.slice(-6)}${r.status === 'completed' ? '' : ` · ${r.status}`}`);
    [b, hd].forEach((sel, k) => {
      const want = keep[k];
      sel.replaceChildren(...runs.map(option));
      if (want && !runs.some((r) => r.id === want)) sel.prepend(h('option', { value: want }, want));
      if (want) sel.value = want;
    });
    if (!keep[0] && runs.length > 1) b.value = runs[1].id;
    if (!keep[1] && runs.length > 0) hd.value = runs[0].id;
  }

  async function showCompare(base, head, scroll) {
    state.view = { kind: 'compare', base, head };
    $('detail').hidden = true;
    destroyCharts(state.charts);
    for (const tr of $('runs-body').querySelectorAll('tr.current')) tr.classList.remove('current');
    const section = $('compare');
    section.hidden = false;
    fillCompareSelects(base, head);
    if (scroll) section.scrollIntoView({ block: 'start' });
    $('compare-error').hidden = true;
    if (!base || !head) {
      $('compare-result').replaceChildren(h('p', { class: 'muted' }, 'Pick a base and a head run: changes are head − base, marked when they exceed the noise.'));
      return;
    }
    $('compare-result').replaceChildren(h('p', { class: 'muted' }, 'Comparing…'));
    let c;
    try {
      ({ data: c } = await api(`/v1/compare?${new URLSearchParams({ base, head })}`));
    } catch (err) {
      if (state.view.kind !== 'compare' || state.view.base !== base || state.view.head !== head) return;
      $('compare-result').replaceChildren();
      $('compare-error').hidden = false;
      $('compare-error').textContent = err.message;
      return;
    }
    if (state.view.kind !== 'compare' || state.view.base !== base || state.view.head !== head) return;
    $('compare-result').replaceChildren(renderComparison(c));
  }

  function digitsOf(row) {
    if (row.kind === 'capacity') return 0;
    if (row.kind === 'throughput' || row.kind === 'errors') return 2;
    return row.metric.startsWith('itl_') ? 2 : 1;
  }

  const valueOf = (row, v) => (row.kind === 'capacity' && v === 0 ? 'none' : number(v, digitsOf(row)));

  function signed(n, digits, suffix = '') {
    const s = number(Math.abs(n), digits);
    if (Number(s.replace(/,/g, '')) === 0) return `±${s}${suffix}`;
    return `${n > 0 ? '+' : '−'}${s}${suffix}`;
  }

  function runRef(role, id, summary) {
    const r = state.runs.find((x) => x.id === id);
    return h(
      'div',
      { class: 'run-ref' },
      h('div', { class: 'stat-label' }, role),
      h('a', { href: `#run/${encodeURIComponent(id)}`, class: 'run-ref-name' }, r ? runName(r) : id),
      h('div', { class: 'sub' }, `${when(summary.startedAt)} · sluice ${summary.sluice}${summary.status === 'completed' ? '' : ` · ${summary.status}`}`),
    );
  }

  function renderComparison(c) {
    const out = h('div', { class: 'comparison', id: 'comparison' });
    const improvements = c.improvements ?? c.rows.filter((r) => r.mark === 'improvement').length;
    out.append(
      h(
        'div',
        { class: 'compare-head' },
        runRef('Base', c.base_id, c.base),
        h('div', { class: 'arrow', 'aria-hidden': 'true' }, '→'),
        runRef('Head', c.head_id, c.head),
        h(
          'div',
          { class: 'verdict' },
          h('span', { class: c.regressions > 0 ? 'pill bad' : 'pill neutral', id: 'compare-regressions' }, `▲ ${plural(c.regressions, 'regression')}`),
          h('span', { class: improvements > 0 ? 'pill ok' : 'pill neutral', id: 'compare-improvements' }, `▼ ${plural(improvements, 'improvement')}`),
        ),
      ),
    );
    if (c.notes && c.notes.length) out.append(h('ul', { class: 'notes warn' }, c.notes.map((n) => h('li', null, n))));
    for (const scenario of c.scenarios) {
      const rows = c.rows.filter((r) => r.scenario === scenario);
      const unmatched = (c.unmatched || []).filter((u) => u.scenario === scenario);
      const marked = rows.filter((r) => r.mark).length;
      out.append(h('h3', null, scenario, marked ? h('span', { class: 'heading-desc' }, `${plural(marked, 'marked change')}`) : null));
      if (rows.length > 0) {
        const body = h('tbody');
        rows.forEach((r, i) => {
          const firstOfMetric = i === 0 || rows[i - 1].label !== r.label;
          let span = 1;
          while (firstOfMetric && i + span < rows.length && rows[i + span].label === r.label) span++;
          const d = digitsOf(r);
          const rel = r.changePct === null ? '' : ` (${signed(r.changePct, 1, '%')})`;
          const judged = !(r.beyond !== null && r.beyond < 1);
          const mark =
            r.mark === 'regression'
              ? h('span', { class: 'mark bad' }, '▲ regression')
              : r.mark === 'improvement'
                ? h('span', { class: 'mark ok' }, '▼ improvement')
                : !judged
                  ? h('span', { class: 'muted', title: 'Fewer than one sample beyond this percentile: it is the slowest sample, compared but not judged' }, `not judged (slowest of ${number(r.samples)})`)
                  : h('span', { class: 'muted' }, 'within noise');
          body.append(
            h(
              'tr',
              { class: r.mark ? `marked ${r.mark}` : 'quiet', 'data-metric': r.metric, 'data-system': r.system },
              firstOfMetric ? h('th', { scope: 'row', rowspan: String(span), class: 'metric' }, r.label, h('div', { class: 'sub' }, r.better === 'higher' ? 'higher is better' : 'lower is better')) : null,
              h('td', { class: 'system' }, swatch(r.system), systemName(r.system)),
              h('td', { class: 'num' }, valueOf(r, r.base)),
              h('td', { class: 'num' }, valueOf(r, r.head)),
              h('td', { class: 'num change' }, `${signed(r.change, d)}${rel}`),
              h('td', { class: 'num muted', title: `the larger of the spread between repetitions (${number(r.spread, d)}) and the floor (${number(r.floor, d)})` }, `±${number(Math.max(r.spread, r.floor), d)}`),
              h('td', { class: 'mark-cell' }, mark),
            ),
          );
        });
        out.append(
          h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'results comparison-table' },
              h(
                'thead',
                null,
                h(
                  'tr',
                  null,
                  h('th', { scope: 'col' }, 'Metric'),
                  h('th', { scope: 'col' }, 'System'),
                  h('th', { scope: 'col', class: 'num' }, 'Base'),
                  h('th', { scope: 'col', class: 'num' }, 'Head'),
                  h('th', { scope: 'col', class: 'num' }, 'Change'),
                  h('th', { scope: 'col', class: 'num' }, 'Noise'),
                  h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Mark')),
                ),
              ),
              body,
            ),
          ),
        );
      }
      if (unmatched.length) {
        out.append(
          h(
            'ul',
            { class: 'notes' },
            unmatched.map((u) =>
              h('li', null, h('b', null, u.system === null ? 'The scenario' : systemName(u.system)), `: ${u.measuredIn === null ? 'not compared' : `only in the ${u.measuredIn} run`} (${u.reason})`),
            ),
          ),
        );
      }
    }
    const noise = (c.markdown || '').split('\n').find((l) => l.startsWith('A change is marked'));
    if (noise) out.append(h('p', { class: 'muted small footnote' }, noise));
    if (c.markdown) {
      const area = h('textarea', { readonly: true, rows: '10', class: 'code', 'aria-label': 'The comparison in Markdown' });
      area.value = c.markdown;
      const copy = h(
        'button',
        {
          type: 'button',
          onclick: async () => {
            try {
              await navigator.clipboard.writeText(c.markdown);
              copy.textContent = 'Copied';
            } catch {
              area.select();
              copy.textContent = 'Selected: press Ctrl+C';
            }
          },
        },
        'Copy as Markdown',
      );
      out.append(h('details', { class: 'markdown-box' }, h('summary', null, 'Markdown, for a pull request or an issue'), h('div', { class: 'actions' }, copy), area));
    }
    return out;
  }

  // ---------------------------------------------------------------------------
  // Routing: #run/<id>, #compare/<base>/<head>

  function route(scroll) {
    const hash = location.hash.replace(/^#/, '');
    let m;
    const dec = (s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    };
    if ((m = /^run\/(.+)$/.exec(hash))) {
      showRun(dec(m[1]), scroll);
    } else if ((m = /^compare(?:\/([^/]*)\/([^/]*))?$/.exec(hash))) {
      showCompare(m[1] ? dec(m[1]) : null, m[2] ? dec(m[2]) : null, scroll);
    } else {
      state.view = { kind: 'home' };
      $('detail').hidden = true;
      $('compare').hidden = true;
      destroyCharts(state.charts);
      for (const tr of $('runs-body').querySelectorAll('tr.current')) tr.classList.remove('current');
    }
  }

  // ---------------------------------------------------------------------------

  function init() {
    $('mode-pick').addEventListener('change', setMode);
    $('mode-yaml').addEventListener('change', setMode);
    $('yaml-default').addEventListener('click', () => {
      if (state.defaultMatrix) $('yaml').value = state.defaultMatrix.yaml;
      $('yaml').focus();
    });
    $('repetitions').addEventListener('input', updateEstimate);
    $('warmup').addEventListener('input', updateEstimate);
    $('run-form').addEventListener('submit', submitRun);
    $('schedule-run').addEventListener('click', submitSchedule);
    $('status-filter').addEventListener('change', (e) => {
      state.statusFilter = e.target.value;
      state.runs = [];
      state.listText = '';
      poll();
    });
    $('load-more').addEventListener('click', () => loadMore().catch((err) => alert(err.message)));
    $('compare-picked').addEventListener('click', comparePicked);
    $('compare-swap').addEventListener('click', () => {
      const b = $('compare-base').value;
      $('compare-base').value = $('compare-head').value;
      $('compare-head').value = b;
    });
    $('compare-form').addEventListener('submit', (e) => {
      e.preventDefault();
      location.hash = `#compare/${encodeURIComponent($('compare-base').value)}/${encodeURIComponent($('compare-head').value)}`;
    });
    $('token-dialog').addEventListener('cancel', (e) => e.preventDefault());
    $('token-button').hidden = !sessionStorage.getItem(TOKEN_KEY);
    $('token-button').addEventListener('click', () => askToken(false).then(() => poll()));
    window.addEventListener('hashchange', () => route(true));
    updatePicked();
    loadDefaultMatrix();
    loadProviders();
    refreshSchedules();
    poll().then(() => route(false));
  }

  init();
})();
