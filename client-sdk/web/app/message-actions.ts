// What a user does to a stored message of the open conversation: edit their
// own text, delete (their own; anyone's as a conversation admin or moderator
// when the server allows it), react, answer it, and jump to the message a
// reply quotes; and filling the composer from a template. Each action
// updates the store and calls `changed()`; the server's refusals are shown
// in the banner as it words them.

import { pb, Templates } from "../src/sdk/index.js";
import { loadOlder, MAX_TEXT_BYTES } from "./actions.js";
import { describeError } from "./format.js";
import { changed, type ConvView, currentView, type MessageTask, store } from "./state.js";

/** The reactions the palette offers. */
export const PALETTE = ["👍", "❤️", "😂", "😮", "🙏", "✅"] as const;
/** How long a jumped-to message stays highlighted, ms. */
const HIGHLIGHT_MS = 4000;
/** Most older pages loaded while looking for a quoted message. */
const MAX_PAGES_TO_FIND = 20;

function fail(what: string, e: unknown): void {
  store.banner = `${what}: ${describeError(e)}`;
  changed();
}

/** Starts (or, the same again, stops) an action on the message at `seq`. */
export function setTask(task: MessageTask): void {
  const same = store.task && task && store.task.kind === task.kind && store.task.seq === task.seq;
  store.task = same ? undefined : task;
  changed();
}

/** Whether I may try to delete `m`: my own, or anyone's as a conversation admin or moderator. */
export function mayDelete(v: ConvView, m: pb.Message): boolean {
  if (m.senderId === store.me?.id) return true;
  // The server decides (`messages.moderators_delete`); it answers an error otherwise.
  const role = v.summary.myRole;
  return role === pb.MemberRole.ADMIN || role === pb.MemberRole.MODERATOR;
}

/** Saves the edit of my message at `seq` (an unchanged or empty text just closes the editor). */
export async function saveEdit(v: ConvView, seq: bigint, text: string): Promise<void> {
  const m = v.messages.get(seq);
  const c = store.client;
  store.task = undefined;
  changed();
  if (!m || !c || !v.summary.conversation) return;
  const old = m.body?.content.case === "text" ? m.body.content.value : "";
  if (text.trim() === "" || text === old) return;
  if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) {
    fail("Not saved", new Error(`a message holds at most ${MAX_TEXT_BYTES / 1024} KiB of text`));
    return;
  }
  try {
    await c.edit(v.summary.conversation.id, seq, text);
  } catch (e) {
    fail("Could not edit the message", e);
  }
}

/** Deletes the message at `seq` (after the user confirmed). */
export async function deleteMessage(v: ConvView, seq: bigint): Promise<void> {
  const c = store.client;
  store.task = undefined;
  changed();
  if (!c || !v.summary.conversation) return;
  try {
    await c.deleteMessage(v.summary.conversation.id, seq);
  } catch (e) {
    fail("Could not delete the message", e);
  }
}

/** Adds my `emoji` to the message at `seq`, or takes it away if I had it. */
export async function toggleReaction(v: ConvView, seq: bigint, emoji: string): Promise<void> {
  const c = store.client;
  const m = v.messages.get(seq);
  if (store.task?.kind === "react") store.task = undefined;
  changed();
  if (!c || !m || !v.summary.conversation) return;
  const mine = m.reactions.some((r) => r.emoji === emoji && r.userIds.includes(store.me?.id ?? ""));
  try {
    await c.react(v.summary.conversation.id, seq, emoji, !mine);
  } catch (e) {
    fail("Could not react", e);
  }
}

/** The composer answers the message at `seq` (undefined: no longer). */
export function replyTo(seq: bigint | undefined): void {
  store.replyTo = seq;
  store.task = undefined;
  changed();
  if (seq !== undefined) document.getElementById("composer-input")?.focus();
}

/** Scrolls to and highlights the message at `seq`, loading older pages until it is there. */
export async function jumpTo(seq: bigint): Promise<void> {
  const v = currentView();
  if (!v) return;
  for (let i = 0; !v.messages.has(seq) && v.hasOlder && i < MAX_PAGES_TO_FIND; i++) {
    await loadOlder(v, 0);
    store.keepFromBottom = undefined;
  }
  if (!v.messages.has(seq)) {
    store.banner = "The original message is not loaded (it may be too old or no longer visible to you).";
    changed();
    return;
  }
  store.highlight = seq;
  store.scrollToHighlight = true;
  changed();
  setTimeout(() => {
    if (store.highlight !== seq) return;
    store.highlight = undefined;
    changed();
  }, HIGHLIGHT_MS);
}

/** The template filled in for the open conversation, or undefined (the banner says why). */
export async function renderTemplate(t: pb.Template): Promise<string | undefined> {
  const v = currentView();
  if (!store.client || !v?.summary.conversation) return undefined;
  try {
    const r = await new Templates(store.client).render(t.id, v.summary.conversation.id);
    if (r.missing.length > 0) {
      store.banner = `Template "${t.name}": no value here for ${r.missing.map((p) => `{${p}}`).join(", ")}`;
      changed();
    }
    return r.text;
  } catch (e) {
    fail(`Could not use the template "${t.name}"`, e);
    return undefined;
  }
}
