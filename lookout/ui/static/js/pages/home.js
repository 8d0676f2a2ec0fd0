// Placeholder until this page is built.
import { html } from '../preact.js';

export function HomePage() {
  return html`<div class="page"><h1>HomePage</h1><p class="empty">Not built yet.</p></div>`;
}
