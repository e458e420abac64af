// The saved history's rules: which conversations and messages a snapshot
// keeps, within its bounds, and that restoring gives back what was saved.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  restoreSnapshot,
  SAVED_CONVERSATIONS_MAX,
  SAVED_MESSAGES_MAX,
  snapshotOf,
} from "../app/pwa/history-cache.js";
import { pb } from "../src/sdk/index.js";

const me = create(pb.UserSchema, { id: "ann", displayName: "Ann Advocate" });

function conv(id: bigint, lastAt: bigint, n: number) {
  const messages = Array.from({ length: n }, (_, i) =>
    create(pb.MessageSchema, { conversationId: id, seq: BigInt(i + 1), senderId: "ann", body: { content: { case: "text", value: `message ${i + 1} of ${id}` } }, serverTimeMs: BigInt(i) }),
  );
  const summary = create(pb.ConversationSummarySchema, {
    conversation: { id, title: `Case ${id}` },
    ...(n > 0 ? { lastMessage: messages[n - 1] } : {}),
  });
  if (summary.lastMessage) summary.lastMessage.serverTimeMs = lastAt;
  return { summary, members: [create(pb.MemberSchema, { userId: "ann" })], messages };
}

describe("saved history", () => {
  it("round-trips the list, names, messages and the open conversation", () => {
    const s = snapshotOf({ me, names: new Map([["ann", "Ann Advocate"]]), convs: [conv(1n, 5n, 3)], current: "1" }, 42);
    expect(s.user).toBe("ann");
    const r = restoreSnapshot(structuredClone(s));
    expect(r.me.displayName).toBe("Ann Advocate");
    expect(r.names.get("ann")).toBe("Ann Advocate");
    expect(r.current).toBe("1");
    expect(r.convs[0]!.summary.conversation?.title).toBe("Case 1");
    expect(r.convs[0]!.members.map((m) => m.userId)).toEqual(["ann"]);
    expect(r.convs[0]!.messages.map((m) => m.body?.content.value)).toEqual(["message 1 of 1", "message 2 of 1", "message 3 of 1"]);
  });

  it("keeps the newest messages of the most recently active conversations", () => {
    const convs = Array.from({ length: SAVED_CONVERSATIONS_MAX + 5 }, (_, i) => conv(BigInt(i + 1), BigInt(i), 1));
    convs.push(conv(1000n, 10_000n, SAVED_MESSAGES_MAX + 20));
    const r = restoreSnapshot(snapshotOf({ me, names: new Map(), convs, current: undefined }, 0));
    expect(r.convs.length).toBe(SAVED_CONVERSATIONS_MAX);
    expect(r.convs[0]!.summary.conversation?.id).toBe(1000n);
    const kept = r.convs[0]!.messages;
    expect(kept.length).toBe(SAVED_MESSAGES_MAX);
    expect(kept[0]!.seq).toBe(21n);
    expect(kept.at(-1)!.seq).toBe(BigInt(SAVED_MESSAGES_MAX + 20));
    // The oldest-active conversations are the ones left out.
    expect(r.convs.some((c) => c.summary.conversation?.id === 1n)).toBe(false);
  });

  it("stays within its byte budget, dropping older messages first", () => {
    const r = restoreSnapshot(snapshotOf({ me, names: new Map(), convs: [conv(1n, 2n, 100), conv(2n, 1n, 100)], current: undefined }, 0, 600));
    const total = r.convs.reduce((n, c) => n + c.messages.length, 0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThan(100);
    expect(r.convs[0]!.messages.at(-1)!.seq).toBe(100n);
    expect(r.convs[1]!.messages).toEqual([]);
    expect(r.convs[1]!.summary.conversation?.id).toBe(2n);
  });
});
