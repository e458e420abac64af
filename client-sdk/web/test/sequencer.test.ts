import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CursorSchema, HistorySchema, type Message, MessageSchema, WelcomeSchema } from "../src/gen/chat/v1/chat_pb.js";
import { Delivery, HOLE_GRACE_TICKS } from "../src/sdk/delivery.js";
import { Sequencer } from "../src/sdk/sequencer.js";

describe("sequencer", () => {
  it("delivers in order, once", () => {
    const s = new Sequencer<string>(100);
    expect(s.offer(1n, 1n, "a")).toEqual({ kind: "ready", items: ["a"] });
    expect(s.offer(1n, 1n, "a")).toEqual({ kind: "duplicate" });
    expect(s.offer(1n, 3n, "c")).toEqual({ kind: "gap", from: 2n, to: 3n });
    expect(s.offer(1n, 3n, "c")).toEqual({ kind: "duplicate" });
    expect(s.offer(1n, 2n, "b")).toEqual({ kind: "ready", items: ["b", "c"] });
    expect(s.cursor(1n)).toBe(3n);
    expect(s.cursor(2n)).toBe(0n);
  });

  it("moves cursors forward only and drops held items", () => {
    const s = new Sequencer<number>(100);
    s.setCursor(7n, 10n);
    expect(s.offer(7n, 12n, 12).kind).toBe("gap");
    s.setCursor(7n, 12n);
    s.setCursor(7n, 5n);
    expect(s.cursor(7n)).toBe(12n);
    expect(s.offer(7n, 13n, 13)).toEqual({ kind: "ready", items: [13] });
  });

  it("skipTo moves past a purged run and releases what follows it", () => {
    const s = new Sequencer<string>(100);
    s.setCursor(1n, 2n);
    s.offer(1n, 9n, "i");
    s.offer(1n, 11n, "k");
    expect(s.skipTo(1n, 8n)).toEqual(["i"]);
    expect(s.cursor(1n)).toBe(9n);
    expect(s.skipTo(1n, 4n)).toEqual([]);
    expect(s.offer(1n, 10n, "j")).toEqual({ kind: "ready", items: ["j", "k"] });
  });

  it("bounds held items", () => {
    const s = new Sequencer<number>(2);
    for (const n of [5n, 6n, 7n, 8n]) s.offer(1n, n, Number(n));
    expect(s.heldCount(1n)).toBe(2);
  });

  it("any permutation with duplicates comes out in order exactly once", () => {
    for (let round = 0; round < 50; round++) {
      const s = new Sequencer<bigint>(1000);
      const seqs = Array.from({ length: 60 }, (_, i) => BigInt(i + 1));
      const input = [...seqs, ...seqs.filter((_, i) => i % 3 === round % 3)];
      for (let i = input.length - 1; i > 0; i--) {
        const j = (i * 7919 + round * 31) % (i + 1);
        [input[i], input[j]] = [input[j]!, input[i]!];
      }
      const out: bigint[] = [];
      for (const q of input) {
        const o = s.offer(9n, q, q);
        if (o.kind === "ready") out.push(...o.items);
      }
      expect(out).toEqual(seqs);
    }
  });
});

const m = (conv: bigint, seq: bigint): Message => create(MessageSchema, { conversationId: conv, seq });
const welcome = (epoch: string, heads: [bigint, bigint][]) =>
  create(WelcomeSchema, { epoch, heads: heads.map(([conversationId, seq]) => create(CursorSchema, { conversationId, seq })) });
const page = (conv: bigint, from: number, to: number) =>
  create(HistorySchema, {
    conversationId: conv,
    messages: Array.from({ length: to - from + 1 }, (_, i) => m(conv, BigInt(from + i))),
  });
const seqs = (ms: Message[]) => ms.map((x) => x.seq);

describe("delivery (hole filling, cursors, receipts)", () => {
  it("starts live from heads then resumes with cursors", () => {
    const d = new Delivery(undefined, 200);
    expect(d.hello()).toEqual({ epoch: "", cursors: [], resume: false });
    expect(d.onWelcome(welcome("e1", [[1n, 10n], [2n, 0n]]), "", false)).toBe(false);
    expect(seqs(d.onMessage(m(1n, 11n)).ready)).toEqual([11n]);
    const h = d.hello();
    expect(h.resume).toBe(true);
    expect(h.epoch).toBe("e1");
    expect(h.cursors.map((c) => [c.conversationId, c.seq])).toEqual([[1n, 11n], [2n, 0n]]);
    expect(d.onWelcome(welcome("e1", [[1n, 13n]]), "e1", true)).toBe(true);
    expect(d.onMessage(m(1n, 11n)).ready).toEqual([]);
    expect(seqs(d.onMessage(m(1n, 12n)).ready)).toEqual([12n]);
    expect(d.resumeState()).toEqual({ epoch: "e1", cursors: { "1": "12" } });
  });

  it("fetches a hole after the grace ticks and fills it in order", () => {
    const d = new Delivery(undefined, 200);
    d.onWelcome(welcome("e", [[1n, 5n]]), "", false);
    expect(d.onMessage(m(1n, 9n))).toEqual({ ready: [] });
    let due = d.dueFetches();
    for (let i = 1; i < HOLE_GRACE_TICKS; i++) due = d.dueFetches();
    expect(due).toEqual([{ conv: 1n, afterSeq: 5n, limit: 4 }]);
    expect(d.onMessage(m(1n, 10n)).ready).toEqual([]);
    const step = d.onHistory(1n, page(1n, 6, 8));
    expect(seqs(step.ready)).toEqual([6n, 7n, 8n, 9n, 10n]);
    expect(step.fetch).toBeUndefined();
    expect(d.takeReceipts()).toEqual([[1n, 10n]]);
    expect(d.takeReceipts()).toEqual([]);
  });

  it("a hole that closes by itself is never fetched", () => {
    const d = new Delivery(undefined, 200);
    d.onWelcome(welcome("e", [[1n, 0n]]), "", false);
    d.onMessage(m(1n, 2n));
    expect(d.dueFetches()).toEqual([]);
    expect(seqs(d.onMessage(m(1n, 1n)).ready)).toEqual([1n, 2n]);
    for (let i = 0; i < 5; i++) expect(d.dueFetches()).toEqual([]);
  });

  it("pages a big gap", () => {
    const d = new Delivery(undefined, 3);
    d.onWelcome(welcome("e", [[1n, 0n]]), "", false);
    d.onMessage(m(1n, 8n));
    d.dueFetches();
    expect(d.dueFetches()).toEqual([{ conv: 1n, afterSeq: 0n, limit: 3 }]);
    expect(d.onHistory(1n, page(1n, 1, 3)).fetch).toEqual({ conv: 1n, afterSeq: 3n, limit: 3 });
    expect(d.onHistory(1n, page(1n, 4, 6)).fetch).toEqual({ conv: 1n, afterSeq: 6n, limit: 2 });
    const last = d.onHistory(1n, page(1n, 7, 7));
    expect(seqs(last.ready)).toEqual([7n, 8n]);
    expect(last.fetch).toBeUndefined();
  });

  it("skips a hole behind the purge mark instead of fetching it again", () => {
    const d = new Delivery(undefined, 3);
    d.onWelcome(welcome("e", [[1n, 2n]]), "", false);
    expect(d.onMessage(m(1n, 9n))).toEqual({ ready: [] });
    d.dueFetches();
    expect(d.dueFetches()).toEqual([{ conv: 1n, afterSeq: 2n, limit: 3 }]);
    // 3..=7 were purged: the page starts at 8 and says so.
    const step = d.onHistory(1n, create(HistorySchema, { ...page(1n, 8, 8), purgedThrough: 7n }));
    expect(seqs(step.ready)).toEqual([8n, 9n]);
    expect(step.fetch).toBeUndefined();
    for (let i = 0; i < 3; i++) expect(d.dueFetches()).toEqual([]);
    // Everything up to the head purged: an empty page still closes the hole.
    d.onMessage(m(1n, 20n));
    d.dueFetches();
    d.dueFetches();
    const empty = d.onHistory(1n, create(HistorySchema, { conversationId: 1n, purgedThrough: 19n }));
    expect(seqs(empty.ready)).toEqual([20n]);
    expect(empty.fetch).toBeUndefined();
    expect(d.resumeState()).toEqual({ epoch: "e", cursors: { "1": "20" } });
  });

  it("resync drops cursors and takes the new heads", () => {
    const d = new Delivery({ epoch: "old", cursors: { "1": "500" } }, 200);
    expect(d.onWelcome(welcome("new", [[1n, 3n], [7n, 9n]]), "old", true)).toBe(false);
    expect(d.hello().epoch).toBe("old");
    d.onResync({ reason: "epoch", epoch: "" } as never);
    expect(d.resumeState()).toEqual({ epoch: "new", cursors: { "1": "3", "7": "9" } });
  });
});
