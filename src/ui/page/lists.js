// Two short lists: the leaves that wrote most since they were cloned, and the images open now.
import { bytes, fill, h, localTime } from './dom.js';

const SHOWN = 12;

export function renderDrift(root, model, { onSelect, match }) {
  const leaves = [...model.images.values()].filter((d) => d.kind === 'leaf' && (!match || match(d)));
  leaves.sort((a, b) => b.writtenBytes - a.writtenBytes || (a.name < b.name ? -1 : 1));
  const still = leaves.filter((d) => d.writtenBytes === 0).length;
  const top = leaves.slice(0, SHOWN).filter((d) => d.writtenBytes > 0);
  const max = Math.max(1, ...top.map((d) => d.writtenBytes));
  fill(
    root,
    top.length === 0
      ? h('p', { class: 'muted' }, leaves.length ? 'no leaf has written anything since it was cloned' : 'no leaves')
      : h(
          'ul',
          { class: 'drift' },
          top.map((d) => {
            const own = h('i', { class: 'mini part-own', title: 'its own bytes (since its last snapshot)' });
            own.style.width = `${(100 * d.ownBytes) / max}%`;
            const layers = h('i', { class: 'mini part-layers', title: 'bytes of its snapshots' });
            layers.style.width = `${(100 * (d.writtenBytes - d.ownBytes)) / max}%`;
            return h(
              'li',
              { dataset: { drift: d.name }, title: `${d.name}: written since it was cloned${d.origin ? ` from ${d.origin}` : ''}`, on: { click: () => onSelect(d.name) } },
              h('span', { class: 'name' }, d.name),
              h('span', { class: 'minibar' }, own, layers),
              bytes(d.writtenBytes),
            );
          }),
        ),
    h(
      'p',
      { class: 'muted small', dataset: { driftCaption: '' } },
      `Written since cloned, as zfs get written: the leaf's own bytes (green) and its snapshots' (purple), from du; not the image it was cloned from, which its siblings share. ${leaves.length} leaves; ${still} have written nothing since they were cloned${top.length < leaves.length - still ? `; the ${top.length} that wrote most are shown` : ''}. The exact bytes that differ are in an image's details (strata diff).`,
    ),
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
