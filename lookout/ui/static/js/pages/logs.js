// Placeholder until this page is built.
import { html } from '../preact.js';

export function LogsPage() {
  return html`<div class="page"><h1>LogsPage</h1><p class="empty">Not built yet.</p></div>`;
}
