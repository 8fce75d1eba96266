// Work that may wait (evidence reads) yields a shared server to work that may not (suppression).
import { AsyncLocalStorage } from 'node:async_hooks';

/** A place in the lane: `ready` once it may be sent; `release` when its answer is in. */
export interface Admission {
  ready: Promise<void>;
  /** A caller that may not wait now needs this request: it goes at once, outside the bound. */
  promote(): void;
  release(): void;
}

const NOW: Admission = { ready: Promise.resolve(), promote() {}, release() {} };

/**
 * At most `limit` background requests in flight, the rest queued in order; anything not marked
 * background goes at once. Under a burst, evidence for many identities would otherwise meet every
 * other identity's suppression at the provider's server (on the same cores), and each cut waits
 * its share of that work.
 */
export class BackgroundLane {
  private readonly marked = new AsyncLocalStorage<true>();
  private inFlight = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limit: number) {}

  /** Runs `fn` with every request it makes (through admit) in the background. */
  background<T>(fn: () => Promise<T>): Promise<T> {
    return this.marked.run(true, fn);
  }

  inBackground(): boolean {
    return this.marked.getStore() === true;
  }

  /** A place for one request made by the caller now: queued when the caller is in the background and the lane is full. */
  admit(): Admission {
    if (!this.inBackground()) return NOW;
    let held = false;
    const release = () => {
      if (!held) return;
      held = false;
      this.inFlight--;
      this.waiting.values().next().value?.();
    };
    let go!: () => void;
    const ready = new Promise<void>((ok) => (go = ok));
    const start = () => {
      this.waiting.delete(start);
      this.inFlight++;
      held = true;
      go();
    };
    if (this.inFlight < this.limit) start();
    else this.waiting.add(start);
    return { ready, promote: () => this.waiting.delete(start) && go(), release };
  }
}
