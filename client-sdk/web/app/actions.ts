// What the app does with the server: loading conversations, members,
// presence, history pages and the support queue; opening a conversation,
// sending, typing, creating conversations and adding members. Each action
// updates the store and calls `changed()`; none touches the DOM.

import { type ConversationKind, newClientMsgId, pb, Templates } from "../src/sdk/index.js";
import { takeReady } from "./attachments.js";
import { addNewDevicesOf, createE2e } from "./e2e-actions.js";
import { describeError, isAdmin } from "./format.js";
import { type ConvView, changed, currentView, key, newView, type Pending, store } from "./state.js";
import { queueSend } from "./unsent.js";

const PAGE = 50;
const TYPING_REFRESH_MS = 2000;
const TYPING_IDLE_MS = 3000;
/** The most text one message holds (the server's limit), bytes of UTF-8. */
export const MAX_TEXT_BYTES = 10 * 1024;

function maxBig(a: bigint | undefined, b: bigint): bigint {
  return a === undefined || b > a ? b : a;
}

/** Raises a member's delivered (or read) watermark; never lowers it. */
export function raiseMark(map: Map<string, bigint>, user: string, seq: bigint): void {
  map.set(user, maxBig(map.get(user), seq));
}

/** Lists the conversations again, with members, presence, the queue and the open conversation's newest page. */
export async function reloadAll(): Promise<void> {
  const c = store.client;
  if (!c) return;
  try {
    const list = await c.listConversations({ limit: 200 });
    const seen = new Set<string>();
    for (const s of list.conversations) {
      if (!s.conversation) continue;
      seen.add(key(s.conversation.id));
      upsertSummary(s, true);
    }
    for (const k of [...store.convs.keys()]) if (!seen.has(k)) store.convs.delete(k);
    await Promise.all([...store.convs.values()].map((v) => loadMembers(v)));
    await refreshPresence();
    if (isAdmin()) await refreshSupportQueue();
    await loadTemplates();
    const v = currentView();
    if (v) {
      await loadNewest(v);
      markReadIfVisible(v);
    }
  } catch (e) {
    store.banner = `Could not load conversations: ${describeError(e)}`;
  }
  changed();
}

/** Stores a conversation summary; `fromList` summaries also carry the unread count. */
export function upsertSummary(s: pb.ConversationSummary, fromList: boolean): ConvView {
  const id = key(s.conversation!.id);
  let v = store.convs.get(id);
  if (!v) {
    v = newView(s);
    store.convs.set(id, v);
  } else {
    const keepLast = v.summary.lastMessage;
    v.summary = s;
    const purged = keepLast !== undefined && keepLast.seq <= s.purgedThrough;
    if (!purged && (!s.lastMessage || (keepLast && keepLast.seq > s.lastMessage.seq))) v.summary.lastMessage = keepLast;
    // The server purged these (retention, or the conversation's erasure): nothing of them stays here.
    v.view.forgetThrough(s.purgedThrough);
    if (fromList) v.unread = s.unreadCount;
  }
  if (s.lastMessage && !store.names.has(s.lastMessage.senderId)) store.names.set(s.lastMessage.senderId, s.lastMessage.senderId);
  return v;
}

/** Loads a conversation's members, their names and receipt watermarks. */
export async function loadMembers(v: ConvView): Promise<void> {
  if (!store.client || !v.summary.conversation) return;
  try {
    const m = await store.client.getMembers(v.summary.conversation.id);
    v.members = m.members;
    for (const x of m.members) {
      store.names.set(x.userId, x.displayName || x.userId);
      raiseMark(v.delivered, x.userId, x.deliveredSeq);
      raiseMark(v.read, x.userId, x.readSeq);
    }
  } catch {
    // Not a member any more, or offline: the list refresh sorts it out.
  }
}

/** Asks who of the people I share conversations with is online. */
export async function refreshPresence(): Promise<void> {
  if (!store.client) return;
  const ids = new Set<string>();
  for (const v of store.convs.values()) for (const m of v.members ?? []) if (m.userId !== store.me?.id) ids.add(m.userId);
  if (ids.size === 0) return;
  try {
    for (const p of await store.client.getPresence([...ids])) store.presence.set(p.userId, p.online);
  } catch {
    // Presence is a nicety.
  }
}

/** The templates this user may use; kept as they were when the server cannot be asked. */
export async function loadTemplates(): Promise<void> {
  if (!store.client) return;
  try {
    store.templates = await new Templates(store.client).list();
  } catch {
    // Templates are a convenience: the composer works without them.
  }
}

/** Staff: the support requests waiting. */
export async function refreshSupportQueue(): Promise<void> {
  if (!store.client) return;
  try {
    const page = await store.client.supportQueue();
    store.supportQueue = page.conversations;
    store.supportQueueMore = page.next !== "";
  } catch {
    store.supportQueue = [];
    store.supportQueueMore = false;
  }
}

async function loadNewest(v: ConvView): Promise<void> {
  if (!store.client || !v.summary.conversation) return;
  const page = await store.client.history(v.summary.conversation.id, { limit: PAGE });
  // Purged while this app was away (what a saved copy restored included).
  v.view.forgetThrough(page.purgedThrough);
  for (const m of page.messages) addMessage(v, m);
  v.loaded = true;
  v.hasOlder = page.hasMore;
}

/** Loads the page before the oldest message shown; the list keeps `fromBottom` px from its end. */
export async function loadOlder(v: ConvView, fromBottom: number): Promise<void> {
  if (!store.client || !v.summary.conversation || v.loadingOlder || !v.hasOlder) return;
  const oldest = [...v.messages.keys()].reduce<bigint | undefined>((a, b) => (a === undefined || b < a ? b : a), undefined);
  if (oldest === undefined || oldest <= 1n) {
    v.hasOlder = false;
    changed();
    return;
  }
  v.loadingOlder = true;
  changed();
  try {
    const page = await store.client.history(v.summary.conversation.id, { beforeSeq: oldest, limit: PAGE });
    v.view.forgetThrough(page.purgedThrough);
    for (const m of page.messages) addMessage(v, m);
    v.hasOlder = page.hasMore;
  } catch (e) {
    store.banner = `Could not load older messages: ${describeError(e)}`;
  } finally {
    v.loadingOlder = false;
  }
  store.keepFromBottom = fromBottom;
  changed();
}

/**
 * Takes in one entry of a conversation's sequence: a message is added once
 * (it replaces its pending line); an edit, delete or reaction changes the
 * message it names once. Returns whether a new message was added (changes
 * add no bubble, no unread, no preview of their own).
 */
export function addMessage(v: ConvView, m: pb.Message): boolean {
  const applied = v.view.apply(m);
  if (v.summary.conversation && m.seq > v.summary.conversation.lastSeq) v.summary.conversation.lastSeq = m.seq;
  if (applied === "changed") {
    // The list's preview shows the last message as it is now.
    const last = v.summary.lastMessage;
    if (last && last.seq === m.targetSeq) v.summary.lastMessage = v.messages.get(m.targetSeq);
  }
  if (applied !== "added") return false;
  const last = v.summary.lastMessage;
  if (!last || m.seq > last.seq) v.summary.lastMessage = m;
  if (m.clientMsgId !== "") v.pending = v.pending.filter((p) => p.clientMsgId !== m.clientMsgId);
  return true;
}

/** Marks the open conversation read up to its newest message while the tab is visible. */
export function markReadIfVisible(v: ConvView): void {
  const client = store.client;
  if (!client || !v.summary.conversation || document.visibilityState !== "visible") return;
  if (store.current !== key(v.summary.conversation.id)) return;
  const me = store.me?.id ?? "";
  const last = [...v.messages.keys()].reduce((a, b) => (b > a ? b : a), 0n);
  const mine = v.read.get(me) ?? v.summary.readSeq;
  v.unread = 0n;
  if (last === 0n || last <= mine) return;
  v.read.set(me, last);
  void client.markRead(v.summary.conversation.id, last).catch(() => {});
}

/** Opens a conversation: its newest page, its members, read marks. */
export async function openConversation(id: string): Promise<void> {
  stopTyping();
  resetMessageTasks();
  store.current = id;
  store.stickBottom = true;
  const v = store.convs.get(id);
  changed();
  if (!v) return;
  try {
    if (!v.loaded) await loadNewest(v);
    if (!v.members) await loadMembers(v);
  } catch (e) {
    store.banner = `Could not open the conversation: ${describeError(e)}`;
  }
  markReadIfVisible(v);
  store.stickBottom = true;
  changed();
  if (v.summary.conversation?.e2e) void addNewDevicesOf(v);
}

/** Forgets the open conversation's edit, reply and highlight (another conversation opens). */
function resetMessageTasks(): void {
  store.task = undefined;
  store.replyTo = undefined;
  store.highlight = undefined;
}

/** Back to the list (phones). */
export function closeConversation(): void {
  stopTyping();
  resetMessageTasks();
  store.current = undefined;
  changed();
}

function utf8Len(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** Sends `text` to the open conversation; returns whether it was taken (the composer then clears). */
export function sendToCurrent(text: string): boolean {
  const v = currentView();
  const c = store.client;
  if (!v || !c || !v.summary.conversation) return false;
  if (text.trim() === "" && v.uploads.length === 0) return false;
  if (utf8Len(text) > MAX_TEXT_BYTES) {
    store.banner = `A message holds at most ${MAX_TEXT_BYTES / 1024} KiB of text.`;
    changed();
    return false;
  }
  const files = takeReady(v);
  if (files === undefined) {
    store.banner = "The files are still uploading; send when they are done.";
    changed();
    return false;
  }
  // A message needs text: files alone are named.
  if (text.trim() === "") text = files.map((f) => `📎 ${f.name}`).join("\n");
  if (text === "") return false;
  const attachmentIds = files.map((f) => f.attachmentId);
  const replyTo = store.replyTo;
  store.replyTo = undefined;
  const pending: Pending = {
    clientMsgId: newClientMsgId(),
    conversationId: v.summary.conversation.id,
    text,
    ...(replyTo !== undefined ? { replyTo } : {}),
    attachmentIds,
    createdAtMs: Date.now(),
  };
  stopTyping();
  store.stickBottom = true;
  queueSend(v, pending);
  changed();
  return true;
}

let typingSentAt = 0;
let typingConv: bigint | undefined;
let typingStopTimer: ReturnType<typeof setTimeout> | undefined;

/** The composer's text changed: tell the others I am typing (refreshed, stopped after 3 s idle). */
export function composerInput(text: string): void {
  const v = currentView();
  if (!store.client || !v?.summary.conversation) return;
  const id = v.summary.conversation.id;
  if (text.trim() === "") {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (typingConv !== id || now - typingSentAt > TYPING_REFRESH_MS) {
    typingConv = id;
    typingSentAt = now;
    void store.client.setTyping(id, true).catch(() => {});
  }
  if (typingStopTimer) clearTimeout(typingStopTimer);
  typingStopTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

/** Tells the others I stopped typing (if I said I was). */
export function stopTyping(): void {
  if (typingStopTimer) clearTimeout(typingStopTimer);
  typingStopTimer = undefined;
  if (typingConv !== undefined && store.client) void store.client.setTyping(typingConv, false).catch(() => {});
  typingConv = undefined;
  typingSentAt = 0;
}

/** Staff: joins a waiting support conversation and opens it. */
export async function pickUp(s: pb.ConversationSummary): Promise<void> {
  const client = store.client;
  if (!client || !s.conversation) return;
  try {
    const ok = await client.join(s.conversation.id);
    if (ok?.summary) upsertSummary(ok.summary, true);
    await refreshSupportQueue();
    await reloadAll();
    await openConversation(key(s.conversation.id));
  } catch (e) {
    store.banner = describeError(e);
    changed();
  }
}

/** Creates a conversation and opens it, then closes the New dialog; rejects with the server's refusal (the dialog stays). */
export async function createConversation(
  kind: ConversationKind,
  opts: { title: string; caseId: string; members: string[]; e2e?: boolean },
): Promise<void> {
  const client = store.client;
  if (!client) return;
  // End-to-end encrypted: made with its MLS group by this device (e2e-actions.ts).
  const ok = opts.e2e ? await client.getConversation(await createE2e(kind, opts)) : await client.createConversation(kind, opts);
  try {
    if (ok.summary?.conversation) {
      const v = upsertSummary(ok.summary, true);
      await loadMembers(v);
      await refreshPresence();
      await openConversation(key(ok.summary.conversation.id));
    }
  } finally {
    // Closed once the new conversation is open (or failed to open), never
    // before: what is typed next must not go to the one open until now.
    store.dialog = undefined;
    changed();
  }
}

/** Adds members to a conversation; rejects with the server's refusal. */
export async function addMembers(conv: string, userIds: string[]): Promise<void> {
  const v = store.convs.get(conv);
  if (!store.client || !v?.summary.conversation) return;
  const c = v.summary.conversation;
  // In an E2E conversation their devices join the group with the same commit.
  if (c.e2e && store.e2e) await store.e2e.addMembers(c.id, userIds);
  else await store.client.addMembers(c.id, userIds);
  await loadMembers(v);
  store.dialog = undefined;
  changed();
}

/** Whether `m` counts towards a conversation's unread badge when it arrives. */
export function countsAsUnread(m: pb.Message): boolean {
  return m.senderId !== store.me?.id && m.kind !== pb.MessageKind.SYSTEM;
}
