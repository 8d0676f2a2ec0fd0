// The time-series chart every view draws with (metrics explorer, dashboards, log volume,
// service pages): a uPlot canvas plus what people expect from Grafana around it: a legend
// whose items toggle their series, the values at the cursor, drag-to-zoom that hands the
// selected range to the page (which puts it in the URL), unit-formatted axes, bars for
// histograms, optional stacking, and exemplars as diamonds that open their trace.
//
// <${TimeSeriesChart} series start end height unit onZoom exemplars bars stacked />
//   series: [{name, labels, points: [[epochSeconds, value|null], ...], color?}]; start/end: epoch ms;
//   onZoom(startMs, endMs); exemplars: [{t: epochSeconds, value, traceId, labels}].
import { html, useEffect, useLayoutEffect, useMemo, useRef, useState } from '../preact.js';
import uPlot from '../../vendor/uPlot.esm.js';
import { navigate } from '../lib/router.js';
import { formatTime } from '../lib/time.js';

// Drawing thousands of series freezes the page and says nothing; Grafana caps too.
export const MAX_SERIES = 200;
const TOOLTIP_ROWS = 12;
const PALETTE = ['#73bf69', '#f2cc0c', '#5794f2', '#ff9830', '#f2495c', '#b877d9', '#8ab8ff', '#fade2a',
  '#37872d', '#c4162a', '#1f60c4', '#fa6400', '#8f3bb8', '#96d98d', '#ffb357', '#ca95e5'];

export const seriesColor = (i) => PALETTE[i % PALETTE.length];

// ---- values and names ------------------------------------------------------------------

const trim = (x) => String(+x.toPrecision(3));

function formatShort(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  for (const [d, suffix] of [[1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= d) return trim(v / d) + suffix;
  }
  if (a < 1e-3) return v.toExponential(2);
  return trim(v);
}

function formatSeconds(v) {
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  if (a < 1e-6) return `${trim(v * 1e9)} ns`;
  if (a < 1e-3) return `${trim(v * 1e6)} µs`;
  if (a < 1) return `${trim(v * 1e3)} ms`;
  if (a < 60) return `${trim(v)} s`;
  if (a < 3600) return `${trim(v / 60)} min`;
  if (a < 86400) return `${trim(v / 3600)} hour`;
  return `${trim(v / 86400)} day`;
}

function formatBytes(v) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let x = Math.abs(v);
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${v < 0 ? '-' : ''}${trim(x)} ${units[i]}`;
}

// formatValue(0.25, 's') -> "250 ms"; units as Grafana names them: s, ms, bytes, percentunit
// (0..1), percent (0..100), reqps, ops, short (the default).
export function formatValue(value, unit = 'short') {
  if (value === null || value === undefined || value === '') return '';
  const v = Number(value);
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  switch (unit) {
    case 's': return formatSeconds(v);
    case 'ms': return formatSeconds(v / 1000);
    case 'bytes': return formatBytes(v);
    case 'percentunit': return `${trim(v * 100)}%`;
    case 'percent': return `${trim(v)}%`;
    case 'reqps': return `${formatShort(v)} req/s`;
    case 'ops': return `${formatShort(v)} ops/s`;
    case 'short': case 'none': case undefined: case null: case '': return formatShort(v);
    default: return `${formatShort(v)} ${unit}`;
  }
}

// {__name__: "up", job: "x"} -> 'up{job="x"}', as Prometheus prints a series.
export function seriesName(labels = {}) {
  const name = labels.__name__ || '';
  const rest = Object.keys(labels).filter((k) => k !== '__name__').sort()
    .map((k) => `${k}=${JSON.stringify(String(labels[k]))}`);
  if (!rest.length) return name || '{}';
  return `${name}{${rest.join(', ')}}`;
}

function legendName(labels, legendFormat) {
  if (!legendFormat || legendFormat === '__auto') return seriesName(labels);
  return legendFormat.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, k) => labels[k] ?? '');
}

const sampleValue = (v) => {
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
};

// A Prometheus result (matrix, or a vector: one point per series) -> chart series.
export function promMatrixToSeries(result, legendFormat) {
  return (result || []).map((r) => {
    const labels = r.metric || {};
    const values = r.values || (r.value ? [r.value] : []);
    return { name: legendName(labels, legendFormat), labels, points: values.map(([t, v]) => [Number(t), sampleValue(v)]) };
  });
}

// ---- data for uPlot ----------------------------------------------------------------------

function smallestStep(series) {
  let step = Infinity;
  for (const s of series) {
    for (let i = 1; i < s.points.length; i++) {
      const d = s.points[i][0] - s.points[i - 1][0];
      if (d > 0 && d < step) step = d;
    }
  }
  return step;
}

// Series -> uPlot's aligned columns [xs, ys1, ys2, ...]. A series missing a step gets a null
// there so its line breaks instead of bridging the gap (Prometheus leaves gaps out).
function alignSeries(series, stacked) {
  const step = smallestStep(series);
  const withGaps = series.map((s) => {
    const out = [];
    for (let i = 0; i < s.points.length; i++) {
      const [t, v] = s.points[i];
      if (i > 0 && t - s.points[i - 1][0] > step * 1.5) out.push([s.points[i - 1][0] + step, null]);
      out.push([t, v]);
    }
    return out;
  });
  const xsSet = new Set();
  withGaps.forEach((pts) => pts.forEach(([t]) => xsSet.add(t)));
  const xs = Array.from(xsSet).sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const raw = withGaps.map((pts) => {
    const ys = new Array(xs.length).fill(null);
    for (const [t, v] of pts) ys[index.get(t)] = v;
    return ys;
  });
  let plotted = raw;
  if (stacked) {
    const acc = new Array(xs.length).fill(0);
    plotted = raw.map((ys) => ys.map((v, i) => (v === null ? null : (acc[i] += v))));
  }
  return { xs, raw, data: [xs, ...plotted] };
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function plotOptions({ names, colors, width, height, unit, bars, stacked, hidden, hooks, range }) {
  const series = [{}];
  names.forEach((name, i) => {
    const color = colors[i];
    const s = { label: name, stroke: color, width: 1.5, show: !hidden.has(name), spanGaps: false };
    if (bars) Object.assign(s, { paths: uPlot.paths.bars({ size: [0.8, 64] }), fill: withAlpha(color, 0.75), points: { show: false } });
    else if (stacked) s.fill = withAlpha(color, 0.35);
    series.push(s);
  });
  // stacked: each series fills down to the one below it (bars too, or the tallest would hide the rest)
  const bands = stacked ? names.slice(1).map((_, i) => ({ series: [i + 2, i + 1] })) : undefined;
  const axisStyle = { stroke: '#656d76', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#d8dee4', width: 1 } };
  return {
    width, height, series, bands,
    legend: { show: false },
    padding: [8, 12, 0, 0],
    cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
    scales: { x: { time: true, range } },
    axes: [
      { ...axisStyle },
      {
        ...axisStyle,
        values: (u, splits) => splits.map((v) => formatValue(v, unit)),
        size: (u, values) => (values ? Math.max(...values.map((v) => v.length)) * 8 + 24 : 48), // labels + ticks + gap
      },
    ],
    hooks,
  };
}

// ---- the component -----------------------------------------------------------------------

export function TimeSeriesChart({ series = [], start, end, height = 260, unit = 'short', onZoom, exemplars, bars = false, stacked = false }) {
  const wrapRef = useRef(null);
  const plotRef = useRef(null);
  const uRef = useRef(null);
  const [hidden, setHidden] = useState(() => new Set());
  const [hover, setHover] = useState(null); // {idx, left, top} in plot-area pixels
  const [frame, setFrame] = useState(null); // the plot area inside the wrapper, after each draw

  const drawn = series.length > MAX_SERIES ? series.slice(0, MAX_SERIES) : series;
  const names = drawn.map((s) => s.name);
  const colors = drawn.map((s, i) => s.color || seriesColor(i)); // a series may bring its own (log levels)
  const aligned = useMemo(() => alignSeries(drawn, stacked), [series, stacked]);

  // Hooks read the latest props through refs so uPlot is only rebuilt when its shape changes.
  const live = useRef({});
  live.current = { onZoom, aligned, start, end };

  const structure = [bars, stacked, unit, height, names.join('\u0000')].join('|');
  useLayoutEffect(() => {
    const wrap = wrapRef.current;
    const range = (u, min, max) => {
      const { start: s, end: e } = live.current;
      return s !== undefined && e !== undefined ? [s / 1000, e / 1000] : [min, max];
    };
    const hooks = {
      setSelect: [(u) => {
        const { left, width } = u.select;
        if (width < 3) return;
        const from = u.posToVal(left, 'x');
        const to = u.posToVal(left + width, 'x');
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        if (live.current.onZoom) live.current.onZoom(Math.round(from * 1000), Math.round(to * 1000));
      }],
      setCursor: [(u) => {
        const { idx, left, top } = u.cursor;
        setHover(idx === null || idx === undefined || left < 0 ? null : { idx, left, top });
      }],
      draw: [(u) => {
        const w = wrap.getBoundingClientRect();
        const o = u.over.getBoundingClientRect();
        // a new object every draw, so the overlays follow a changed scale too
        setFrame((f) => ({ left: o.left - w.left, top: o.top - w.top, width: o.width, height: o.height,
          wrapWidth: w.width, draws: (f ? f.draws : 0) + 1 }));
      }],
    };
    const opts = plotOptions({ names, colors, width: wrap.clientWidth || 600, height, unit, bars, stacked, hidden, hooks, range });
    const u = new uPlot(opts, live.current.aligned.data, plotRef.current);
    uRef.current = u;
    const ro = new ResizeObserver((entries) => {
      const width = Math.floor(entries[0].contentRect.width);
      if (width > 0 && width !== u.width) u.setSize({ width, height });
    });
    ro.observe(wrap);
    return () => {
      ro.disconnect();
      u.destroy();
      uRef.current = null;
    };
  }, [structure]);

  // New data (or range) for the same series: update in place, no rebuild.
  const shown = useRef(null);
  useEffect(() => {
    const u = uRef.current;
    if (!u) return;
    if (shown.current && (shown.current.aligned !== aligned || shown.current.start !== start || shown.current.end !== end)) {
      u.setData(aligned.data);
    }
    shown.current = { aligned, start, end };
  }, [aligned, start, end, structure]);

  useEffect(() => {
    const u = uRef.current;
    if (!u) return;
    names.forEach((name, i) => {
      const show = !hidden.has(name);
      if (u.series[i + 1] && u.series[i + 1].show !== show) u.setSeries(i + 1, { show });
    });
  }, [hidden, structure]);

  const toggle = (name) => {
    const next = new Set(hidden);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    setHidden(next);
  };

  return html`<div class="ts-chart" data-testid="chart">
    <div class="ts-plot" ref=${wrapRef}>
      <div ref=${plotRef}></div>
      ${hover && frame && html`<${Tooltip} hover=${hover} frame=${frame} aligned=${aligned} names=${names} colors=${colors} hidden=${hidden} unit=${unit} />`}
      ${exemplars && exemplars.length > 0 && frame && uRef.current && html`<${Exemplars} u=${uRef.current} frame=${frame} exemplars=${exemplars} unit=${unit} />`}
    </div>
    ${series.length > MAX_SERIES && html`<div class="muted series-cap" data-testid="series-cap">showing ${MAX_SERIES} of ${series.length} series</div>`}
    <${Legend} names=${names} colors=${colors} aligned=${aligned} hover=${hover} hidden=${hidden} unit=${unit} onToggle=${toggle} />
  </div>`;
}

function lastValue(ys) {
  for (let i = ys.length - 1; i >= 0; i--) if (ys[i] !== null) return ys[i];
  return null;
}

// One item per series; the value shown is the one under the cursor, else the last one.
function Legend({ names, colors, aligned, hover, hidden, unit, onToggle }) {
  if (!names.length) return null;
  return html`<div class="ts-legend" data-testid="legend">
    ${names.map((name, i) => {
      const ys = aligned.raw[i];
      const v = hover ? ys[hover.idx] : lastValue(ys);
      return html`<button type="button" key=${name} class=${`legend-item${hidden.has(name) ? ' off' : ''}`} data-testid="legend-item"
          title="Click to hide or show this series" onClick=${() => onToggle(name)}>
        <span class="swatch" style=${`background:${colors[i]}`}></span>
        <span class="legend-name">${name}</span>
        <span class="legend-value">${formatValue(v, unit)}</span>
      </button>`;
    })}
  </div>`;
}

function Tooltip({ hover, frame, aligned, names, colors, hidden, unit }) {
  const t = aligned.xs[hover.idx];
  const rows = names.map((name, i) => ({ name, i, v: aligned.raw[i][hover.idx] }))
    .filter((r) => r.v !== null && !hidden.has(r.name))
    .sort((a, b) => b.v - a.v);
  if (!rows.length) return null;
  const flip = hover.left > frame.width / 2;
  const x = frame.left + hover.left;
  const style = `top:${frame.top + hover.top + 12}px;` + (flip ? `right:${frame.wrapWidth - x + 16}px` : `left:${x + 16}px`);
  return html`<div class="ts-tooltip" data-testid="chart-tooltip" style=${style}>
    <div class="ts-tooltip-time">${formatTime(t * 1000)}</div>
    ${rows.slice(0, TOOLTIP_ROWS).map((r) => html`<div class="ts-tooltip-row">
      <span class="swatch" style=${`background:${colors[r.i]}`}></span>
      <span class="legend-name">${r.name}</span><b>${formatValue(r.v, unit)}</b>
    </div>`)}
    ${rows.length > TOOLTIP_ROWS && html`<div class="muted">and ${rows.length - TOOLTIP_ROWS} more</div>`}
  </div>`;
}

// Exemplars as diamonds at (time, value), clamped into the plot area; a click opens the trace.
function Exemplars({ u, frame, exemplars, unit }) {
  const { min: xmin, max: xmax } = u.scales.x;
  return html`<div class="ts-exemplars" style=${`left:${frame.left}px;top:${frame.top}px;width:${frame.width}px;height:${frame.height}px`}>
    ${exemplars.filter((e) => e.t >= xmin && e.t <= xmax).map((e, i) => {
      const x = u.valToPos(e.t, 'x');
      const y = Math.max(0, Math.min(frame.height, u.valToPos(Number(e.value), 'y')));
      const title = `trace ${e.traceId}\n${formatTime(e.t * 1000, { millis: true })}  value ${formatValue(e.value, unit)}`;
      return html`<button type="button" key=${i} class="exemplar" data-testid="exemplar" data-trace-id=${e.traceId}
        title=${title} style=${`left:${x}px;top:${y}px`} onClick=${() => navigate(`/ui/traces/${e.traceId}`)}></button>`;
    })}
  </div>`;
}
