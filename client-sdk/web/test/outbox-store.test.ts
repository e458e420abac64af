// The outbox stores of the SDK: what they keep, in which order, and the
// precise refusal past their capacity.
import { describe, expect, it } from "vitest";
import { MemoryOutboxStore, OutboxStoreFull, type StoredSend } from "../src/sdk/outbox.js";

const send = (id: string, user: string, at: number): StoredSend => ({
  clientMsgId: id,
  user,
  conversationId: "7",
  text: `text ${id}`,
  attachmentIds: [],
  createdAtMs: at,
});

describe("the in-memory outbox store", () => {
  it("keeps each user's unsent messages, oldest first, until removed", async () => {
    const s = new MemoryOutboxStore();
    await s.put(send("b", "ann", 2));
    await s.put(send("a", "ann", 1));
    await s.put(send("c", "ben", 1));
    expect((await s.load("ann")).map((x) => x.clientMsgId)).toEqual(["a", "b"]);
    expect((await s.load("ben")).map((x) => x.clientMsgId)).toEqual(["c"]);
    await s.remove("a");
    expect((await s.load("ann")).map((x) => x.clientMsgId)).toEqual(["b"]);
    await s.remove("missing");
  });

  it("replaces a message put again under its client_msg_id", async () => {
    const s = new MemoryOutboxStore();
    await s.put(send("a", "ann", 1));
    await s.put({ ...send("a", "ann", 1), text: "changed" });
    expect(await s.load("ann")).toEqual([{ ...send("a", "ann", 1), text: "changed" }]);
  });

  it("refuses a message past its capacity with a precise error and keeps the others", async () => {
    const s = new MemoryOutboxStore(2);
    await s.put(send("a", "ann", 1));
    await s.put(send("b", "ann", 2));
    await expect(s.put(send("c", "ann", 3))).rejects.toBeInstanceOf(OutboxStoreFull);
    await expect(s.put(send("c", "ann", 3))).rejects.toThrow("at most 2 unsent messages are kept");
    // Replacing one kept, or another user's, still works.
    await s.put({ ...send("b", "ann", 2), text: "again" });
    await s.put(send("d", "ben", 1));
    expect((await s.load("ann")).map((x) => x.clientMsgId)).toEqual(["a", "b"]);
  });

  it("hands out copies: changing a loaded message changes nothing kept", async () => {
    const s = new MemoryOutboxStore();
    await s.put(send("a", "ann", 1));
    const [x] = await s.load("ann");
    x!.text = "mutated";
    expect((await s.load("ann"))[0]!.text).toBe("text a");
  });
});
