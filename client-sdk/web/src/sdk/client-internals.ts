// The client's internals that need none of its state: the pending-request
// records, reply unpacking, the stored form of an own message or change, the coalesced
// delivered receipt, and the transport policy (WebTransport, else WebSocket).

import { create } from "@bufbuild/protobuf";
import {
  type ClientFrame,
  type Command,
  CursorSchema,
  MarkDeliveredSchema,
  type Message,
  MessageKind,
  MessageSchema,
  ReactionChangeSchema,
  type Reply,
  type SendMessage,
  type SendMessageOk,
} from "../gen/chat/v1/chat_pb.js";
import type { ClientConfig } from "./client-types.js";
import { ClientError, errorClass } from "./errors.js";
import { hasWebTransport, hexToBytes, type Link, type Lost, openWebSocket, openWebTransport, type TransportKind } from "./transport.js";

/** A client's configuration with its defaults filled in. */
export type Settings = Required<
  Omit<ClientConfig, "resume" | "webtransportUrl" | "websocketUrl" | "openLink" | "tokenProvider" | "refreshLeadMs">
> &
  Pick<ClientConfig, "webtransportUrl" | "websocketUrl" | "openLink" | "tokenProvider">;

/** The result of a reply (its oneof). */
export type ReplyResult = Reply["result"];

/** How a waiting promise is settled. */
export interface Pending<T> {
  resolve(v: T): void;
  reject(e: ClientError): void;
}

/** What a request in flight waits for: a user call, a send's ack, or a hole-filling history page. */
export type Waiter =
  | { kind: "user"; p: Pending<ReplyResult>; deadline: number }
  | { kind: "send"; key: number; deadline: number }
  | { kind: "fetch"; conv: bigint; deadline: number };

/** A request made while disconnected, sent after the next handshake. */
export interface Deferred {
  body: Command["body"];
  p: Pending<ReplyResult>;
  deadline: number;
}

/** The stored form of a message this client sent, from the send and its ack. */
export function ownMessage(userId: string, sent: SendMessage, ok: SendMessageOk): Message {
  return create(MessageSchema, {
    conversationId: ok.conversationId,
    seq: ok.seq,
    senderId: userId,
    clientMsgId: sent.clientMsgId,
    body: sent.body,
    serverTimeMs: ok.serverTimeMs,
    replyTo: sent.replyTo,
    kind: MessageKind.USER,
    attachments: ok.attachments,
  });
}

/**
 * The entry an edit, delete or reaction of `userId` appends, from the command
 * and its ack (the server does not echo it to this connection); undefined for
 * other commands and for a change that changed nothing (seq 0).
 */
export function ownChange(userId: string, body: Command["body"], ok: SendMessageOk): Message | undefined {
  if (ok.seq === 0n) return undefined;
  const base = { conversationId: ok.conversationId, seq: ok.seq, senderId: userId, serverTimeMs: ok.serverTimeMs };
  switch (body.case) {
    case "editMessage":
      return create(MessageSchema, {
        ...base,
        clientMsgId: body.value.clientMsgId,
        kind: MessageKind.EDIT,
        targetSeq: body.value.seq,
        body: body.value.body,
      });
    case "deleteMessage":
      return create(MessageSchema, { ...base, clientMsgId: body.value.clientMsgId, kind: MessageKind.DELETE, targetSeq: body.value.seq });
    case "react":
      return create(MessageSchema, {
        ...base,
        clientMsgId: body.value.clientMsgId,
        kind: MessageKind.REACTION,
        targetSeq: body.value.seq,
        reaction: create(ReactionChangeSchema, { emoji: body.value.emoji, on: body.value.on }),
      });
    default:
      return undefined;
  }
}

/** The error a lost connection reports to callers. */
export function lostToError(l: Lost): ClientError {
  return l.error ? ClientError.server(l.error) : new ClientError("connect", l.reason);
}

/** Whether a loss stops the client (a 4000-4999 error). */
export function isFatal(l: Lost): boolean {
  return l.error !== undefined && errorClass(l.error.code) === "fatal";
}

/** The value of the reply case `K`. */
export type ResultOf<K> = Extract<ReplyResult, { case: K }> extends { value: infer V } ? V : never;

/** The reply's value when it is of case `k`, else a protocol error. */
export function want<K extends NonNullable<ReplyResult["case"]>>(r: ReplyResult, k: K): ResultOf<K> {
  if (r.case !== k) throw new ClientError("protocol", `reply is not a ${k}`);
  return r.value as ResultOf<K>;
}

/** One MarkDelivered command carrying every (conversation, seq) receipt. */
export function deliveredBody(receipts: [bigint, bigint][]): Command["body"] {
  const [first, ...rest] = receipts;
  return {
    case: "markDelivered",
    value: create(MarkDeliveredSchema, {
      conversationId: first![0],
      seq: first![1],
      more: rest.map(([conversationId, seq]) => create(CursorSchema, { conversationId, seq })),
    }),
  };
}

/** What the transport policy needs of the client's configuration. */
export interface OpenConfig {
transport: "auto" | TransportKind;
webtransportUrl?: string | undefined;
websocketUrl?: string | undefined;
certHashes: string[];
requestTimeoutMs: number;
webtransportTimeoutMs: number;
openLink?: ((hello: ClientFrame) => Promise<Link>) | undefined;
}

/**
 * Opens a link with the transport policy: WebTransport first, WebSocket as
 * the fallback; `chosen` is the transport that worked last. Rejects with a `Lost`.
 */
export async function openLink(cfg: OpenConfig, chosen: TransportKind | undefined, hello: ClientFrame): Promise<Link> {
  if (cfg.openLink) return cfg.openLink(hello);
  const certHashes = cfg.certHashes.map(hexToBytes);
  const timeoutMs = cfg.requestTimeoutMs;
  const ws = async (): Promise<Link> => {
    if (!cfg.websocketUrl) throw { reason: "no WebSocket URL configured", unreachable: true } satisfies Lost;
    return openWebSocket({ url: cfg.websocketUrl, certHashes, hello, timeoutMs });
  };
  const wt = (t: number): Promise<Link> => {
    if (!cfg.webtransportUrl) throw { reason: "no WebTransport URL configured", unreachable: true } satisfies Lost;
    return openWebTransport({ url: cfg.webtransportUrl, certHashes, hello, timeoutMs: t });
  };
  // A fallback to WebSocket is kept for the client's life; after a working
  // WebTransport each reconnection tries it first again, then WebSocket
  // (a network that starts dropping UDP must not strand the client).
  let kind: TransportKind | undefined =
    cfg.transport !== "auto" ? cfg.transport : chosen === "websocket" ? "websocket" : undefined;
  if (kind === undefined && (!hasWebTransport() || !cfg.webtransportUrl)) kind = "websocket";
  if (kind === "websocket") return ws();
  if (kind === "webtransport") return wt(timeoutMs);
  // Auto, nothing chosen yet: WebTransport within its timeout, else WebSocket.
  // A server's answer (e.g. a refused token) is final; only an unreachable
  // WebTransport falls back.
  try {
    return await wt(cfg.webtransportTimeoutMs);
  } catch (e) {
    const l = e as Lost;
    if (l.error || !cfg.websocketUrl) throw l;
    console.info(`WebTransport failed (${l.reason}); falling back to WebSocket`);
    return ws();
  }
}
