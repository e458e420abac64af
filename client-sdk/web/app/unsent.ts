// Messages written here and not yet stored by the server. Each is kept in
// the outbox store (IndexedDB in a browser) from the moment it is written
// until the server stores it or its writer discards it, so a reload or a
// closed tab loses nothing; it is sent with its original client_msg_id (the
// server stores a repeat once). A refused send shows its reason with Retry
// and Discard, and a send refused by a limit that said when to come back
// (`retry_after`) tries again by itself then.

import {
  ClientError,
  IndexedDbOutboxStore,
  MemoryOutboxStore,
  type OutboxStore,
  type StoredSend,
} from "../src/sdk/index.js";
import { describeError } from "./format.js";
import { changed, type ConvView, key, type Pending, store } from "./state.js";

/** Where unsent messages are kept: IndexedDB where the browser has it. */
export const outboxStore: OutboxStore = typeof indexedDB !== "undefined" ? new IndexedDbOutboxStore() : new MemoryOutboxStore();

/** The soonest and latest an automatic retry waits, ms. */
const AUTO_RETRY_MIN_MS = 250;
const AUTO_RETRY_MAX_MS = 10 * 60_000;

/** How long to wait before sending a refused message again by itself; `undefined`: only on Retry. */
export function autoRetryMs(e: unknown): number | undefined {
  const after = e instanceof ClientError ? e.wire?.retryAfterMs : undefined;
  if (after === undefined || !(after > 0)) return undefined;
  return Math.min(AUTO_RETRY_MAX_MS, Math.max(AUTO_RETRY_MIN_MS, after));
}

/** The record kept for `p`. */
export function storedOf(p: Pending, user: string): StoredSend {
  return {
    clientMsgId: p.clientMsgId,
    user,
    conversationId: p.conversationId.toString(),
    text: p.text,
    ...(p.replyTo !== undefined ? { replyTo: p.replyTo.toString() } : {}),
    attachmentIds: p.attachmentIds,
    createdAtMs: p.createdAtMs,
  };
}

/** The pending line of a kept record. */
export function pendingOf(s: StoredSend): Pending {
  return {
    clientMsgId: s.clientMsgId,
    conversationId: BigInt(s.conversationId),
    text: s.text,
    ...(s.replyTo !== undefined ? { replyTo: BigInt(s.replyTo) } : {}),
    attachmentIds: s.attachmentIds,
    createdAtMs: s.createdAtMs,
  };
}

/** Saves of records not finished yet, by client_msg_id (a removal waits for its save). */
const saving = new Map<string, Promise<void>>();

function keep(p: Pending): void {
  const user = store.me?.id;
  if (!user) return;
  const saved = outboxStore.put(storedOf(p, user)).catch((e: unknown) => {
    store.banner = `This message is not kept across a reload: ${describeError(e)}`;
    changed();
  });
  saving.set(p.clientMsgId, saved);
  void saved.finally(() => {
    if (saving.get(p.clientMsgId) === saved) saving.delete(p.clientMsgId);
  });
}

function forget(clientMsgId: string): void {
  void (saving.get(clientMsgId) ?? Promise.resolve()).then(() => outboxStore.remove(clientMsgId)).catch(() => {});
}

function clearTimer(p: Pending): void {
  if (p.retryTimer) clearTimeout(p.retryTimer);
  p.retryTimer = undefined;
  p.retryAt = undefined;
}

/** Sends `p` (again); its line goes when the SDK surfaces the stored message. */
function dispatch(v: ConvView | undefined, p: Pending): void {
  const c = store.client;
  if (!c) return;
  clearTimer(p);
  p.error = undefined;
  const reply = p.replyTo !== undefined ? { replyTo: p.replyTo } : {};
  c.send({ conversationId: p.conversationId, clientMsgId: p.clientMsgId, text: p.text, attachmentIds: p.attachmentIds, ...reply }).then(
    () => {
      forget(p.clientMsgId);
      // A repeat of a message stored before a reload surfaces nothing new: its line goes here.
      if (v) v.pending = v.pending.filter((x) => x !== p);
      changed();
    },
    (e: unknown) => {
      if (v && !v.pending.includes(p)) return; // discarded meanwhile
      p.error = describeError(e);
      const wait = autoRetryMs(e);
      if (wait !== undefined) {
        p.retryAt = Date.now() + wait;
        p.retryTimer = setTimeout(() => dispatch(v, p), wait);
      }
      changed();
    },
  );
}

/** A new message of `v`: kept, then sent. */
export function queueSend(v: ConvView, p: Pending): void {
  v.pending.push(p);
  keep(p);
  dispatch(v, p);
}

/** The user's Retry on a refused message. */
export function retrySend(v: ConvView, p: Pending): void {
  dispatch(v, p);
  changed();
}

/** The user's Discard on a refused message: gone from the screen and the store. */
export function discardSend(v: ConvView, p: Pending): void {
  clearTimer(p);
  v.pending = v.pending.filter((x) => x !== p);
  forget(p.clientMsgId);
  changed();
}

/** After signing in (conversations loaded): shows and sends what this user left unsent, oldest first. */
export async function restoreUnsent(): Promise<void> {
  const user = store.me?.id;
  if (!user || !store.client) return;
  let kept: StoredSend[];
  try {
    kept = await outboxStore.load(user);
  } catch (e) {
    store.banner = `Could not read the unsent messages: ${describeError(e)}`;
    changed();
    return;
  }
  for (const s of kept) {
    const p = pendingOf(s);
    const v = store.convs.get(key(p.conversationId));
    if (v?.pending.some((x) => x.clientMsgId === p.clientMsgId)) continue;
    const stored = v && [...v.messages.values()].some((m) => m.clientMsgId === p.clientMsgId);
    if (stored) {
      forget(p.clientMsgId);
      continue;
    }
    v?.pending.push(p);
    dispatch(v, p);
  }
  changed();
}
