// Placeholder until this page is built.
import { html } from '../preact.js';

export function TracePage() {
  return html`<div class="page"><h1>TracePage</h1><p class="empty">Not built yet.</p></div>`;
}
