// Two short lists: the leaves that drifted farthest from their base, and the images open now.
import { bytes, fill, h, localTime } from './dom.js';

const SHOWN = 12;

export function renderDrift(root, model, { onSelect, match }) {
  const leaves = [...model.images.values()].filter((d) => d.kind === 'leaf' && d.base !== null && (!match || match(d)));
  leaves.sort((a, b) => b.aboveBaseBytes - a.aboveBaseBytes || (a.name < b.name ? -1 : 1));
  const still = leaves.filter((d) => d.aboveBaseBytes === 0).length;
  const top = leaves.slice(0, SHOWN).filter((d) => d.aboveBaseBytes > 0);
  const max = Math.max(1, ...top.map((d) => d.aboveBaseBytes));
  fill(
    root,
    top.length === 0
      ? h('p', { class: 'muted' }, leaves.length ? 'no leaf has written anything above its base' : 'no leaves over a base')
      : h(
          'ul',
          { class: 'drift' },
          top.map((d) => {
            const own = h('i', { class: 'mini part-own', title: 'its own bytes (since its last snapshot)' });
            own.style.width = `${(100 * d.ownBytes) / max}%`;
            const layers = h('i', { class: 'mini part-layers', title: 'bytes of the layers between it and its base (its snapshots)' });
            layers.style.width = `${(100 * (d.aboveBaseBytes - d.ownBytes)) / max}%`;
            return h(
              'li',
              { dataset: { drift: d.name }, title: `${d.name}: written above its base ${d.base}`, on: { click: () => onSelect(d.name) } },
              h('span', { class: 'name' }, d.name),
              h('span', { class: 'minibar' }, own, layers),
              bytes(d.aboveBaseBytes),
            );
          }),
        ),
    h('p', { class: 'muted small' }, `Green: the leaf's own bytes; purple: those of the layers between it and its base. ${leaves.length} leaves over a base; ${still} have written nothing above it. Drift here is what a chain wrote above its base (own bytes of the leaf and its snapshots, from du); the exact bytes that differ are in an image's details (strata diff).`),
  );
}

export function renderOpen(root, open, { onSelect }) {
  if (open.length === 0) {
    fill(root, h('p', { class: 'muted' }, 'no image is open: no server or other strata process holds one'));
    return;
  }
  fill(
    root,
    h(
      'table',
      { class: 'list' },
      h('tr', {}, h('th', {}, 'image'), h('th', {}, 'held by'), h('th', {}, 'mode'), h('th', {}, 'since')),
      open.map((o) =>
        h(
          'tr',
          { dataset: { open: o.name ?? '' } },
          h('td', {}, o.name === null ? h('i', {}, 'the whole store (check)') : h('a', { href: '#', on: { click: (e) => (e.preventDefault(), onSelect(o.name)) } }, o.name)),
          h('td', {}, `${o.server ? 'strata serve' : 'process'} ${o.pid}`),
          h('td', {}, o.mode),
          h('td', { title: localTime(o.openedAt) }, new Date(o.openedAt).toLocaleTimeString()),
        ),
      ),
    ),
  );
}
