// When a live session's token is refreshed, sans-IO: the client asks the
// app's `tokenProvider` for a fresh token `leadMs` before the current one
// lapses (the Welcome's, then each refresh's `expiresAtMs`), one attempt at a
// time, and tries again `retryMs` after a failure (the server ends the session
// with TOKEN_EXPIRED if none succeeds in time). The client performs the calls.

/** Default lead: ask this long before the token lapses, ms. */
export const REFRESH_LEAD_MS = 60_000;
/** Wait after a failed attempt, ms. */
export const REFRESH_RETRY_MS = 5_000;

export class TokenRefresh {
  private expiresAtMs = 0;
  private inFlight = false;
  private retryAtMs = 0;

  constructor(
    private readonly leadMs = REFRESH_LEAD_MS,
    private readonly retryMs = REFRESH_RETRY_MS,
  ) {}

  /** The session's token lapses at `expiresAtMs` (0: never, nothing to refresh). */
  lapsesAt(expiresAtMs: number): void {
    this.expiresAtMs = expiresAtMs;
    this.inFlight = false;
    this.retryAtMs = 0;
  }

  /** Whether to start a refresh now (and if so, it is counted as started). */
  start(nowMs: number): boolean {
    if (this.expiresAtMs === 0 || this.inFlight || nowMs < this.retryAtMs) return false;
    if (nowMs < this.expiresAtMs - this.leadMs) return false;
    this.inFlight = true;
    return true;
  }

  /** The server took a token lapsing at `expiresAtMs`; one that lapses no
   * later than the current one counts as a failure (no loop of refreshes). */
  refreshed(expiresAtMs: number, nowMs: number): void {
    if (expiresAtMs > this.expiresAtMs) this.lapsesAt(expiresAtMs);
    else this.failed(nowMs);
  }

  /** The attempt failed: try again after `retryMs`. */
  failed(nowMs: number): void {
    this.inFlight = false;
    this.retryAtMs = nowMs + this.retryMs;
  }
}
