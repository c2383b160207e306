/**
 * Timing: run a process or a function N times after a warm-up and keep the
 * median, min and max. Processes are timed from spawn to exit with
 * process.hrtime, so both sides pay the same fork/exec cost.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * Lets the event loop turn. The runs are spawnSync calls between awaits of
 * plain promises, which never reach the loop, so without this a Ctrl-C
 * (SIGINT handler) would wait for the whole workload.
 */
export const tick = () => new Promise((r) => setImmediate(r));

export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { median, min: s[0], max: s[n - 1], runs: n, samples };
}

/** Runs a command synchronously; throws with its stderr when it fails. Returns { ms, stdout, stderr }. */
export function run(cmd, args, opts = {}) {
  const stdout = opts.stdout === 'null' ? fs.openSync('/dev/null', 'w') : 'pipe';
  const t0 = nowMs();
  const r = spawnSync(cmd, args, {
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', stdout, 'pipe'],
    input: opts.input,
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    maxBuffer: 256 << 20,
    timeout: opts.timeoutMs,
  });
  const ms = nowMs() - t0;
  if (typeof stdout === 'number') fs.closeSync(stdout);
  const err = r.stderr?.toString() ?? '';
  if ((r.status !== 0 || r.error) && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ').slice(0, 300)} failed (status ${r.status}${r.error ? ', ' + r.error.message : ''}): ${err.slice(0, 800)}`);
  }
  return { ms, status: r.status, stdout: r.stdout?.toString() ?? '', stderr: err };
}

const TIME_BIN = '/usr/bin/time';
export const hasGnuTime = () => {
  try {
    return spawnSync(TIME_BIN, ['-v', 'true'], { stdio: 'pipe' }).stderr.toString().includes('Maximum resident set size');
  } catch {
    return false;
  }
};

/**
 * Runs a command and returns its wall time and peak RSS (bytes): via
 * /usr/bin/time -v when present, else by polling /proc/<pid>/status VmHWM.
 */
export async function runWithRss(cmd, args, opts = {}) {
  if (opts.gnuTime ?? hasGnuTime()) {
    const r = run(TIME_BIN, ['-v', cmd, ...args], opts);
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
    return { ms: r.ms, rss: m ? Number(m[1]) * 1024 : NaN };
  }
  const { spawn } = await import('node:child_process');
  const t0 = nowMs();
  const child = spawn(cmd, args, { stdio: ['ignore', opts.stdout === 'null' ? 'ignore' : 'pipe', 'pipe'] });
  let peak = 0;
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout?.resume();
  const poll = setInterval(() => {
    peak = Math.max(peak, vmHwm(child.pid));
  }, 20);
  const code = await new Promise((res) => child.on('exit', (c) => res(c)));
  clearInterval(poll);
  const ms = nowMs() - t0;
  if (code !== 0) throw new Error(`${cmd} failed (${code}): ${err.slice(0, 500)}`);
  return { ms, rss: peak };
}

/** Peak RSS of a live process in bytes (VmHWM), 0 if it is gone. */
export function vmHwm(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Times two sides alternately (A, B, B, A, A, B, ...) after one warm-up run of
 * each, so drift in the machine hits both alike. Each side is
 * { setup?(i), run(i) -> ms | number | {ms,...}, teardown?(i) }; a run returns
 * its own measured figure (ms unless the caller says otherwise).
 */
export async function compare({ runs, warmup = 1, a, b, log }) {
  const out = { a: [], b: [], aExtra: [], bExtra: [] };
  for (let i = -warmup; i < runs; i++) {
    // A then B on even runs, B then A on odd ones: neither side always goes first.
    const order = [
      [a, 'a'],
      [b, 'b'],
    ];
    if (i % 2 !== 0) order.reverse();
    for (const [side, key] of order) {
      if (!side) continue;
      await tick();
      await side.setup?.(i);
      const r = await side.run(i);
      await side.teardown?.(i);
      if (i < 0) continue;
      const v = typeof r === 'number' ? r : r.value ?? r.ms;
      out[key].push(v);
      out[key + 'Extra'].push(r);
    }
    log?.(`  run ${i < 0 ? 'warm-up' : i + 1}/${runs}`);
  }
  return { a: a ? stats(out.a) : null, b: b ? stats(out.b) : null, aExtra: out.aExtra, bExtra: out.bExtra };
}

/**
 * Several sides in rounds: each round runs every side once, the order rotated
 * by one each round, after `warmup` untimed rounds. sides: { key: { setup?,
 * run, teardown? } } as in compare(). Returns { key: stats } and, under
 * `extra`, each side's raw results.
 */
export async function rounds({ runs, warmup = 1, sides, log }) {
  const keys = Object.keys(sides);
  const xs = Object.fromEntries(keys.map((k) => [k, []]));
  const extra = Object.fromEntries(keys.map((k) => [k, []]));
  for (let i = -warmup; i < runs; i++) {
    const rot = (((i + warmup) % keys.length) + keys.length) % keys.length;
    for (const k of [...keys.slice(rot), ...keys.slice(0, rot)]) {
      const side = sides[k];
      await tick();
      await side.setup?.(i);
      const r = await side.run(i);
      await side.teardown?.(i);
      if (i < 0) continue;
      xs[k].push(typeof r === 'number' ? r : r.value ?? r.ms);
      extra[k].push(r);
    }
    log?.(`  round ${i < 0 ? 'warm-up' : i + 1}/${runs}`);
  }
  const out = Object.fromEntries(keys.map((k) => [k, stats(xs[k])]));
  return { ...out, extra };
}

export async function repeat({ runs, warmup = 1, setup, run: fn, teardown }) {
  const xs = [];
  for (let i = -warmup; i < runs; i++) {
    await tick();
    await setup?.(i);
    const v = await fn(i);
    await teardown?.(i);
    if (i >= 0) xs.push(typeof v === 'number' ? v : v.value ?? v.ms);
  }
  return stats(xs);
}
