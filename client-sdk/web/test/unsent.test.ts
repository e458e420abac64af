// The app's unsent messages: when a refused send retries by itself, and
// what is kept of a send across a reload.
import { describe, expect, it } from "vitest";
import { ClientError } from "../src/sdk/index.js";
import { autoRetryMs, pendingOf, storedOf } from "../app/unsent.js";

const limited = (ms?: number) =>
  ClientError.server({ code: 1001, name: "RATE_LIMITED", message: "more than 6 messages per minute", ...(ms !== undefined ? { retryAfterMs: ms } : {}) });

describe("unsent messages", () => {
  it("retry by themselves only when the refusal said when", () => {
    expect(autoRetryMs(limited(9_500))).toBe(9_500);
    expect(autoRetryMs(limited(1))).toBe(250);
    expect(autoRetryMs(limited(3_600_000))).toBe(600_000);
    expect(autoRetryMs(limited())).toBeUndefined();
    expect(autoRetryMs(new ClientError("closed", "the client is closed"))).toBeUndefined();
    expect(autoRetryMs(new Error("boom"))).toBeUndefined();
  });

  it("keep what a send needs across a reload (ids as decimal strings)", () => {
    const p = { clientMsgId: "ab", conversationId: 18446744073709551615n, text: "hi", replyTo: 7n, attachmentIds: ["x"], createdAtMs: 5 };
    const s = storedOf(p, "ann");
    expect(JSON.parse(JSON.stringify(s))).toEqual({ clientMsgId: "ab", user: "ann", conversationId: "18446744073709551615", text: "hi", replyTo: "7", attachmentIds: ["x"], createdAtMs: 5 });
    expect(pendingOf(s)).toEqual(p);
    const noReply = { ...p, replyTo: undefined };
    delete noReply.replyTo;
    expect(pendingOf(storedOf(noReply, "ann"))).toEqual(noReply);
  });
});
