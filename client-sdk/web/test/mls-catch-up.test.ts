// Catching up an E2E conversation from history, against a scripted
// history call (the paging rules of GetHistory: newest page when no cursor,
// backward before `beforeSeq`, forward after `afterSeq`): a device added
// while it was away joins from a Welcome hundreds of entries back and reads
// everything after it; in a conversation it was never added to, it reads
// back only to when it was made, and next time only what is new.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ClaimedKeyPackageSchema,
  ClaimedKeyPackagesSchema,
  type E2eCiphertext,
  E2eContentSchema,
  type History,
  HistorySchema,
  type Message,
  MessageBodySchema,
  MessageSchema,
} from "../src/gen/chat/v1/chat_pb.js";
import type { Client } from "../src/sdk/client.js";
import { MlsDevice } from "../src/sdk/mls/device.js";
import { E2e } from "../src/sdk/mls/e2e.js";
import { MemoryKeyValue } from "../src/sdk/mls/store.js";

const CONV = 9n;

/** A conversation's entries and the history call over them; counts the calls. */
function scriptedHistory(entries: Message[]) {
  const calls: { beforeSeq: bigint; afterSeq: bigint }[] = [];
  const history = async (_conv: bigint, o: { beforeSeq?: bigint; afterSeq?: bigint; limit?: number }): Promise<History> => {
    const before = o.beforeSeq ?? 0n;
    const after = o.afterSeq ?? 0n;
    const limit = o.limit ?? 50;
    calls.push({ beforeSeq: before, afterSeq: after });
    let page: Message[];
    let hasMore: boolean;
    if (after > 0n) {
      const newer = entries.filter((m) => m.seq > after);
      page = newer.slice(0, limit);
      hasMore = newer.length > limit;
    } else {
      const older = before > 0n ? entries.filter((m) => m.seq < before) : entries;
      page = older.slice(-limit);
      hasMore = older.length > limit;
    }
    return create(HistorySchema, { conversationId: CONV, messages: page, hasMore });
  };
  return { client: { history } as unknown as Client, calls };
}

function entry(seq: bigint, sender: string, ct: E2eCiphertext, serverTimeMs = BigInt(Date.now())): Message {
  const body = create(MessageBodySchema, { content: { case: "ciphertext", value: ct } });
  return create(MessageSchema, { conversationId: CONV, seq, senderId: sender, body, serverTimeMs });
}

describe("E2e catch-up", () => {
  it("joins from a Welcome far back and reads everything after it", async () => {
    const alice = await MlsDevice.open(new MemoryKeyValue(), "alice", "a");
    const bob = await MlsDevice.open(new MemoryKeyValue(), "bob", "b");
    const [kp] = await bob.newKeyPackages(1);
    await alice.startGroup(CONV);
    const claimed = create(ClaimedKeyPackagesSchema, {
      keyPackages: [create(ClaimedKeyPackageSchema, { userId: "bob", deviceId: "b", keyPackage: kp! })],
    });
    const add = (await alice.prepare(CONV, { add: claimed }))!;
    await alice.confirm(CONV, 1n, add);
    const entries = [entry(1n, "alice", add.ciphertext)];
    for (let seq = 2n; seq <= 451n; seq++) {
      entries.push(entry(seq, "alice", await alice.encrypt(CONV, create(E2eContentSchema, { text: `message ${seq}` }))));
    }
    const { client, calls } = scriptedHistory(entries);
    const got = await new E2e(client, bob).catchUp(CONV);
    expect(got[0]).toEqual({ kind: "joined", seq: 1n });
    const texts = got.flatMap((r) => (r.kind === "text" ? [r.content.text] : []));
    expect(texts.length).toBe(450);
    expect(texts.at(-1)).toBe("message 451");
    expect(await bob.applied(CONV)).toBe(451n);
    expect(calls.length).toBeLessThan(6);
  });

  it("in a conversation it is not in, reads back to when it was made, then only what is new", async () => {
    const alice = await MlsDevice.open(new MemoryKeyValue(), "alice", "a");
    await alice.startGroup(CONV);
    const bob = await MlsDevice.open(new MemoryKeyValue(), "bob", "b");
    const twoDaysAgo = BigInt(bob.createdMs - 2 * 24 * 3600_000);
    const entries: Message[] = [];
    for (let seq = 1n; seq <= 1000n; seq++) {
      const ct = await alice.encrypt(CONV, create(E2eContentSchema, { text: "old" }));
      entries.push(entry(seq, "alice", ct, seq <= 600n ? twoDaysAgo : BigInt(Date.now())));
    }
    const { client, calls } = scriptedHistory(entries);
    const e2e = new E2e(client, bob);
    const got = await e2e.catchUp(CONV);
    expect(got.every((r) => r.kind === "skipped")).toBe(true);
    // Pages of 200 back from the newest: 801-1000, 601-800, 401-600 (older than the device: stop).
    expect(calls.length).toBe(4);
    expect(await bob.applied(CONV)).toBe(1000n);
    calls.length = 0;
    await e2e.catchUp(CONV);
    expect(calls).toEqual([{ beforeSeq: 0n, afterSeq: 1000n }]);
  });
});
