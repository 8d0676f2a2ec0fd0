// Panel placement on the 24-column grid, with Grafana's gravity: panels float up until they
// touch the one above, so moving or resizing one never leaves holes or overlaps. Pure
// functions over the model's gridPos {x, y, w, h}.

const COLUMNS = 24;

const overlapsX = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w;
const collides = (a, b) => overlapsX(a, b) && a.y < b.y + b.h && b.y < a.y + a.h;

// A gridPos made valid: whole numbers inside the grid, at least 2 columns and 2 rows.
function normalizeGridPos(g = {}) {
  const w = Math.max(2, Math.min(COLUMNS, Math.round(+g.w || 12)));
  return {
    x: Math.max(0, Math.min(COLUMNS - w, Math.round(+g.x || 0))),
    y: Math.max(0, Math.round(+g.y || 0)),
    w,
    h: Math.max(2, Math.round(+g.h || 8)),
  };
}

// The panels with their gridPos compacted upwards (reading order kept: by y, then x).
export function compact(panels) {
  const placed = [];
  const order = panels.map((p, i) => ({ p, i, g: normalizeGridPos(p.gridPos) }))
    .sort((a, b) => a.g.y - b.g.y || a.g.x - b.g.x || a.i - b.i);
  const result = new Array(panels.length);
  for (const { p, i, g } of order) {
    const at = { ...g };
    while (at.y > 0 && !placed.some((q) => collides({ ...at, y: at.y - 1 }, q))) at.y -= 1;
    while (placed.some((q) => collides(at, q))) at.y += 1;
    placed.push(at);
    result[i] = { ...p, gridPos: at };
  }
  return result;
}

// The bottom row of the layout (where a new panel goes).
export function bottom(panels) {
  return panels.reduce((m, p) => Math.max(m, normalizeGridPos(p.gridPos).y + normalizeGridPos(p.gridPos).h), 0);
}

// Move or resize panel `id`: action is up, down, left, right, wider, narrower, taller or shorter.
// Up/down swap the panel with its nearest neighbour above/below in the same columns.
export function movePanel(panels, id, action) {
  const laid = compact(panels);
  const me = laid.find((p) => p.id === id);
  if (!me) return panels;
  const g = { ...me.gridPos };
  const others = laid.filter((p) => p.id !== id && overlapsX(p.gridPos, g));
  const patch = {};
  switch (action) {
    case 'up': {
      const above = others.filter((p) => p.gridPos.y < g.y).sort((a, b) => b.gridPos.y - a.gridPos.y)[0];
      if (!above) return laid;
      patch[above.id] = { ...above.gridPos, y: above.gridPos.y + g.h };
      g.y = above.gridPos.y;
      break;
    }
    case 'down': {
      const below = others.filter((p) => p.gridPos.y > g.y).sort((a, b) => a.gridPos.y - b.gridPos.y)[0];
      if (!below) return laid;
      g.y = below.gridPos.y + below.gridPos.h;
      patch[below.id] = { ...below.gridPos, y: me.gridPos.y };
      break;
    }
    case 'left': g.x = Math.max(0, g.x - 1); break;
    case 'right': g.x = Math.min(COLUMNS - g.w, g.x + 1); break;
    case 'wider': g.w = Math.min(COLUMNS, g.w + 1); g.x = Math.min(g.x, COLUMNS - g.w); break;
    case 'narrower': g.w = Math.max(2, g.w - 1); break;
    case 'taller': g.h += 1; break;
    case 'shorter': g.h = Math.max(2, g.h - 1); break;
    default: return laid;
  }
  patch[id] = g;
  return compact(laid.map((p) => (patch[p.id] ? { ...p, gridPos: patch[p.id] } : p)));
}
