// Placeholder until this page is built.
import { html } from '../preact.js';

export function ServiceMapPage() {
  return html`<div class="page"><h1>ServiceMapPage</h1><p class="empty">Not built yet.</p></div>`;
}
