// TokenRefresh, sans-IO: when a refresh starts, one at a time, and the retry after a failure.
import { describe, expect, it } from "vitest";
import { TokenRefresh } from "../src/sdk/refresh.js";

describe("TokenRefresh", () => {
  it("starts once the lead before the lapse is reached, one attempt at a time", () => {
    const r = new TokenRefresh(60_000, 5_000);
    expect(r.start(0)).toBe(false); // no lapse known: nothing to refresh
    r.lapsesAt(100_000);
    expect(r.start(39_999)).toBe(false);
    expect(r.start(40_000)).toBe(true);
    expect(r.start(40_001)).toBe(false); // in flight
    r.lapsesAt(200_000); // succeeded: the new lapse counts
    expect(r.start(139_999)).toBe(false);
    expect(r.start(140_000)).toBe(true);
  });

  it("retries a failed attempt after the retry wait, until the token lapses", () => {
    const r = new TokenRefresh(60_000, 5_000);
    r.lapsesAt(100_000);
    expect(r.start(50_000)).toBe(true);
    r.failed(50_000);
    expect(r.start(54_999)).toBe(false);
    expect(r.start(55_000)).toBe(true);
    r.refreshed(100_000, 55_000); // a token lapsing no later: a failure, not a loop
    expect(r.start(55_001)).toBe(false);
    expect(r.start(60_000)).toBe(true);
    r.refreshed(200_000, 60_000);
    expect(r.start(60_001)).toBe(false);
    r.lapsesAt(0); // a session without expiry
    expect(r.start(1_000_000)).toBe(false);
  });
});
