// One workflow per SET received, under an id derived from its issuer and jti: Temporal refuses a
// second start of that id for as long as the namespace retains it, so a replayed jti is a no-op
// on every Cordon server and after restarts, and each receipt (acted on or only recorded) stays
// on the record beside the containments. It has nothing to do but return what it was given.
import { z } from 'zod';

// Built when a receipt runs, not when the bundle's modules are evaluated: the SDK evaluates them
// for every workflow, containments included, which would each pay for a schema they never use.
const setReceipt = () =>
  z
    .object({
      receivedAt: z.string(),
      transmitter: z.string(),
      issuer: z.string(),
      jti: z.string(),
      iat: z.number(),
      eventType: z.string(),
      subjectFormat: z.string(),
      /** SHA-256 of the compact SET as received (the SET itself is not kept). */
      setSha256: z.string(),
      outcome: z.enum(['containment', 'recorded']),
      detail: z.string(),
      containmentId: z.string().optional(),
      signalId: z.string().optional(),
    })
    .strict();
export type SetReceipt = z.infer<ReturnType<typeof setReceipt>>;

export async function sharedSignalReceipt(receipt: SetReceipt): Promise<SetReceipt> {
  return setReceipt().parse(receipt);
}
