/**
 * Rows, the markdown table and the JSON file. A row:
 *   { workload, strata: Figure|null, peer: Figure|null, ratio, target, met, note, skipped }
 * Figure: { median, min, max, runs, unit }, unit one of ms, bytes, MB/s, IOPS, x.
 * ratio is strata / peer of the figures shown (for times lower is better, for
 * throughput higher is better; the target column says which).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function fig(st, unit) {
  if (!st) return null;
  return { median: st.median, min: st.min, max: st.max, runs: st.runs, unit };
}
export const single = (v, unit) => ({ median: v, min: v, max: v, runs: 1, unit });

function num(v, unit) {
  if (v === undefined || v === null || Number.isNaN(v)) return '?';
  switch (unit) {
    case 'ms':
      if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
      if (v >= 10) return `${v.toFixed(1)} ms`;
      return `${v.toFixed(2)} ms`;
    case 'bytes':
      return `${(v / 2 ** 20).toFixed(1)} MiB`;
    case 'MB/s':
      return `${v.toFixed(0)} MB/s`;
    case 'IOPS':
      return `${Math.round(v)} IOPS`;
    case 'x':
      return `${v.toFixed(3)}×`;
    default:
      return `${v} ${unit}`;
  }
}

export function showFig(f) {
  if (!f) return '—';
  const m = num(f.median, f.unit);
  if (f.runs <= 1 || f.min === f.max) return m + (f.runs > 1 ? ` (n=${f.runs})` : '');
  const short = (v) => num(v, f.unit).replace(/ (s|ms|MiB|MB\/s|IOPS)$/, '');
  return `${m} (${short(f.min)}–${short(f.max)}, n=${f.runs})`;
}

export function ratioOf(a, b) {
  if (!a || !b || !b.median) return null;
  return a.median / b.median;
}

export class Report {
  constructor({ mode, runs }) {
    this.mode = mode;
    this.runs = runs;
    this.rows = [];
    this.started = new Date();
  }

  add(row) {
    const r = { ratio: ratioOf(row.strata, row.peer), target: '', met: null, note: '', ...row };
    this.rows.push(r);
    console.error(`  => ${tableLine(r)}`);
    return r;
  }

  skip(workload, why, extra = {}) {
    return this.add({ workload, strata: null, peer: null, ratio: null, skipped: why, ...extra });
  }

  markdown() {
    const head = [
      `strata bench, ${this.mode} mode, ${this.started.toISOString()}`,
      `host: ${os.cpus().length} × ${os.cpus()[0]?.model?.trim() ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${os.release()}, Node ${process.version}`,
      'figures: median (min–max, n=runs) after one warm-up run per side; ratio = strata / peer',
      '',
      '| workload | strata | peer | ratio | target | met |',
      '|---|---:|---:|---:|---|:---:|',
    ];
    const lines = this.rows.map(tableLine);
    const notes = this.rows.filter((r) => r.note).map((r) => `- ${r.workload}: ${r.note}`);
    return [...head, ...lines, ...(notes.length ? ['', 'notes:', ...notes] : [])].join('\n') + '\n';
  }

  write(dir) {
    fs.mkdirSync(dir, { recursive: true });
    const stamp = this.started.toISOString().replace(/[:.]/g, '-');
    const json = {
      mode: this.mode,
      started: this.started.toISOString(),
      finished: new Date().toISOString(),
      host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memBytes: os.totalmem(), kernel: os.release(), node: process.version },
      rows: this.rows,
    };
    const jf = path.join(dir, `${stamp}-${this.mode}.json`);
    fs.writeFileSync(jf, JSON.stringify(json, null, 2) + '\n');
    fs.writeFileSync(path.join(dir, `latest-${this.mode}.json`), JSON.stringify(json, null, 2) + '\n');
    fs.writeFileSync(path.join(dir, `latest-${this.mode}.md`), this.markdown());
    return jf;
  }
}

function tableLine(r) {
  const met = r.met === true ? 'met' : r.met === false ? '**not met**' : '';
  if (r.skipped) return `| ${r.workload} | skipped: ${r.skipped} | ${showFig(r.peer)} | — | ${r.target ?? ''} | ${met || '—'} |`;
  const ratio = r.ratio === null || r.ratio === undefined ? '—' : `${r.ratio.toFixed(r.ratio < 10 ? 3 : 1)}×`;
  return `| ${r.workload} | ${showFig(r.strata)} | ${showFig(r.peer)} | ${ratio} | ${r.target ?? ''} | ${met} |`;
}
