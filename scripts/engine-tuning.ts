// Temporal server settings Cordon runs with, on the dev server and the cluster alike.
/**
 * The engine settings the embedded default runs with, chosen on measurement (`npm run bench`,
 * README "Performance"): eager activity dispatch, so an activity scheduled by a workflow task
 * comes back in that task's reply instead of through matching; and one task-queue partition,
 * since one dev server serves a handful of workers and four partitions only make a poller miss
 * tasks another partition holds. The cluster (scripts/cluster-core.ts) writes the same keys into its dynamic config file.
 */
export const ENGINE_TUNING: Record<string, string | number | boolean> = {
  'system.enableActivityEagerExecution': true,
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

/**
 * SQLite settings for the dev server's database file. Its default is a rollback journal with a
 * sync on every commit, and the server writes through one connection, so each workflow task's
 * commit waits for the disk while every other one queues behind it. WAL with `synchronous=NORMAL`
 * commits by appending to the log and syncs at checkpoints: a commit survives the server being
 * killed, and only an operating-system crash can lose the last few (SQLite's documented trade).
 */
export const SQLITE_PRAGMAS: Record<string, string> = {
  journal_mode: 'wal',
  synchronous: 'normal',
};
