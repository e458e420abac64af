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
  type ClientFrame,
  ClientFrameSchema,
  type Command,
  CommandSchema,
  ConversationKind,
  type ConversationList,
  type ConversationOk,
  type Error as WireErrorProto,
  HelloSchema,
  type History,
  type ListConversations,
  type ListSupportQueue,
  type MemberRole,
  type Members,
  type Pong,
  type PresenceEvent,
  type Push,
  RefreshTokenSchema,
  type Reply,
  type Search,
  type SearchResults,
  type SendMessage,
  type SendMessageOk,
  type ServerFrame,
  type User,
  type Welcome,
} from "../gen/chat/v1/chat_pb.js";
import { backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { Delivery, type Fetch, type ResumeState, type Step } from "./delivery.js";
import { ClientError, type WireError, wireError } from "./errors.js";
import { newClientMsgId, Outbox, type Outgoing } from "./outbox.js";
import { TokenRefresh } from "./refresh.js";
import * as req from "./requests.js";
import {
  type Deferred,
  deliveredBody,
  isFatal,
  lostToError,
  openLink,
  ownChange,
  ownMessage,
  type Pending,
  type ReplyResult,
  type Settings,
  type Waiter,
  want,
} from "./client-internals.js";
import { type ChatEvent, type ClientConfig, type ConnectionState, type Listener, PROTOCOL_VERSION, SDK_VERSION } from "./client-types.js";
import type { DuplexStream } from "./mux.js";
import type { Link, Lost, TransportKind } from "./transport.js";

export * from "./client-types.js";

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

export class Client {
  private readonly cfg: Settings;
  private readonly refresh: TokenRefresh;
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
      tokenProvider: config.tokenProvider,
    };
    this.refresh = new TokenRefresh(config.refreshLeadMs);
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
      link = await openLink(c.cfg, c.chosen, hello.frame);
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
  send(msg: req.OutgoingText): Promise<SendMessageOk> {
    return this.sendRaw(req.textMessage(msg));
  }

  sendRaw(m: SendMessage): Promise<SendMessageOk> {
    return this.enqueue({ case: "sendMessage", value: m });
  }

  /** Puts a send or change in the outbox; resolves with its stored-ack, across reconnects. */
  private enqueue(m: Outgoing): Promise<SendMessageOk> {
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

  /**
   * Replaces the text of one's own message at `seq`; resolves with the edit's
   * own seq once durable. Like a send it goes through the outbox and waits
   * across reconnects (so do `deleteMessage` and `react`).
   */
  edit(conversationId: bigint, seq: bigint, text: string): Promise<SendMessageOk> {
    return this.enqueue(req.editMessage(conversationId, seq, text, newClientMsgId()));
  }

  /** Deletes the message at `seq` (one's own, or as a conversation admin or moderator anyone's). */
  deleteMessage(conversationId: bigint, seq: bigint): Promise<SendMessageOk> {
    return this.enqueue(req.deleteMessage(conversationId, seq, newClientMsgId()));
  }

  /** Adds (`on`) or takes away one's reaction `emoji` on the message at `seq` (seq 0 in the ack: nothing changed). */
  react(conversationId: bigint, seq: bigint, emoji: string, on: boolean): Promise<SendMessageOk> {
    return this.enqueue(req.react(conversationId, seq, emoji, on, newClientMsgId()));
  }

  /** History: before `beforeSeq` (backward), after `afterSeq` (forward), newest when both are 0. */
  async history(conversationId: bigint, opts: { beforeSeq?: bigint; afterSeq?: bigint; limit?: number } = {}): Promise<History> {
    return want(await this.request(req.history(conversationId, opts)), "history");
  }

  /**
   * One page of full-text search hits across the user's conversations, newest
   * first, each with a snippet and the byte ranges of it that matched (UTF-8
   * offsets). Pass a page's `nextCursor` back as `cursor` for the next page.
   */
  async search(query: Partial<Omit<Search, "$typeName">>): Promise<SearchResults> {
    return want(await this.request(req.search(query)), "search");
  }

  /** Creates a conversation (`e2e`: end-to-end encrypted, fixed at creation; see `E2e`). */
  async createConversation(
    kind: ConversationKind,
    opts: { title?: string; caseId?: string; members?: string[]; e2e?: boolean } = {},
  ): Promise<ConversationOk> {
    return want(await this.request(req.createConversation(kind, opts)), "conversation");
  }

  async listConversations(query: Partial<Omit<ListConversations, "$typeName">> = {}): Promise<ConversationList> {
    return want(await this.request(req.listConversations(query)), "conversations");
  }

  async getConversation(conversationId: bigint): Promise<ConversationOk> {
    return want(await this.request(req.getConversation(conversationId)), "conversation");
  }

  async getMembers(conversationId: bigint): Promise<Members> {
    return want(await this.request(req.getMembers(conversationId)), "members");
  }

  join(conversationId: bigint): Promise<ConversationOk | undefined> {
    return this.mutation(req.join(conversationId));
  }

  leave(conversationId: bigint): Promise<ConversationOk | undefined> {
    return this.mutation(req.leave(conversationId));
  }

  addMembers(conversationId: bigint, userIds: string[]): Promise<ConversationOk | undefined> {
    return this.mutation(req.addMembers(conversationId, userIds));
  }

  removeMember(conversationId: bigint, userId: string): Promise<ConversationOk | undefined> {
    return this.mutation(req.removeMember(conversationId, userId));
  }

  setMemberRole(conversationId: bigint, userId: string, role: MemberRole): Promise<ConversationOk | undefined> {
    return this.mutation(req.setMemberRole(conversationId, userId, role));
  }

  archive(conversationId: bigint, unarchive = false): Promise<ConversationOk | undefined> {
    return this.mutation(req.archive(conversationId, unarchive));
  }

  /** Sets how many days the conversation keeps its messages (0: forever; its admins or system admins). */
  setRetention(conversationId: bigint, retentionDays: number): Promise<ConversationOk | undefined> {
    return this.mutation(req.setRetention(conversationId, retentionDays));
  }

  async markRead(conversationId: bigint, seq: bigint): Promise<void> {
    await this.request(req.markRead(conversationId, seq));
  }

  /** Tells the server this device received messages up to `seq` (the SDK already does it for what it surfaces). */
  async markDelivered(conversationId: bigint, seq: bigint): Promise<void> {
    await this.request(req.markDelivered(conversationId, seq));
  }

  async setTyping(conversationId: bigint, typing: boolean): Promise<void> {
    await this.request(req.setTyping(conversationId, typing));
  }

  /** A page of the support conversations waiting for staff, oldest first (system admins; `next` names the next page). */
  async supportQueue(query: Partial<Omit<ListSupportQueue, "$typeName">> = {}): Promise<ConversationList> {
    return want(await this.request(req.supportQueue(query)), "conversations");
  }

  async getPresence(userIds: string[]): Promise<PresenceEvent[]> {
    return want(await this.request(req.getPresence(userIds)), "presence").users;
  }

  async ping(): Promise<Pong> {
    return want(await this.request(req.ping()), "pong");
  }

  /** A change whose reply is either the changed conversation or a plain ok. */
  private async mutation(body: Command["body"]): Promise<ConversationOk | undefined> {
    const r = await this.request(body);
    return r.case === "conversation" ? r.value : undefined;
  }

  /** Sends one command and waits for its reply (up to the request timeout, connection included). */
  /** A new bidirectional stream on the current connection (attachment transfers). */
  async openStream(): Promise<DuplexStream> {
    const link = this.link;
    if (!link) throw new ClientError("disconnected", "not connected");
    if (!link.openStream) throw new ClientError("unsupported", "this server's WebSocket does not carry file transfers (no chat.mux.v1)");
    return link.openStream();
  }

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
      if (receipts.length > 0) this.write(0n, deliveredBody(receipts));
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

  private startSession(link: Link, sentEpoch: string, sentResume: boolean): void {
    const gen = ++this.generation;
    this.link = link;
    this.chosen = link.kind;
    this.goodbye = undefined;
    this.attempt = 0;
    this._welcome = link.welcome;
    this.refresh.lapsesAt(Number(link.welcome.tokenExpiresAtMs));
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
      this.write(id, e.msg);
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
      if (receipts.length > 0) this.write(0n, deliveredBody(receipts));
    }
    if (now - this.lastWriteAt > KEEPALIVE_MS) this.write(0n, req.ping());
    if (this.cfg.tokenProvider && this.refresh.start(now)) void this.refreshToken(this.cfg.tokenProvider);
  }

  /** Hands the session a fresh token from the app's provider (see `TokenRefresh`). */
  private async refreshToken(provider: () => Promise<string>): Promise<void> {
    try {
      const token = await provider();
      const r = await this.request({ case: "refreshToken", value: create(RefreshTokenSchema, { token }) });
      if (r.case !== "tokenRefreshed") throw new ClientError("protocol", "reply is not token_refreshed");
      this.cfg.token = token; // reconnections sign in with it
      this.refresh.refreshed(Number(r.value.expiresAtMs), Date.now());
    } catch {
      this.refresh.failed(Date.now());
    }
  }

  private fetch(f: Fetch): void {
    const id = this.newId();
    this.inflight.set(id, { kind: "fetch", conv: f.conv, deadline: Date.now() + this.cfg.requestTimeoutMs });
    this.write(id, req.history(f.conv, { afterSeq: f.afterSeq, limit: f.limit }));
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
        // The server does not echo a message or change to the connection that
        // sent it: the ack carries all it adds, so it takes its place in order here.
        const me = this._welcome?.user?.id ?? "";
        const own = entry.msg.case === "sendMessage" ? ownMessage(me, entry.msg.value, ok) : ownChange(me, entry.msg, ok);
        if (own) this.apply(this.delivery.onMessage(own));
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
      const link = await openLink(this.cfg, this.chosen, hello.frame);
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
