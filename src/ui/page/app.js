// The page: polls GET /api/state (204 while nothing changed), rebuilds the model when the
// store changes, and redraws the views, keeping the selection, zoom, search and scroll.
import { age as ageOf, h, humanBytes as h_ } from './dom.js';
import { Icicle, SIZE_BY } from './icicle.js';
import { buildModel, matcher } from './model.js';
import { renderDetail } from './detail.js';
import { renderDrift, renderOpen } from './lists.js';
import { renderSavings } from './savings.js';
import { ImageTable } from './table.js';

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

const ui = { version: 0, model: null, selected: null, detail: null, match: null, failures: 0 };

const tooltip = $('tooltip');
const icicle = new Icicle($('forest'), { onSelect: select, onHover: hover });
const table = new ImageTable($('table'), { onSelect: select });

// Size-by buttons for the icicle.
$('sizeby').replaceChildren(
  ...Object.entries(SIZE_BY).map(([key, v]) =>
    h('button', { type: 'button', class: key === icicle.sizeBy ? 'on' : '', dataset: { sizeBy: key }, on: { click: () => setSizeBy(key) } }, v.label),
  ),
);

function setSizeBy(key) {
  for (const b of $('sizeby').children) b.classList.toggle('on', b.dataset.sizeBy === key);
  icicle.sizeBy = key;
  icicle.layout();
  drawForest();
}

function drawForest() {
  const r = icicle.draw({ match: ui.match, selected: ui.selected });
  if (!r) return;
  $('forest-note').textContent = r.note;
  const crumbs = ['all', ...icicle.path()];
  $('crumbs').replaceChildren(
    ...crumbs.map((name, i) =>
      h('a', { href: '#', on: { click: (e) => (e.preventDefault(), icicle.setFocus(i === 0 ? '\u0000' : name), drawForest()) } }, i === 0 ? 'all images' : name),
    ),
    h('span', { class: 'muted' }, ` · total ${r.total}`),
  );
}

function hover(name, e) {
  const d = name && ui.model?.images.get(name);
  if (!d) {
    tooltip.hidden = true;
    return;
  }
  tooltip.replaceChildren(
    h('b', {}, d.name),
    ` ${d.kind}${d.open.length ? ' · open' : ''}`,
    h('br'),
    `size ${h_(d.virtualSize)} · own ${h_(d.ownBytes)}`,
    h('br'),
    `exclusive ${h_(d.exclusiveBytes)} · shared ${h_(d.sharedBytes)}`,
    h('br'),
    `${d.children.length} child${d.children.length === 1 ? '' : 'ren'} · made ${ageOf(d.createdAt)}`,
    d.base ? h('br') : null,
    d.writtenBytes > 0 ? `${h_(d.writtenBytes)} written since cloned${d.origin ? ` from ${d.origin}` : ''}` : null,
  );
  tooltip.hidden = false;
  tooltip.style.left = `${Math.min(e.clientX + 14, window.innerWidth - 300)}px`;
  tooltip.style.top = `${e.clientY + 14}px`;
}

async function select(name) {
  ui.selected = name;
  table.selected = name;
  table.reveal(name);
  drawForest();
  await loadDetail();
}

async function loadDetail() {
  const name = ui.selected;
  if (!name) return renderDetail($('detail'), null, { onSelect: select });
  const r = await fetch(`api/image?name=${encodeURIComponent(name)}`, { cache: 'no-store' });
  if (name !== ui.selected) return;
  if (r.status === 404) {
    ui.selected = null;
    renderDetail($('detail'), null, { onSelect: select });
    $('detail').prepend(h('p', { class: 'warn' }, `${name} is gone from the store`));
    return;
  }
  if (!r.ok) return;
  renderDetail($('detail'), await r.json(), { onSelect: select });
}

function applySearch() {
  ui.match = matcher($('search').value);
  const rows = table.update(ui.model.images, ui.match);
  $('count').textContent = ui.match ? `${rows.length} of ${ui.model.images.size}` : `${ui.model.images.size}`;
  drawForest();
  renderDrift($('drift'), ui.model, { onSelect: select, match: ui.match });
}

function render(state) {
  ui.model = buildModel(state);
  $('store').textContent = state.store;
  renderSavings($('savings'), state.stats);
  icicle.setModel(ui.model);
  applySearch();
  renderOpen($('open'), state.open, { onSelect: select });
  if (ui.selected) loadDetail();
  else renderDetail($('detail'), null, { onSelect: select });
  document.body.dataset.version = String(state.version);
  // For the bench: milliseconds from navigation start until the first full render.
  if (window.strataRenderedMs === undefined) window.strataRenderedMs = performance.now();
}

function status(text, cls) {
  $('status').textContent = text;
  $('status').className = `status ${cls}`;
}

async function poll() {
  try {
    const r = await fetch(`api/state${ui.version ? `?since=${ui.version}` : ''}`, { cache: 'no-store' });
    if (r.status === 200) {
      const state = await r.json();
      ui.version = state.version;
      render(state);
      status(`read ${new Date(state.readAt).toLocaleTimeString()} in ${state.elapsedMs} ms`, 'ok');
    } else if (r.status === 204) {
      if (ui.failures) status('live', 'ok');
    } else {
      const e = await r.json().catch(() => ({}));
      status(`server: ${e.message ?? r.status}`, 'bad');
    }
    ui.failures = 0;
  } catch {
    ui.failures++;
    status('server unreachable: retrying', 'bad');
  }
  setTimeout(poll, POLL_MS);
}

let searchTimer;
$('search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => ui.model && applySearch(), 80);
});
$('search').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && table.rows.length) select(table.rows[0].name);
});
window.addEventListener('resize', () => ui.model && drawForest());
renderDetail($('detail'), null, { onSelect: select });
poll();
