// Placeholder until this page is built.
import { html } from '../preact.js';

export function ServicePage() {
  return html`<div class="page"><h1>ServicePage</h1><p class="empty">Not built yet.</p></div>`;
}
