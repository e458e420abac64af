// The SDK's events applied to the app state: connection state, messages,
// receipts, typing, presence, membership (with its "joined / left" lines)
// and conversation changes.

import { type ChatEvent, pb } from "../src/sdk/index.js";
import {
  addMessage,
  countsAsUnread,
  loadMembers,
  markReadIfVisible,
  raiseMark,
  refreshPresence,
  refreshSupportQueue,
  reloadAll,
  upsertSummary,
} from "./actions.js";
import { onIncoming } from "./attention.js";
import { catchUpAll, receiveE2e } from "./e2e-actions.js";
import { isAdmin, membershipLine } from "./format.js";
import { changed, type ConvView, key, NOTES_MAX, store } from "./state.js";

/** How long a typing indicator shows without a refresh, ms. */
const TYPING_SHOW_MS = 4000;
/** Where the token is kept for this tab. */
export const TOKEN_KEY = "chatd.token";

/** Applies one SDK event to the state. */
export function onEvent(e: ChatEvent): void {
  switch (e.type) {
    case "state":
      store.connState = e.state;
      // Cut off, this app no longer knows who is online: nobody is shown
      // online (or offline) until the reconnect asks again.
      if (store.connState !== "online") store.presence.clear();
      break;
    case "connected":
      store.transport = e.transport;
      store.banner = "";
      // Back online: what the E2E groups missed is read from history.
      if (store.me) void reloadAll().then(catchUpAll);
      break;
    case "disconnected":
      store.banner = e.willRetry
        ? "Connection lost; reconnecting…"
        : `Disconnected: ${e.error ? `${e.error.name}: ${e.error.message}` : e.reason}`;
      if (!e.willRetry && e.error && e.error.code >= 4000 && e.error.code < 5000) {
        // The token is refused for good (expired, revoked): sign in again.
        sessionStorage.removeItem(TOKEN_KEY);
        store.client = undefined;
        store.convs.clear();
        store.current = undefined;
        store.dialog = undefined;
        store.screen = { kind: "signin", error: `Signed out by the server (${e.error.name}: ${e.error.message}).` };
      }
      break;
    case "message":
      onMessage(e.message);
      break;
    case "receipt": {
      const r = e.receipt;
      const v = store.convs.get(key(r.conversationId));
      if (!v) break;
      const read = r.kind === pb.ReceiptKind.READ;
      raiseMark(read ? v.read : v.delivered, r.userId, r.seq);
      if (read) raiseMark(v.delivered, r.userId, r.seq);
      if (read && r.userId === store.me?.id && r.seq >= (v.summary.conversation?.lastSeq ?? 0n)) v.unread = 0n;
      break;
    }
    case "typing": {
      const t = e.typing;
      if (t.userId === store.me?.id) break;
      const v = store.convs.get(key(t.conversationId));
      if (!v) break;
      const old = v.typing.get(t.userId);
      if (old) clearTimeout(old);
      v.typing.delete(t.userId);
      if (t.typing) {
        const timer = setTimeout(() => {
          v.typing.delete(t.userId);
          changed();
        }, TYPING_SHOW_MS);
        v.typing.set(t.userId, timer);
      }
      break;
    }
    case "presence":
      store.presence.set(e.presence.userId, e.presence.online);
      break;
    case "membership": {
      const m = e.membership;
      const id = key(m.conversationId);
      const gone = m.userId === store.me?.id && (m.change === pb.MembershipChange.REMOVED || m.change === pb.MembershipChange.LEFT);
      const v = store.convs.get(id);
      if (v) addNote(v, m);
      // My own role changed: what the conversation offers me follows (Add, Manage).
      if (v && m.userId === store.me?.id && m.change === pb.MembershipChange.ROLE) v.summary.myRole = m.role;
      if (gone) {
        store.convs.delete(id);
        if (store.current === id) store.current = undefined;
      } else if (v) {
        void loadMembers(v).then(refreshPresence).then(changed);
      }
      break;
    }
    case "conversation": {
      const s = e.summary;
      if (!s.conversation) break;
      if (s.myRole === pb.MemberRole.UNSPECIFIED) {
        // Told as one no longer a member (removed, or left on another device).
        const id = key(s.conversation.id);
        store.convs.delete(id);
        if (store.current === id) store.current = undefined;
        if (store.dialog && "conv" in store.dialog && store.dialog.conv === id) store.dialog = undefined;
        break;
      }
      const isNew = !store.convs.has(key(s.conversation.id));
      const v = upsertSummary(s, false);
      if (isNew) void loadMembers(v).then(refreshPresence).then(changed);
      if (isAdmin()) void refreshSupportQueue().then(changed);
      break;
    }
    case "resync":
      void reloadAll();
      return;
    case "caught_up":
    case "goodbye":
      return;
  }
  changed();
}

function onMessage(m: pb.Message): void {
  // An E2E entry goes to this device's group first, in the order it came.
  receiveE2e(m);
  const id = key(m.conversationId);
  const v = store.convs.get(id);
  if (!v) {
    // A conversation we have not listed yet: fetch its summary.
    void store.client?.getConversation(m.conversationId).then((ok) => {
      if (!ok.summary) return;
      const nv = upsertSummary(ok.summary, true);
      addMessage(nv, m);
      void loadMembers(nv).then(changed);
    });
    return;
  }
  if (!addMessage(v, m)) return;
  if (!store.names.has(m.senderId)) store.names.set(m.senderId, m.senderId);
  const mine = m.senderId === store.me?.id;
  if (!mine) {
    const t = v.typing.get(m.senderId);
    if (t) clearTimeout(t);
    v.typing.delete(m.senderId);
  }
  if (!mine && countsAsUnread(m)) onIncoming(v, m);
  if (store.current === id) {
    if (v.pending.length > 0) store.stickBottom = true;
    if (!mine) markReadIfVisible(v);
  } else if (countsAsUnread(m)) {
    v.unread += 1n;
  }
}

let noteKey = 0;

/** Adds the line of a membership change after the newest message of `v`. */
function addNote(v: ConvView, m: pb.MembershipEvent): void {
  if (!membershipLine(m)) return;
  const afterSeq = v.summary.conversation?.lastSeq ?? 0n;
  v.notes.push({ key: ++noteKey, afterSeq, event: m });
  if (v.notes.length > NOTES_MAX) v.notes.splice(0, v.notes.length - NOTES_MAX);
}
