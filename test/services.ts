// Provider servers the suite needs (PostgreSQL, Redis), started once per run on loopback.
// Filled in by the providers work; for now the suite needs only the lab provider.
export interface TestServices {
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startTestServices(): Promise<TestServices> {
  return { env: {}, stop: async () => {} };
}
