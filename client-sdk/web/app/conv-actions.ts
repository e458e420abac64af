// What the conversation's Manage dialog does with the server: archive or
// unarchive (admins), leave, change a member's role and remove a member
// (admins). Each rejects with the server's refusal for the dialog to show;
// success refreshes the members and the conversation's summary.

import { pb } from "../src/sdk/index.js";
import { closeConversation, loadMembers, reloadAll, upsertSummary } from "./actions.js";
import { changed, connectedClient, type ConvView, store } from "./state.js";

function idOf(v: ConvView): bigint {
  if (!v.summary.conversation) throw new Error("no such conversation");
  return v.summary.conversation.id;
}

async function afterChange(v: ConvView, ok: pb.ConversationOk | undefined): Promise<void> {
  if (ok?.summary?.conversation) upsertSummary(ok.summary, false);
  await loadMembers(v);
  changed();
}

/** Archives `v` (or brings it back); its members keep reading it. */
export async function setArchived(v: ConvView, archived: boolean): Promise<void> {
  await afterChange(v, await connectedClient().archive(idOf(v), !archived));
}

/** Leaves `v`: it goes from the list, the dialog closes. */
export async function leaveConversation(v: ConvView): Promise<void> {
  await connectedClient().leave(idOf(v));
  store.dialog = undefined;
  closeConversation();
  await reloadAll();
}

/** Gives member `user` of `v` another role. */
export async function setRole(v: ConvView, user: string, role: pb.MemberRole): Promise<void> {
  await afterChange(v, await connectedClient().setMemberRole(idOf(v), user, role));
}

/** Removes member `user` from `v`. */
export async function removeMember(v: ConvView, user: string): Promise<void> {
  // In an E2E conversation every device of theirs also leaves the group, so nothing sent after can be read by them.
  if (v.summary.conversation?.e2e && store.e2e) {
    await store.e2e.removeMember(idOf(v), user);
    await afterChange(v, undefined);
    return;
  }
  await afterChange(v, await connectedClient().removeMember(idOf(v), user));
}

/** The roles an admin may give, in the order offered. */
export const ROLES = [pb.MemberRole.MEMBER, pb.MemberRole.MODERATOR, pb.MemberRole.ADMIN] as const;
