// Placeholder until this page is built.
import { html } from '../preact.js';

export function DashboardsPage() {
  return html`<div class="page"><h1>DashboardsPage</h1><p class="empty">Not built yet.</p></div>`;
}
