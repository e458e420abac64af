// Sends, edits, deletes and reactions waiting for their stored-ack, kept
// across reconnects and re-sent in their original order with the same
// client_msg_id (the server answers a copy as the first); and the stores
// that keep unsent messages between runs of an app (`OutboxStore`: in
// memory by default, IndexedDB in outbox-idb.ts).

import type { Command, SendMessage } from "../gen/chat/v1/chat_pb.js";

/** What the outbox holds: a send or a change, each with a client_msg_id. */
export type Outgoing = Extract<Command["body"], { case: "sendMessage" | "editMessage" | "deleteMessage" | "react" }>;

/** A fresh client message id: 128 random bits in hex. */
export function newClientMsgId(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export interface OutboxEntry<W> {
  /** Local key, stable across reconnects. */
  key: number;
  msg: Outgoing;
  waiter: W;
  /** Request id of the copy written on the current connection, if any. */
  inFlight: bigint | undefined;
}

export class Outbox<W> {
  private entries: OutboxEntry<W>[] = [];
  private nextKey = 1;

  constructor(readonly capacity: number) {
    this.capacity = Math.max(1, capacity);
  }

  /** Queues a send or change (filling an empty client_msg_id); `undefined` when full. */
  push(msg: Outgoing, waiter: W): number | undefined {
    if (this.entries.length >= this.capacity) return undefined;
    if (msg.value.clientMsgId === "") msg.value.clientMsgId = newClientMsgId();
    const key = this.nextKey++;
    this.entries.push({ key, msg, waiter, inFlight: undefined });
    return key;
  }

  /** The sends not yet written on the current connection, oldest first. */
  unsent(): OutboxEntry<W>[] {
    return this.entries.filter((e) => e.inFlight === undefined);
  }

  markSent(key: number, requestId: bigint): void {
    const e = this.entries.find((x) => x.key === key);
    if (e) e.inFlight = requestId;
  }

  /** Removes send `key` (acked or failed). */
  take(key: number): OutboxEntry<W> | undefined {
    const i = this.entries.findIndex((e) => e.key === key);
    if (i < 0) return undefined;
    return this.entries.splice(i, 1)[0];
  }

  /** The connection dropped: every unacked send must go out again. */
  onDisconnect(): void {
    for (const e of this.entries) e.inFlight = undefined;
  }

  drain(): OutboxEntry<W>[] {
    const all = this.entries;
    this.entries = [];
    return all;
  }

  /** Messages waiting for their ack, oldest first (for showing "sending…"); changes are left out. */
  pending(): SendMessage[] {
    return this.entries.flatMap((e) => (e.msg.case === "sendMessage" ? [e.msg.value] : []));
  }

  get length(): number {
    return this.entries.length;
  }
}

/**
 * A message kept until the server stored it or its writer discarded it, so
 * that it outlives a reload; JSON-safe (ids as decimal strings).
 */
export interface StoredSend {
  clientMsgId: string;
  /** The user who wrote it (a browser may be used by several). */
  user: string;
  conversationId: string;
  text: string;
  replyTo?: string;
  attachmentIds: string[];
  createdAtMs: number;
}

/** Most messages an outbox store keeps per user. */
export const STORED_SENDS_MAX = 1024;

/** A store of unsent messages refused a `put` beyond its capacity. */
export class OutboxStoreFull extends Error {
  constructor(readonly capacity: number) {
    super(`at most ${capacity} unsent messages are kept; send or discard some first`);
    this.name = "OutboxStoreFull";
  }
}

/** Where unsent messages are kept between runs of an app. */
export interface OutboxStore {
  /** The messages `user` left unsent, oldest first. */
  load(user: string): Promise<StoredSend[]>;
  /** Keeps `s` (replacing a message with its client_msg_id); rejects with `OutboxStoreFull` past the capacity. */
  put(s: StoredSend): Promise<void>;
  /** Forgets one message (stored by the server, or discarded). */
  remove(clientMsgId: string): Promise<void>;
}

/** Oldest first, ties by client_msg_id (one order for every store). */
export function sortStored(v: StoredSend[]): StoredSend[] {
  return v.sort((a, b) => a.createdAtMs - b.createdAtMs || (a.clientMsgId < b.clientMsgId ? -1 : a.clientMsgId > b.clientMsgId ? 1 : 0));
}

/** The default store: in memory, gone with the page. */
export class MemoryOutboxStore implements OutboxStore {
  private readonly items = new Map<string, StoredSend>();

  constructor(readonly capacity = STORED_SENDS_MAX) {}

  async load(user: string): Promise<StoredSend[]> {
    return sortStored([...this.items.values()].filter((s) => s.user === user).map((s) => ({ ...s })));
  }

  async put(s: StoredSend): Promise<void> {
    if (!this.items.has(s.clientMsgId) && [...this.items.values()].filter((x) => x.user === s.user).length >= this.capacity) {
      throw new OutboxStoreFull(this.capacity);
    }
    this.items.set(s.clientMsgId, { ...s });
  }

  async remove(clientMsgId: string): Promise<void> {
    this.items.delete(clientMsgId);
  }
}
