// The browser's MLS device without a server: two devices make a group from
// a claimed KeyPackage and its Welcome, talk both ways, see the same safety
// numbers, pass over garbage and a forged sender, skip what they sent, keep
// what they decrypted, survive being reopened from their store, and a
// removed device reads nothing after its removal. (Interoperation with the
// Rust SDK through a real server is the browser test e2e/e2e-mls.test.mjs.)
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ClaimedKeyPackageSchema,
  ClaimedKeyPackagesSchema,
  E2eCiphertextSchema,
  type E2eCiphertext,
  E2eContentSchema,
  type Message,
  MessageBodySchema,
  MessageSchema,
} from "../src/gen/chat/v1/chat_pb.js";
import { MlsDevice } from "../src/sdk/mls/device.js";
import { MemoryKeyValue } from "../src/sdk/mls/store.js";

const CONV = 7n;

function entry(seq: bigint, sender: string, ct: E2eCiphertext): Message {
  const body = create(MessageBodySchema, { content: { case: "ciphertext", value: ct } });
  return create(MessageSchema, { conversationId: CONV, seq, senderId: sender, body });
}

async function claimed(d: MlsDevice) {
  const [kp] = await d.newKeyPackages(1);
  return create(ClaimedKeyPackagesSchema, {
    keyPackages: [create(ClaimedKeyPackageSchema, { userId: d.user, deviceId: d.deviceId, keyPackage: kp! })],
  });
}

/** alice's group with bob in it: alice's commit stored at seq 1, bob joined from its Welcome. */
async function pair() {
  const aliceKv = new MemoryKeyValue();
  const bobKv = new MemoryKeyValue();
  const alice = await MlsDevice.open(aliceKv, "alice", "web-a");
  const bob = await MlsDevice.open(bobKv, "bob", "web-b");
  await alice.startGroup(CONV);
  const pending = (await alice.prepare(CONV, { add: await claimed(bob) }))!;
  await alice.confirm(CONV, 1n, pending);
  expect(await bob.receive(entry(1n, "alice", pending.ciphertext))).toEqual({ kind: "joined", seq: 1n });
  return { alice, bob, aliceKv, bobKv };
}

const text = (t: string) => create(E2eContentSchema, { text: t });

describe("MlsDevice", () => {
  it("joins from a Welcome and exchanges messages both ways", async () => {
    const { alice, bob } = await pair();
    expect(await bob.epoch(CONV)).toBe(1n);
    const m2 = await alice.encrypt(CONV, text("hello bob"));
    const r2 = await bob.receive(entry(2n, "alice", m2));
    expect(r2).toMatchObject({ kind: "text", sender: "alice", device: "web-a" });
    expect(r2.kind === "text" && r2.content.text).toBe("hello bob");
    const m3 = await bob.encrypt(CONV, text("hi alice"));
    const r3 = await alice.receive(entry(3n, "bob", m3));
    expect(r3.kind === "text" && r3.content.text).toBe("hi alice");
    // The same entry again (events and history both deliver it): skipped.
    expect(await alice.receive(entry(3n, "bob", m3))).toEqual({ kind: "skipped" });
    expect((await bob.decrypted(CONV)).map((d) => d.content.text)).toEqual(["hello bob"]);
    expect(await alice.safetyNumbers(CONV)).toEqual(await bob.safetyNumbers(CONV));
    expect((await alice.safetyNumbers(CONV))[0]!.number).toMatch(/^\d{5}( \d{5}){11}$/);
  });

  it("passes over garbage and a forged sender, and goes on", async () => {
    const { alice, bob } = await pair();
    const garbage = create(E2eCiphertextSchema, { epoch: 1n, mls: new Uint8Array([0, 1, 2, 3, 4, 5]) });
    expect(await bob.receive(entry(2n, "alice", garbage))).toMatchObject({ kind: "refused", seq: 2n });
    const forged = await alice.encrypt(CONV, text("I am carol"));
    const r = await bob.receive(entry(3n, "carol", forged));
    expect(r).toMatchObject({ kind: "refused", seq: 3n });
    expect(r.kind === "refused" && r.why).toContain("MLS sender alice");
    const ok = await alice.encrypt(CONV, text("still here"));
    const r4 = await bob.receive(entry(4n, "alice", ok));
    expect(r4.kind === "text" && r4.content.text).toBe("still here");
  });

  it("skips its own message read back, and shows what it sent", async () => {
    const { alice } = await pair();
    const mine = await alice.encrypt(CONV, text("mine"));
    await alice.sent(CONV, 2n, text("mine"));
    expect(await alice.receive(entry(2n, "alice", mine))).toEqual({ kind: "skipped" });
    expect((await alice.decrypted(CONV)).map((d) => [d.seq, d.sender, d.content.text])).toEqual([[2n, "alice", "mine"]]);
  });

  it("reopens from its store where it was, and is one user's only", async () => {
    const { alice, bobKv } = await pair();
    const m = await alice.encrypt(CONV, text("before reopening"));
    const bob = await MlsDevice.open(bobKv, "bob");
    expect(bob.deviceId).toBe("web-b");
    const r = await bob.receive(entry(2n, "alice", m));
    expect(r.kind === "text" && r.content.text).toBe("before reopening");
    await expect(MlsDevice.open(bobKv, "mallory")).rejects.toThrow(/holds the device of bob/);
  });

  it("a removed device reads nothing sent after its removal", async () => {
    const { alice, bob } = await pair();
    const removal = (await alice.prepare(CONV, { remove: "bob" }))!;
    expect(removal).toBeDefined();
    await alice.confirm(CONV, 2n, removal);
    expect(await bob.receive(entry(2n, "alice", removal.ciphertext))).toMatchObject({ kind: "committed", removed: true });
    expect(await bob.epoch(CONV)).toBeUndefined();
    const secret = await alice.encrypt(CONV, text("after bob left"));
    expect(await bob.receive(entry(3n, "alice", secret))).toEqual({ kind: "skipped" });
    await expect(bob.encrypt(CONV, text("x"))).rejects.toThrow(/not in the group/);
  });

  it("reads a message of the old epoch that was sequenced before its own commit", async () => {
    const { alice, bob } = await pair();
    // bob writes in epoch 1 (stored at seq 2) while alice's update commit is made and stored at seq 3.
    const early = await bob.encrypt(CONV, text("sent while you committed"));
    const update = (await alice.prepare(CONV, { update: true }))!;
    await alice.confirm(CONV, 3n, update);
    expect(await alice.epoch(CONV)).toBe(2n);
    const r = await alice.receive(entry(2n, "bob", early));
    expect(r.kind === "text" && r.content.text).toBe("sent while you committed");
    expect(await alice.receive(entry(3n, "alice", update.ciphertext))).toEqual({ kind: "skipped" });
    expect(await bob.receive(entry(2n, "bob", early))).toEqual({ kind: "skipped" });
    expect(await bob.receive(entry(3n, "alice", update.ciphertext))).toMatchObject({ kind: "committed", epoch: 2n, removed: false });
    const after = await alice.encrypt(CONV, text("epoch 2"));
    const r4 = await bob.receive(entry(4n, "alice", after));
    expect(r4.kind === "text" && r4.content.text).toBe("epoch 2");
  });

  it("takes its own commit back after a reload that lost the server's answer", async () => {
    const { alice, bob, aliceKv } = await pair();
    // alice commits; the page goes away before the answer; the outbox sends the commit again after the reload.
    const update = (await alice.prepare(CONV, { update: true }))!;
    const reloaded = await MlsDevice.open(aliceKv, "alice");
    expect(await reloaded.epoch(CONV)).toBe(1n);
    expect(await reloaded.receive(entry(2n, "alice", update.ciphertext))).toEqual({ kind: "committed", epoch: 2n, removed: false });
    expect(await bob.receive(entry(2n, "alice", update.ciphertext))).toMatchObject({ kind: "committed", epoch: 2n });
    const m = await reloaded.encrypt(CONV, text("after the reload"));
    const r = await bob.receive(entry(3n, "alice", m));
    expect(r.kind === "text" && r.content.text).toBe("after the reload");
    // Refused (stale), a kept commit is dropped: its echo would not be taken.
    const other = (await reloaded.prepare(CONV, { update: true }))!;
    await reloaded.discard(CONV);
    expect(await reloaded.receive(entry(4n, "alice", other.ciphertext))).toEqual({ kind: "skipped" });
    expect(await reloaded.epoch(CONV)).toBe(2n);
  });

  it("refuses a KeyPackage that names someone else than it was claimed for", async () => {
    const alice = await MlsDevice.open(new MemoryKeyValue(), "alice", "web-a");
    const eve = await MlsDevice.open(new MemoryKeyValue(), "eve", "web-e");
    await alice.startGroup(CONV);
    const c = await claimed(eve);
    c.keyPackages[0]!.userId = "bob";
    await expect(alice.prepare(CONV, { add: c })).rejects.toThrow(/claimed for bob\/web-e names eve\/web-e/);
    await expect(MlsDevice.open(new MemoryKeyValue(), "x", "bad id!")).rejects.toThrow(/bad device id/);
  });
});
