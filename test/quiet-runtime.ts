// Installed before any connection exists. Tests provoke activity failures and (in the replay
// test) non-determinism on purpose, which the SDK logs as warnings: only errors are printed. When
// a test file turns capture on (test/harness.ts does), every log entry from DEBUG up (workflow,
// activity, worker and forwarded core logs) is also kept, so the secret scan can read what the
// worker logged. The bench imports this too and leaves capture off, so nothing accumulates.
import { makeTelemetryFilterString, Runtime, type LogLevel, type LogMetadata, type Logger } from '@temporalio/worker';

const ORDER: Record<LogLevel, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 };

class CapturingLogger implements Logger {
  private entries: Array<{ level: LogLevel; message: string; meta?: LogMetadata }> | undefined;

  capture(): void {
    this.entries ??= [];
  }

  /** Every kept entry as one line of text: level, message and its metadata as JSON. */
  lines(): string[] {
    return (this.entries ?? []).map((e) => `${e.level} ${e.message} ${safeJson(e.meta)}`);
  }

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (this.entries && ORDER[level] >= ORDER.DEBUG) this.entries.push({ level, message, meta });
    if (level === 'ERROR') console.error(`${new Date().toISOString()} [${level}] ${message}`, meta ?? '');
  }
  trace(message: string, meta?: LogMetadata) { this.log('TRACE', message, meta); }
  debug(message: string, meta?: LogMetadata) { this.log('DEBUG', message, meta); }
  info(message: string, meta?: LogMetadata) { this.log('INFO', message, meta); }
  warn(message: string, meta?: LogMetadata) { this.log('WARN', message, meta); }
  error(message: string, meta?: LogMetadata) { this.log('ERROR', message, meta); }
}

/** Metadata may hold errors, bigints or cycles: never let the scan itself throw. */
function safeJson(meta: unknown): string {
  const seen = new WeakSet();
  try {
    return JSON.stringify(meta ?? {}, (_k, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Error) return { name: v.name, message: v.message, stack: v.stack, cause: v.cause };
      if (v && typeof v === 'object') {
        if (seen.has(v)) return '[cycle]';
        seen.add(v);
      }
      return v;
    });
  } catch {
    return String(meta);
  }
}

export const workerLog = new CapturingLogger();

Runtime.install({
  logger: workerLog,
  // Core's warnings are forwarded too (activity and workflow task failures carry messages).
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }), forward: {} } },
});
