// How conversations, people, times, days, membership changes and marks are
// named on screen: pure functions of the state, shared by the components.

import { ClientError, ConversationKind, pb } from "../src/sdk/index.js";
import { plainText } from "./markdown.js";
import { type ConvView, key, store } from "./state.js";

/** Whether the signed-in user is staff. */
export function isAdmin(): boolean {
  return store.me?.role === pb.Role.ADMIN;
}

/** A one-line description of a failure, with the server's error name when there is one. */
export function describeError(e: unknown): string {
  if (e instanceof ClientError) return e.wire ? `${e.wire.name}: ${e.wire.message}` : e.message;
  return String((e as Error)?.message ?? e);
}

/** The members of `v` other than me. */
export function othersOf(v: ConvView): pb.Member[] {
  return (v.members ?? []).filter((m) => m.userId !== store.me?.id);
}

/** The title a conversation is listed under. */
export function convTitle(v: ConvView): string {
  const c = v.summary.conversation!;
  const others = othersOf(v);
  switch (c.kind) {
    case ConversationKind.PRIVATE:
      return others[0] ? others[0].displayName || others[0].userId : c.title || "Private conversation";
    case ConversationKind.CASE:
      return c.title ? `${c.title} · ${c.caseId}` : `Case ${c.caseId}`;
    case ConversationKind.SUPPORT:
      return c.title || `Support · ${store.names.get(c.createdBy) ?? c.createdBy}`;
    default:
      return c.title || others.map((m) => m.displayName || m.userId).join(", ") || "Group";
  }
}

const KIND_LABELS: Record<number, string> = {
  [ConversationKind.PRIVATE]: "Private",
  [ConversationKind.GROUP]: "Group",
  [ConversationKind.CASE]: "Case",
  [ConversationKind.SUPPORT]: "Support",
};

/** The name of a conversation kind. */
export function kindLabel(k: ConversationKind): string {
  return KIND_LABELS[k] ?? "";
}

/** The other person of a private conversation. */
export function peerOf(v: ConvView): string | undefined {
  if (v.summary.conversation?.kind !== ConversationKind.PRIVATE) return undefined;
  return othersOf(v)[0]?.userId;
}

/** A user's display name, or their id. */
export function nameOf(id: string): string {
  return store.names.get(id) ?? id;
}

/** The case-management system's page of `caseId`, if the server names one (http(s) only). */
export function caseUrl(caseId: string): string | undefined {
  if (!caseId || !/^https?:\/\//.test(store.caseLink)) return undefined;
  return store.caseLink.replace("{case_id}", encodeURIComponent(caseId));
}

/** Who posted a system message: the integration's name (`svc:<id>` → `<id>`). */
export function systemSender(id: string): string {
  return id.startsWith("svc:") ? id.slice(4) : nameOf(id);
}

/** A message time: the hour today, the day otherwise. */
export function timeOf(ms: bigint): string {
  const d = new Date(Number(ms));
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

/** Whether `m` is an MLS commit of an E2E conversation (group bookkeeping, not shown as a message). */
export function isCommit(m: pb.Message): boolean {
  return m.body?.content.case === "ciphertext" && m.body.content.value.commit;
}

/** The list's one-line preview of a last message, markup removed. */
export function preview(m: pb.Message | undefined): string {
  if (!m) return "";
  const who = m.kind === pb.MessageKind.SYSTEM ? "" : m.senderId === store.me?.id ? "You: " : `${nameOf(m.senderId)}: `;
  if (m.deleted) return `${who}message deleted`;
  if (m.body?.content.case === "ciphertext") {
    if (isCommit(m)) return "Encryption keys changed";
    const t = decryptedText(m);
    return t === undefined ? "Encrypted message" : who + clip(plainText(t));
  }
  if (m.body?.content.case !== "text") return "";
  return who + clip(plainText(m.body.content.value));
}

function clip(t: string): string {
  return t.length > 80 ? `${t.slice(0, 80)}…` : t;
}

/** The text of an E2E message as this device decrypted it (undefined: it could not). */
export function decryptedText(m: pb.Message): string | undefined {
  return store.decrypted.get(key(m.conversationId))?.get(m.seq)?.text;
}

/** The files of an E2E message as this device decrypted it. */
export function decryptedFiles(m: pb.Message): pb.E2eFile[] {
  return store.decrypted.get(key(m.conversationId))?.get(m.seq)?.files ?? [];
}

/** `k` and the noun for it: "1 message", "2 messages" (`many` when not just an added s). */
export function counted(k: bigint | number, one: string, many = `${one}s`): string {
  return `${k} ${k === 1n || k === 1 ? one : many}`;
}

/** A person's presence as this app knows it: unknown while the app itself is not connected. */
export function presenceOf(user: string): "online" | "offline" | "unknown" {
  if (store.connState !== "online") return "unknown";
  return store.presence.get(user) ? "online" : "offline";
}

/** The tooltip of a presence dot. */
export function presenceTitle(user: string): string {
  const p = presenceOf(user);
  return p === "unknown" ? "unknown while reconnecting" : p;
}

/** Delivered/read state of one of my messages. */
export function markOf(v: ConvView, seq: bigint): "sent" | "delivered" | "read" {
  const others = othersOf(v);
  if (others.length === 0) return "sent";
  if (others.every((m) => (v.read.get(m.userId) ?? 0n) >= seq)) return "read";
  if (others.every((m) => (v.delivered.get(m.userId) ?? 0n) >= seq)) return "delivered";
  return "sent";
}

/** User ids typed into a field, split at commas and spaces. */
export function splitIds(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter((x) => x !== "");
}

/** Conversations newest first (by last message, else creation). */
export function sortedConvs(): ConvView[] {
  const at = (v: ConvView) => v.summary.lastMessage?.serverTimeMs ?? v.summary.conversation?.createdAtMs ?? 0n;
  return [...store.convs.values()]
    .filter((v) => v.summary.conversation)
    .sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
}

/** The local calendar day of `ms` as a key ("2026-12-04"). */
export function dayKey(ms: bigint | number): string {
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** A date separator's words: "Today", "Yesterday", else the weekday and date ("Mon, 30 Nov 2026"). */
export function dayLabel(ms: bigint | number, now: number = Date.now()): string {
  const day = dayKey(ms);
  if (day === dayKey(now)) return "Today";
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (day === dayKey(y.getTime())) return "Yesterday";
  return new Date(Number(ms)).toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short", year: "numeric" });
}

/** What a membership change says in the conversation ("Ann added Ben", "Ben left"). */
export function membershipLine(m: pb.MembershipEvent): string | undefined {
  const who = nameOf(m.userId);
  const by = m.by && m.by !== m.userId ? nameOf(m.by) : undefined;
  switch (m.change) {
    case pb.MembershipChange.ADDED:
      return by ? `${by} added ${who}` : `${who} was added`;
    case pb.MembershipChange.JOINED:
      return `${who} joined`;
    case pb.MembershipChange.LEFT:
      return `${who} left`;
    case pb.MembershipChange.REMOVED:
      return by ? `${by} removed ${who}` : `${who} was removed`;
    case pb.MembershipChange.ROLE:
      return `${by ?? "An admin"} made ${who} ${m.role === pb.MemberRole.ADMIN ? "an" : "a"} ${roleLabel(m.role).toLowerCase()}`;
    default:
      return undefined;
  }
}

/** A member role's name. */
export function roleLabel(r: pb.MemberRole): string {
  return r === pb.MemberRole.ADMIN ? "Admin" : r === pb.MemberRole.MODERATOR ? "Moderator" : "Member";
}
