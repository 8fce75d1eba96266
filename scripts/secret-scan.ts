// Looks for secrets in text in every form a payload or a log line may carry them: as is,
// JSON-escaped, base64 and base64url, and inside any base64 run decoded (Temporal payloads).
// Shared by the test suite's scan (test/harness.ts) and the drill (its worker's log file).

function forms(secret: string): string[] {
  const b = Buffer.from(secret);
  return [...new Set([secret, JSON.stringify(secret).slice(1, -1), b.toString('base64').replace(/=+$/, ''), b.toString('base64url')])];
}

/** The first of `secrets` found in `text` (any form), or undefined. */
export function findSecret(text: string, secrets: readonly string[]): string | undefined {
  const decoded = [...text.matchAll(/[A-Za-z0-9+/]{16,}={0,2}/g)].map((m) => Buffer.from(m[0], 'base64').toString('utf8'));
  const haystack = decoded.length ? `${text}\n${decoded.join('\n')}` : text;
  return secrets.find((s) => forms(s).some((f) => haystack.includes(f)));
}
