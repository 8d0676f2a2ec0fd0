// Placeholder until this page is built.
import { html } from '../preact.js';

export function AlertsPage() {
  return html`<div class="page"><h1>AlertsPage</h1><p class="empty">Not built yet.</p></div>`;
}
