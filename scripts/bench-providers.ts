// The identity systems the benchmark contains, as data: how a worker reaches each, how to seed
// identities in it, and what its signals carry. Every phase that measures a provider walks
// benchProviders(), so a provider joins the benchmark by joining that list.
import { join } from 'node:path';
import type { CordonConfig } from '../activities/config';
import { LabDirectory, LabProvider, type LabIdentityInput } from '../activities/providers/lab';
import type { IdentityProvider } from '../activities/providers/provider';
import type { Dependent, EvidenceKind, IdentitySignal, Receipt, Scope, SuppressionAction } from '../workflows/schemas';
import { labIdentity } from '../test/fixtures';

export interface BenchProvider {
  name: string;
  /** The worker configuration that reaches this provider, given a fresh per-phase one. */
  configure(config: CordonConfig): CordonConfig;
  /** Creates identities ready to be contained: one call per batch (the lab writes its file once). */
  seed(config: CordonConfig, identityIds: readonly string[]): Promise<void>;
  /** Signal fields for this provider's identities; the benchmark adds identityId and signalId. */
  signal: Partial<IdentitySignal>;
  /** The identity id for a benchmark name, where the provider writes ids its own way (Keycloak: `realm/user:name`). */
  idFor?(name: string): string;
  /**
   * Untimed containments run before the first measured level, 8 in flight. For a provider whose
   * server is a JVM (Keycloak): its JIT takes a few thousand requests to reach the speed of a
   * long-running server, and until then it compiles on the cores the comparison shares. At
   * least this many; more (up to twice as many) while its server's CPU per run still falls.
   */
  warmUpRuns?: number;
}

/** The identity ids a provider gets for the benchmark's names. */
export const benchIds = (p: BenchProvider, names: readonly string[]) => names.map((n) => p.idFor?.(n) ?? n);

export const labBench: BenchProvider = {
  name: 'lab',
  configure: (config) => config,
  seed: (config, ids) => new LabDirectory(config.labFile).seed(Object.fromEntries(ids.map((id) => [id, labIdentity()]))),
  signal: { provider: 'lab', identityKind: 'service-account' },
};

/**
 * The providers this machine can benchmark. The lab always; PostgreSQL and Redis belong here
 * when CORDON_POSTGRES_URL / CORDON_REDIS_URL are set, each as a BenchProvider whose configure()
 * passes its URL to the worker and whose seed() creates real roles / ACL users.
 */
export function benchProviders(): BenchProvider[] {
  return [labBench];
}

/**
 * The lab spread over many files, for the scale phase only: the lab rewrites its whole file on
 * every mutation, so 10 000 identities in one file would measure JSON parsing, not Temporal.
 * Each identity lives in the shard its id hashes to and behaves exactly as in the lab.
 */
export class ShardedLab implements IdentityProvider {
  readonly name = 'lab';
  private readonly shards: LabProvider[];

  constructor(dir: string, count: number) {
    this.shards = Array.from({ length: Math.max(1, count) }, (_, i) => new LabProvider(join(dir, `shard-${i}.json`)));
  }

  private of(identityId: string): LabProvider {
    let h = 2166136261; // FNV-1a
    for (let i = 0; i < identityId.length; i++) h = Math.imul(h ^ identityId.charCodeAt(i), 16777619);
    return this.shards[(h >>> 0) % this.shards.length]!;
  }

  async seed(identities: Record<string, LabIdentityInput>): Promise<void> {
    const byShard = new Map<LabProvider, Record<string, LabIdentityInput>>();
    for (const [id, identity] of Object.entries(identities)) {
      const shard = this.of(id);
      const batch = byShard.get(shard) ?? {};
      batch[id] = identity;
      byShard.set(shard, batch);
    }
    await Promise.all([...byShard].map(([shard, batch]) => shard.dir.seed(batch)));
  }

  inspect = (id: string) => this.of(id).inspect(id);
  suppress = (id: string, action: SuppressionAction, scope?: Scope) => this.of(id).suppress(id, action, scope);
  liftSuppression = (id: string, action: SuppressionAction, receipt?: Receipt) => this.of(id).liftSuppression(id, action, receipt);
  evidence = (id: string, kind: EvidenceKind) => this.of(id).evidence(id, kind);
  restrict = (id: string, keep: string[]) => this.of(id).restrict(id, keep);
  restore = (id: string, grants: string[]) => this.of(id).restore(id, grants);
  setSecret = (id: string, secret: string, loginBlock?: Receipt) => this.of(id).setSecret(id, secret, loginBlock);
  setEnabled = (id: string, enabled: boolean) => this.of(id).setEnabled(id, enabled);
  dependents = (id: string, exclude?: Dependent[]) => this.of(id).dependents(id, exclude);
  close = async () => undefined;
}
