// The forest as an icicle: bases on the left, each image's children to its right, the height
// of a box the bytes (or image count) of its subtree. d3-hierarchy does the layout; only boxes
// at least a pixel tall are drawn, so 10,000 images cost what a few hundred boxes cost.
import { partition, stratify } from './vendor/d3-hierarchy.min.mjs';
import { h, humanBytes, s } from './dom.js';

const ROOT = '\u0000'; // no image name contains NUL
const MIN_BOX = 1; // px
const LABEL_MIN = 15; // px
const CHAR_W = 7; // px, about, at 12px

/** A label cut to fit `width` px, with an ellipsis when cut. */
const fit = (text, width) => {
  const n = Math.max(1, Math.floor((width - 12) / CHAR_W));
  return text.length <= n ? text : `${text.slice(0, n - 1)}…`;
};

export const SIZE_BY = {
  own: { label: 'own bytes', value: (d) => d.ownBytes, fmt: humanBytes },
  exclusive: { label: 'exclusive bytes', value: (d) => d.exclusiveBytes, fmt: humanBytes },
  shared: { label: 'shared bytes', value: (d) => d.sharedBytes, fmt: humanBytes },
  images: { label: 'images', value: () => 1, fmt: (n) => `${n} image${n === 1 ? '' : 's'}` },
};

export class Icicle {
  constructor(root, { onSelect, onHover }) {
    this.root = root;
    this.onSelect = onSelect;
    this.onHover = onHover;
    this.focus = ROOT;
    this.sizeBy = 'own';
    this.tree = null;
  }

  /** Rebuilds the hierarchy from a new model (names, parents, sizes). */
  setModel(model) {
    this.model = model;
    const rows = [{ name: ROOT, parent: null }, ...model.images.values()];
    this.tree = stratify()
      .id((d) => d.name)
      .parentId((d) => (d.name === ROOT ? null : d.parent !== null && model.images.has(d.parent) ? d.parent : ROOT))(rows);
    this.layout();
  }

  layout() {
    const by = SIZE_BY[this.sizeBy];
    this.tree.sum((d) => (d.name === ROOT ? 0 : by.value(d)));
    this.tree.sort((a, b) => b.value - a.value || (a.id < b.id ? -1 : 1));
    partition()(this.tree); // x0..x1 in [0, 1]: the breadth; depth gives the column
    this.byName = new Map();
    this.tree.each((n) => this.byName.set(n.id, n));
    if (!this.byName.has(this.focus)) this.focus = ROOT;
  }

  setSizeBy(key) {
    this.sizeBy = key;
    this.layout();
    this.draw();
  }

  setFocus(name) {
    this.focus = this.byName?.has(name) ? name : ROOT;
    this.draw();
  }

  /** Draws the focused subtree: the focus fills the height; columns are depths below it. */
  draw({ match = null, selected = null } = {}) {
    if (match !== undefined) this.match = match;
    if (selected !== undefined) this.selected = selected;
    if (!this.tree) return;
    const f = this.byName.get(this.focus);
    const width = Math.max(320, this.root.clientWidth || 800);
    const height = 460;
    const maxDepth = f.height; // levels below the focus
    const cols = f.id === ROOT ? maxDepth : maxDepth + 1;
    const colW = Math.max(110, width / Math.max(1, Math.min(cols, 6)));
    const svgW = Math.max(width, colW * cols);
    const span = f.x1 - f.x0;
    const by = SIZE_BY[this.sizeBy];
    const g = s('g');
    const lit = this.litNames();
    let drawn = 0;
    let hidden = 0;
    const yOf = (x) => (span > 0 ? ((x - f.x0) / span) * height : 0);
    const colOf = (n) => n.depth - f.depth - (f.id === ROOT ? 1 : 0);
    const stack = [f];
    while (stack.length) {
      const n = stack.pop();
      const y0 = yOf(n.x0);
      const hgt = yOf(n.x1) - y0;
      if (n.id !== ROOT) {
        const d = n.data;
        const cls = ['node', `kind-${d.kind}`];
        if (d.open.length) cls.push('open');
        if (lit && !lit.has(d.name)) cls.push('dim');
        if (this.selected === d.name) cls.push('selected');
        const box = s('g', { class: cls.join(' '), 'data-name': d.name, 'aria-label': `${d.name}, ${d.kind}, ${n.children ? `with those below: ${by.fmt(n.value)}` : by.fmt(n.value)}`, transform: `translate(${colOf(n) * colW},${y0})` });
        box.append(s('rect', { width: colW - 2, height: Math.max(hgt - 1, 0.5), rx: 2 }));
        if (hgt >= LABEL_MIN) {
          box.append(s('text', { x: 6, y: Math.min(hgt / 2 + 4, 16) }, fit(`${d.open.length ? '● ' : ''}${d.name}`, colW)));
          // n.value sums the subtree: said so, next to a name whose own figure ls and du print.
          if (hgt >= LABEL_MIN * 2) box.append(s('text', { x: 6, y: 31, class: 'sub', 'data-total': n.value }, n.children ? `total ${by.fmt(n.value)}` : by.fmt(n.value)));
        }
        g.append(box);
        drawn++;
      }
      if (!n.children) continue;
      // Children too thin to draw (sorted by size, they come last) share one box: "+N smaller".
      let more = 0;
      let moreX0 = Infinity;
      let moreX1 = -Infinity;
      for (const c of n.children) {
        if (yOf(c.x1) - yOf(c.x0) >= MIN_BOX) stack.push(c);
        else {
          more += c.descendants().length;
          moreX0 = Math.min(moreX0, c.x0);
          moreX1 = Math.max(moreX1, c.x1);
        }
      }
      if (more === 0) continue;
      hidden += more;
      const moreY = yOf(moreX0);
      const moreH = yOf(moreX1) - moreY;
      if (moreH < MIN_BOX) continue;
      const rest = s('g', { class: 'more', 'data-more': n.id, transform: `translate(${(colOf(n) + 1) * colW},${moreY})` }, s('rect', { width: colW - 2, height: Math.max(moreH - 1, 0.5), rx: 2 }));
      if (moreH >= LABEL_MIN) rest.append(s('text', { x: 6, y: Math.min(moreH / 2 + 4, 16) }, fit(`+${more} smaller`, colW)));
      g.append(rest);
    }
    const svg = s('svg', { width: svgW, height, class: 'icicle', role: 'img', 'aria-label': 'forest of images' }, g);
    svg.addEventListener('click', (e) => {
      // "+N smaller": zoom into their parent, where they may be drawn.
      const parent = e.target.closest('[data-more]')?.getAttribute('data-more');
      if (parent) {
        if (parent !== ROOT && parent !== this.focus) {
          this.focus = parent;
          this.onSelect(parent);
        }
        return;
      }
      const name = e.target.closest('[data-name]')?.getAttribute('data-name');
      if (!name) return;
      // A click selects the image and zooms into it; a click on the focus zooms back out.
      if (name === this.focus) this.focus = this.byName.get(name).parent?.id ?? ROOT;
      else if (this.byName.get(name).children) this.focus = name;
      this.onSelect(name);
    });
    svg.addEventListener('mousemove', (e) => this.onHover(e.target.closest('[data-name]')?.getAttribute('data-name') ?? null, e));
    svg.addEventListener('mouseleave', (e) => this.onHover(null, e));
    const total = f.value;
    const note =
      total === 0 && this.sizeBy !== 'images'
        ? `nothing here holds ${by.label} of its own: size by images to see the tree`
        : hidden > 0
          ? `${hidden} image${hidden === 1 ? '' : 's'} too small to draw one by one at this size (${this.sizeBy === 'images' ? 'click a box to zoom in' : 'no or few bytes of their own: size by images'}); the table lists them all`
          : '';
    this.root.replaceChildren(svg);
    this.drawnCount = drawn;
    return { note, total: by.fmt(total) };
  }

  /** With a search: the matches and every image above one (the way to them); null without. */
  litNames() {
    if (!this.match) return null;
    if (this.litFor === this.match && this.litTree === this.tree) return this.lit;
    const lit = new Set();
    for (const n of this.byName.values()) {
      if (n.id === ROOT || !this.match(n.data)) continue;
      for (let a = n; a && a.id !== ROOT && !lit.has(a.id); a = a.parent) lit.add(a.id);
    }
    Object.assign(this, { lit, litFor: this.match, litTree: this.tree });
    return lit;
  }

  /** The focus's chain from the top, for a breadcrumb. */
  path() {
    const f = this.byName?.get(this.focus);
    return f ? f.ancestors().reverse().filter((n) => n.id !== ROOT).map((n) => n.id) : [];
  }
}

export { ROOT, h };
