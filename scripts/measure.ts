// Measuring helpers shared by the benchmark and the drill: percentiles, a bounded pool of work
// in flight, and a one-line progress bar on stderr (stdout is kept for results).

export interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles: every reported value is one that was measured. */
export function percentiles(samples: readonly number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return { n: s.length, p50: at(50), p95: at(95), p99: at(99), min: s[0] ?? NaN, max: s.at(-1) ?? NaN, mean };
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return out;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ProgressOptions {
  /** Clock, for tests. */
  now?: () => number;
  /** Off a terminal: a phase that reaches no milestone for this long prints a line anyway. */
  heartbeatMs?: number;
}

/** Off a terminal, a phase prints when it reaches one of these fractions (and when it starts over). */
const MILESTONES = [0, 0.25, 0.5, 0.75, 1];

/**
 * Progress on stderr (stdout is kept for results). On a terminal: one `[#####.....] 45% phase
 * detail` line redrawn in place, at most every 100 ms. Anywhere else (CI logs): a line per phase at
 * 0, 25, 50, 75 and 100 %, tracked per phase so interleaved phases cannot flood the log, plus a
 * line when a phase has been silent for a minute, so a long wait still shows it is alive.
 * note() prints a line above the bar; tick() is for work without a known total.
 */
export class Progress {
  private shown = '';
  private lastDraw = -Infinity;
  /** Off a terminal, per phase: the last milestone printed and when the phase last printed. */
  private readonly phases = new Map<string, { milestone: number; printedAt: number }>();
  private readonly now: () => number;
  private readonly heartbeatMs: number;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    o: ProgressOptions = {},
  ) {
    this.now = o.now ?? Date.now;
    this.heartbeatMs = o.heartbeatMs ?? 60_000;
  }

  update(phase: string, done: number, total: number, detail = ''): void {
    const fraction = total > 0 ? Math.max(0, Math.min(1, done / total)) : 1;
    const filled = Math.round(fraction * 20);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ${phase}${detail && ` ${detail}`}`;
    if (this.out.isTTY) return this.redraw(line, fraction >= 1);
    const milestone = MILESTONES.filter((m) => fraction >= m).length - 1;
    this.milestone(phase, line, milestone);
  }

  /** Work without a known total (a build): redrawn on a terminal, a heartbeat line elsewhere. */
  tick(phase: string, detail = ''): void {
    const line = `${phase}${detail && ` ${detail}`}`;
    if (this.out.isTTY) return this.redraw(line, false);
    this.milestone(phase, line, 0);
  }

  note(text: string): void {
    if (!this.out.isTTY) return void this.out.write(`${text}\n`);
    const bar = this.shown;
    this.draw('');
    this.out.write(`\r${text}\n`);
    this.draw(bar);
  }

  /** Clears the bar so that what follows starts on a clean line; phases may start again after it. */
  end(): void {
    if (this.out.isTTY && this.shown) this.draw('');
    this.phases.clear();
  }

  private redraw(line: string, final: boolean): void {
    if (this.now() - this.lastDraw < 100 && !final) return;
    this.lastDraw = this.now();
    this.draw(line);
  }

  /** Prints at a new milestone, when the phase starts over (a lower one), or after a silence. */
  private milestone(phase: string, line: string, milestone: number): void {
    const seen = this.phases.get(phase);
    const now = this.now();
    if (seen && milestone === seen.milestone && now - seen.printedAt < this.heartbeatMs) return;
    this.phases.set(phase, { milestone, printedAt: now });
    this.out.write(`${line}\n`);
  }

  private draw(line: string): void {
    const width = Math.max(20, (this.out.columns ?? 100) - 1);
    const text = line.slice(0, width);
    this.out.write(`\r${text.padEnd(Math.min(width, Math.max(text.length, this.shown.length)))}\r${text}`);
    this.shown = text;
  }
}
