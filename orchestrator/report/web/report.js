// report.html's charts: reads the chart data inlined by html.ts and draws
// each chart with uPlot (inlined before this script). Runs from file://.
'use strict';
(function () {
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const LABEL_FONT = '600 12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const HEIGHT = { latency: 360, 'sweep-p99': 300, 'sweep-rate': 300 };
  // A4 with the print stylesheet's margins, at 96 px per inch.
  const PRINT_WIDTH = 680;
  // The percentile axis: x = 1/(1-p); these are its labelled ticks.
  const NINES = [1, 2, 10, 100, 1e3, 1e4, 1e5];

  // uPlot passes null for a tick it leaves out.
  const number = (v, digits) => (v == null ? '' : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  const msText = (v) => (v == null ? '–' : `${number(v, v < 10 ? 2 : 1)} ms`);
  const NINE_LABELS = { 1: '0%', 2: '50%', 10: '90%', 100: '99%', 1000: '99.9%', 10000: '99.99%', 100000: '99.999%' };
  const percentile = (x) => {
    if (x == null) return '';
    return NINE_LABELS[x] ?? `${(100 - 100 / x).toFixed(3).replace(/\.?0+$/, '')}%`;
  };
  const axis = (label, extra) =>
    // uPlot thins the labels of a log axis to powers of ten unless told otherwise.
    Object.assign({ label, font: FONT, labelFont: LABEL_FONT, stroke: '#3d4451', grid: { stroke: '#eceef1', width: 1 }, ticks: { stroke: '#d0d4da', width: 1 }, filter: (u, splits) => splits }, extra);
  // Room for the widest tick label.
  const ySize = (u, values) => {
    if (!values) return 50;
    const widest = Math.max(...values.map((v) => String(v).length));
    return Math.max(48, widest * 7 + 24);
  };
  const tick = (v) => (v == null ? '' : number(v, Number.isInteger(v) ? 0 : Math.abs(v) < 1 ? 2 : 1));

  /** Linear from 0, or log (1-2-5 ticks) for a chart whose slowest line would flatten the others. */
  function yScale(log) {
    if (!log) return { scale: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] }, splits: undefined };
    return {
      scale: { distr: 3, log: 10, range: (u, min, max) => [min / 1.15, max * 1.15] },
      splits: (u, i, min, max) => {
        const out = [];
        for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
          for (const m of [1, 2, 5]) {
            const v = m * 10 ** e;
            if (v >= min && v <= max) out.push(Number(v.toPrecision(1)));
          }
        }
        return out;
      },
    };
  }

  /** Log by default when the largest value is more than 8 times the smallest. */
  function wantsLog(spec) {
    if (spec.kind === 'sweep-rate') return false;
    const vs = [...spec.series, ...(spec.reference ? [spec.reference] : [])].flatMap((s) => s.values).filter((v) => v != null);
    const min = Math.min(...vs);
    return vs.length > 0 && min > 0 && Math.max(...vs) / min > 8;
  }

  function options(spec, width, log) {
    const y = yScale(log);
    const yLabel = (text) => `${text}${log ? ', log scale' : ''}`;
    const series = spec.series.map((s) => ({
      label: s.label,
      stroke: s.colour,
      width: 2,
      dash: s.dash ? [6, 4] : undefined,
      spanGaps: false,
      points: { show: spec.kind !== 'latency', size: 7, fill: s.colour },
      value: spec.kind === 'sweep-rate' ? (u, v) => (v == null ? '–' : `${number(v, 0)} req/s`) : (u, v) => msText(v),
    }));
    if (spec.kind === 'latency') {
      return {
        width,
        height: HEIGHT.latency,
        scales: { x: { time: false, distr: 3, log: 10, range: [1, 1e5] }, y: y.scale },
        axes: [
          axis('percentile', { splits: () => NINES, values: (u, vals) => vals.map(percentile), size: 44 }),
          axis(yLabel('latency (ms)'), { size: ySize, splits: y.splits, values: (u, vals) => vals.map(tick) }),
        ],
        series: [{ label: 'percentile', value: (u, v) => (v == null ? '–' : percentile(v)) }, ...series],
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
      };
    }
    const rates = spec.x;
    // Rates are usually doubled at each step: a log axis spaces them evenly.
    const logX = rates.length > 2 && rates[0] > 0 && rates[rates.length - 1] / rates[0] >= 4;
    const xAxis = axis('offered rate (req/s)', { splits: () => rates, values: (u, vals) => vals.map((v) => number(v, 0)), size: 44 });
    const opts = {
      width,
      height: HEIGHT[spec.kind],
      scales: { x: logX ? { time: false, distr: 3, log: 10, range: [rates[0] / 1.25, rates[rates.length - 1] * 1.25] } : { time: false, range: [0, rates[rates.length - 1] * 1.08] }, y: y.scale },
      axes: [xAxis, axis(spec.kind === 'sweep-p99' ? yLabel('p99 latency (ms)') : 'achieved (req/s)', { size: ySize, splits: y.splits, values: (u, vals) => vals.map(tick) })],
      series: [{ label: 'offered', value: (u, v) => (v == null ? '–' : `${number(v, 0)} req/s`) }, ...series],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    if (spec.reference) {
      const unit = spec.kind === 'sweep-rate' ? (v) => `${number(v, 0)} req/s` : msText;
      opts.series.push({ label: spec.reference.label, stroke: '#a3a9b3', width: 1.5, dash: [3, 4], points: { show: false }, value: (u, v) => (v == null ? '–' : unit(v)) });
    }
    return opts;
  }

  const charts = [];
  for (const spec of data.charts) {
    const el = document.getElementById(spec.id);
    const columns = [spec.x, ...spec.series.map((s) => s.values)];
    if (spec.reference) columns.push(spec.reference.values);
    const chart = { el, u: null, height: HEIGHT[spec.kind] };
    // A scale change rebuilds the chart: uPlot fixes a scale's distribution when it is created.
    const draw = (log) => {
      if (chart.u) chart.u.destroy();
      chart.u = new uPlot(options(spec, el.clientWidth || 800, log), columns, el);
      el.dataset.scale = log ? 'log' : 'linear';
    };
    const toggle = document.querySelector(`input[data-log-for="${spec.id}"]`);
    const log = wantsLog(spec);
    if (toggle) {
      toggle.checked = log;
      toggle.addEventListener('change', () => draw(toggle.checked));
    }
    draw(log);
    charts.push(chart);
  }

  const fit = (width) => {
    for (const c of charts) c.u.setSize({ width: width ?? c.el.clientWidth, height: c.height });
  };
  let pending = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => fit());
  });
  // Canvases do not reflow: redraw at the paper's width before printing, and back after.
  window.addEventListener('beforeprint', () => fit(PRINT_WIDTH));
  window.addEventListener('afterprint', () => fit());
  // Some browsers switch to print media without the events.
  window.matchMedia('print').addEventListener('change', (e) => fit(e.matches ? PRINT_WIDTH : undefined));
  document.documentElement.dataset.charts = String(charts.length);
})();
