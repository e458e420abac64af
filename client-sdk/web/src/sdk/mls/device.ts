// One MLS device (RFC 9420, ts-mls) of one user in the browser, the
// counterpart of the Rust SDK's `chat_client::mls::Device` and
// interoperable with it: ciphersuite MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
// one group per E2E conversation (group id `chatd/conversation/<id, 8 bytes
// BE>`), a leaf per device with the basic credential `user/device`, the
// ratchet tree in the Welcome. This file owns the device's keys, its
// KeyPackages' private parts, its groups and what it decrypted (all in a
// `KeyValue` store: IndexedDB in the browser), and the MLS operations that
// touch no network: make a commit, keep it until the server stored it,
// encrypt, and apply the conversation's entries in seq order. `e2e.ts` sends
// what these make.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type CiphersuiteImpl,
  type ClientState,
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeGroupState,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  type KeyPackage,
  type PrivateKeyPackage,
  type Proposal,
  processPrivateMessage,
  zeroOutUint8Array,
} from "ts-mls";
import { defaultClientConfig } from "ts-mls/clientConfig.js";
import { decodeKeyPackage, encodeKeyPackage, makeKeyPackageRef } from "ts-mls/keyPackage.js";
import { MlsError } from "ts-mls/mlsError.js";
import { decryptSenderData } from "ts-mls/privateMessage.js";
import { type ClaimedKeyPackages, type E2eCiphertext, E2eCiphertextSchema, type E2eContent, E2eContentSchema, type Message } from "../../gen/chat/v1/chat_pb.js";
import { b64, fromB64, fromJson, hex, leaves, safetyNumber, toJson } from "./encoding.js";
import type { KeyValue } from "./store.js";

/** The ciphersuite of every E2E group (the Rust SDK's `CIPHERSUITE`). */
export const CIPHERSUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

/** What one stored entry of an E2E conversation was to this device. */
export type Received =
  | { kind: "text"; seq: bigint; sender: string; device: string; content: E2eContent }
  | { kind: "joined"; seq: bigint }
  | { kind: "committed"; epoch: bigint; removed: boolean }
  | { kind: "skipped" }
  | { kind: "refused"; seq: bigint; why: string };

/** A message this device decrypted (or sent), as kept. */
export interface Decrypted {
  seq: bigint;
  sender: string;
  device: string;
  content: E2eContent;
}

/** A change to a group's members or keys. */
export type Change = { add: ClaimedKeyPackages } | { remove: string } | { update: true };

/** A commit made and not yet stored: the ciphertext to send and the group after it. */
export interface Pending {
  ciphertext: E2eCiphertext;
  next: ClientState;
}

/** The refusal of something another member sent (not this device's fault). */
export class MlsRefusal extends Error {}

/** A device-id: 1-64 of `[A-Za-z0-9_-]` (the server's rule). */
export function validDeviceId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,64}$/.test(id);
}

/** The MLS group id of a conversation. */
export function groupId(conv: bigint): Uint8Array {
  const prefix = new TextEncoder().encode("chatd/conversation/");
  const out = new Uint8Array(prefix.length + 8);
  out.set(prefix);
  new DataView(out.buffer).setBigUint64(prefix.length, conv);
  return out;
}

interface Group {
  state: ClientState;
  /** The highest seq applied. */
  applied: bigint;
}

const seqKey = (conv: bigint, seq: bigint) => `text/${conv}/${seq.toString().padStart(20, "0")}`;

/** One device's MLS state. Its calls are serialized: one at a time. */
export class MlsDevice {
  private readonly groups = new Map<bigint, Group>();
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly user: string,
    readonly deviceId: string,
    private readonly kv: KeyValue,
    private readonly cs: CiphersuiteImpl,
    private readonly sign: { signKey: Uint8Array; publicKey: Uint8Array },
    /** When the device was made (ms since the epoch; 0: not recorded): no Welcome for it is older. */
    readonly createdMs: number,
  ) {}

  /** The device kept in `kv` (made there, called `deviceId` or `web-<random>`, if none is). */
  static async open(kv: KeyValue, user: string, deviceId?: string): Promise<MlsDevice> {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName(CIPHERSUITE));
    const saved = await kv.get("device");
    if (saved) {
      const d = fromJson(saved);
      if (d.user !== user) throw new Error(`this store holds the device of ${d.user}, not ${user}`);
      return new MlsDevice(d.user, d.device, kv, cs, { signKey: fromB64(d.signKey), publicKey: fromB64(d.publicKey) }, d.created ?? 0);
    }
    const id = deviceId ?? `web-${hex(crypto.getRandomValues(new Uint8Array(6)))}`;
    if (!validDeviceId(id)) throw new Error(`bad device id ${JSON.stringify(id)}`);
    const sign = await cs.signature.keygen();
    const created = Date.now();
    const record = { user, device: id, signKey: b64(sign.signKey), publicKey: b64(sign.publicKey), created };
    await kv.write([["device", toJson(record)]]);
    return new MlsDevice(user, id, kv, cs, sign, created);
  }

  /** Runs `f` after every call before it (the device's state is one at a time). */
  serialized<T>(f: () => Promise<T>): Promise<T> {
    const run = this.chain.then(f, f);
    this.chain = run.catch(() => {});
    return run;
  }

  private identity(): Uint8Array {
    return new TextEncoder().encode(`${this.user}/${this.deviceId}`);
  }

  private async keyPackage(): Promise<{ publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
    const cred = { credentialType: "basic" as const, identity: this.identity() };
    return generateKeyPackageWithKey(cred, defaultCapabilities(), defaultLifetime, [], this.sign, this.cs);
  }

  /** `n` new KeyPackages (their private parts kept until used), serialized to publish. */
  async newKeyPackages(n: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    const puts: [string, Uint8Array][] = [];
    for (let i = 0; i < n; i++) {
      const kp = await this.keyPackage();
      const bytes = encodeKeyPackage(kp.publicPackage);
      const ref = await makeKeyPackageRef(kp.publicPackage, this.cs.hash);
      const priv = Object.fromEntries(Object.entries(kp.privatePackage).map(([k, v]) => [k, b64(v as Uint8Array)]));
      puts.push([`kp/${hex(ref)}`, toJson({ pub: b64(bytes), priv })]);
      out.push(bytes);
    }
    await this.kv.write(puts);
    return out;
  }

  private async group(conv: bigint): Promise<Group | undefined> {
    let g = this.groups.get(conv);
    if (!g) {
      const saved = await this.kv.get(`group/${conv}`);
      if (!saved) return undefined;
      const r = fromJson(saved);
      const decoded = decodeGroupState(fromB64(r.state), 0);
      if (!decoded) throw new Error(`the saved group of conversation ${conv} does not decode`);
      g = { state: { ...decoded[0], clientConfig: defaultClientConfig }, applied: BigInt(r.applied) };
      this.groups.set(conv, g);
    }
    return g;
  }

  private async active(conv: bigint): Promise<Group> {
    const g = await this.group(conv);
    if (!g || g.state.groupActiveState.kind !== "active") throw new Error(`this device is not in the group of conversation ${conv}`);
    return g;
  }

  /** Keeps `g` as the group of `conv` (with `extra` written in the same transaction). */
  private async save(conv: bigint, g: Group, extra: [string, Uint8Array][] = [], deletes: string[] = []): Promise<void> {
    const record = { applied: g.applied.toString(), state: b64(encodeGroupState(g.state)) };
    await this.kv.write([[`group/${conv}`, toJson(record)], ...extra], deletes);
    this.groups.set(conv, g);
  }

  /** The group's epoch in `conv` (undefined: not in it). */
  async epoch(conv: bigint): Promise<bigint | undefined> {
    const g = await this.group(conv);
    return g?.state.groupActiveState.kind === "active" ? g.state.groupContext.epoch : undefined;
  }

  /** The highest seq of `conv` this device applied, or read while in no group there (0n: none). */
  async applied(conv: bigint): Promise<bigint> {
    const g = await this.group(conv);
    if (g) return g.applied;
    const read = await this.kv.get(`read/${conv}`);
    return read ? BigInt(fromJson(read)) : 0n;
  }

  /** Everything of `conv` up to `seq` was read (entries that are no MLS message move nothing else). */
  async passed(conv: bigint, seq: bigint): Promise<void> {
    const g = await this.group(conv);
    if (g && seq > g.applied) await this.save(conv, { ...g, applied: seq });
    else if (!g && seq > (await this.applied(conv))) await this.kv.write([[`read/${conv}`, toJson(seq.toString())]]);
  }

  /** Makes the group of `conv` with this device alone (epoch 0), unless it has one. */
  async startGroup(conv: bigint): Promise<void> {
    if (await this.group(conv)) return;
    const kp = await this.keyPackage();
    const state = await createGroup(groupId(conv), kp.publicPackage, kp.privatePackage, [], this.cs);
    await this.save(conv, { state, applied: 0n });
  }

  /** The users and devices of the group of `conv`, by leaf. */
  async members(conv: bigint): Promise<{ user: string; device: string }[]> {
    return leaves((await this.active(conv)).state.ratchetTree).map(({ user, device }) => ({ user, device }));
  }

  /** The safety number of each device in the group: the same on every member's screen (the Rust SDK's formula). */
  async safetyNumbers(conv: bigint): Promise<{ user: string; device: string; number: string }[]> {
    const out = [];
    for (const l of leaves((await this.active(conv)).state.ratchetTree)) {
      out.push({ user: l.user, device: l.device, number: await safetyNumber(`${l.user}/${l.device}`, l.signatureKey) });
    }
    return out;
  }

  /**
   * The claimed KeyPackages, each checked to name the user and device it was
   * claimed for (this device's own, and devices the group has already, left
   * out: another member may have added them first).
   */
  private acceptClaimed(g: Group, claimed: ClaimedKeyPackages): KeyPackage[] {
    const have = new Set(leaves(g.state.ratchetTree).map((l) => `${l.user}/${l.device}`));
    const out: KeyPackage[] = [];
    for (const c of claimed.keyPackages) {
      const kp = decodeKeyPackage(c.keyPackage, 0)?.[0];
      if (!kp) throw new MlsRefusal(`the KeyPackage claimed for ${c.userId}/${c.deviceId} does not decode`);
      const cred = kp.leafNode.credential;
      const named = cred.credentialType === "basic" ? new TextDecoder().decode(cred.identity) : "";
      if (named !== `${c.userId}/${c.deviceId}`) throw new MlsRefusal(`a KeyPackage claimed for ${c.userId}/${c.deviceId} names ${named}`);
      const mine = c.userId === this.user && c.deviceId === this.deviceId;
      if (!mine && !have.has(named)) out.push(kp);
    }
    return out;
  }

  /**
   * Makes the commit of `change` for the group's epoch (undefined: nothing
   * to commit); the group moves only at `confirm`. The commit and the group
   * after it are kept in the store until then (`pending/<conv>`): if the
   * page goes away before the server's answer and the outbox sends the
   * commit again after a reload, the device takes the kept group when it
   * reads its own commit back.
   */
  async prepare(conv: bigint, change: Change): Promise<Pending | undefined> {
    const g = await this.active(conv);
    let proposals: Proposal[] = [];
    if ("add" in change) {
      proposals = this.acceptClaimed(g, change.add).map((keyPackage) => ({ proposalType: "add", add: { keyPackage } }));
      if (proposals.length === 0) return undefined;
    } else if ("remove" in change) {
      proposals = leaves(g.state.ratchetTree)
        .filter((l) => l.user === change.remove)
        .map((l) => ({ proposalType: "remove", remove: { removed: l.leafIndex } }));
      if (proposals.length === 0) return undefined;
    }
    const epoch = g.state.groupContext.epoch;
    const made = await createCommit({ state: g.state, cipherSuite: this.cs }, { extraProposals: proposals, ratchetTreeExtension: true });
    made.consumed.forEach(zeroOutUint8Array);
    const welcome = made.welcome ? encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: made.welcome }) : new Uint8Array();
    const ciphertext = create(E2eCiphertextSchema, { epoch, mls: encodeMlsMessage(made.commit), commit: true, welcome });
    const kept = { mls: b64(ciphertext.mls), next: b64(encodeGroupState(made.newState)) };
    await this.kv.write([[`pending/${conv}`, toJson(kept)]]);
    return { ciphertext, next: made.newState };
  }

  /** The pending commit was refused: the group stays where it was. */
  async discard(conv: bigint): Promise<void> {
    await this.kv.write([], [`pending/${conv}`]);
  }

  /** The group after this device's own commit `mls`, if it made it and kept it (undefined: not kept). */
  private async keptCommit(conv: bigint, mls: Uint8Array): Promise<ClientState | undefined> {
    const saved = await this.kv.get(`pending/${conv}`);
    if (!saved) return undefined;
    const r = fromJson(saved);
    if (r.mls !== b64(mls)) return undefined;
    const decoded = decodeGroupState(fromB64(r.next), 0);
    return decoded ? { ...decoded[0], clientConfig: defaultClientConfig } : undefined;
  }

  /**
   * The pending commit was stored at `seq`: the group moves to the next epoch. What
   * was applied stays where it was: messages of the old epoch sequenced
   * before the commit may still be on their way, and decrypt with the
   * epoch's kept secrets; the commit itself is skipped when read back.
   */
  async confirm(conv: bigint, seq: bigint, pending: Pending): Promise<void> {
    const g = await this.active(conv);
    // A group's first commit marks it and what came before as read (nobody else could write in the group before it).
    const first = g.state.groupContext.epoch === 0n;
    await this.save(conv, { state: pending.next, applied: first && seq > g.applied ? seq : g.applied }, [], [`pending/${conv}`]);
  }

  /** Encrypts `content` for the group in its current epoch (the sending key is used up: the state moves). */
  async encrypt(conv: bigint, content: E2eContent): Promise<E2eCiphertext> {
    const g = await this.active(conv);
    const epoch = g.state.groupContext.epoch;
    const made = await createApplicationMessage(g.state, toBinary(E2eContentSchema, content), this.cs);
    made.consumed.forEach(zeroOutUint8Array);
    await this.save(conv, { ...g, state: made.newState });
    const mls = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: made.privateMessage });
    return create(E2eCiphertextSchema, { epoch, mls });
  }

  /** Keeps what this device sent at `seq`, to show it (its own messages cannot be decrypted again). */
  async sent(conv: bigint, seq: bigint, content: E2eContent): Promise<void> {
    await this.kv.write([[seqKey(conv, seq), encodeDecrypted({ seq, sender: this.user, device: this.deviceId, content })]]);
  }

  /** What this device decrypted or sent in `conv`, by seq. */
  async decrypted(conv: bigint): Promise<Decrypted[]> {
    const out: Decrypted[] = [];
    for (const k of await this.kv.keys(`text/${conv}/`)) {
      const v = await this.kv.get(k);
      if (v) out.push(decodeDecrypted(v));
    }
    return out;
  }

  /**
   * Applies one stored entry of an E2E conversation, in seq order: joins
   * from a Welcome meant for this device, applies others' commits, decrypts
   * messages (and keeps them). An entry already applied is skipped; one
   * that cannot be applied is "refused" and passed over, so another
   * member's garbage cannot wedge this device.
   */
  async receive(m: Message): Promise<Received> {
    const body = m.body?.content;
    if (body?.case !== "ciphertext") return { kind: "skipped" };
    const ct = body.value;
    const conv = m.conversationId;
    const g = await this.group(conv);
    if (g && m.seq <= g.applied) return { kind: "skipped" };
    if (await this.kv.get(seqKey(conv, m.seq))) return { kind: "skipped" };
    try {
      if (!g || g.state.groupActiveState.kind !== "active") {
        if (ct.commit && ct.welcome.length > 0) return await this.join(conv, m.seq, ct.welcome);
        return { kind: "skipped" };
      }
      return await this.apply(conv, g, m, ct);
    } catch (e) {
      if (!isRefusal(e)) throw e;
      // Passed over for good (a group this device is not in has nothing to move).
      const now = this.groups.get(conv);
      if (now) await this.save(conv, { ...now, applied: m.seq });
      return { kind: "refused", seq: m.seq, why: String((e as Error).message ?? e) };
    }
  }

  /** Joins from a Welcome, if it is for one of this device's KeyPackages. */
  private async join(conv: bigint, seq: bigint, welcomeBytes: Uint8Array): Promise<Received> {
    const msg = decodeMlsMessage(welcomeBytes, 0)?.[0];
    if (!msg || msg.wireformat !== "mls_welcome") throw new MlsRefusal("the welcome field holds no Welcome");
    for (const s of msg.welcome.secrets) {
      const key = `kp/${hex(s.newMember)}`;
      const saved = await this.kv.get(key);
      if (!saved) continue;
      const r = fromJson(saved);
      const pub = decodeKeyPackage(fromB64(r.pub), 0)![0];
      const priv = Object.fromEntries(Object.entries(r.priv).map(([k, v]) => [k, fromB64(v as string)])) as unknown as PrivateKeyPackage;
      const state = await joinGroup(msg.welcome, pub, priv, emptyPskIndex, this.cs);
      // The KeyPackage is used: its private part goes.
      await this.save(conv, { state, applied: seq }, [], [key]);
      return { kind: "joined", seq };
    }
    return { kind: "skipped" };
  }

  /** Applies a commit or decrypts a message of a group this device is in. */
  private async apply(conv: bigint, g: Group, m: Message, ct: E2eCiphertext): Promise<Received> {
    const epoch = g.state.groupContext.epoch;
    const skip = async (): Promise<Received> => {
      await this.save(conv, { ...g, applied: m.seq });
      return { kind: "skipped" };
    };
    // A commit made before this device's group got here: its own, or from before it joined.
    if (ct.commit && ct.epoch < epoch) return skip();
    const msg = decodeMlsMessage(ct.mls, 0)?.[0];
    if (!msg || msg.wireformat !== "mls_private_message") throw new MlsRefusal("not an MLS private message");
    const pm = msg.privateMessage;
    if (pm.epoch > epoch) throw new MlsRefusal(`a message of epoch ${pm.epoch} in epoch ${epoch}`);
    // A message of an earlier epoch (sequenced before a commit this device
    // made or applied) opens with that epoch's kept secrets; from before
    // this device joined, or too old, it is skipped.
    const at = pm.epoch === epoch ? { senderDataSecret: g.state.keySchedule.senderDataSecret, ratchetTree: g.state.ratchetTree } : g.state.historicalReceiverData.get(pm.epoch);
    if (!at) return skip();
    const senderData = await decryptSenderData(pm, at.senderDataSecret, this.cs);
    const leaf = leaves(at.ratchetTree).find((l) => l.leafIndex === senderData?.leafIndex);
    if (!leaf) throw new MlsRefusal("a sender that is no leaf of the group");
    if (leaf.user === this.user && leaf.device === this.deviceId) {
      // This device's own commit, stored while the page was away: the group it kept.
      const kept = ct.commit ? await this.keptCommit(conv, ct.mls) : undefined;
      if (kept) {
        await this.save(conv, { state: kept, applied: m.seq }, [], [`pending/${conv}`]);
        return { kind: "committed", epoch: kept.groupContext.epoch, removed: false };
      }
      // Its own message, read back: it knows it.
      return skip();
    }
    if (leaf.user !== m.senderId) throw new MlsRefusal(`MLS sender ${leaf.user} in a message the server says ${m.senderId} sent`);
    const r = await processPrivateMessage(g.state, pm, emptyPskIndex, this.cs);
    r.consumed.forEach(zeroOutUint8Array);
    if (r.kind === "applicationMessage") {
      let content: E2eContent;
      try {
        content = fromBinary(E2eContentSchema, r.message);
      } catch {
        throw new MlsRefusal("the decrypted content does not decode");
      }
      const d: Decrypted = { seq: m.seq, sender: leaf.user, device: leaf.device, content };
      await this.save(conv, { state: r.newState, applied: m.seq }, [[seqKey(conv, m.seq), encodeDecrypted(d)]]);
      return { kind: "text", ...d };
    }
    await this.save(conv, { state: r.newState, applied: m.seq });
    const removed = r.newState.groupActiveState.kind !== "active";
    return { kind: "committed", epoch: r.newState.groupContext.epoch, removed };
  }
}

/** An entry that cannot be applied: ts-mls refused it, WebCrypto could not open it, or its content does not decode. */
function isRefusal(e: unknown): boolean {
  return e instanceof MlsRefusal || e instanceof MlsError || (e instanceof DOMException && e.name === "OperationError");
}

function encodeDecrypted(d: Decrypted): Uint8Array {
  const r = { seq: d.seq.toString(), sender: d.sender, device: d.device, content: b64(toBinary(E2eContentSchema, d.content)) };
  return toJson(r);
}

function decodeDecrypted(v: Uint8Array): Decrypted {
  const r = fromJson(v);
  return { seq: BigInt(r.seq), sender: r.sender, device: r.device, content: fromBinary(E2eContentSchema, fromB64(r.content)) };
}
