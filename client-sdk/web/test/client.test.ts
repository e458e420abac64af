// The Client's behaviour against a scripted server behind the `openLink` hook:
// outbox re-sends, request failures, deferral, error classes, resume cursors,
// coalesced receipts and hole filling. No network, no browser.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it, vi } from "vitest";
import {
  type ClientFrame,
  type Command,
  CursorSchema,
  ErrorCode,
  ErrorSchema,
  HistorySchema,
  type Message,
  MessageSchema,
  type ServerFrame,
  ServerFrameSchema,
  UserSchema,
  type Welcome,
  WelcomeSchema,
} from "../src/gen/chat/v1/chat_pb.js";
import { type ChatEvent, Client, type ClientConfig } from "../src/sdk/client.js";
import type { Link, LinkHandlers, Lost } from "../src/sdk/transport.js";

class FakeLink implements Link {
  readonly kind = "websocket" as const;
  sent: ClientFrame[] = [];
  h: LinkHandlers | undefined;
  closed = false;
  constructor(
    readonly hello: ClientFrame,
    readonly welcome: Welcome,
  ) {}
  send(f: ClientFrame) {
    this.sent.push(f);
  }
  attach(h: LinkHandlers) {
    this.h = h;
  }
  close() {
    this.closed = true;
  }
  push(f: ServerFrame) {
    this.h!.onFrame(f);
  }
  drop(l: Lost = { reason: "network" }) {
    this.h!.onLost(l);
  }
  commands(): Command[] {
    return this.sent.flatMap((f) => (f.kind.case === "command" ? [f.kind.value] : []));
  }
  reply(id: bigint, result: object) {
    this.push(create(ServerFrameSchema, { kind: { case: "reply", value: { id, result } as never } }));
  }
}

class FakeServer {
  links: FakeLink[] = [];
  refuse: Lost[] = [];
  opened: number[] = [];
  heads: [bigint, bigint][] = [];
  tokenExpiresAtMs = 0n;
  open = async (hello: ClientFrame): Promise<Link> => {
    this.opened.push(Date.now());
    const r = this.refuse.shift();
    if (r) throw r;
    const w = create(WelcomeSchema, {
      user: create(UserSchema, { id: "me", displayName: "Me" }),
      epoch: "e1",
      sessionId: BigInt(this.links.length + 1),
      heads: this.heads.map(([conversationId, seq]) => create(CursorSchema, { conversationId, seq })),
      tokenExpiresAtMs: this.tokenExpiresAtMs,
    });
    const l = new FakeLink(hello, w);
    this.links.push(l);
    return l;
  };
  get link(): FakeLink {
    return this.links[this.links.length - 1]!;
  }
}

async function connect(server: FakeServer, extra: Partial<ClientConfig> = {}) {
  const events: ChatEvent[] = [];
  const client = await Client.connect(
    { token: "t", openLink: server.open, backoff: { initialMs: 1, maxMs: 5, multiplier: 2 }, ...extra },
    (e) => events.push(e),
  );
  return { client, events };
}

const msg = (conv: bigint, seq: bigint, sender = "other", text = `m${seq}`): Message =>
  create(MessageSchema, { conversationId: conv, seq, senderId: sender, body: { content: { case: "text", value: text } } });
const pushMessage = (m: Message) =>
  create(ServerFrameSchema, { kind: { case: "push", value: { event: { case: "message", value: { message: m } } } as never } });
const messages = (events: ChatEvent[]) =>
  events.flatMap((e) => (e.type === "message" ? [`${e.message.conversationId}:${e.message.seq}`] : []));
const sendAck = (conv: bigint, seq: bigint) => ({ case: "sendMessage", value: { conversationId: conv, seq, serverTimeMs: 1n } });

describe("Client", () => {
  it("re-sends unacknowledged messages in order with the same client_msg_id after a reconnect", async () => {
    const server = new FakeServer();
    server.heads = [[1n, 0n]];
    const { client, events } = await connect(server);
    const a = client.sendText(1n, "a");
    const b = client.sendText(1n, "b");
    const c = client.sendText(1n, "c");
    const first = server.link.commands();
    expect(first.map((x) => x.body.case)).toEqual(["sendMessage", "sendMessage", "sendMessage"]);
    const ids = first.map((x) => (x.body.value as { clientMsgId: string }).clientMsgId);
    // a is acked, then the connection drops before b and c are.
    server.link.reply(first[0]!.id, sendAck(1n, 1n));
    await expect(a).resolves.toMatchObject({ seq: 1n });
    server.link.drop();
    await vi.waitFor(() => expect(server.links.length).toBe(2));
    const again = server.link.commands();
    expect(again.map((x) => (x.body.value as { clientMsgId: string }).clientMsgId)).toEqual([ids[1], ids[2]]);
    server.link.reply(again[0]!.id, sendAck(1n, 2n));
    server.link.reply(again[1]!.id, sendAck(1n, 3n));
    await expect(b).resolves.toMatchObject({ seq: 2n });
    await expect(c).resolves.toMatchObject({ seq: 3n });
    // Own messages surface once each, in order; a pushed copy is a duplicate.
    server.link.push(pushMessage(msg(1n, 2n, "me")));
    expect(messages(events)).toEqual(["1:1", "1:2", "1:3"]);
    // The reconnect resumed from the cursor it held.
    const hello = server.link.hello.kind.value as { resume: boolean; epoch: string; cursors: { seq: bigint }[] };
    expect(hello.resume).toBe(true);
    expect(hello.epoch).toBe("e1");
    expect(hello.cursors.map((x) => x.seq)).toEqual([1n]);
    client.close();
  });

  it("surfaces its own edit, delete and reaction once each, in order, from their acks", async () => {
    const server = new FakeServer();
    server.heads = [[1n, 0n]];
    const { client, events } = await connect(server);
    server.link.push(pushMessage(msg(1n, 1n, "other")));
    const edit = client.edit(1n, 1n, "fixed");
    const react = client.react(1n, 1n, "👍", true);
    const again = client.react(1n, 1n, "👍", true);
    const del = client.deleteMessage(1n, 1n);
    const [e, r, r2, d] = server.link.commands();
    expect([e, r, r2, d].map((x) => x!.body.case)).toEqual(["editMessage", "react", "react", "deleteMessage"]);
    server.link.reply(e!.id, sendAck(1n, 2n));
    server.link.reply(r!.id, sendAck(1n, 3n));
    // A reaction one already has changes nothing: seq 0, nothing surfaced.
    server.link.reply(r2!.id, { case: "sendMessage", value: { conversationId: 1n, seq: 0n, duplicate: true } });
    server.link.reply(d!.id, sendAck(1n, 4n));
    await expect(Promise.all([edit, react, again, del])).resolves.toHaveLength(4);
    // A pushed copy of an own change is a duplicate.
    server.link.push(pushMessage(create(MessageSchema, { conversationId: 1n, seq: 3n, senderId: "me", kind: 5 })));
    const changes = events.flatMap((x) => (x.type === "message" ? [[x.message.seq, x.message.kind, x.message.targetSeq, x.message.senderId]] : []));
    expect(changes).toEqual([
      [1n, 0, 0n, "other"],
      [2n, 3, 1n, "me"],
      [3n, 5, 1n, "me"],
      [4n, 4, 1n, "me"],
    ]);
    client.close();
  });

  it("carries edits, deletes and reactions across a reconnect with their client_msg_id, like sends", async () => {
    const server = new FakeServer();
    server.heads = [[1n, 1n]];
    const { client } = await connect(server);
    const edit = client.edit(1n, 1n, "fixed");
    const react = client.react(1n, 1n, "👍", true);
    const first = server.link.commands();
    const ids = first.map((x) => (x.body.value as { clientMsgId: string }).clientMsgId);
    server.link.drop();
    await vi.waitFor(() => expect(server.links.length).toBe(2));
    const again = server.link.commands();
    expect(again.map((x) => x.body.case)).toEqual(["editMessage", "react"]);
    expect(again.map((x) => (x.body.value as { clientMsgId: string }).clientMsgId)).toEqual(ids);
    server.link.reply(again[0]!.id, sendAck(1n, 2n));
    server.link.reply(again[1]!.id, sendAck(1n, 3n));
    await expect(edit).resolves.toMatchObject({ seq: 2n });
    await expect(react).resolves.toMatchObject({ seq: 3n });
    client.close();
  });

  it("fails requests in flight on a drop and holds requests made while offline", async () => {
    const server = new FakeServer();
    const { client } = await connect(server, { backoff: { initialMs: 200, maxMs: 200, multiplier: 1 } });
    const inFlight = client.ping();
    server.link.drop();
    await expect(inFlight).rejects.toMatchObject({ kind: "disconnected" });
    expect(client.state).toBe("offline");
    const later = client.getMembers(5n);
    await vi.waitFor(() => expect(server.links.length).toBe(2), { timeout: 2000 });
    const cmd = server.link.commands().find((x) => x.body.case === "getMembers")!;
    server.link.reply(cmd.id, { case: "members", value: { conversationId: 5n, members: [] } });
    await expect(later).resolves.toMatchObject({ conversationId: 5n });
    client.close();
    await expect(client.ping()).rejects.toMatchObject({ kind: "closed" });
  });

  it("stops for good on a 4000-4999 goodbye and fails what waits", async () => {
    const server = new FakeServer();
    const { client, events } = await connect(server);
    const pending = client.sendText(1n, "never acked");
    const error = create(ErrorSchema, { code: ErrorCode.TOKEN_EXPIRED, message: "expired" });
    server.link.push(create(ServerFrameSchema, { kind: { case: "push", value: { event: { case: "goodbye", value: { error } } } as never } }));
    server.link.drop({ reason: "closed" });
    await expect(pending).rejects.toMatchObject({ kind: "server", wire: { code: 4001 } });
    expect(client.state).toBe("closed");
    expect(events.find((e) => e.type === "disconnected")).toMatchObject({ willRetry: false, error: { name: "TOKEN_EXPIRED" } });
    await new Promise((r) => setTimeout(r, 50));
    expect(server.links.length).toBe(1);
  });

  it("waits at least retry_after_ms before reconnecting after a retry-class refusal", async () => {
    const server = new FakeServer();
    const { client } = await connect(server);
    server.refuse.push({ reason: "busy", error: { code: 3004, name: "CONNECTION_RATE_LIMITED", message: "", retryAfterMs: 300 } });
    const t0 = Date.now();
    server.link.drop();
    await vi.waitFor(() => expect(server.links.length).toBe(2), { timeout: 3000 });
    expect(server.opened.length).toBe(3);
    expect(server.opened[2]! - server.opened[1]!).toBeGreaterThanOrEqual(290);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    client.close();
  });

  it("fills a hole from history and coalesces delivered receipts into one command", async () => {
    const server = new FakeServer();
    server.heads = [[1n, 0n], [2n, 10n]];
    const { client, events } = await connect(server);
    server.link.push(pushMessage(msg(1n, 1n)));
    server.link.push(pushMessage(msg(1n, 3n)));
    server.link.push(pushMessage(msg(2n, 11n)));
    server.link.push(pushMessage(msg(2n, 12n)));
    expect(messages(events)).toEqual(["1:1", "2:11", "2:12"]);
    const fetch = await vi.waitFor(() => {
      const f = server.link.commands().find((x) => x.body.case === "getHistory");
      expect(f).toBeDefined();
      return f!;
    });
    expect(fetch.body.value).toMatchObject({ conversationId: 1n, afterSeq: 1n, limit: 2 });
    server.link.reply(fetch.id, { case: "history", value: create(HistorySchema, { conversationId: 1n, messages: [msg(1n, 2n), msg(1n, 3n)] }) });
    expect(messages(events)).toEqual(["1:1", "2:11", "2:12", "1:2", "1:3"]);
    const receipt = await vi.waitFor(
      () => {
        const r = server.link.commands().filter((x) => x.body.case === "markDelivered");
        expect(r.length).toBe(1);
        return r[0]!;
      },
      { timeout: 2000 },
    );
    expect(receipt.id).toBe(0n);
    const v = receipt.body.value as { conversationId: bigint; seq: bigint; more: { conversationId: bigint; seq: bigint }[] };
    expect([v.conversationId, v.seq]).toEqual([1n, 3n]);
    expect(v.more.map((c) => [c.conversationId, c.seq])).toEqual([[2n, 12n]]);
    client.close();
  });

  it("rejects a first connection the server refuses, without retrying", async () => {
    const server = new FakeServer();
    server.refuse.push({ reason: "bad token", error: { code: 4000, name: "UNAUTHENTICATED", message: "bad signature" } });
    await expect(connect(server)).rejects.toMatchObject({ kind: "server", wire: { code: 4000 } });
    expect(server.opened.length).toBe(1);
  });

  it("refreshes the token through the app's provider before it lapses, and reconnects with the fresh one", async () => {
    const server = new FakeServer();
    server.tokenExpiresAtMs = BigInt(Date.now() + 30_000);
    let asked = 0;
    const tokenProvider = async () => `fresh-${++asked}`;
    const { client } = await connect(server, { tokenProvider, refreshLeadMs: 60_000 });
    const refreshes = () => server.link.commands().filter((c) => c.body.case === "refreshToken");
    await vi.waitFor(() => expect(refreshes().length).toBe(1));
    const cmd = refreshes()[0]!;
    expect((cmd.body.value as { token: string }).token).toBe("fresh-1");
    // One attempt at a time: nothing more while it is in flight.
    await new Promise((r) => setTimeout(r, 300));
    expect(refreshes().length).toBe(1);
    server.link.reply(cmd.id, { case: "tokenRefreshed", value: { expiresAtMs: BigInt(Date.now() + 3_600_000) } });
    await new Promise((r) => setTimeout(r, 300));
    expect(refreshes().length).toBe(1);
    expect(asked).toBe(1);
    // The next connection signs in with the fresh token.
    server.link.drop();
    await vi.waitFor(() => expect(server.links.length).toBe(2));
    expect((server.link.hello.kind.value as { token: string }).token).toBe("fresh-1");
    client.close();
  });

  it("does not refresh without a provider or far from the lapse", async () => {
    const server = new FakeServer();
    server.tokenExpiresAtMs = BigInt(Date.now() + 3_600_000);
    let asked = 0;
    const { client } = await connect(server, { tokenProvider: async () => `t${++asked}` });
    await new Promise((r) => setTimeout(r, 300));
    expect(asked).toBe(0);
    expect(server.link.commands().some((c) => c.body.case === "refreshToken")).toBe(false);
    client.close();
  });
});
