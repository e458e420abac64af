// Sends, edits, deletes and reactions waiting for their stored-ack, kept
// across reconnects and re-sent in their original order with the same
// client_msg_id (the server answers a copy as the first).

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
