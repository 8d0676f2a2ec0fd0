// Placeholder until this page is built.
import { html } from '../preact.js';

export function MetricsPage() {
  return html`<div class="page"><h1>MetricsPage</h1><p class="empty">Not built yet.</p></div>`;
}
