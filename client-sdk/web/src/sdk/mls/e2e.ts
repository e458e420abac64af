// End-to-end encrypted conversations over a connected Client, with one
// `MlsDevice`: the KeyPackage directory (publish, count, claim, replenish),
// creating an E2E conversation and its group, adding and removing members,
// adding members' new devices, sending, and catching up. Each makes its MLS
// part with the device and sends it; when the server answers `STALE_EPOCH`
// (another member's commit was sequenced first) it applies what it missed and
// makes it again, as the Rust SDK's `Device` does.

import { create } from "@bufbuild/protobuf";
import {
  ClaimKeyPackagesSchema,
  type ClaimedKeyPackages,
  ClaimedKeyPackagesSchema,
  ConversationKind,
  CountKeyPackagesSchema,
  type E2eCiphertext,
  type E2eContent,
  E2eContentSchema,
  type E2eFile,
  type Message,
  ErrorCode,
  MessageBodySchema,
  PublishKeyPackagesSchema,
  type SendMessageOk,
  SendMessageSchema,
} from "../../gen/chat/v1/chat_pb.js";
import { Attachments } from "../attachments.js";
import type { Client } from "../client.js";
import { ClientError } from "../errors.js";
import { type Change, type MlsDevice, type Received } from "./device.js";
import { E2E_MEDIA_TYPE, NEUTRAL_NAME, openFile, sealFile } from "./files.js";

/** Times a message or commit is made again after `STALE_EPOCH`. */
const REBASES = 5;
/** History read per page when catching up. */
const PAGE = 200;
/** How far the server's clock may be ahead of this device's, ms. */
const CLOCK_SLACK_MS = 24 * 3600_000;
/** Users named per KeyPackage claim (the server's cap). */
const CLAIM_USERS = 50;

const isCode = (e: unknown, code: ErrorCode) => e instanceof ClientError && e.wire?.code === code;

/** The E2E calls of one client and its device. */
export class E2e {
  constructor(
    readonly client: Client,
    readonly device: MlsDevice,
  ) {}

  /** How many KeyPackages this device holds in the directory. */
  async countKeyPackages(): Promise<number> {
    const r = await this.client.request({ case: "countKeyPackages", value: create(CountKeyPackagesSchema, { deviceId: this.device.deviceId }) });
    if (r.case !== "keyPackageCount") throw new ClientError("protocol", "reply is not a key_package_count");
    return r.value.available;
  }

  /** Publishes KeyPackages until this device holds `target`; returns how many it holds. */
  replenish(target = 20): Promise<number> {
    return this.device.serialized(async () => {
      const held = await this.countKeyPackages();
      if (held >= target) return held;
      const keyPackages = await this.device.newKeyPackages(target - held);
      const r = await this.client.request({
        case: "publishKeyPackages",
        value: create(PublishKeyPackagesSchema, { deviceId: this.device.deviceId, keyPackages }),
      });
      if (r.case !== "keyPackageCount") throw new ClientError("protocol", "reply is not a key_package_count");
      return r.value.available;
    });
  }

  /** Claims one KeyPackage of each device of `userIds` (each handed out once), but of `skipDevices` ("user/device"). */
  async claim(userIds: string[], skipDevices: string[] = []): Promise<ClaimedKeyPackages> {
    const r = await this.client.request({ case: "claimKeyPackages", value: create(ClaimKeyPackagesSchema, { userIds, skipDevices }) });
    if (r.case !== "keyPackages") throw new ClientError("protocol", "reply is not key_packages");
    return r.value;
  }

  /** Creates an E2E conversation with `members` and its group, and adds their devices (and this user's others). */
  createConversation(kind: ConversationKind, opts: { title?: string; caseId?: string; members: string[] }): Promise<bigint> {
    return this.device.serialized(async () => {
      const ok = await this.client.createConversation(kind, { ...opts, e2e: true });
      const conv = ok.summary?.conversation?.id;
      if (conv === undefined) throw new ClientError("protocol", "no conversation in the reply");
      await this.device.startGroup(conv);
      await this.addDevices(conv, [...opts.members, this.device.user]);
      return conv;
    });
  }

  /** Adds `userIds` to the conversation (on the server, then every device of theirs to the group). */
  addMembers(conv: bigint, userIds: string[]): Promise<void> {
    return this.device.serialized(async () => {
      await this.client.addMembers(conv, userIds);
      await this.addDevices(conv, userIds);
    });
  }

  /** What a claim took; none when no device of theirs has one ready (`NO_KEY_PACKAGES`). */
  private async claimReady(userIds: string[], skipDevices: string[] = []): Promise<ClaimedKeyPackages["keyPackages"]> {
    try {
      return (await this.claim(userIds, skipDevices)).keyPackages;
    } catch (e) {
      if (isCode(e, ErrorCode.NO_KEY_PACKAGES)) return [];
      throw e;
    }
  }

  /** Claims a KeyPackage of each device of `userIds` and commits them into the group (nothing if none is ready). */
  private async addDevices(conv: bigint, userIds: string[]): Promise<void> {
    const keyPackages = await this.claimReady(userIds);
    if (keyPackages.length > 0) await this.commit(conv, { add: create(ClaimedKeyPackagesSchema, { keyPackages }) });
  }

  /**
   * Adds the devices of the conversation's members that are not in the
   * group yet (a member's new device, or one that had no KeyPackage when its
   * user was added); returns how many. The claim skips the devices the
   * group has, so it takes nothing of theirs.
   */
  addNewDevices(conv: bigint): Promise<number> {
    return this.device.serialized(async () => {
      const roster = (await this.client.getMembers(conv)).members.map((m) => m.userId);
      const leaves = await this.device.members(conv);
      const fresh = create(ClaimedKeyPackagesSchema);
      for (let i = 0; i < roster.length; i += CLAIM_USERS) {
        const users = roster.slice(i, i + CLAIM_USERS);
        const skip = leaves.filter((l) => users.includes(l.user)).map((l) => `${l.user}/${l.device}`);
        fresh.keyPackages.push(...(await this.claimReady(users, skip)));
      }
      if (fresh.keyPackages.length > 0) await this.commit(conv, { add: fresh });
      return fresh.keyPackages.length;
    });
  }

  /** Removes `userId` from the conversation (on the server) and every device of theirs from the group. */
  removeMember(conv: bigint, userId: string): Promise<void> {
    return this.device.serialized(async () => {
      await this.client.removeMember(conv, userId);
      await this.commit(conv, { remove: userId });
    });
  }

  /** Renews this device's leaf keys (post-compromise security). */
  update(conv: bigint): Promise<void> {
    return this.device.serialized(() => this.commit(conv, { update: true }));
  }

  private sendCiphertext(conv: bigint, ciphertext: E2eCiphertext, attachmentIds: string[] = []): Promise<SendMessageOk> {
    const body = create(MessageBodySchema, { content: { case: "ciphertext", value: ciphertext } });
    return this.client.sendRaw(create(SendMessageSchema, { conversationId: conv, body, attachmentIds }));
  }

  /** Runs `attempt` (made for the group's epoch and sent); after `STALE_EPOCH` applies what it missed and runs it again. */
  private async rebasing<T>(conv: bigint, attempt: () => Promise<T>): Promise<T> {
    for (let i = 0; i < REBASES; i++) {
      try {
        return await attempt();
      } catch (e) {
        if (!isCode(e, ErrorCode.STALE_EPOCH)) throw e;
        await this.catchUpLocked(conv);
      }
    }
    throw new ClientError("protocol", `conversation ${conv}: still stale after ${REBASES} tries`);
  }

  /** Sends the commit of `change` for the group's epoch and moves the group once stored; rebases after `STALE_EPOCH`. */
  private commit(conv: bigint, change: Change): Promise<void> {
    return this.rebasing(conv, async () => {
      const pending = await this.device.prepare(conv, change);
      if (!pending) return;
      try {
        const ok = await this.sendCiphertext(conv, pending.ciphertext);
        await this.device.confirm(conv, ok.seq, pending);
      } catch (e) {
        await this.device.discard(conv);
        throw e;
      }
    });
  }

  /** Encrypts `text` for the group and sends it; after `STALE_EPOCH` catches up and encrypts it again. */
  sendText(conv: bigint, text: string): Promise<SendMessageOk> {
    return this.sendContent(conv, create(E2eContentSchema, { text }));
  }

  /** Encrypts `content` (text and file keys) and sends it with its files' attachment ids. */
  sendContent(conv: bigint, content: E2eContent): Promise<SendMessageOk> {
    const ids = content.files.map((f) => f.attachmentId);
    return this.device.serialized(() =>
      this.rebasing(conv, async () => {
        const ok = await this.sendCiphertext(conv, await this.device.encrypt(conv, content), ids);
        await this.device.sent(conv, ok.seq, content);
        return ok;
      }),
    );
  }

  /** Seals each file under its own key and uploads the ciphertexts: the content (`text` and the files' keys) to send. */
  async uploadFiles(conv: bigint, text: string, files: { name: string; mediaType: string; bytes: Uint8Array }[]): Promise<E2eContent> {
    const content = create(E2eContentSchema, { text });
    for (const f of files) {
      const { sealed, file } = await sealFile(f.name, f.mediaType, f.bytes);
      const stored = await new Attachments(this.client).upload(conv, NEUTRAL_NAME, E2E_MEDIA_TYPE, sealed);
      file.attachmentId = stored.attachmentId;
      content.files.push(file);
    }
    return content;
  }

  /** Seals and uploads `files` and sends them with `text` in one encrypted message. */
  async sendFiles(conv: bigint, text: string, files: { name: string; mediaType: string; bytes: Uint8Array }[]): Promise<SendMessageOk> {
    return this.sendContent(conv, await this.uploadFiles(conv, text, files));
  }

  /** Downloads a file of an E2E message and opens it (checked against its SHA-256). */
  async downloadFile(conv: bigint, file: E2eFile): Promise<Uint8Array<ArrayBuffer>> {
    const d = await new Attachments(this.client).download(conv, file.attachmentId);
    return openFile(file, d.bytes);
  }

  /** Applies one entry (in seq order). */
  receive(m: Message): Promise<Received> {
    return this.device.serialized(() => this.device.receive(m));
  }

  /**
   * Applies a live entry from the events stream: when entries before it
   * were not applied yet (this device was offline, or the app started
   * meanwhile), reads them from history first, so none is passed over.
   */
  receiveLive(m: Message): Promise<Received[]> {
    return this.device.serialized(async () => {
      const inGroup = (await this.device.epoch(m.conversationId)) !== undefined;
      if (inGroup && m.seq > (await this.device.applied(m.conversationId)) + 1n) return this.catchUpLocked(m.conversationId);
      return [await this.device.receive(m)];
    });
  }

  /** The entries of `conv` from the last one before `sinceMs` (server time) to the newest, in seq order. */
  private async since(conv: bigint, sinceMs: number): Promise<Message[]> {
    const pages: Message[][] = [];
    let before = 0n;
    for (;;) {
      const page = await this.client.history(conv, { beforeSeq: before, limit: PAGE });
      pages.unshift(page.messages);
      const first = page.messages[0];
      if (!first || !page.hasMore || Number(first.serverTimeMs) < sinceMs) return pages.flat();
      before = first.seq;
    }
  }

  /** Reads the conversation's history past what this device applied and applies it, in order. */
  catchUp(conv: bigint): Promise<Received[]> {
    return this.device.serialized(() => this.catchUpLocked(conv));
  }

  private async catchUpLocked(conv: bigint): Promise<Received[]> {
    const out: Received[] = [];
    let after = await this.device.applied(conv);
    if (after === 0n) {
      // Nothing read here yet: a Welcome for this device is no older than
      // the device, so walk back to then and apply forward from there.
      const back = await this.since(conv, this.device.createdMs - CLOCK_SLACK_MS);
      for (const m of back) out.push(await this.device.receive(m));
      const last = back.at(-1)?.seq;
      if (last === undefined) return out;
      await this.device.passed(conv, last);
      after = last;
    }
    for (;;) {
      const page = await this.client.history(conv, { afterSeq: after, limit: PAGE });
      const last = page.messages.at(-1)?.seq;
      if (last === undefined) return out;
      for (const m of page.messages) out.push(await this.device.receive(m));
      // A page from before this device joined applies nothing: move past it.
      after = last;
      await this.device.passed(conv, last);
    }
  }
}
