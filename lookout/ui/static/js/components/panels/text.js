// The text panel: a little Markdown (headings, paragraphs, **bold**, *italic*, `code`,
// [links](url), lists, fenced code), turned into Preact nodes — never innerHTML, so text in
// a dashboard cannot inject markup or scripts.
import { html } from '../../preact.js';

const INLINE_RE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|\[([^\]]+)\]\(([^)\s]+)\)/g;

function safeHref(url) {
  return /^(https?:|mailto:|\/|#)/i.test(url) ? url : null;
}

function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE_RE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const [whole, code, bold, italic, linkText, href] = m;
    if (code) out.push(html`<code>${code.slice(1, -1)}</code>`);
    else if (bold) out.push(html`<strong>${inline(bold.slice(2, -2))}</strong>`);
    else if (italic) out.push(html`<em>${inline(italic.slice(1, -1))}</em>`);
    else if (safeHref(href)) out.push(html`<a href=${href} target=${href.startsWith('/') || href.startsWith('#') ? undefined : '_blank'} rel="noopener">${inline(linkText)}</a>`);
    else out.push(whole);
    last = m.index + whole.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

// Markdown text -> an array of block vnodes.
export function renderMarkdown(source) {
  const lines = String(source || '').replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^```/.test(line)) {
      const body = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) body.push(lines[i]);
      i++;
      blocks.push(html`<pre>${body.join('\n')}</pre>`);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const Tag = `h${Math.min(6, heading[1].length + 2)}`;
      blocks.push(html`<${Tag}>${inline(heading[2])}<//>`);
      i++;
      continue;
    }
    const listItem = /^\s*([-*+]|\d+[.)])\s+/;
    if (listItem.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const items = [];
      for (; i < lines.length && listItem.test(lines[i]); i++) items.push(html`<li>${inline(lines[i].replace(listItem, ''))}</li>`);
      blocks.push(ordered ? html`<ol>${items}</ol>` : html`<ul>${items}</ul>`);
      continue;
    }
    if (!line.trim()) { i++; continue; }
    const para = [];
    for (; i < lines.length && lines[i].trim() && !/^(#{1,6}\s|```)/.test(lines[i]) && !listItem.test(lines[i]); i++) para.push(lines[i]);
    blocks.push(html`<p>${inline(para.join(' '))}</p>`);
  }
  return blocks;
}

export const textPanel = {
  label: 'Text',
  needsQueries: false,
  View({ panel }) {
    const content = panel.options?.content ?? '';
    if (!content.trim()) return html`<div class="empty">No text yet: edit the panel to write some Markdown.</div>`;
    return html`<div class="markdown" data-testid="panel-text">${renderMarkdown(content)}</div>`;
  },
};
