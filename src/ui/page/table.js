// Every image in one sortable, searchable table. Only the rows in view are in the DOM
// (a fixed row height and a spacer), so 10,000 images scroll as 30 do.
import { age, bytes, h, localTime } from './dom.js';

const ROW = 26; // px, as in style.css
const OVERSCAN = 10;
const MAX_HEIGHT = 480; // px

const COLUMNS = [
  { key: 'name', label: 'name', text: (d) => d.name },
  { key: 'kind', label: 'kind', text: (d) => d.kind },
  { key: 'parent', label: 'parent', text: (d) => d.parent ?? '–' },
  { key: 'virtualSize', label: 'size', bytes: true },
  { key: 'referencedBytes', label: 'referenced', bytes: true },
  { key: 'ownBytes', label: 'own', bytes: true },
  { key: 'exclusiveBytes', label: 'exclusive', bytes: true },
  { key: 'sharedBytes', label: 'shared', bytes: true },
  { key: 'writtenBytes', label: 'written', bytes: true, title: 'written since it was cloned (zfs get written): its own bytes and those of its own snapshots' },
  { key: 'createdAt', label: 'created', text: (d) => age(d.createdAt), title: 'age' },
  { key: 'open', label: 'open by', text: (d) => d.open.map((o) => `${o.server ? 'server' : 'process'} ${o.pid} (${o.mode})`).join(', '), sort: (d) => d.open.length },
];

export class ImageTable {
  constructor(root, { onSelect }) {
    this.root = root;
    this.onSelect = onSelect;
    this.sort = { key: 'name', dir: 1 };
    this.rows = [];
    this.selected = null;
    this.head = h('div', { class: 'trow thead', role: 'row' });
    this.viewport = h('div', { class: 'viewport', role: 'rowgroup' });
    this.spacer = h('div', { class: 'spacer' });
    this.body = h('div', { class: 'tbody' });
    this.viewport.append(this.spacer, this.body);
    this.viewport.addEventListener('scroll', () => this.paint());
    this.viewport.addEventListener('click', (e) => {
      const name = e.target.closest('[data-image]')?.dataset.image;
      if (name) this.onSelect(name);
    });
    root.replaceChildren(h('div', { class: 'table', role: 'table', 'aria-label': 'images' }, this.head, this.viewport));
    this.paintHead();
  }

  paintHead() {
    this.head.replaceChildren(
      ...COLUMNS.map((c) =>
        h(
          'div',
          { class: `cell col-${c.key}${c.bytes ? ' num' : ''}`, role: 'columnheader', title: c.title, on: { click: () => this.sortBy(c.key) } },
          c.label + (this.sort.key === c.key ? (this.sort.dir > 0 ? ' ▲' : ' ▼') : ''),
        ),
      ),
    );
  }

  sortBy(key) {
    this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : COLUMNS.find((c) => c.key === key).bytes ? -1 : 1 };
    this.paintHead();
    this.update(this.all, this.match);
  }

  /** New images or a new filter: sort, then paint the rows in view. */
  update(images, match) {
    this.all = images;
    this.match = match;
    const col = COLUMNS.find((c) => c.key === this.sort.key);
    const key = col.sort ?? (col.bytes ? (d) => d[col.key] : (d) => d[col.key] ?? '');
    const rows = [];
    for (const d of images.values()) if (!match || match(d)) rows.push(d);
    const dir = this.sort.dir;
    rows.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return (x < y ? -dir : x > y ? dir : 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
    this.rows = rows;
    this.spacer.style.height = `${rows.length * ROW}px`;
    this.viewport.style.height = `${Math.min(MAX_HEIGHT, Math.max(rows.length, 1) * ROW + 2)}px`;
    this.paint();
    return rows;
  }

  paint() {
    const top = this.viewport.scrollTop;
    const height = this.viewport.clientHeight || 480;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const out = [];
    for (let i = first; i < last; i++) {
      const d = this.rows[i];
      const row = h(
        'div',
        { class: `trow kind-${d.kind}${d.name === this.selected ? ' selected' : ''}${d.open.length ? ' open' : ''}`, role: 'row', dataset: { image: d.name } },
        COLUMNS.map((c) =>
          c.bytes
            ? h('div', { class: `cell num col-${c.key}`, role: 'cell', dataset: { col: c.key } }, bytes(d[c.key]))
            : h('div', { class: `cell col-${c.key}`, role: 'cell', dataset: { col: c.key }, title: c.key === 'createdAt' ? localTime(d.createdAt) : c.text(d) }, c.text(d)),
        ),
      );
      row.style.top = `${i * ROW}px`;
      out.push(row);
    }
    this.body.replaceChildren(...out);
  }

  /** Scrolls a row into view. */
  reveal(name) {
    const i = this.rows.findIndex((d) => d.name === name);
    if (i < 0) return;
    const top = i * ROW;
    if (top < this.viewport.scrollTop || top > this.viewport.scrollTop + this.viewport.clientHeight - ROW) this.viewport.scrollTop = Math.max(0, top - 3 * ROW);
    this.paint();
  }
}
