// The TypeScript SDK's client: the same behaviour as the Rust SDK
// (client-sdk/src/driver.rs). One object owns the connection, writes
// commands, routes replies, turns pushes into typed events, reconnects with
// exponential backoff and full jitter, resumes from per-conversation cursors,
// re-sends unacknowledged messages with their original client_msg_id, and
// coalesces delivered receipts.
//
// Behaviour worth knowing (as in the Rust SDK):
// - Sends survive reconnects: they resolve when the ack arrives, however many
//   connections that takes; an error reply fails the send and drops it.
// - Other requests in flight when the connection drops fail with
//   `disconnected`; requests made while disconnected wait for a connection up
//   to the request timeout.
// - A 4000-4999 error (handshake reply, goodbye or close code) stops the
//   client: a `disconnected` event with `willRetry: false`, then every call
//   fails.
// - Transport: WebTransport when the browser has it, else (or when it cannot
//   be opened within `webtransportTimeoutMs`, or when `transport` is
//   "websocket") a WebSocket carrying the same frames. A fallback to
//   WebSocket is kept for the client's reconnections.

import { create } from "@bufbuild/protobuf";
import {
  AddMembersSchema,
  ArchiveConversationSchema,
  type ClientFrame,
  ClientFrameSchema,
  type Command,
  CommandSchema,
  ConversationKind,
  type ConversationList,
  type ConversationOk,
  type ConversationSummary,
  CreateConversationSchema,
  CursorSchema,
  type Error as WireErrorProto,
  GetConversationSchema,
  GetHistorySchema,
  GetMembersSchema,
  GetPresenceSchema,
  HelloSchema,
  type History,
  JoinConversationSchema,
  LeaveConversationSchema,
  type ListConversations,
  ListConversationsSchema,
  type ListSupportQueue,
  ListSupportQueueSchema,
  MarkDeliveredSchema,
  MarkReadSchema,
  type MemberRole,
  type Members,
  type MembershipEvent,
  type Message,
  MessageBodySchema,
  MessageKind,
  MessageSchema,
  PingSchema,
  type Pong,
  type PresenceEvent,
  type Push,
  type ReceiptEvent,
  RemoveMemberSchema,
  type Reply,
  type SendMessage,
  type SendMessageOk,
  SendMessageSchema,
  type ServerFrame,
  SetMemberRoleSchema,
  SetTypingSchema,
  type TypingEvent,
  type User,
  type Welcome,
} from "../gen/chat/v1/chat_pb.js";
import { type BackoffConfig, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { Delivery, type Fetch, type ResumeState, type Step } from "./delivery.js";
import { ClientError, errorClass, type WireError, wireError } from "./errors.js";
import { Outbox } from "./outbox.js";
import {
  hasWebTransport,
  hexToBytes,
  type Link,
  type Lost,
  openWebSocket,
  openWebTransport,
  type TransportKind,
} from "./transport.js";

export const PROTOCOL_VERSION = 1;
export const SDK_VERSION = "0.1.0";

/** How often delivered receipts are flushed and deadlines checked, ms. */
const TICK_MS = 100;
/** Delivered receipts go out every this many ticks (500 ms). */
const RECEIPT_TICKS = 5;
/** Messages per history page when filling a hole. */
const GAP_PAGE = 200;
/**
 * A connection that wrote nothing for this long sends a Ping (id 0, no reply),
 * so that the server's 30 s idle timeout never closes a quiet session (the
 * Rust SDK uses QUIC keep-alives for the same; browsers give no such knob).
 */
const KEEPALIVE_MS = 10_000;

export interface ClientConfig {
  /** The JWT sent in Hello. */
  token: string;
  /** e.g. "https://localhost:4433/chat". */
  webtransportUrl?: string;
  /** e.g. "ws://localhost:8080/ws". */
  websocketUrl?: string;
  /** SHA-256 digests (hex) of the certificates WebTransport accepts (dev certificates). */
  certHashes?: string[];
  /** "auto" (default): WebTransport, falling back to WebSocket. */
  transport?: "auto" | TransportKind;
  /** How long WebTransport may take to open before the fallback, ms (default 4000). */
  webtransportTimeoutMs?: number;
  backoff?: BackoffConfig;
  /** How long a request (other than a send) waits for its reply, connection included (default 10 s). */
  requestTimeoutMs?: number;
  /** Most sends waiting for their ack (default 1024). */
  outboxCapacity?: number;
  /** Most requests waiting for a connection (default 256). */
  maxDeferred?: number;
  /** Persisted state to resume from on the first connection. */
  resume?: ResumeState;
  /** Free-form client name for the server's logs. */
  clientName?: string;
  /**
   * Replaces the built-in transports: opens a connection, says `hello` and
   * resolves with the handshaken link, or rejects with a `Lost`. For tests
   * and custom transports.
   */
  openLink?: (hello: ClientFrame) => Promise<Link>;
}

export type ConnectionState = "connecting" | "online" | "offline" | "closed";

/** Something that happened on the connection or in a conversation. */
export type ChatEvent =
  | { type: "connected"; sessionId: bigint; node: string; resumed: boolean; transport: TransportKind; user: User | undefined }
  | { type: "disconnected"; reason: string; error?: WireError; willRetry: boolean }
  | { type: "state"; state: ConnectionState }
  | { type: "message"; message: Message }
  | { type: "receipt"; receipt: ReceiptEvent }
  | { type: "typing"; typing: TypingEvent }
  | { type: "presence"; presence: PresenceEvent }
  | { type: "membership"; membership: MembershipEvent }
  | { type: "conversation"; summary: ConversationSummary }
  | { type: "caught_up" }
  | { type: "resync"; reason: string }
  | { type: "goodbye"; error?: WireError };

export type Listener = (e: ChatEvent) => void;

type ReplyResult = Reply["result"];

interface Pending<T> {
  resolve(v: T): void;
  reject(e: ClientError): void;
}

type Waiter =
  | { kind: "user"; p: Pending<ReplyResult>; deadline: number }
  | { kind: "send"; key: number; deadline: number }
  | { kind: "fetch"; conv: bigint; deadline: number };

interface Deferred {
  body: Command["body"];
  p: Pending<ReplyResult>;
  deadline: number;
}

/** The stored form of a message this client sent, from the send and its ack. */
function ownMessage(userId: string, sent: SendMessage, ok: SendMessageOk): Message {
  return create(MessageSchema, {
    conversationId: ok.conversationId,
    seq: ok.seq,
    senderId: userId,
    clientMsgId: sent.clientMsgId,
    body: sent.body,
    serverTimeMs: ok.serverTimeMs,
    replyTo: sent.replyTo,
    kind: MessageKind.USER,
  });
}

function lostToError(l: Lost): ClientError {
  return l.error ? ClientError.server(l.error) : new ClientError("connect", l.reason);
}

function isFatal(l: Lost): boolean {
  return l.error !== undefined && errorClass(l.error.code) === "fatal";
}

type ResultOf<K> = Extract<ReplyResult, { case: K }> extends { value: infer V } ? V : never;

function want<K extends NonNullable<ReplyResult["case"]>>(r: ReplyResult, k: K): ResultOf<K> {
  if (r.case !== k) throw new ClientError("protocol", `reply is not a ${k}`);
  return r.value as ResultOf<K>;
}

export class Client {
  private readonly cfg: Required<Omit<ClientConfig, "resume" | "webtransportUrl" | "websocketUrl" | "openLink">> &
    Pick<ClientConfig, "webtransportUrl" | "websocketUrl" | "openLink">;
  private readonly listeners = new Set<Listener>();
  private readonly delivery: Delivery;
  private readonly outbox: Outbox<Pending<SendMessageOk>>;
  private readonly inflight = new Map<bigint, Waiter>();
  private deferred: Deferred[] = [];
  private nextId = 1n;
  private link: Link | undefined;
  private generation = 0;
  private attempt = 0;
  private retryAfterMs: number | undefined;
  private ticks = 0;
  private lastWriteAt = 0;
  private tickTimer: ReturnType<typeof setInterval> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private goodbye: WireError | undefined;
  private _state: ConnectionState = "connecting";
  private _welcome: Welcome | undefined;
  /** The transport that worked; kept for reconnections. */
  private chosen: TransportKind | undefined;

  private constructor(config: ClientConfig) {
    this.cfg = {
      token: config.token,
      webtransportUrl: config.webtransportUrl,
      websocketUrl: config.websocketUrl,
      certHashes: config.certHashes ?? [],
      transport: config.transport ?? "auto",
      webtransportTimeoutMs: config.webtransportTimeoutMs ?? 4000,
      backoff: config.backoff ?? DEFAULT_BACKOFF,
      requestTimeoutMs: config.requestTimeoutMs ?? 10_000,
      outboxCapacity: config.outboxCapacity ?? 1024,
      maxDeferred: config.maxDeferred ?? 256,
      clientName: config.clientName ?? `chat-web/${SDK_VERSION}`,
      openLink: config.openLink,
    };
    this.delivery = new Delivery(config.resume, GAP_PAGE);
    this.outbox = new Outbox(this.cfg.outboxCapacity);
  }

  /**
   * Connects and performs the first handshake; resolves once it succeeded.
   * A refused handshake rejects with the server's error (kind "server"); a
   * connection that cannot be made at all rejects with kind "connect". This
   * first attempt is not retried; later losses are, and reported as events.
   */
  static async connect(config: ClientConfig, listener?: Listener): Promise<Client> {
    const c = new Client(config);
    if (listener) c.listeners.add(listener);
    const hello = c.hello();
    let link: Link;
    try {
      link = await c.open(hello.frame);
    } catch (e) {
      throw lostToError(e as Lost);
    }
    c.tickTimer = setInterval(() => c.onTick(), TICK_MS);
    c.startSession(link, hello.epoch, hello.resume);
    return c;
  }

  // ------------------------------------------------------------ public API

  /** Adds an event listener; returns a function that removes it. */
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** The transport of the current (or last) connection. */
  get transport(): TransportKind | undefined {
    return this.chosen;
  }

  get welcome(): Welcome | undefined {
    return this._welcome;
  }

  get user(): User | undefined {
    return this._welcome?.user;
  }

  /** The epoch and cursors to persist for resuming after a restart. */
  resumeState(): ResumeState {
    return this.delivery.resumeState();
  }

  /** Messages sent but not yet acknowledged, oldest first. */
  pendingSends(): SendMessage[] {
    return this.outbox.pending();
  }

  /**
   * Sends a message through the outbox (an empty clientMsgId is filled with
   * 128 random bits in hex) and resolves with its stored-ack, across
   * reconnects; no timeout.
   */
  send(msg: { conversationId: bigint; clientMsgId?: string; text: string; replyTo?: bigint }): Promise<SendMessageOk> {
    const m = create(SendMessageSchema, {
      conversationId: msg.conversationId,
      clientMsgId: msg.clientMsgId ?? "",
      body: create(MessageBodySchema, { content: { case: "text", value: msg.text } }),
      replyTo: msg.replyTo ?? 0n,
    });
    return this.sendRaw(m);
  }

  sendRaw(m: SendMessage): Promise<SendMessageOk> {
    if (this._state === "closed") return Promise.reject(new ClientError("closed", "the client is closed"));
    return new Promise<SendMessageOk>((resolve, reject) => {
      const key = this.outbox.push(m, { resolve, reject });
      if (key === undefined) {
        reject(new ClientError("outbox_full", "too many messages wait for their acknowledgment"));
        return;
      }
      if (this.link) this.flushOutbox();
    });
  }

  sendText(conversationId: bigint, text: string): Promise<SendMessageOk> {
    return this.send({ conversationId, text });
  }

  /** History: before `beforeSeq` (backward), after `afterSeq` (forward), newest when both are 0. */
  async history(conversationId: bigint, opts: { beforeSeq?: bigint; afterSeq?: bigint; limit?: number } = {}): Promise<History> {
    const r = await this.request({
      case: "getHistory",
      value: create(GetHistorySchema, {
        conversationId,
        beforeSeq: opts.beforeSeq ?? 0n,
        afterSeq: opts.afterSeq ?? 0n,
        limit: opts.limit ?? 50,
      }),
    });
    return want(r, "history");
  }

  async createConversation(
    kind: ConversationKind,
    opts: { title?: string; caseId?: string; members?: string[] } = {},
  ): Promise<ConversationOk> {
    const r = await this.request({
      case: "createConversation",
      value: create(CreateConversationSchema, {
        kind,
        title: opts.title ?? "",
        caseId: opts.caseId ?? "",
        members: opts.members ?? [],
      }),
    });
    return want(r, "conversation");
  }

  async listConversations(query: Partial<Omit<ListConversations, "$typeName">> = {}): Promise<ConversationList> {
    const r = await this.request({ case: "listConversations", value: create(ListConversationsSchema, query) });
    return want(r, "conversations");
  }

  async getConversation(conversationId: bigint): Promise<ConversationOk> {
    const r = await this.request({ case: "getConversation", value: create(GetConversationSchema, { conversationId }) });
    return want(r, "conversation");
  }

  async getMembers(conversationId: bigint): Promise<Members> {
    const r = await this.request({ case: "getMembers", value: create(GetMembersSchema, { conversationId }) });
    return want(r, "members");
  }

  join(conversationId: bigint): Promise<ConversationOk | undefined> {
    return this.mutation({ case: "joinConversation", value: create(JoinConversationSchema, { conversationId }) });
  }

  leave(conversationId: bigint): Promise<ConversationOk | undefined> {
    return this.mutation({ case: "leaveConversation", value: create(LeaveConversationSchema, { conversationId }) });
  }

  addMembers(conversationId: bigint, userIds: string[]): Promise<ConversationOk | undefined> {
    return this.mutation({ case: "addMembers", value: create(AddMembersSchema, { conversationId, userIds }) });
  }

  removeMember(conversationId: bigint, userId: string): Promise<ConversationOk | undefined> {
    return this.mutation({ case: "removeMember", value: create(RemoveMemberSchema, { conversationId, userId }) });
  }

  setMemberRole(conversationId: bigint, userId: string, role: MemberRole): Promise<ConversationOk | undefined> {
    return this.mutation({ case: "setMemberRole", value: create(SetMemberRoleSchema, { conversationId, userId, role }) });
  }

  archive(conversationId: bigint, unarchive = false): Promise<ConversationOk | undefined> {
    return this.mutation({
      case: "archiveConversation",
      value: create(ArchiveConversationSchema, { conversationId, unarchive }),
    });
  }

  async markRead(conversationId: bigint, seq: bigint): Promise<void> {
    await this.request({ case: "markRead", value: create(MarkReadSchema, { conversationId, seq }) });
  }

  /** Tells the server this device received messages up to `seq` (the SDK already does it for what it surfaces). */
  async markDelivered(conversationId: bigint, seq: bigint): Promise<void> {
    await this.request({ case: "markDelivered", value: create(MarkDeliveredSchema, { conversationId, seq }) });
  }

  async setTyping(conversationId: bigint, typing: boolean): Promise<void> {
    await this.request({ case: "setTyping", value: create(SetTypingSchema, { conversationId, typing }) });
  }

  /** A page of the support conversations waiting for staff, oldest first (system admins; `next` names the next page). */
  async supportQueue(query: Partial<Omit<ListSupportQueue, "$typeName">> = {}): Promise<ConversationList> {
    const r = await this.request({ case: "listSupportQueue", value: create(ListSupportQueueSchema, query) });
    return want(r, "conversations");
  }

  async getPresence(userIds: string[]): Promise<PresenceEvent[]> {
    const r = await this.request({ case: "getPresence", value: create(GetPresenceSchema, { userIds }) });
    return want(r, "presence").users;
  }

  async ping(): Promise<Pong> {
    const r = await this.request({ case: "ping", value: create(PingSchema, {}) });
    return want(r, "pong");
  }

  /** A change whose reply is either the changed conversation or a plain ok. */
  private async mutation(body: Command["body"]): Promise<ConversationOk | undefined> {
    const r = await this.request(body);
    return r.case === "conversation" ? r.value : undefined;
  }

  /** Sends one command and waits for its reply (up to the request timeout, connection included). */
  request(body: Command["body"]): Promise<ReplyResult> {
    if (this._state === "closed") return Promise.reject(new ClientError("closed", "the client is closed"));
    return new Promise<ReplyResult>((resolve, reject) => {
      const p: Pending<ReplyResult> = { resolve, reject };
      const deadline = Date.now() + this.cfg.requestTimeoutMs;
      if (this.link) {
        const id = this.newId();
        this.inflight.set(id, { kind: "user", p, deadline });
        this.write(id, body);
      } else if (this.deferred.length >= this.cfg.maxDeferred) {
        reject(new ClientError("timeout", "too many requests wait for a connection"));
      } else {
        this.deferred.push({ body, p, deadline });
      }
    });
  }

  /** Stops reconnecting and closes the connection; what still waits fails with "closed". */
  close(): void {
    if (this._state === "closed") return;
    const link = this.link;
    if (link) {
      const receipts = this.delivery.takeReceipts();
      if (receipts.length > 0) this.write(0n, this.deliveredBody(receipts));
      link.close(0, "client closed");
    }
    this.link = undefined;
    this.generation++;
    this.shutdown(new ClientError("closed", "the client is closed"));
    this.emit({ type: "disconnected", reason: "client closed", willRetry: false });
  }

  // ------------------------------------------------------------ internals

  private emit(e: ChatEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        console.error("chat event listener failed", err);
      }
    }
  }

  private setState(s: ConnectionState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit({ type: "state", state: s });
  }

  private newId(): bigint {
    return this.nextId++;
  }

  private hello(): { frame: ClientFrame; epoch: string; resume: boolean } {
    const h = this.delivery.hello();
    const frame = create(ClientFrameSchema, {
      kind: {
        case: "hello",
        value: create(HelloSchema, {
          token: this.cfg.token,
          client: this.cfg.clientName,
          epoch: h.epoch,
          cursors: h.cursors,
          resume: h.resume,
          protocolVersion: PROTOCOL_VERSION,
        }),
      },
    });
    return { frame, epoch: h.epoch, resume: h.resume };
  }

  /** Opens a link with the transport policy: WebTransport first, WebSocket as the fallback. */
  private async open(hello: ClientFrame): Promise<Link> {
    if (this.cfg.openLink) return this.cfg.openLink(hello);
    const certHashes = this.cfg.certHashes.map(hexToBytes);
    const timeoutMs = this.cfg.requestTimeoutMs;
    const ws = async (): Promise<Link> => {
      if (!this.cfg.websocketUrl) throw { reason: "no WebSocket URL configured", unreachable: true } satisfies Lost;
      return openWebSocket({ url: this.cfg.websocketUrl, certHashes, hello, timeoutMs });
    };
    const wt = (t: number): Promise<Link> => {
      if (!this.cfg.webtransportUrl) throw { reason: "no WebTransport URL configured", unreachable: true } satisfies Lost;
      return openWebTransport({ url: this.cfg.webtransportUrl, certHashes, hello, timeoutMs: t });
    };
    // A fallback to WebSocket is kept for the client's life; after a working
    // WebTransport each reconnection tries it first again, then WebSocket
    // (a network that starts dropping UDP must not strand the client).
    let kind: TransportKind | undefined =
      this.cfg.transport !== "auto" ? this.cfg.transport : this.chosen === "websocket" ? "websocket" : undefined;
    if (kind === undefined && (!hasWebTransport() || !this.cfg.webtransportUrl)) kind = "websocket";
    if (kind === "websocket") return ws();
    if (kind === "webtransport") return wt(timeoutMs);
    // Auto, nothing chosen yet: WebTransport within its timeout, else WebSocket.
    // A server's answer (e.g. a refused token) is final; only an unreachable
    // WebTransport falls back.
    try {
      return await wt(this.cfg.webtransportTimeoutMs);
    } catch (e) {
      const l = e as Lost;
      if (l.error || !this.cfg.websocketUrl) throw l;
      console.info(`WebTransport failed (${l.reason}); falling back to WebSocket`);
      return ws();
    }
  }

  private startSession(link: Link, sentEpoch: string, sentResume: boolean): void {
    const gen = ++this.generation;
    this.link = link;
    this.chosen = link.kind;
    this.goodbye = undefined;
    this.attempt = 0;
    this._welcome = link.welcome;
    const resumed = this.delivery.onWelcome(link.welcome, sentEpoch, sentResume);
    this.setState("online");
    this.emit({
      type: "connected",
      sessionId: link.welcome.sessionId,
      node: link.welcome.node,
      resumed,
      transport: link.kind,
      user: link.welcome.user,
    });
    this.flush();
    link.attach({
      onFrame: (f) => {
        if (gen === this.generation) this.onFrame(f);
      },
      onLost: (l) => {
        if (gen === this.generation) this.onLost(l);
      },
    });
  }

  private write(id: bigint, body: Command["body"]): void {
    const link = this.link;
    if (!link) return;
    const frame = create(ClientFrameSchema, {
      kind: { case: "command", value: create(CommandSchema, { id, body }) },
    });
    link.send(frame);
    this.lastWriteAt = Date.now();
  }

  private flushOutbox(): void {
    for (const e of this.outbox.unsent()) {
      const id = this.newId();
      // A send waits for its ack across reconnects: no deadline.
      this.inflight.set(id, { kind: "send", key: e.key, deadline: Number.POSITIVE_INFINITY });
      this.outbox.markSent(e.key, id);
      this.write(id, { case: "sendMessage", value: e.msg });
    }
  }

  /** After a handshake: the outbox first (original order), then requests made while disconnected. */
  private flush(): void {
    this.flushOutbox();
    const waiting = this.deferred;
    this.deferred = [];
    for (const d of waiting) {
      const id = this.newId();
      this.inflight.set(id, { kind: "user", p: d.p, deadline: d.deadline });
      this.write(id, d.body);
    }
  }

  private deliveredBody(receipts: [bigint, bigint][]): Command["body"] {
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

  private onTick(): void {
    const now = Date.now();
    for (const [id, w] of this.inflight) {
      if (w.deadline > now) continue;
      this.inflight.delete(id);
      if (w.kind === "user") w.p.reject(new ClientError("timeout", "no reply in time"));
      else if (w.kind === "fetch") this.delivery.onFetchFailed(w.conv);
    }
    if (this.deferred.some((d) => d.deadline <= now)) {
      const keep: Deferred[] = [];
      for (const d of this.deferred) {
        if (d.deadline <= now) d.p.reject(new ClientError("timeout", "no connection in time"));
        else keep.push(d);
      }
      this.deferred = keep;
    }
    if (!this.link) return;
    for (const f of this.delivery.dueFetches()) this.fetch(f);
    this.ticks++;
    if (this.ticks % RECEIPT_TICKS === 0) {
      const receipts = this.delivery.takeReceipts();
      // Id 0: no reply wanted; a refused receipt changes nothing for the app.
      if (receipts.length > 0) this.write(0n, this.deliveredBody(receipts));
    }
    if (now - this.lastWriteAt > KEEPALIVE_MS) this.write(0n, { case: "ping", value: create(PingSchema, {}) });
  }

  private fetch(f: Fetch): void {
    const id = this.newId();
    this.inflight.set(id, { kind: "fetch", conv: f.conv, deadline: Date.now() + this.cfg.requestTimeoutMs });
    this.write(id, {
      case: "getHistory",
      value: create(GetHistorySchema, { conversationId: f.conv, beforeSeq: 0n, afterSeq: f.afterSeq, limit: f.limit }),
    });
  }

  private apply(step: Step): void {
    for (const m of step.ready) this.emit({ type: "message", message: m });
    if (step.fetch) this.fetch(step.fetch);
  }

  private onFrame(f: ServerFrame): void {
    switch (f.kind.case) {
      case "reply":
        this.onReply(f.kind.value);
        break;
      case "push":
        this.onPush(f.kind.value);
        break;
      case "welcome":
        this.onLost({ reason: "protocol error: a second Welcome" });
        break;
      default:
        break;
    }
  }

  private onReply(r: Reply): void {
    const w = this.inflight.get(r.id);
    if (!w) {
      if (r.result.case === "error") console.warn("error reply to no request", r.id, wireError(r.result.value));
      return;
    }
    this.inflight.delete(r.id);
    const err = (e: WireErrorProto) => ClientError.server(wireError(e));
    if (w.kind === "user") {
      if (r.result.case === "error") w.p.reject(err(r.result.value));
      else if (r.result.case === undefined) w.p.reject(new ClientError("protocol", "reply without a result"));
      else w.p.resolve(r.result);
      return;
    }
    if (w.kind === "send") {
      const entry = this.outbox.take(w.key);
      if (!entry) return;
      if (r.result.case === "sendMessage") {
        const ok = r.result.value;
        entry.waiter.resolve(ok);
        // The server does not echo a message to the connection that sent it:
        // the ack carries all it adds, so the message takes its place in order here.
        const own = ownMessage(this._welcome?.user?.id ?? "", entry.msg, ok);
        this.apply(this.delivery.onMessage(own));
      } else if (r.result.case === "error") {
        entry.waiter.reject(err(r.result.value));
      } else {
        entry.waiter.reject(new ClientError("protocol", "reply is not a send_message"));
      }
      return;
    }
    if (r.result.case === "history") this.apply(this.delivery.onHistory(w.conv, r.result.value));
    else this.delivery.onFetchFailed(w.conv);
  }

  private onPush(p: Push): void {
    const ev = p.event;
    switch (ev.case) {
      case "message":
        if (ev.value.message) this.apply(this.delivery.onMessage(ev.value.message));
        break;
      case "receipt":
        this.emit({ type: "receipt", receipt: ev.value });
        break;
      case "receipts":
        for (const r of ev.value.receipts) this.emit({ type: "receipt", receipt: r });
        break;
      case "typing":
        this.emit({ type: "typing", typing: ev.value });
        break;
      case "presence":
        this.emit({ type: "presence", presence: ev.value });
        break;
      case "membership":
        this.emit({ type: "membership", membership: ev.value });
        break;
      case "conversation": {
        const s = ev.value.summary;
        if (s) {
          if (s.conversation) this.delivery.onConversation(s.conversation.id, s.conversation.lastSeq);
          this.emit({ type: "conversation", summary: s });
        }
        break;
      }
      case "resync":
        this.delivery.onResync(ev.value);
        this.emit({ type: "resync", reason: ev.value.reason });
        break;
      case "caughtUp":
        this.emit({ type: "caught_up" });
        break;
      case "goodbye": {
        const e = ev.value.error ? wireError(ev.value.error) : undefined;
        this.goodbye = e;
        this.emit(e ? { type: "goodbye", error: e } : { type: "goodbye" });
        break;
      }
      default:
        break;
    }
  }

  /** Fails everything that waits with `err` (the client stops). */
  private shutdown(err: ClientError): void {
    for (const w of this.inflight.values()) if (w.kind === "user") w.p.reject(err);
    this.inflight.clear();
    for (const d of this.deferred) d.p.reject(err);
    this.deferred = [];
    for (const e of this.outbox.drain()) e.waiter.reject(err);
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer);
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.tickTimer = undefined;
    this.reconnectTimer = undefined;
    this.setState("closed");
  }

  private onLost(l: Lost): void {
    const link = this.link;
    this.link = undefined;
    this.generation++;
    link?.close(0, "reconnecting");
    const lost: Lost = this.goodbye ? { reason: `goodbye: ${this.goodbye.name}`, error: this.goodbye } : l;
    this.goodbye = undefined;
    // Requests in flight fail; sends go out again later.
    for (const [id, w] of this.inflight) {
      if (w.kind === "user") w.p.reject(new ClientError("disconnected", "the connection was lost"));
      this.inflight.delete(id);
    }
    this.outbox.onDisconnect();
    this.delivery.onDisconnect();
    const fatal = isFatal(lost);
    this.retryAfterMs = lost.error?.retryAfterMs;
    this.emit({
      type: "disconnected",
      reason: lost.reason,
      ...(lost.error ? { error: lost.error } : {}),
      willRetry: !fatal,
    });
    if (fatal) {
      this.shutdown(lostToError(lost));
      return;
    }
    this.setState("offline");
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    let delay = backoffDelay(this.cfg.backoff, this.attempt);
    if (this.retryAfterMs !== undefined) delay = Math.max(delay, this.retryAfterMs);
    this.retryAfterMs = undefined;
    this.attempt++;
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delay);
  }

  private async reconnect(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this._state === "closed") return;
    this.setState("connecting");
    const hello = this.hello();
    try {
      const link = await this.open(hello.frame);
      if ((this._state as ConnectionState) === "closed") {
        link.close(0, "client closed");
        return;
      }
      this.startSession(link, hello.epoch, hello.resume);
    } catch (e) {
      if ((this._state as ConnectionState) === "closed") return;
      const l = e as Lost;
      if (isFatal(l)) {
        this.emit({ type: "disconnected", reason: l.reason, ...(l.error ? { error: l.error } : {}), willRetry: false });
        this.shutdown(lostToError(l));
        return;
      }
      this.retryAfterMs = l.error?.retryAfterMs;
      this.setState("offline");
      this.scheduleReconnect();
    }
  }
}

export { ConversationKind };
