// The approved policy lives with the worker: read from CORDON_POLICY (or the shipped default),
// validated at start-up, and identified by the SHA-256 of its canonical JSON so every
// containment records exactly which rules it ran on.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ApprovedPolicy } from '../workflows/contract';
import { DEFAULT_POLICY } from '../workflows/default-policy';
import { PolicyError, parsePolicy } from '../workflows/policy';

/** JSON with object keys sorted, so the same policy always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Validates a policy document (every problem named) and identifies it. */
export function approve(document: unknown): ApprovedPolicy {
  const policy = parsePolicy(document);
  return { version: policy.version, sha256: createHash('sha256').update(canonical(policy)).digest('hex'), policy };
}

/** Reads and validates a policy file; throws a PolicyError naming the file and every problem. */
export function readPolicyFile(path: string): ApprovedPolicy {
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new PolicyError(`cannot read policy ${path}: ${(err as Error).message}`);
  }
  try {
    return approve(document);
  } catch (err) {
    throw new PolicyError(`${path}: ${(err as Error).message}`);
  }
}

/** The worker's approved policy: CORDON_POLICY's file, or the shipped default. */
export function loadApprovedPolicy(path?: string): ApprovedPolicy {
  return path ? readPolicyFile(path) : approve(DEFAULT_POLICY);
}
