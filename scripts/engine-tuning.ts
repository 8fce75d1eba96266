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
