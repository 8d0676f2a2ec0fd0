// Placeholder until this page is built.
import { html } from '../preact.js';

export function TracesPage() {
  return html`<div class="page"><h1>TracesPage</h1><p class="empty">Not built yet.</p></div>`;
}
