// The service map: who calls whom over the chosen time range, read from the service-graph
// metrics (the same series Grafana's Tempo service map reads) and drawn as a layered SVG
// graph. Each service shows its request rate and error ratio (from span metrics); each call
// edge its rate, error % and p95 latency, red when calls failed. Hovering a service lights up
// its calls; clicking it opens the service's page. Wheel zooms, dragging pans.
import { html, useEffect, useLayoutEffect, useMemo, useRef, useState } from '../preact.js';
import { Link, navigate, setQueryParams } from '../lib/router.js';
import { DEFAULT_FROM, DEFAULT_TO } from '../lib/time.js';
import {
  edgePath, formatLatency, formatPercent, formatRate, layoutGraph, loadServiceGraph,
} from '../lib/servicegraph.js';
import { TimeRangePicker } from '../components/timerange.js';

export const EMPTY_TEXT = 'No service-graph data in this time range — enable the servicegraph processor in '
  + 'pipeline.traces (see lookout.example.yaml)';
const KIND_LABEL = { database: 'database', external: 'not instrumented', user: 'clients' };
const MIN_HEIGHT = 260;
const MAX_HEIGHT = 640;

export function healthClass(errorRate) {
  if (!errorRate) return 'ok';
  return errorRate >= 0.05 ? 'bad' : 'warn';
}

function useServiceGraph(from, to, reloadKey) {
  const [state, setState] = useState({ loading: true, graph: null, error: null });
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    loadServiceGraph(from, to, ctl.signal).then(
      (graph) => setState({ loading: false, graph, error: null }),
      (error) => error.name !== 'AbortError' && setState({ loading: false, graph: null, error }));
    return () => ctl.abort();
  }, [from, to, reloadKey]);
  return state;
}

// Wheel zoom around the cursor and drag to pan; returns the transform and the handlers.
function usePanZoom(svgRef, fit) {
  const [view, setView] = useState(fit);
  const drag = useRef(null);
  useEffect(() => setView(fit), [fit.k, fit.x, fit.y]);
  useEffect(() => {
    const el = svgRef.current;
    if (!el) return undefined;
    const onWheel = (e) => {
      e.preventDefault();
      const r = el.getBoundingClientRect();
      const px = e.clientX - r.left;
      const py = e.clientY - r.top;
      setView((v) => {
        const k = Math.min(3, Math.max(0.2, v.k * Math.exp(-e.deltaY * 0.0015)));
        return { k, x: px - ((px - v.x) * k) / v.k, y: py - ((py - v.y) * k) / v.k };
      });
    };
    el.addEventListener('wheel', onWheel, { passive: false });
    return () => el.removeEventListener('wheel', onWheel);
  }, []);
  const handlers = {
    onPointerDown: (e) => {
      if (e.button !== 0) return;
      drag.current = { x: e.clientX, y: e.clientY, view, moved: false };
    },
    onPointerMove: (e) => {
      const d = drag.current;
      if (!d) return;
      if (e.buttons === 0) { drag.current = null; return; }
      const dx = e.clientX - d.x;
      const dy = e.clientY - d.y;
      if (!d.moved && Math.hypot(dx, dy) < 4) return;
      d.moved = true;
      setView({ ...d.view, x: d.view.x + dx, y: d.view.y + dy });
    },
    onPointerUp: () => {
      // a click that ends a drag must not open a service: keep the flag until the click runs
      setTimeout(() => { drag.current = null; }, 0);
    },
  };
  const dragged = () => Boolean(drag.current && drag.current.moved);
  return { view, handlers, dragged, reset: () => setView(fit) };
}

function NodeBox({ node, pos, w, h, dim, onEnter, onLeave, onOpen }) {
  const health = healthClass(node.errorRate);
  const clickable = node.kind !== 'user';
  const label = node.name.length > 22 ? `${node.name.slice(0, 21)}…` : node.name;
  return html`<g class=${`sg-node kind-${node.kind} health-${health}${dim ? ' dim' : ''}${clickable ? ' clickable' : ''}`}
      transform=${`translate(${pos.x},${pos.y})`} data-testid="service-node" data-service=${node.name}
      data-kind=${node.kind} onMouseEnter=${onEnter} onMouseLeave=${onLeave}
      onClick=${clickable ? onOpen : undefined}>
    <title>${node.name}${KIND_LABEL[node.kind] ? ` (${KIND_LABEL[node.kind]})` : ''}: ${formatRate(node.rate)}, ${formatPercent(node.errorRate)} errors</title>
    <rect class="sg-box" width=${w} height=${h} rx="10" />
    <rect class="sg-stripe" width="6" height=${h - 16} x="6" y="8" rx="3" />
    <text class="sg-name" x="20" y="23">${label}</text>
    <text class="sg-stats" x="20" y="42">${formatRate(node.rate)}${node.errorRate
      ? html` · <tspan class="sg-err">${formatPercent(node.errorRate)} errors</tspan>` : ''}</text>
    ${KIND_LABEL[node.kind] && html`<text class="sg-kind" x=${w - 8} y="14" text-anchor="end">${KIND_LABEL[node.kind]}</text>`}
    <rect class="sg-errbar" x="0" y=${h - 4} width=${w * node.errorRate} height="4" />
  </g>`;
}

function EdgeLine({ edge, from, to, w, h, maxRate, dim, lit }) {
  const { d, labelX, labelY } = edgePath(from, to, w, h);
  const erring = edge.failed > 0;
  const width = 1.5 + 4 * Math.sqrt(maxRate ? edge.rate / maxRate : 0);
  const parts = [formatRate(edge.rate), `${formatPercent(edge.errorRate)} errors`];
  if (edge.p95 !== null) parts.push(`p95 ${formatLatency(edge.p95)}`);
  return html`<g class=${`sg-edge${erring ? ' error' : ''}${dim ? ' dim' : ''}${lit ? ' lit' : ''}`}
      data-testid="service-edge" data-client=${edge.client} data-server=${edge.server}
      data-connection-type=${edge.connectionType} data-error-rate=${edge.errorRate}>
    <title>${edge.client} → ${edge.server}${edge.connectionType ? ` (${edge.connectionType})` : ''}: ${parts.join(', ')}</title>
    <path class="sg-edge-line" d=${d} stroke-width=${width} marker-end=${`url(#sg-arrow${erring ? '-error' : ''})`} />
    <text class="sg-edge-label" data-testid="edge-label" x=${labelX} y=${labelY - 20} text-anchor="middle">
      <tspan x=${labelX}>${parts[0]}</tspan><tspan x=${labelX} dy="13">${parts.slice(1).join(' · ')}</tspan></text>
  </g>`;
}

function ServiceGraphView({ graph, onOpen }) {
  const svgRef = useRef(null);
  const [boxWidth, setBoxWidth] = useState(1200);
  const [hover, setHover] = useState(null);
  const layout = useMemo(() => layoutGraph(graph.nodes, graph.edges), [graph]);
  useLayoutEffect(() => {
    if (svgRef.current) setBoxWidth(svgRef.current.clientWidth || 1200);
  }, []);
  const height = Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, layout.height + 40));
  const fit = useMemo(() => {
    const k = Math.min(1, boxWidth / layout.width, height / layout.height);
    return { k, x: (boxWidth - layout.width * k) / 2, y: (height - layout.height * k) / 2 };
  }, [layout, boxWidth]);
  const { view, handlers, dragged, reset } = usePanZoom(svgRef, fit);
  const { positions, nodeWidth: w, nodeHeight: h } = layout;
  const maxRate = Math.max(0, ...graph.edges.map((e) => e.rate));
  const touches = (e) => hover && (e.client === hover || e.server === hover);
  const near = new Set(hover ? [hover, ...graph.edges.filter(touches).flatMap((e) => [e.client, e.server])] : []);
  const open = (name) => () => { if (!dragged()) onOpen(name); };
  return html`<div class="sg-wrap panel">
    <svg ref=${svgRef} class="sg-svg" data-testid="service-map" width="100%" height=${height} ...${handlers}>
      <defs>
        <marker id="sg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" class="sg-arrow" /></marker>
        <marker id="sg-arrow-error" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" class="sg-arrow error" /></marker>
      </defs>
      <g transform=${`translate(${view.x},${view.y}) scale(${view.k})`}>
        ${graph.edges.map((e) => html`<${EdgeLine} key=${e.id} edge=${e} from=${positions.get(e.client)}
          to=${positions.get(e.server)} w=${w} h=${h} maxRate=${maxRate} dim=${hover && !touches(e)} lit=${touches(e)} />`)}
        ${graph.nodes.map((n) => html`<${NodeBox} key=${n.id} node=${n} pos=${positions.get(n.id)} w=${w} h=${h}
          dim=${hover && !near.has(n.id)} onEnter=${() => setHover(n.id)} onLeave=${() => setHover(null)}
          onOpen=${open(n.name)} />`)}
      </g>
    </svg>
    <div class="sg-legend muted">
      <span><i class="sg-dot ok"></i>no errors</span><span><i class="sg-dot warn"></i>under 5% errors</span>
      <span><i class="sg-dot bad"></i>5% errors or more</span><span>line width: request rate</span>
      <span class="spacer"></span><span>wheel to zoom, drag to pan</span>
      <button type="button" class="link" onClick=${reset}>Reset view</button>
    </div>
  </div>`;
}

function EdgeTable({ edges, from, to }) {
  const svc = (name) => html`<${Link} href=${`/ui/services/${encodeURIComponent(name)}?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`}>${name}<//>`;
  return html`<div class="panel">
    <div class="panel-title">Calls</div>
    <table class="data" data-testid="edge-table">
      <thead><tr><th>Client</th><th>Server</th><th>Type</th><th class="num">Requests</th><th class="num">Rate</th>
        <th class="num">Failed</th><th class="num">Error rate</th><th class="num">p95</th></tr></thead>
      <tbody>${edges.map((e) => html`<tr key=${e.id} data-testid="edge-row" data-client=${e.client} data-server=${e.server}>
        <td>${e.connectionType === 'virtual_node' && e.client === 'user' ? e.client : svc(e.client)}</td>
        <td>${svc(e.server)}</td><td class="muted">${e.connectionType || 'call'}</td>
        <td class="num">${Math.round(e.requests)}</td><td class="num">${formatRate(e.rate)}</td>
        <td class="num">${Math.round(e.failed)}</td>
        <td class=${`num${e.failed ? ' error' : ''}`}>${formatPercent(e.errorRate)}</td>
        <td class="num">${formatLatency(e.p95)}</td></tr>`)}</tbody>
    </table>
  </div>`;
}

export function ServiceMapPage({ loc }) {
  const from = loc.query.get('from') || DEFAULT_FROM;
  const to = loc.query.get('to') || DEFAULT_TO;
  const [reloadKey, setReloadKey] = useState(0);
  const { loading, graph, error } = useServiceGraph(from, to, reloadKey);
  const openService = (name) => navigate(`/ui/services/${encodeURIComponent(name)}`, { from, to });
  let body;
  if (error) body = html`<div class="error-box" data-testid="servicemap-error">Cannot load the service graph: ${error.message}</div>`;
  else if (!graph) body = html`<p class="empty">Loading…</p>`;
  else if (!graph.edges.length) body = html`<p class="empty" data-testid="servicemap-empty">${EMPTY_TEXT}</p>`;
  else {
    body = html`<${ServiceGraphView} graph=${graph} onOpen=${openService} />
      <${EdgeTable} edges=${graph.edges} from=${from} to=${to} />`;
  }
  return html`<div class="page servicemap-page">
    <div class="toolbar">
      <h1>Service map</h1>
      <span class="spacer"></span>
      ${loading && graph && html`<span class="muted">Refreshing…</span>`}
      <${TimeRangePicker} from=${from} to=${to} onChange=${(f, t) => setQueryParams({ from: f, to: t }, { replace: false })} />
      <button type="button" class="btn" onClick=${() => setReloadKey(reloadKey + 1)}>Refresh</button>
    </div>
    ${body}
  </div>`;
}
