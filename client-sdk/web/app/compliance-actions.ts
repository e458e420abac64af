// What the Compliance screen (system admins only) does with the server:
// open and close the screen, list, set
// and release legal holds, erase a user (GDPR) and erase a conversation. The screen's fields
// become calls here, so the screen holds no protocol code.

import { LegalHolds, pb, Users } from "../src/sdk/index.js";
import { counted } from "./format.js";
import { closeScreen, connectedClient, openScreen } from "./state.js";

/** The scopes a hold can take, as the screen names them. */
export const HOLD_SCOPES: { scope: pb.HoldScope; label: string; target: string }[] = [
  { scope: pb.HoldScope.CASE, label: "Case", target: "case id" },
  { scope: pb.HoldScope.USER, label: "User", target: "user id" },
  { scope: pb.HoldScope.CONVERSATION, label: "Conversation", target: "conversation id" },
];

/** The screen's name for a scope. */
export function scopeLabel(scope: pb.HoldScope): string {
  return HOLD_SCOPES.find((s) => s.scope === scope)?.label ?? "Unknown";
}

/** Opens the Compliance screen over the chat. */
export const openCompliance = (): void => openScreen("compliance");

/** Closes the Compliance screen. */
export const closeCompliance = (): void => closeScreen("compliance");

/** Every legal hold in force. */
export function listHolds(): Promise<pb.LegalHold[]> {
  return new LegalHolds(connectedClient()).list();
}

/** Sets (or renews) a hold; every hold in force after it. */
export function setHold(scope: pb.HoldScope, target: string, reason: string): Promise<pb.LegalHold[]> {
  return new LegalHolds(connectedClient()).set(scope, target.trim(), reason.trim());
}

/** Releases a hold. */
export function releaseHold(h: pb.LegalHold): Promise<void> {
  return new LegalHolds(connectedClient()).release(h.scope, h.target);
}

/** Erases a user (GDPR); what it did and what holds kept. */
export function eraseUser(userId: string, reason: string): Promise<pb.EraseResult> {
  return new Users(connectedClient()).eraseUser(userId.trim(), reason.trim());
}

/** One sentence saying what an erasure did. */
export function describeErasure(r: pb.EraseResult): string {
  let s = `Erased ${r.userId} (now shown as ${r.pseudonym}): ${counted(r.messagesErased, "message")} and ${counted(r.attachmentsErased, "attachment")} erased.`;
  if (r.messagesFailed > 0n) s += ` ${counted(r.messagesFailed, "message")} could not be erased; run the erasure again.`;
  if (r.kept.length > 0) s += ` Kept under legal hold in ${counted(r.kept.length, "conversation")}.`;
  return s;
}

/** Erases a whole conversation by its id; what it did. */
export function eraseConversation(id: string, reason: string): Promise<pb.ConversationErased> {
  const trimmed = id.trim();
  if (!/^[0-9]{1,19}$/.test(trimmed)) return Promise.reject(new Error("The conversation id is a number (its header shows it after #)."));
  return new LegalHolds(connectedClient()).eraseConversation(BigInt(trimmed), reason.trim());
}

/** One sentence saying what a conversation's erasure did. */
export function describeConversationErasure(r: pb.ConversationErased): string {
  const key = r.keyDestroyed ? " Its encryption key is destroyed." : "";
  return `Erased conversation ${r.conversationId}: ${counted(r.messages, "message")} and ${counted(r.attachments, "attachment")} removed; it stays archived.${key}`;
}
