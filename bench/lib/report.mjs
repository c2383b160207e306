/**
 * Rows, the markdown tables and the JSON file.
 *
 * A row:
 *   { section: 'goal' | 'other', goal, strata: Figure|null, peerCmd, peer: Figure|null,
 *     ratio, target, met, note, skipped }
 * Figure: { median, min, max, runs, unit, label? }, unit one of ms, bytes, MB/s, IOPS, x.
 * ratio is strata / peer of the two medians shown unless the row gives its
 * own; the target column says which way is better.
 *
 * The goals table holds only the goals of issue #16, in its order; every
 * other workload (space, many clones, clone of 1 TiB, qcow2 chains) goes to a
 * second table of other targets and references. A feature with goals of its
 * own gives its rows a section named in SECTIONS and gets a goals table of
 * its own (compressed blocks: section 'compress'; remotes: section 'remote').
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function fig(st, unit, label) {
  if (!st) return null;
  return { median: st.median, min: st.min, max: st.max, runs: st.runs, unit, ...(label ? { label } : {}) };
}
export const single = (v, unit, label) => ({ median: v, min: v, max: v, runs: 1, unit, ...(label ? { label } : {}) });

export function num(v, unit) {
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
  const pre = f.label ? `${f.label}: ` : '';
  if (f.runs <= 1 || f.min === f.max) return pre + m + (f.runs > 1 ? ` (n=${f.runs})` : '');
  const short = (v) => num(v, f.unit).replace(/ (s|ms|MiB|MB\/s|IOPS)$/, '');
  return `${pre}${m} (${short(f.min)}–${short(f.max)}, n=${f.runs})`;
}

export function ratioOf(a, b) {
  if (!a || !b || !b.median) return null;
  return a.median / b.median;
}

const cell = (s) => String(s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');

function tableLine(r) {
  const met = r.met === true ? 'met' : r.met === false ? '**not met**' : '';
  const cmd = r.peerCmd ? `\`${r.peerCmd.replace(/`/g, "'")}\`` : '';
  if (r.skipped) return `| ${cell(r.goal)} | skipped: ${cell(r.skipped)} | ${cell(cmd)} | ${showFig(r.peer)} | — | ${cell(r.target)} | ${met || '—'} |`;
  const ratio = r.ratio === null || r.ratio === undefined ? '—' : `${r.ratio.toFixed(r.ratio < 10 ? 2 : 1)}×`;
  return `| ${cell(r.goal)} | ${showFig(r.strata)} | ${cell(cmd)} | ${showFig(r.peer)} | ${ratio} | ${cell(r.target)} | ${met} |`;
}

/** Sections with a goals table of their own, after the issue #16 goals. */
const SECTIONS = { compress: 'Goals (compressed blocks)', remote: 'Goals (many hosts, one bucket: issue #13)', backup: 'Goals (incremental backup: issue #26)' };

const HEAD = ['| goal | strata | peer (exact command) | peer | ratio | target | met |', '|---|---:|---|---:|---:|---|:---:|'];

export class Report {
  constructor({ mode }) {
    this.mode = mode;
    this.rows = [];
    this.started = new Date();
    this.context = [];
  }

  /** A line of run context printed above the tables (machine load, inputs). */
  say(line) {
    this.context.push(line);
  }

  add(row) {
    const r = { section: 'goal', ratio: ratioOf(row.strata, row.peer), target: '', met: null, note: '', peerCmd: '', ...row };
    this.rows.push(r);
    console.error(`  => ${tableLine(r)}`);
    return r;
  }

  skip(goal, why, extra = {}) {
    return this.add({ goal, strata: null, peer: null, ratio: null, skipped: why, ...extra });
  }

  markdown() {
    // Goals in the issue's order (each workload gives its rows an `order`).
    const goals = this.rows.filter((r) => r.section === 'goal').sort((a, b) => (a.order ?? 999) - (b.order ?? 999));
    const other = this.rows.filter((r) => r.section !== 'goal' && !SECTIONS[r.section]);
    const met = goals.filter((r) => r.met === true).length;
    const judged = goals.filter((r) => r.met !== null && r.met !== undefined).length;
    const out = [
      `strata bench, ${this.mode} mode, ${this.started.toISOString()}`,
      `host: ${os.cpus().length} × ${os.cpus()[0]?.model?.trim() ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${os.release()}, Node ${process.version}`,
      'figures: median (min–max, n=runs) after one warm-up run per side, the two sides alternating run by run; ratio = strata / peer unless the row says otherwise',
      ...this.context,
    ];
    // A run of only other workloads (--only compress, --only space) has no issue #16 rows: no empty table.
    if (goals.length || !this.rows.some((r) => SECTIONS[r.section])) out.push('', `### Goals (issue #16): ${met} of ${judged} met`, '', ...HEAD, ...goals.map(tableLine));
    for (const [key, title] of Object.entries(SECTIONS)) {
      const rows = this.rows.filter((r) => r.section === key).sort((a, b) => (a.order ?? 999) - (b.order ?? 999));
      if (!rows.length) continue;
      const judgedHere = rows.filter((r) => r.met !== null && r.met !== undefined);
      out.push('', `### ${title}: ${judgedHere.filter((r) => r.met === true).length} of ${judgedHere.length} met`, '', ...HEAD, ...rows.map(tableLine));
    }
    if (other.length) out.push('', '### Other targets and references', '', ...HEAD, ...other.map(tableLine));
    const notes = this.rows.filter((r) => r.note).map((r) => `- ${r.goal}: ${r.note}`);
    if (notes.length) out.push('', 'notes:', ...notes);
    return out.join('\n') + '\n';
  }

  write(dir) {
    fs.mkdirSync(dir, { recursive: true });
    const stamp = this.started.toISOString().replace(/[:.]/g, '-');
    const json = {
      mode: this.mode,
      started: this.started.toISOString(),
      finished: new Date().toISOString(),
      host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memBytes: os.totalmem(), kernel: os.release(), node: process.version },
      context: this.context,
      rows: this.rows,
    };
    const jf = path.join(dir, `${stamp}-${this.mode}.json`);
    fs.writeFileSync(jf, JSON.stringify(json, null, 2) + '\n');
    fs.writeFileSync(path.join(dir, `latest-${this.mode}.json`), JSON.stringify(json, null, 2) + '\n');
    fs.writeFileSync(path.join(dir, `latest-${this.mode}.md`), this.markdown());
    return jf;
  }
}
