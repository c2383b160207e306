// Small helpers shared by the page's views: elements, text, times.
import { humanBytes } from './units.js';

export { humanBytes };

/** h('td', {class: 'num', dataset: {bytes: 4096}}, '4 KiB'): an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
/** replaceChildren without the null and false that conditional parts leave. */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** A byte count as the CLI prints it, with the exact count in its title and data-bytes (what the tests read). */
export function bytes(n, attrs = {}) {
  return h('span', { class: 'bytes', title: `${n.toLocaleString('en')} bytes`, ...attrs, dataset: { bytes: String(n), ...(attrs.dataset ?? {}) } }, humanBytes(n));
}

/** "3 min ago", "2 days ago". */
export function age(iso, now = Date.now()) {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return 'just now';
  const units = [
    [60, 'min'],
    [3600, 'h'],
    [86400, 'day'],
    [86400 * 365, 'year'],
  ];
  let [div, name] = units[0];
  for (const u of units) if (s >= u[0]) [div, name] = u;
  const v = Math.floor(s / div);
  return `${v} ${name}${v > 1 && name.length > 2 ? 's' : ''} ago`;
}

export const localTime = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** Where an import came from, as the CLI's `info` says it: "qcow2 v3 file /srv/b.qcow2, 64 KiB clusters". */
export function sourceText(src) {
  if (!src) return 'made here (no import)';
  const { format, file, reference, size, clusterSize, version, snapshot, fileBytes: _b, modifiedAt: _m, ...rest } = src;
  const what = reference !== undefined ? `reference ${reference}` : `file ${file ?? '?'}`;
  const parts = [`${format ?? 'unknown'}${version !== undefined ? ` v${version}` : ''} ${what}${typeof size === 'number' ? ` (${humanBytes(size)})` : ''}`];
  if (typeof clusterSize === 'number') parts.push(`${humanBytes(clusterSize)} clusters`);
  if (snapshot !== undefined) parts.push(`snapshot ${snapshot}`);
  for (const [k, v] of Object.entries(rest)) parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.join(', ');
}

export const KINDS = ['base', 'layer', 'leaf'];
