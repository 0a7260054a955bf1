// The dashboard's one script: plain JS, no build step.
// - Buttons and forms with data-api call the JSON API (or a webhook await's URL) with the
//   session cookie; errors (problem+json) show in the flash area and beside the fields.
// - A page whose <main> has data-live-stream follows that event stream (EventSource): each
//   batch of events refreshes the page's [data-part] elements from the server, and on a run's
//   page adds the new timeline rows, rendered by the server too.
'use strict';

(() => {
  const main = document.getElementById('main');
  const flashBox = document.getElementById('flash');

  // -- talking to the API ---------------------------------------------------------------------

  async function call(url, method, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = { detail: text }; }
    }
    return { ok: response.ok, status: response.status, data, location: response.headers.get('Location') };
  }

  function flash(message, kind, links) {
    flashBox.replaceChildren();
    flashBox.className = 'flash ' + (kind || 'info');
    const text = document.createElement('span');
    text.textContent = message;
    flashBox.append(text);
    for (const [label, href] of links || []) {
      const a = document.createElement('a');
      a.href = href;
      a.textContent = label;
      flashBox.append(' ', a);
    }
    flashBox.hidden = false;
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll('[data-error-for]')) el.textContent = '';
  }

  // A problem's `errors` point into the body (`/input/age`); fields name their pointer.
  function showProblem(result, form) {
    const problem = result.data || {};
    const errors = Array.isArray(problem.errors) ? problem.errors : [];
    const lines = errors.map((e) => `${e.pointer || e.location || ''}: ${e.message}`);
    flash(`${result.status} ${problem.detail || problem.title || 'the request failed'}` +
      (lines.length ? ' — ' + lines.join('; ') : ''), 'error');
    if (!form) return;
    for (const e of errors) {
      const pointer = e.pointer || '';
      for (const target of form.querySelectorAll('[data-error-for]')) {
        const own = target.dataset.errorFor;
        const schemaOwn = '/input' + own;
        if (own === pointer || schemaOwn === pointer || (own && pointer.startsWith(own + '/'))) {
          target.textContent = e.message;
        }
      }
    }
  }

  // Where a created resource's page is: its API Location without /api.
  function pageOf(result) {
    if (result.location && result.location.startsWith('/api/')) return result.location.slice(4);
    if (result.data && result.data.id) return '/runs/' + result.data.id;
    return null;
  }

  async function after(result, then, origin) {
    if (then === 'follow') {
      const target = pageOf(result);
      if (target) { window.location.assign(target); return; }
    }
    if (then === 'follow-page') { window.location.assign(origin.dataset.page); return; }
    if (then === 'reload') { window.location.reload(); return; }
    if (then === 'fired') {
      const fires = result.data.fires || [result.data];
      const runs = fires.flatMap((f) => f.runs || []);
      flash(runs.length ? `Fired: ${runs.length} run${runs.length === 1 ? '' : 's'} started` :
        'Fired: no flow is subscribed in mode auto, no run started', 'ok',
      runs.map((r) => [`${r.flow} ${r.runId.slice(0, 8)}`, '/runs/' + r.runId]));
      await refreshParts();
      return;
    }
    flash('Done.', 'ok');
    await refreshParts();
  }

  // -- forms ------------------------------------------------------------------------------------

  class FieldError extends Error {
    constructor(pointer, message) { super(message); this.pointer = pointer; }
  }

  function setPointer(target, pointer, value) {
    const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let node = target;
    for (const part of parts.slice(0, -1)) {
      if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
      node = node[part];
    }
    node[parts[parts.length - 1]] = value;
  }

  function parseJson(text, pointer) {
    try { return JSON.parse(text); } catch (error) {
      throw new FieldError(pointer, 'not valid JSON: ' + error.message);
    }
  }

  // The input a schema form describes: each [data-pointer] field, by its kind.
  function schemaInput(container) {
    const input = {};
    for (const el of container.querySelectorAll('[data-pointer]')) {
      const pointer = el.dataset.pointer;
      const kind = el.dataset.kind;
      const text = el.value.trim();
      if (kind === 'boolean') { setPointer(input, pointer, el.checked); continue; }
      if (text === '') continue;
      let value = text;
      if (kind === 'number' || kind === 'integer') {
        value = Number(text);
        if (Number.isNaN(value)) throw new FieldError(pointer, 'not a number');
      } else if (kind === 'choice' || kind === 'json') {
        value = parseJson(text, pointer);
      }
      setPointer(input, pointer, value);
    }
    return input;
  }

  function fieldValue(el) {
    const type = el.dataset.type;
    const text = el.value.trim();
    const pointer = '/' + el.name;
    if (type === 'integer') {
      const value = Number(text);
      if (!Number.isInteger(value)) throw new FieldError(pointer, 'not a whole number');
      return value;
    }
    if (type === 'json') {
      const marker = el.dataset.noRedacted;
      if (marker && text.includes(JSON.stringify(marker))) {
        throw new FieldError(pointer, `replace the ${marker} values with the secrets`);
      }
      return parseJson(text, pointer);
    }
    return el.value;
  }

  function formBody(form) {
    if (form.dataset.rawBody) {
      const text = form.elements[form.dataset.rawBody].value.trim();
      return text ? JSON.stringify(parseJson(text, '')) : undefined;
    }
    const body = {};
    const onlyChanged = form.hasAttribute('data-only-changed');
    for (const el of form.querySelectorAll('[name][data-type]')) {
      if (el.closest('[data-schema-input]')) continue;
      if (el.dataset.type === 'list') {
        if (!Array.isArray(body[el.name])) body[el.name] = [];
        if (el.checked) body[el.name].push(el.value);
        continue;
      }
      const changed = el.dataset.initial === undefined || el.value !== el.dataset.initial;
      if (onlyChanged && !changed && !el.hasAttribute('data-always')) continue;
      if (el.hasAttribute('data-optional') && el.value.trim() === '') {
        if (onlyChanged) body[el.name] = null;
        continue;
      }
      body[el.name] = fieldValue(el);
    }
    for (const [name, list] of Object.entries(body)) {
      if (Array.isArray(list) && list.length === 0) delete body[name];
    }
    for (const container of form.querySelectorAll('[data-schema-input]')) {
      body[container.dataset.schemaInput] = schemaInput(container);
    }
    const subscribed = [...form.querySelectorAll('[data-subscribe]')].filter((el) => el.checked);
    if (subscribed.length) {
      const mode = form.querySelector('[data-subscribe-mode]').value;
      body.subscribe = Object.fromEntries(subscribed.map((el) => [el.dataset.subscribe, mode]));
    }
    return body;
  }

  function formUrl(form) {
    let url = form.dataset.api || form.dataset.apiTemplate;
    for (const el of form.querySelectorAll('[data-path-param]')) {
      url = url.replace(`{${el.dataset.pathParam}}`, encodeURIComponent(el.value));
    }
    return url;
  }

  document.addEventListener('submit', async (event) => {
    const form = event.target.closest('form.api-form');
    if (!form) return;
    event.preventDefault();
    clearErrors(form);
    let body;
    try {
      body = formBody(form);
    } catch (error) {
      if (!(error instanceof FieldError)) throw error;
      showProblem({ status: 422, data: { detail: 'a value is not valid', errors: [{ pointer: error.pointer, message: error.message }] } }, form);
      return;
    }
    const button = form.querySelector('[type=submit]');
    if (button) button.disabled = true;
    try {
      const result = await call(formUrl(form), (form.dataset.method || 'POST').toUpperCase(), body);
      if (!result.ok) { showProblem(result, form); return; }
      await after(result, form.dataset.then, form);
    } catch (error) {
      flash('The request failed: ' + error.message, 'error');
    } finally {
      if (button) button.disabled = false;
    }
  });

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-api]');
    if (button) {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      button.disabled = true;
      try {
        const result = await call(button.dataset.api, button.dataset.method || 'POST', button.dataset.body);
        if (!result.ok) { showProblem(result, null); return; }
        await after(result, button.dataset.then, button);
      } catch (error) {
        flash('The request failed: ' + error.message, 'error');
      } finally {
        button.disabled = false;
      }
      return;
    }
    const at = event.target.closest('[data-state-at]');
    if (at) await showState(at.dataset.stateAt);
  });

  // A new trigger's config starts as the example of its type, until someone edits it.
  document.addEventListener('input', (event) => {
    if (event.target.matches('.trigger-form textarea[name="config"]')) event.target.dataset.edited = '1';
  });
  document.addEventListener('change', (event) => {
    const select = event.target.closest('[data-example-switch]');
    if (select) {
      const config = select.form.elements.config;
      if (!config.dataset.edited) {
        const examples = JSON.parse(select.form.dataset.examples);
        config.value = JSON.stringify(examples[select.value] || {}, null, 2);
      }
      return;
    }
    const toggle = event.target.closest('[data-show]');
    if (toggle) {
      document.getElementById('timeline').classList.toggle('hide-' + toggle.dataset.show, !toggle.checked);
    }
  });

  // -- a run's state as of an event (time travel) ---------------------------------------------

  async function showState(eventId) {
    const view = document.getElementById('state-view');
    if (!view) return;
    const label = document.getElementById('state-as-of');
    const reset = document.querySelector('[data-state-at=""]');
    if (!eventId) {
      label.textContent = 'now';
      reset.hidden = true;
      await refreshParts(true);
      return;
    }
    const result = await call(`/api/runs/${view.dataset.run}/state?at=${eventId}`, 'GET');
    if (!result.ok) { showProblem(result, null); return; }
    const entries = Object.entries(result.data.state);
    const table = document.createElement('table');
    table.className = 'list kv';
    for (const [key, value] of entries) {
      const row = table.insertRow();
      const name = document.createElement('th');
      name.className = 'mono';
      name.textContent = key;
      const cell = row.insertCell();
      const pre = document.createElement('pre');
      pre.className = 'json';
      pre.textContent = JSON.stringify(value, null, 2);
      row.prepend(name);
      cell.append(pre);
    }
    const empty = document.createElement('p');
    empty.className = 'empty';
    empty.textContent = 'No state yet.';
    view.replaceChildren(entries.length ? table : empty);
    label.textContent = `after event #${eventId}`;
    reset.hidden = false;
    main.dataset.stateFrozen = '1';
  }

  // -- live pages -------------------------------------------------------------------------------

  let refreshing = null;

  // Fetch the page again (its ?parts=1 form skips the timeline) and swap each [data-part]
  // that no one is typing in.
  async function refreshParts(force) {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      const url = new URL(window.location.href);
      url.searchParams.set('parts', '1');
      const response = await fetch(url, { credentials: 'same-origin' });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
      for (const part of document.querySelectorAll('[data-part]')) {
        const name = part.dataset.part;
        if (part.contains(document.activeElement) && document.activeElement !== document.body) continue;
        if (name === 'state' && main.dataset.stateFrozen && !force) continue;
        const replacement = fresh.querySelector(`[data-part="${name}"]`);
        if (replacement) part.replaceWith(document.importNode(replacement, true));
      }
      if (force) delete main.dataset.stateFrozen;
    })();
    try { await refreshing; } finally { refreshing = null; }
  }

  async function addTimelineRows(afterId) {
    const list = document.getElementById('timeline');
    const url = main.dataset.timelineUrl;
    if (!list || !url) return;
    const response = await fetch(`${url}?after=${afterId}`, { credentials: 'same-origin' });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(`<ol>${await response.text()}</ol>`, 'text/html');
    const shown = new Set([...list.children].map((li) => li.dataset.id));
    for (const row of fresh.querySelectorAll('li[data-id]')) {
      if (shown.has(row.dataset.id)) continue;
      const id = Number(row.dataset.id);
      const later = [...list.children].find((li) => Number(li.dataset.id) > id);
      list.insertBefore(document.importNode(row, true), later || null);
    }
  }

  function follow(streamUrl) {
    const types = (main.dataset.eventTypes || '').split(' ').filter(Boolean);
    const source = new EventSource(streamUrl);
    // Refreshes come at most every data-live-interval ms (a busy system's status changes
    // would otherwise re-render a list many times a second), the first 150 ms after an event.
    const interval = Number(main.dataset.liveInterval || 300);
    let pending = [];
    let timer = null;
    let last = 0;
    const flush = async () => {
      timer = null;
      last = Date.now();
      const ids = pending;
      pending = [];
      if (ids.length) await addTimelineRows(Math.min(...ids) - 1);
      await refreshParts();
    };
    const onEvent = (event) => {
      if (event.lastEventId) pending.push(Number(event.lastEventId));
      if (!timer) timer = setTimeout(flush, Math.max(150, last + interval - Date.now()));
    };
    for (const type of types) {
      if (type !== 'end') source.addEventListener(type, onEvent);
    }
    source.addEventListener('end', async () => {
      source.close();
      if (timer) { clearTimeout(timer); }
      await flush();
      const note = document.getElementById('live-note');
      if (note) note.textContent = 'The run is over.';
      main.dataset.streamEnded = '1';
    });
    window.addEventListener('pagehide', () => source.close());
  }

  if (main && main.dataset.liveStream) follow(main.dataset.liveStream);
})();
