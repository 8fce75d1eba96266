// The vault and the evidence store a worker (or the CLI) uses: in PostgreSQL when
// CORDON_STATE_URL is set, so that every worker reads and writes the same records; otherwise in
// files under CORDON_DATA_DIR, which suits one host (any number of processes on it).
import type { CordonConfig } from './config';
import { EvidenceStore } from './evidence-store';
import { LocalVault, Vault, loadKeyFile, parseVaultKey } from './secret-sink';
import { PgState } from './state-store';

export interface StateStores {
  secrets: Vault;
  evidence: EvidenceStore;
  /** Where both are, with no password in it. */
  where: string;
  close(): Promise<void>;
}

export function openStateStores(config: CordonConfig): StateStores {
  if (!config.stateUrl) {
    return {
      secrets: new LocalVault(config.vaultDir, config.vaultKey, config.vaultKeyFile),
      evidence: new EvidenceStore(config.evidenceDir),
      where: `files in ${config.dataDir}`,
      close: async () => undefined,
    };
  }
  const db = new PgState(config.stateUrl);
  const { vaultKey, vaultKeyFile } = config;
  // loadConfig requires one of them with a shared store: a generated per-host key would differ.
  if (!vaultKey && !vaultKeyFile) throw new Error('a shared state store needs CORDON_VAULT_KEY or CORDON_VAULT_KEY_FILE, the same on every worker');
  const evidence = db.table('evidence');
  return {
    secrets: new Vault(db.table('vault'), async () => (vaultKey ? parseVaultKey(vaultKey, 'CORDON_VAULT_KEY') : loadKeyFile(vaultKeyFile!, false))),
    evidence: new EvidenceStore({ table: evidence, uri: (sha) => `${db.where}/cordon_evidence/${sha}` }),
    where: db.where,
    close: () => db.close(),
  };
}
