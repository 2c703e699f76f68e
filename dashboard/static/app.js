// kumo dashboard: the little script the pages need (no inline script: the CSP forbids it).
// Image upload with a progress bar, and the serial console (xterm.js over a websocket).
'use strict';

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : '';
}

function setupUpload() {
  const form = document.getElementById('upload-form');
  if (!form) return;
  const bar = document.getElementById('upload-progress');
  const status = document.getElementById('upload-status');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = document.getElementById('image-file').files[0];
    if (!file) return;
    const fields = new FormData(form);
    fields.delete('file');
    status.textContent = 'creating image…';
    const created = await fetch('/images', {
      method: 'POST', body: new URLSearchParams(fields), headers: { 'X-CSRF-Token': csrfToken() },
    });
    if (!created.ok) {
      status.textContent = await errorText(created);
      status.className = 'error';
      return;
    }
    const image = await created.json();
    bar.hidden = false;
    bar.dataset.steps = '0';
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/images/${image.id}/data`);
    xhr.setRequestHeader('X-CSRF-Token', csrfToken());
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.floor((100 * e.loaded) / e.total);
      bar.dataset.steps = String(Number(bar.dataset.steps) + 1);
      status.textContent = `${bar.value} %`;
    });
    xhr.addEventListener('load', () => {
      if (xhr.status === 200) {
        bar.value = 100;
        status.textContent = 'uploaded';
        window.location.assign('/images');
      } else {
        let msg = xhr.responseText;
        try { msg = JSON.parse(xhr.responseText).error; } catch (_) { /* not JSON */ }
        status.textContent = msg;
        status.className = 'error';
      }
    });
    xhr.addEventListener('error', () => { status.textContent = 'the upload broke off'; status.className = 'error'; });
    xhr.send(file);
  });
}

async function errorText(resp) {
  const text = await resp.text();
  const doc = new DOMParser().parseFromString(text, 'text/html');
  const el = doc.getElementById('error-message');
  return el ? el.textContent : `HTTP ${resp.status}`;
}

function setupConsole() {
  const el = document.getElementById('terminal');
  if (!el || !window.Terminal) return;
  const status = document.getElementById('console-status');
  const term = new window.Terminal({ convertEol: false, cursorBlink: true, rows: 30, cols: 100 });
  term.open(el);
  const history = document.getElementById('console-history');
  if (history && history.textContent) term.write(history.textContent.replace(/\r?\n/g, '\r\n'));
  window.kumoTerminal = term; // the browser tests read the screen from here
  const url = new URL(el.dataset.ws, window.location.href);
  url.protocol = 'wss:';
  url.searchParams.set('csrf', csrfToken());
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  ws.addEventListener('open', () => { status.textContent = 'connected'; term.focus(); });
  ws.addEventListener('message', (e) => {
    term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
  });
  ws.addEventListener('close', () => { status.textContent = 'console closed'; });
  term.onData((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data)); });
}

document.addEventListener('DOMContentLoaded', () => {
  setupUpload();
  setupConsole();
});
