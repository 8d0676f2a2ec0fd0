// Placeholder until this page is built.
import { html } from '../preact.js';

export function DashboardPage() {
  return html`<div class="page"><h1>DashboardPage</h1><p class="empty">Not built yet.</p></div>`;
}
