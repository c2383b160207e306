// One bar from raw copies of every image (logical) down to what strata keeps (stored),
// cut by cause; the figures are `strata stats --json`'s.
import { bytes, fill, h, humanBytes } from './dom.js';

const CAUSES = [
  { key: 'storedBytes', label: 'stored on disk', cls: 'seg-stored', get: (s) => s.storedBytes },
  { key: 'remoteBytes', label: 'in remote packs, not here', cls: 'seg-remote', get: (s) => s.remoteBytes ?? 0 },
  { key: 'savings.compressionBytes', label: 'saved by compression', cls: 'seg-compression', get: (s) => s.savings.compressionBytes ?? 0 },
  { key: 'savings.dedupBytes', label: 'saved by dedup across images', cls: 'seg-dedup', get: (s) => s.savings.dedupBytes },
  { key: 'savings.layeringBytes', label: 'saved by layers and clones', cls: 'seg-layering', get: (s) => s.savings.layeringBytes },
  { key: 'savings.zeroBytes', label: 'saved by zero blocks', cls: 'seg-zero', get: (s) => s.savings.zeroBytes },
];

const pct = (r) => `${(100 * r).toFixed(1)}%`;

export function renderSavings(root, stats) {
  const total = stats.logicalBytes;
  const bar = h('div', { class: 'bar', role: 'img', 'aria-label': `of ${humanBytes(total)} of raw copies, ${humanBytes(stats.storedBytes)} stored` });
  for (const c of CAUSES) {
    const v = c.get(stats);
    if (total <= 0 || v <= 0) continue;
    const seg = h('div', { class: `seg ${c.cls}`, title: `${c.label}: ${humanBytes(v)} (${v.toLocaleString('en')} bytes, ${pct(v / total)})` });
    seg.style.width = `${(100 * v) / total}%`;
    bar.append(seg);
  }
  const legend = h(
    'ul',
    { class: 'legend' },
    CAUSES.map((c) => h('li', {}, h('i', { class: `key ${c.cls}` }), `${c.label} `, bytes(c.get(stats), { dataset: { figure: c.key } }), total > 0 ? h('small', {}, ` ${pct(c.get(stats) / total)}`) : null)),
  );
  const row = (label, key, n, extra) => h('tr', {}, h('th', {}, label), h('td', {}, bytes(n, { dataset: { figure: key } })), h('td', { class: 'muted' }, extra ?? ''));
  const table = h(
    'table',
    { class: 'kv' },
    h('tr', {}, h('th', {}, 'images'), h('td', { dataset: { figure: 'images' } }, String(stats.images)), h('td', {})),
    row('logical (raw copies)', 'logicalBytes', stats.logicalBytes),
    row('referenced (sparse copies)', 'referencedBytes', stats.referencedBytes),
    row('qcow2 chains (64K clusters)', 'qcow2Bytes', stats.qcow2Bytes),
    row('own (layers, 4K blocks)', 'ownBytes', stats.ownBytes),
    row('distinct blocks', 'distinctBytes', stats.distinctBytes, 'uncompressed'),
    row('stored on disk', 'storedBytes', stats.storedBytes, `${pct(stats.ratios.storedOfLogical)} of logical, ${pct(stats.ratios.storedOfQcow2)} of qcow2; dedup ratio ${stats.ratios.dedup.toFixed(2)}x`),
    row('data files (allocated)', 'dataFiles.allocatedBytes', stats.dataFiles.allocatedBytes, `${humanBytes(stats.dataFiles.apparentBytes)} apparent, ${stats.dataFiles.files} file(s)`),
    row('metadata (strata.db + wal)', 'metadataBytes', stats.metadataBytes),
    row(
      'compressed blocks',
      'compression.bytesAfter',
      stats.compression.bytesAfter,
      `${stats.compression.blocks} block(s), ${humanBytes(stats.compression.bytesBefore)} before; store setting: ${stats.compression.setting}`,
    ),
  );
  fill(
    root,
    h('div', { class: 'bar-ends' }, h('span', {}, 'raw copies ', bytes(total)), h('span', {}, 'stored on disk ', bytes(stats.storedBytes))),
    bar,
    legend,
    h('details', {}, h('summary', {}, 'all figures (strata stats)'), table),
  );
}
