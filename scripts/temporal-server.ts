// Makes the production Temporal server and its SQL schema tool available, for `npm run cluster`
// and the cluster test: the per-user cache (~/.cache/cordon/temporal-server-<version>, kept across
// fresh clones) or a fresh `go install` from the Go module proxy into it. The schemas are embedded
// in the schema tool, so nothing of the module's source is needed after the build.
// Run directly, it prints the paths and where they came from.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { goVersionOk, userCacheDir } from './temporal-cli';

/** The server the CLI v1.5.1 embeds, so the dev server and the cluster run the same engine. */
export const SERVER_VERSION = 'v1.29.1';
const MODULES = [`go.temporal.io/server/cmd/server@${SERVER_VERSION}`, `go.temporal.io/server/cmd/tools/sql@${SERVER_VERSION}`];

export interface ServerBinaries {
  server: string;
  sqlTool: string;
  source: 'CORDON_TEMPORAL_SERVER_DIR' | 'user-cache' | 'go-build';
  /** Seconds the go build took, when it ran now. */
  buildSeconds?: number;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function serverCacheDir(): string {
  return join(userCacheDir(), `temporal-server-${SERVER_VERSION}`);
}

const inDir = (dir: string) => ({ server: join(dir, 'temporal-server'), sqlTool: join(dir, 'temporal-sql-tool') });

/**
 * Builds both binaries with one `go install` into a private folder beside the cache, then renames
 * it into place: an interrupted build never leaves a half-written binary where the next run looks.
 */
export async function buildServerWithGo(dest = serverCacheDir()): Promise<number> {
  if (!goVersionOk()) throw new Error(`building the Temporal server ${SERVER_VERSION} needs Go >= 1.25 on PATH (https://go.dev/dl/)`);
  const staging = `${dest}.build-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const started = Date.now();
  process.stderr.write(`cordon: building the Temporal server ${SERVER_VERSION} and its SQL tool with go install (first time only; minutes on 2 cores)\n`);
  try {
    await new Promise<void>((ok, fail) => {
      const child = spawn('go', ['install', '-v', ...MODULES], { env: { ...process.env, GOBIN: staging }, stdio: ['ignore', 'ignore', 'pipe'] });
      let steps = 0;
      let tail = '';
      const say = () => process.stderr.write(`  go install: ${steps} steps, ${Math.round((Date.now() - started) / 1000)}s\n`);
      const ticker = setInterval(say, 30_000); // a quiet stretch (linking) still shows the build is alive
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        tail = (tail + chunk).slice(-4000);
        steps += chunk.split('\n').filter(Boolean).length;
      });
      child.on('error', (err) => (clearInterval(ticker), fail(err)));
      child.on('exit', (code) => {
        clearInterval(ticker);
        if (code === 0) return ok();
        const hint = /checksum database|sum\.golang/.test(tail) ? '\n(the Go checksum database could not be reached: retry with GOSUMDB=off for this command only)' : '';
        fail(new Error(`go install ${MODULES.join(' ')} failed (exit ${code}):\n${tail}${hint}`));
      });
    });
    renameSync(join(staging, 'server'), inDir(staging).server);
    renameSync(join(staging, 'sql'), inDir(staging).sqlTool);
    rmSync(dest, { recursive: true, force: true });
    renameSync(staging, dest);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const seconds = (Date.now() - started) / 1000;
  process.stderr.write(`cordon: built ${dest} in ${seconds.toFixed(1)}s\n`);
  return seconds;
}

/** Finds the binaries or builds them; no Go is a hard error (there is no download to fall back on). */
export async function resolveTemporalServer(): Promise<ServerBinaries> {
  const fromEnv = process.env.CORDON_TEMPORAL_SERVER_DIR;
  if (fromEnv) {
    const b = inDir(fromEnv);
    if (!executable(b.server) || !executable(b.sqlTool)) throw new Error(`CORDON_TEMPORAL_SERVER_DIR=${fromEnv} must hold executable temporal-server and temporal-sql-tool`);
    return { ...b, source: 'CORDON_TEMPORAL_SERVER_DIR' };
  }
  const dir = serverCacheDir();
  const cached = inDir(dir);
  if (executable(cached.server) && executable(cached.sqlTool)) return { ...cached, source: 'user-cache' };
  const buildSeconds = await buildServerWithGo(dir);
  return { ...cached, source: 'go-build', buildSeconds };
}

if (require.main === module) {
  const t0 = Date.now();
  resolveTemporalServer()
    .then((b) => {
      console.log(`${b.server} (source: ${b.source}, ${Date.now() - t0} ms)`);
      console.log(`${b.sqlTool}`);
      if (existsSync(b.server)) console.log(execFileSync(b.server, ['--version'], { encoding: 'utf8' }).trim());
    })
    .catch((err: Error) => {
      console.error(`cordon: ${err.message}`);
      process.exit(1);
    });
}
