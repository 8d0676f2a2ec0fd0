// A virtualized list: only the rows in view (plus a margin) are in the DOM, so 10,000 log
// lines or spans render as fast as 50. Rows have one fixed height (expanded details are
// rendered by the caller outside the list, or as rows of their own).
//
// Props: count, rowHeight (px), height (px of the viewport), renderRow(index) -> vnode,
// overscan (rows above/below), scrollToIndex (optional: scroll so that row is in view),
// testid (data-testid of the scroller).
import { html, useEffect, useRef, useState } from '../preact.js';

export function VirtualList({ count, rowHeight, height, renderRow, overscan = 10, scrollToIndex = null, testid = 'vlist' }) {
  const ref = useRef(null);
  const [scrollTop, setScrollTop] = useState(0);
  useEffect(() => {
    if (scrollToIndex === null || scrollToIndex === undefined || !ref.current) return;
    const el = ref.current;
    const top = scrollToIndex * rowHeight;
    if (top < el.scrollTop || top + rowHeight > el.scrollTop + height) el.scrollTop = Math.max(0, top - height / 3);
  }, [scrollToIndex]);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + height) / rowHeight) + overscan);
  const rows = [];
  for (let i = first; i < last; i++) {
    rows.push(html`<div class="vlist-row" key=${i} style=${`top:${i * rowHeight}px;height:${rowHeight}px`}>${renderRow(i)}</div>`);
  }
  return html`<div class="vlist" ref=${ref} data-testid=${testid} style=${`height:${height}px`}
      onScroll=${(e) => setScrollTop(e.currentTarget.scrollTop)}>
    <div class="vlist-inner" style=${`height:${count * rowHeight}px`}>${rows}</div>
  </div>`;
}
