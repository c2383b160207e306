// One image in depth (GET /api/image?name=): what `info`, `du`, `diff` against its base and
// parent, and `du --sharing` say, and how its own bytes moved while this page's server ran.
import { age, bytes, fill, h, humanBytes, localTime, s, sourceText } from './dom.js';

function sparkline(history) {
  const W = 260;
  const H = 48;
  if (history.length < 2) return h('p', { class: 'muted' }, history.length ? `own bytes unchanged since the server started watching (${localTime(history[0].at)})` : 'no samples yet');
  const t0 = Date.parse(history[0].at);
  const t1 = Math.max(Date.now(), Date.parse(history[history.length - 1].at));
  const max = Math.max(1, ...history.map((p) => p.ownBytes));
  // A step line: own bytes hold their value until the next change was seen.
  const pts = [];
  history.forEach((p, i) => {
    const x = ((Date.parse(p.at) - t0) / Math.max(1, t1 - t0)) * W;
    const y = H - 2 - (p.ownBytes / max) * (H - 4);
    if (i > 0) pts.push(`${x.toFixed(1)},${pts[pts.length - 1].split(',')[1]}`);
    pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  pts.push(`${W},${pts[pts.length - 1].split(',')[1]}`);
  return h(
    'figure',
    { class: 'spark' },
    s('svg', { width: W, height: H, role: 'img', 'aria-label': 'own bytes over time' }, s('polyline', { points: pts.join(' ') })),
    h('figcaption', { class: 'muted' }, `own bytes from ${humanBytes(history[0].ownBytes)} to ${humanBytes(history[history.length - 1].ownBytes)}, ${history.length} changes seen since ${localTime(history[0].at)} (the store keeps no history; the server records it while it runs)`),
  );
}

export function renderDetail(root, d, { onSelect }) {
  if (!d) {
    fill(root, h('p', { class: 'muted' }, 'Click an image in the forest or the table to see it here.'));
    return;
  }
  const { info, usage, drift } = d;
  const link = (name) => h('a', { href: '#', dataset: { image: name }, on: { click: (e) => (e.preventDefault(), onSelect(name)) } }, name);
  const kv = (label, ...v) => h('tr', {}, h('th', {}, label), h('td', {}, ...v));
  const maxShared = Math.max(1, ...d.sharedWith.map((w) => w.sharedBytes));
  fill(
    root,
    h('h3', { dataset: { detail: info.name } }, info.name, ' ', h('span', { class: `badge kind-${info.kind}` }, info.kind + (info.writable ? ' (writable)' : ' (read-only)'))),
    d.open.length ? h('p', { class: 'openby' }, '● open by ', d.open.map((o) => `${o.server ? 'strata serve' : 'process'} ${o.pid}${o.host ? ` on ${o.host}` : ''} (${o.mode}, since ${localTime(o.openedAt)})`).join('; ')) : null,
    h(
      'table',
      { class: 'kv' },
      kv('parent', info.parent ? link(info.parent) : '–'),
      kv('chain', ...info.chain.flatMap((n, i) => (i ? [' → ', link(n)] : [link(n)]))),
      kv('virtual size', bytes(info.virtualSize)),
      kv('created', `${age(info.createdAt)} (${localTime(info.createdAt)})`),
      kv('source', sourceText(info.source)),
      Object.keys(info.labels).length ? kv('labels', Object.entries(info.labels).map(([k, v]) => `${k}=${v}`).join(', ')) : null,
      kv('referenced', bytes(usage.referencedBytes, { dataset: { detailFigure: 'referencedBytes' } })),
      kv('own', bytes(usage.ownBytes, { dataset: { detailFigure: 'ownBytes' } })),
      kv('exclusive', bytes(usage.exclusiveBytes, { dataset: { detailFigure: 'exclusiveBytes' } })),
      kv('shared', bytes(usage.sharedBytes, { dataset: { detailFigure: 'sharedBytes' } })),
    ),
    h('h4', {}, 'Drift'),
    drift.base === null
      ? h('p', { class: 'muted' }, 'a base: nothing below it to drift from')
      : h(
          'table',
          { class: 'kv' },
          kv(`differs from its base ${drift.base}`, bytes(drift.baseDifferingBytes, { dataset: { detailFigure: 'baseDifferingBytes' } }), h('small', { class: 'muted' }, ` of ${humanBytes(info.virtualSize)} (strata diff)`)),
          drift.parent !== drift.base ? kv(`differs from its parent ${drift.parent}`, bytes(drift.parentDifferingBytes, { dataset: { detailFigure: 'parentDifferingBytes' } })) : null,
        ),
    sparkline(d.history),
    h('h4', {}, 'Shares most blocks with'),
    d.sharedWith.length === 0
      ? h('p', { class: 'muted' }, usage.ownBytes === 0 ? 'nothing: it has no blocks of its own' : 'no other image holds any of its own blocks')
      : h(
          'ul',
          { class: 'shared' },
          d.sharedWith.map((w) => {
            const bar = h('i', { class: `mini kind-${w.kind}` });
            bar.style.width = `${(100 * w.sharedBytes) / maxShared}%`;
            return h('li', { dataset: { sharedWith: w.name } }, link(w.name), ' ', bytes(w.sharedBytes), h('span', { class: 'minibar' }, bar));
          }),
        ),
    h('p', { class: 'muted small' }, `the same as: strata info ${info.name}; strata du ${info.name}; strata du ${info.name} --sharing; strata diff ${info.name} ${drift.base ?? info.name}`),
  );
}
