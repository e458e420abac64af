// Exponential backoff with full jitter between reconnection attempts, as the
// Rust SDK: attempt n waits a random time in [0, min(max, initial * multiplier^n)].

export interface BackoffConfig {
  /** Ceiling of the first delay, ms. */
  initialMs: number;
  /** Largest ceiling, ms. */
  maxMs: number;
  /** Growth of the ceiling per attempt. */
  multiplier: number;
}

export const DEFAULT_BACKOFF: BackoffConfig = { initialMs: 200, maxMs: 10_000, multiplier: 2 };

/** The ceiling of attempt `attempt` (0-based), before jitter. */
export function backoffCeiling(b: BackoffConfig, attempt: number): number {
  const mult = Number.isFinite(b.multiplier) && b.multiplier >= 1 ? b.multiplier : 1;
  const max = Math.max(b.maxMs, b.initialMs);
  const v = b.initialMs * mult ** Math.min(Math.max(attempt, 0), 64);
  return !Number.isFinite(v) || v >= max ? max : v;
}

/** The delay before attempt `attempt`; `random` returns a number in [0, 1). */
export function backoffDelay(b: BackoffConfig, attempt: number, random: () => number = Math.random): number {
  return Math.floor(random() * (backoffCeiling(b, attempt) + 1));
}
