import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { SendMessageSchema } from "../src/gen/chat/v1/chat_pb.js";
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from "../src/sdk/backoff.js";
import { Outbox, type Outgoing } from "../src/sdk/outbox.js";
import { react } from "../src/sdk/requests.js";

describe("backoff", () => {
  it("grows then caps", () => {
    expect(backoffCeiling(DEFAULT_BACKOFF, 0)).toBe(200);
    expect(backoffCeiling(DEFAULT_BACKOFF, 1)).toBe(400);
    expect(backoffCeiling(DEFAULT_BACKOFF, 5)).toBe(6400);
    expect(backoffCeiling(DEFAULT_BACKOFF, 6)).toBe(10_000);
    expect(backoffCeiling(DEFAULT_BACKOFF, 10_000)).toBe(10_000);
  });

  it("full jitter stays within [0, ceiling] and spreads", () => {
    const ds = Array.from({ length: 500 }, () => backoffDelay(DEFAULT_BACKOFF, 3));
    expect(Math.min(...ds)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...ds)).toBeLessThanOrEqual(1600);
    expect(Math.max(...ds) - Math.min(...ds)).toBeGreaterThan(800);
    expect(backoffDelay(DEFAULT_BACKOFF, 3, () => 0)).toBe(0);
    expect(backoffDelay(DEFAULT_BACKOFF, 3, () => 0.999999999)).toBe(1600);
  });

  it("odd parameters do not explode", () => {
    expect(backoffCeiling({ ...DEFAULT_BACKOFF, multiplier: Number.NaN }, 3)).toBe(200);
    expect(backoffCeiling({ ...DEFAULT_BACKOFF, maxMs: 0 }, 3)).toBe(200);
  });
});

const msg = (conv: bigint, id: string): Outgoing => ({
  case: "sendMessage",
  value: create(SendMessageSchema, { conversationId: conv, clientMsgId: id }),
});
const cmid = (m: Outgoing) => m.value.clientMsgId;

describe("outbox", () => {
  it("fills fresh ids and keeps given ones", () => {
    const o = new Outbox<null>(4);
    o.push(msg(1n, ""), null);
    o.push(msg(1n, ""), null);
    o.push(msg(1n, "mine"), null);
    o.push(react(1n, 1n, "👍", true, ""), null);
    const ids = o.unsent().map((e) => cmid(e.msg));
    expect(ids[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(ids[2]).toBe("mine");
    expect(ids[3], "a change gets one too").toMatch(/^[0-9a-f]{32}$/);
    expect(o.pending().length, "only messages show as sending").toBe(3);
  });

  it("is bounded", () => {
    const o = new Outbox<number>(2);
    expect(o.push(msg(1n, "a"), 1)).toBeDefined();
    const b = o.push(msg(1n, "b"), 2);
    expect(o.push(msg(1n, "c"), 3)).toBeUndefined();
    o.take(b!);
    expect(o.push(msg(1n, "c"), 3)).toBeDefined();
  });

  it("re-sends unacked messages in order with the same ids after a disconnect", () => {
    const o = new Outbox<string>(10);
    const a = o.push(msg(1n, "a"), "wa")!;
    const b = o.push(msg(2n, "b"), "wb")!;
    const c = o.push(msg(1n, "c"), "wc")!;
    o.unsent().forEach((e, i) => o.markSent(e.key, BigInt(100 + i)));
    expect(o.unsent()).toEqual([]);
    expect(o.take(b)?.waiter).toBe("wb");
    o.onDisconnect();
    expect(o.unsent().map((e) => [e.key, cmid(e.msg)])).toEqual([
      [a, "a"],
      [c, "c"],
    ]);
    const d = o.push(msg(3n, "d"), "wd")!;
    expect(o.unsent().at(-1)?.key).toBe(d);
    expect(o.length).toBe(3);
    expect(o.drain().length).toBe(3);
    expect(o.length).toBe(0);
  });
});
