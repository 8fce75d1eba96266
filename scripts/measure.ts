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

/**
 * `\r[#####.....] 45% phase detail` on a terminal, redrawn at most every 100 ms; elsewhere (CI logs) one
 * line per 10 % so a log is not flooded. note() prints a line above the bar.
 */
export class Progress {
  private shown = '';
  private lastDraw = 0;
  private lastDecile = -1;
  private lastPhase = '';

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(phase: string, done: number, total: number, detail = ''): void {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(fraction * 20);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ${phase}${detail && ` ${detail}`}`;
    if (this.out.isTTY) {
      if (Date.now() - this.lastDraw < 100 && done < total) return;
      this.lastDraw = Date.now();
      this.draw(line);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile === this.lastDecile && phase === this.lastPhase) return;
    this.lastDecile = decile;
    this.lastPhase = phase;
    this.out.write(`${line}\n`);
  }

  note(text: string): void {
    if (!this.out.isTTY) return void this.out.write(`${text}\n`);
    const bar = this.shown;
    this.draw('');
    this.out.write(`\r${text}\n`);
    this.draw(bar);
  }

  /** Clears the bar so that what follows starts on a clean line. */
  end(): void {
    if (this.out.isTTY && this.shown) this.draw('');
    this.lastDecile = -1;
  }

  private draw(line: string): void {
    const width = Math.max(20, (this.out.columns ?? 100) - 1);
    const text = line.slice(0, width);
    this.out.write(`\r${text.padEnd(Math.min(width, Math.max(text.length, this.shown.length)))}\r${text}`);
    this.shown = text;
  }
}
