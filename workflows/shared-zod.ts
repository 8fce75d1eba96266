// Preloaded once per workflow thread (workers/worker.ts, `preloadModules`), so zod's own modules
// are shared by every containment instead of being evaluated again for each one (about 3 ms of
// worker CPU per workflow on this machine: 16.3 -> 13.0 ms at 8 in flight). The SDK deep-freezes shared modules,
// so whatever zod sets up lazily on first use is set up here, before the freeze:
// - its global config (default locale, memoizer), which zod writes on the first schema built;
// - `jitless`, so a parse never compiles a fast path with `new Function`, and zod never probes
//   (and caches) whether eval is allowed. Chosen when each containment built its schemas afresh
//   and compiling cost more than it saved; since shared-schemas.ts a thread compiles once, which
//   has not been measured.
// Cordon's own schemas are not preloaded (zod memoizes on schema instances, which the freeze
// forbids): shared-schemas.ts keeps the thread's first copy out of the freeze's reach.
import { z } from 'zod';

z.config({ jitless: true });
z.object({ warm: z.string() }).safeParse({ warm: '' });
const config = z.config();
if (!config.localeError || !config.memoizer || !config.jitless) {
  throw new Error('zod did not set up its global config on first use; shared-zod.ts must set it before the SDK freezes it');
}

export const sharedZod = z;
