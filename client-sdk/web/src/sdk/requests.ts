// The command bodies of the client's typed calls, built from their
// arguments (defaults filled in). Pure: no connection, no state.

import { create } from "@bufbuild/protobuf";
import {
  AddMembersSchema,
  ArchiveConversationSchema,
  type Command,
  type ConversationKind,
  CreateConversationSchema,
  DeleteMessageSchema,
  EditMessageSchema,
  GetConversationSchema,
  GetHistorySchema,
  GetMembersSchema,
  GetPresenceSchema,
  JoinConversationSchema,
  LeaveConversationSchema,
  type ListConversations,
  ListConversationsSchema,
  type ListSupportQueue,
  ListSupportQueueSchema,
  MarkDeliveredSchema,
  MarkReadSchema,
  type MemberRole,
  MessageBodySchema,
  PingSchema,
  ReactSchema,
  RemoveMemberSchema,
  type Search,
  SearchSchema,
  type SendMessage,
  SendMessageSchema,
  SetMemberRoleSchema,
  SetRetentionSchema,
  SetTypingSchema,
} from "../gen/chat/v1/chat_pb.js";
import type { Outgoing } from "./outbox.js";

/** A command's body (its oneof). */
export type Body = Command["body"];

/** A text message to send (an empty clientMsgId is filled in by the outbox). */
/** A text message to send; `attachmentIds` from uploads to the same conversation. */
export interface OutgoingText {
  conversationId: bigint;
  clientMsgId?: string;
  text: string;
  replyTo?: bigint;
  attachmentIds?: string[];
}

export function textMessage(msg: OutgoingText): SendMessage {
  return create(SendMessageSchema, {
    conversationId: msg.conversationId,
    clientMsgId: msg.clientMsgId ?? "",
    body: create(MessageBodySchema, { content: { case: "text", value: msg.text } }),
    replyTo: msg.replyTo ?? 0n,
    attachmentIds: msg.attachmentIds ?? [],
  });
}

/** EditMessage: the new text of one's own message at `seq`. */
export function editMessage(conversationId: bigint, seq: bigint, text: string, clientMsgId: string): Outgoing {
  const body = create(MessageBodySchema, { content: { case: "text", value: text } });
  return { case: "editMessage", value: create(EditMessageSchema, { conversationId, seq, body, clientMsgId }) };
}

/** DeleteMessage: the message at `seq`. */
export function deleteMessage(conversationId: bigint, seq: bigint, clientMsgId: string): Outgoing {
  return { case: "deleteMessage", value: create(DeleteMessageSchema, { conversationId, seq, clientMsgId }) };
}

/** React: add (`on`) or take away one's `emoji` on the message at `seq`. */
export function react(conversationId: bigint, seq: bigint, emoji: string, on: boolean, clientMsgId: string): Outgoing {
  return { case: "react", value: create(ReactSchema, { conversationId, seq, emoji, on, clientMsgId }) };
}

/** Search: `query` (words that must all occur; empty: every message that
 * passes the filters) and any filters, cursor and limit of `Search`. */
export function search(query: Partial<Omit<Search, "$typeName">>): Body {
  return { case: "search", value: create(SearchSchema, query) };
}

/** GetHistory: before `beforeSeq` (backward), after `afterSeq` (forward), newest when both are 0. */
export function history(conversationId: bigint, opts: { beforeSeq?: bigint; afterSeq?: bigint; limit?: number }): Body {
  return {
    case: "getHistory",
    value: create(GetHistorySchema, {
      conversationId,
      beforeSeq: opts.beforeSeq ?? 0n,
      afterSeq: opts.afterSeq ?? 0n,
      limit: opts.limit ?? 50,
    }),
  };
}

/** CreateConversation. */
export function createConversation(kind: ConversationKind, opts: { title?: string; caseId?: string; members?: string[]; e2e?: boolean }): Body {
  return {
    case: "createConversation",
    value: create(CreateConversationSchema, {
      kind,
      title: opts.title ?? "",
      caseId: opts.caseId ?? "",
      members: opts.members ?? [],
      e2e: opts.e2e ?? false,
    }),
  };
}

/** ListConversations. */
export function listConversations(query: Partial<Omit<ListConversations, "$typeName">>): Body {
  return { case: "listConversations", value: create(ListConversationsSchema, query) };
}

/** GetConversation. */
export function getConversation(conversationId: bigint): Body {
  return { case: "getConversation", value: create(GetConversationSchema, { conversationId }) };
}

/** GetMembers. */
export function getMembers(conversationId: bigint): Body {
  return { case: "getMembers", value: create(GetMembersSchema, { conversationId }) };
}

/** JoinConversation. */
export function join(conversationId: bigint): Body {
  return { case: "joinConversation", value: create(JoinConversationSchema, { conversationId }) };
}

/** LeaveConversation. */
export function leave(conversationId: bigint): Body {
  return { case: "leaveConversation", value: create(LeaveConversationSchema, { conversationId }) };
}

/** AddMembers. */
export function addMembers(conversationId: bigint, userIds: string[]): Body {
  return { case: "addMembers", value: create(AddMembersSchema, { conversationId, userIds }) };
}

/** RemoveMember. */
export function removeMember(conversationId: bigint, userId: string): Body {
  return { case: "removeMember", value: create(RemoveMemberSchema, { conversationId, userId }) };
}

/** SetMemberRole. */
export function setMemberRole(conversationId: bigint, userId: string, role: MemberRole): Body {
  return { case: "setMemberRole", value: create(SetMemberRoleSchema, { conversationId, userId, role }) };
}

/** ArchiveConversation (or unarchive). */
export function archive(conversationId: bigint, unarchive: boolean): Body {
  return { case: "archiveConversation", value: create(ArchiveConversationSchema, { conversationId, unarchive }) };
}

/** SetRetention: days (0 keeps forever). */
export function setRetention(conversationId: bigint, retentionDays: number): Body {
  return { case: "setRetention", value: create(SetRetentionSchema, { conversationId, retentionDays }) };
}

/** MarkRead. */
export function markRead(conversationId: bigint, seq: bigint): Body {
  return { case: "markRead", value: create(MarkReadSchema, { conversationId, seq }) };
}

/** MarkDelivered of one conversation. */
export function markDelivered(conversationId: bigint, seq: bigint): Body {
  return { case: "markDelivered", value: create(MarkDeliveredSchema, { conversationId, seq }) };
}

/** SetTyping. */
export function setTyping(conversationId: bigint, typing: boolean): Body {
  return { case: "setTyping", value: create(SetTypingSchema, { conversationId, typing }) };
}

/** ListSupportQueue. */
export function supportQueue(query: Partial<Omit<ListSupportQueue, "$typeName">>): Body {
  return { case: "listSupportQueue", value: create(ListSupportQueueSchema, query) };
}

/** GetPresence. */
export function getPresence(userIds: string[]): Body {
  return { case: "getPresence", value: create(GetPresenceSchema, { userIds }) };
}

/** Ping. */
export function ping(): Body {
  return { case: "ping", value: create(PingSchema, {}) };
}
