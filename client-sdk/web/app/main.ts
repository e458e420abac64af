// The chat web app: served by `chatd serve`, talks to the server through the
// TypeScript SDK (WebTransport, or WebSocket as the fallback). Plain DOM code;
// everything users type is rendered with text nodes (see markdown.ts).

import {
  type ChatEvent,
  Client,
  ClientError,
  type ConnectionState,
  ConversationKind,
  newClientMsgId,
  pb,
} from "../src/sdk/index.js";
import { append, clear, h } from "./dom.js";
import { plainText, renderMarkdown } from "./markdown.js";

type ConversationSummary = pb.ConversationSummary;
type Member = pb.Member;
type Message = pb.Message;

interface ServerConfig {
  webtransport_url?: string;
  websocket_url?: string;
  cert_hashes?: string[];
  version?: string;
}

interface Pending {
  clientMsgId: string;
  text: string;
  error?: string;
}

interface ConvView {
  summary: ConversationSummary;
  messages: Map<bigint, Message>;
  /** Whether the newest page was loaded. */
  loaded: boolean;
  loadingOlder: boolean;
  hasOlder: boolean;
  members: Member[] | undefined;
  /** Watermarks per member. */
  delivered: Map<string, bigint>;
  read: Map<string, bigint>;
  typing: Map<string, ReturnType<typeof setTimeout>>;
  pending: Pending[];
  unread: bigint;
}

const TOKEN_KEY = "chatd.token";
/** The transport a fallback chose, kept for this tab's session. */
const TRANSPORT_KEY = "chatd.transport";
const PAGE = 50;
const TYPING_REFRESH_MS = 2000;
const TYPING_IDLE_MS = 3000;
const TYPING_SHOW_MS = 4000;
const MAX_TEXT_BYTES = 10 * 1024;

const root = document.getElementById("app") as HTMLElement;

// ---------------------------------------------------------------- state

let client: Client | undefined;
let me: pb.User | undefined;
const convs = new Map<string, ConvView>();
const presence = new Map<string, boolean>();
const names = new Map<string, string>();
let current: string | undefined;
let connState: ConnectionState = "connecting";
let transport = "";
let banner = "";
let supportQueue: ConversationSummary[] = [];
/** More support requests wait than the first page shows. */
let supportQueueMore = false;
let dialogOpen = false;
let typingSentAt = 0;
let typingConv: bigint | undefined;
let typingStopTimer: ReturnType<typeof setTimeout> | undefined;

const key = (id: bigint) => id.toString();

function isAdmin(): boolean {
  return me?.role === pb.Role.ADMIN;
}

function describeError(e: unknown): string {
  if (e instanceof ClientError) return e.wire ? `${e.wire.name}: ${e.wire.message}` : e.message;
  return String((e as Error)?.message ?? e);
}

// ---------------------------------------------------------------- sign in

function readTokenFromFragment(): string | undefined {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return undefined;
  const token = decodeURIComponent(m[1]!);
  // The token must not stay in the address bar or the history.
  history.replaceState(null, "", location.pathname + location.search);
  return token;
}

function signInScreen(error?: string): void {
  clear(root);
  const input = h("textarea", {
    id: "token",
    rows: 5,
    placeholder: "Paste a development token (chatd token --user alice)",
    autocomplete: "off",
    spellcheck: "false",
  });
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const t = input.value.trim();
        if (t !== "") void start(t);
      },
    },
    h("h1", {}, "chatd"),
    h("p", { class: "muted" }, "Secure chat for advocates, clients and staff."),
    h("label", { for: "token" }, "Development token"),
    input,
    error ? h("p", { class: "error", role: "alert" }, error) : null,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    h("p", { class: "muted small" }, "Mint one with ", h("code", {}, "chatd token --user <id> --role advocate"), "."),
  );
  append(root, [form]);
  input.focus();
}

async function loadConfig(): Promise<ServerConfig> {
  const r = await fetch("/config.json", { cache: "no-store" });
  if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`);
  return (await r.json()) as ServerConfig;
}

async function start(token: string): Promise<void> {
  clear(root);
  append(root, [h("div", { class: "splash" }, "Connecting…")]);
  let cfg: ServerConfig;
  try {
    cfg = await loadConfig();
  } catch (e) {
    signInScreen(`Cannot load the server configuration: ${describeError(e)}`);
    return;
  }
  const params = new URLSearchParams(location.search);
  const forced = params.get("transport") ?? sessionStorage.getItem(TRANSPORT_KEY);
  try {
    client = await Client.connect(
      {
        token,
        webtransportUrl: cfg.webtransport_url,
        websocketUrl: cfg.websocket_url,
        certHashes: cfg.cert_hashes ?? [],
        transport: forced === "websocket" || forced === "webtransport" ? forced : "auto",
        clientName: `chat-web/${cfg.version ?? "dev"}`,
      },
      onEvent,
    );
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    signInScreen(`Sign-in failed: ${describeError(e)}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  // WebTransport failed and WebSocket worked: skip the wait on reloads in this tab.
  if (client.transport === "websocket" && cfg.webtransport_url && !params.get("transport")) {
    sessionStorage.setItem(TRANSPORT_KEY, "websocket");
  }
  me = client.user;
  if (me) names.set(me.id, me.displayName || me.id);
  transport = client.transport ?? "";
  connState = client.state;
  buildShell();
  await reloadAll();
  if (isAdmin()) startQueuePolling();
}

/** Staff: the server pushes nothing when a support request waits, so the queue is polled. */
const QUEUE_POLL_MS = 5000;
let queueTimer: ReturnType<typeof setInterval> | undefined;
function startQueuePolling(): void {
  if (queueTimer) clearInterval(queueTimer);
  queueTimer = setInterval(() => {
    if (!client || client.state !== "online") return;
    void refreshSupportQueue().then(renderQueue);
  }, QUEUE_POLL_MS);
}

function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  if (queueTimer) clearInterval(queueTimer);
  queueTimer = undefined;
  client?.close();
  client = undefined;
  convs.clear();
  current = undefined;
  signInScreen();
}

// ---------------------------------------------------------------- loading

async function reloadAll(): Promise<void> {
  const c = client;
  if (!c) return;
  try {
    const list = await c.listConversations({ limit: 200 });
    const seen = new Set<string>();
    for (const s of list.conversations) {
      if (!s.conversation) continue;
      seen.add(key(s.conversation.id));
      upsertSummary(s, true);
    }
    for (const k of [...convs.keys()]) if (!seen.has(k)) convs.delete(k);
    await Promise.all([...convs.values()].map((v) => loadMembers(v)));
    await refreshPresence();
    if (isAdmin()) await refreshSupportQueue();
    if (current && convs.has(current)) {
      const v = convs.get(current)!;
      await loadNewest(v);
      markReadIfVisible(v);
    }
  } catch (e) {
    banner = `Could not load conversations: ${describeError(e)}`;
  }
  render();
}

function newView(s: ConversationSummary): ConvView {
  return {
    summary: s,
    messages: new Map(),
    loaded: false,
    loadingOlder: false,
    hasOlder: true,
    members: undefined,
    delivered: new Map(),
    read: new Map(),
    typing: new Map(),
    pending: [],
    unread: s.unreadCount,
  };
}

function upsertSummary(s: ConversationSummary, fromList: boolean): ConvView {
  const id = key(s.conversation!.id);
  let v = convs.get(id);
  if (!v) {
    v = newView(s);
    convs.set(id, v);
  } else {
    const keepLast = v.summary.lastMessage;
    v.summary = s;
    if (!s.lastMessage || (keepLast && keepLast.seq > s.lastMessage.seq)) v.summary.lastMessage = keepLast;
    if (fromList) v.unread = s.unreadCount;
  }
  if (s.lastMessage) names.has(s.lastMessage.senderId) || names.set(s.lastMessage.senderId, s.lastMessage.senderId);
  return v;
}

async function loadMembers(v: ConvView): Promise<void> {
  if (!client || !v.summary.conversation) return;
  try {
    const m = await client.getMembers(v.summary.conversation.id);
    v.members = m.members;
    for (const x of m.members) {
      names.set(x.userId, x.displayName || x.userId);
      v.delivered.set(x.userId, maxBig(v.delivered.get(x.userId), x.deliveredSeq));
      v.read.set(x.userId, maxBig(v.read.get(x.userId), x.readSeq));
    }
  } catch {
    // Not a member any more, or offline: the list refresh sorts it out.
  }
}

async function refreshPresence(): Promise<void> {
  if (!client) return;
  const ids = new Set<string>();
  for (const v of convs.values()) for (const m of v.members ?? []) if (m.userId !== me?.id) ids.add(m.userId);
  if (ids.size === 0) return;
  try {
    for (const p of await client.getPresence([...ids])) presence.set(p.userId, p.online);
  } catch {
    // Presence is a nicety.
  }
}

async function refreshSupportQueue(): Promise<void> {
  if (!client) return;
  try {
    const page = await client.supportQueue();
    supportQueue = page.conversations;
    supportQueueMore = page.next !== "";
  } catch {
    supportQueue = [];
    supportQueueMore = false;
  }
}

async function loadNewest(v: ConvView): Promise<void> {
  if (!client || !v.summary.conversation) return;
  const id = v.summary.conversation.id;
  const page = await client.history(id, { limit: PAGE });
  for (const m of page.messages) addMessage(v, m);
  v.loaded = true;
  v.hasOlder = page.hasMore;
}

async function loadOlder(v: ConvView): Promise<void> {
  if (!client || !v.summary.conversation || v.loadingOlder || !v.hasOlder) return;
  const oldest = [...v.messages.keys()].reduce<bigint | undefined>((a, b) => (a === undefined || b < a ? b : a), undefined);
  if (oldest === undefined || oldest <= 1n) {
    v.hasOlder = false;
    return;
  }
  v.loadingOlder = true;
  const list = document.getElementById("messages");
  const fromBottom = list ? list.scrollHeight - list.scrollTop : 0;
  try {
    const page = await client.history(v.summary.conversation.id, { beforeSeq: oldest, limit: PAGE });
    for (const m of page.messages) addMessage(v, m);
    v.hasOlder = page.hasMore;
  } catch (e) {
    banner = `Could not load older messages: ${describeError(e)}`;
  } finally {
    v.loadingOlder = false;
  }
  renderMessages();
  const after = document.getElementById("messages");
  if (after) after.scrollTop = after.scrollHeight - fromBottom;
}

function maxBig(a: bigint | undefined, b: bigint): bigint {
  return a === undefined || b > a ? b : a;
}

/** Edits, deletes and reactions: entries this app does not show yet (history has their result). */
function isChange(m: Message): boolean {
  return m.kind === pb.MessageKind.EDIT || m.kind === pb.MessageKind.DELETE || m.kind === pb.MessageKind.REACTION;
}

function addMessage(v: ConvView, m: Message): boolean {
  if (isChange(m)) {
    // They move the head only: no bubble, no unread, no preview.
    if (v.summary.conversation && m.seq > v.summary.conversation.lastSeq) v.summary.conversation.lastSeq = m.seq;
    return false;
  }
  if (v.messages.has(m.seq)) return false;
  v.messages.set(m.seq, m);
  const last = v.summary.lastMessage;
  if (!last || m.seq > last.seq) v.summary.lastMessage = m;
  if (v.summary.conversation && m.seq > v.summary.conversation.lastSeq) v.summary.conversation.lastSeq = m.seq;
  if (m.clientMsgId !== "") v.pending = v.pending.filter((p) => p.clientMsgId !== m.clientMsgId);
  return true;
}

// ---------------------------------------------------------------- events

function onEvent(e: ChatEvent): void {
  switch (e.type) {
    case "state":
      connState = e.state;
      // Cut off, this app no longer knows who is online: nobody is shown
      // online (or offline) until the reconnect asks again.
      if (connState !== "online") presence.clear();
      render();
      break;
    case "connected":
      transport = e.transport;
      banner = "";
      if (me) void reloadAll();
      renderStatus();
      break;
    case "disconnected":
      banner = e.willRetry ? "Connection lost; reconnecting…" : `Disconnected: ${e.error ? `${e.error.name}: ${e.error.message}` : e.reason}`;
      if (!e.willRetry && e.error && e.error.code >= 4000 && e.error.code < 5000) {
        // The token is refused for good (expired, revoked): sign in again.
        const why = `${e.error.name}: ${e.error.message}`;
        sessionStorage.removeItem(TOKEN_KEY);
        client = undefined;
        convs.clear();
        current = undefined;
        signInScreen(`Signed out by the server (${why}).`);
        break;
      }
      renderStatus();
      break;
    case "message":
      onMessage(e.message);
      break;
    case "receipt": {
      const v = convs.get(key(e.receipt.conversationId));
      if (!v) break;
      const map = e.receipt.kind === pb.ReceiptKind.READ ? v.read : v.delivered;
      map.set(e.receipt.userId, maxBig(map.get(e.receipt.userId), e.receipt.seq));
      if (e.receipt.kind === pb.ReceiptKind.READ) v.delivered.set(e.receipt.userId, maxBig(v.delivered.get(e.receipt.userId), e.receipt.seq));
      if (e.receipt.userId === me?.id && e.receipt.kind === pb.ReceiptKind.READ) {
        const last = v.summary.conversation?.lastSeq ?? 0n;
        if (e.receipt.seq >= last) v.unread = 0n;
      }
      if (current === key(e.receipt.conversationId)) renderMessages();
      renderList();
      break;
    }
    case "typing": {
      const t = e.typing;
      if (t.userId === me?.id) break;
      const v = convs.get(key(t.conversationId));
      if (!v) break;
      const old = v.typing.get(t.userId);
      if (old) clearTimeout(old);
      v.typing.delete(t.userId);
      if (t.typing) {
        v.typing.set(
          t.userId,
          setTimeout(() => {
            v.typing.delete(t.userId);
            renderTyping();
          }, TYPING_SHOW_MS),
        );
      }
      renderTyping();
      break;
    }
    case "presence":
      presence.set(e.presence.userId, e.presence.online);
      renderList();
      renderHeader();
      break;
    case "membership": {
      const m = e.membership;
      const v = convs.get(key(m.conversationId));
      const gone =
        m.userId === me?.id &&
        (m.change === pb.MembershipChange.REMOVED || m.change === pb.MembershipChange.LEFT);
      if (gone) {
        convs.delete(key(m.conversationId));
        if (current === key(m.conversationId)) current = undefined;
        render();
      } else if (v) {
        void loadMembers(v).then(() => refreshPresence()).then(render);
      }
      break;
    }
    case "conversation": {
      const s = e.summary;
      if (!s.conversation) break;
      const isNew = !convs.has(key(s.conversation.id));
      const v = upsertSummary(s, false);
      if (isNew) void loadMembers(v).then(() => refreshPresence()).then(render);
      if (isAdmin()) void refreshSupportQueue().then(render);
      render();
      break;
    }
    case "resync":
      void reloadAll();
      break;
    case "caught_up":
    case "goodbye":
      break;
  }
}

function onMessage(m: Message): void {
  const id = key(m.conversationId);
  let v = convs.get(id);
  if (!v) {
    // A conversation we have not listed yet: fetch its summary.
    void client?.getConversation(m.conversationId).then((ok) => {
      if (ok.summary) {
        const nv = upsertSummary(ok.summary, true);
        addMessage(nv, m);
        void loadMembers(nv).then(render);
      }
    });
    return;
  }
  if (!addMessage(v, m)) return;
  names.has(m.senderId) || names.set(m.senderId, m.senderId);
  const mine = m.senderId === me?.id;
  if (!mine) {
    const t = v.typing.get(m.senderId);
    if (t) clearTimeout(t);
    v.typing.delete(m.senderId);
  }
  if (current === id) {
    renderMessages(true);
    renderTyping();
    if (!mine) markReadIfVisible(v);
  } else if (!mine && m.kind !== pb.MessageKind.SYSTEM) {
    v.unread += 1n;
  }
  renderList();
}

function markReadIfVisible(v: ConvView): void {
  if (!client || !v.summary.conversation || document.visibilityState !== "visible") return;
  if (current !== key(v.summary.conversation.id)) return;
  const last = [...v.messages.keys()].reduce((a, b) => (b > a ? b : a), 0n);
  const mine = v.read.get(me?.id ?? "") ?? v.summary.readSeq;
  v.unread = 0n;
  if (last === 0n || last <= mine) return;
  v.read.set(me?.id ?? "", last);
  void client.markRead(v.summary.conversation.id, last).catch(() => {});
}

document.addEventListener("visibilitychange", () => {
  if (current) {
    const v = convs.get(current);
    if (v) markReadIfVisible(v);
    renderList();
  }
});

// ---------------------------------------------------------------- actions

async function openConversation(id: string): Promise<void> {
  stopTyping();
  current = id;
  const v = convs.get(id);
  render();
  if (!v) return;
  try {
    if (!v.loaded) await loadNewest(v);
    if (!v.members) await loadMembers(v);
  } catch (e) {
    banner = `Could not open the conversation: ${describeError(e)}`;
  }
  markReadIfVisible(v);
  render();
  const list = document.getElementById("messages");
  if (list) list.scrollTop = list.scrollHeight;
  (document.getElementById("composer-input") as HTMLTextAreaElement | null)?.focus();
}

function utf8Len(s: string): number {
  return new TextEncoder().encode(s).length;
}

function sendCurrent(input: HTMLTextAreaElement): void {
  const v = current ? convs.get(current) : undefined;
  const c = client;
  if (!v || !c || !v.summary.conversation) return;
  const text = input.value;
  if (text.trim() === "") return;
  if (utf8Len(text) > MAX_TEXT_BYTES) {
    banner = `A message holds at most ${MAX_TEXT_BYTES / 1024} KiB of text.`;
    renderStatus();
    return;
  }
  const clientMsgId = newClientMsgId();
  const pending: Pending = { clientMsgId, text };
  v.pending.push(pending);
  input.value = "";
  stopTyping();
  renderMessages(true);
  c.send({ conversationId: v.summary.conversation.id, clientMsgId, text }).then(
    () => {
      // The SDK surfaces the message itself (in order); the pending line goes then.
    },
    (e) => {
      pending.error = describeError(e);
      renderMessages();
    },
  );
}

function onComposerInput(input: HTMLTextAreaElement): void {
  const v = current ? convs.get(current) : undefined;
  if (!client || !v?.summary.conversation) return;
  const id = v.summary.conversation.id;
  if (input.value.trim() === "") {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (typingConv !== id || now - typingSentAt > TYPING_REFRESH_MS) {
    typingConv = id;
    typingSentAt = now;
    void client.setTyping(id, true).catch(() => {});
  }
  if (typingStopTimer) clearTimeout(typingStopTimer);
  typingStopTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping(): void {
  if (typingStopTimer) clearTimeout(typingStopTimer);
  typingStopTimer = undefined;
  if (typingConv !== undefined && client) void client.setTyping(typingConv, false).catch(() => {});
  typingConv = undefined;
  typingSentAt = 0;
}

// ---------------------------------------------------------------- names

function convTitle(v: ConvView): string {
  const c = v.summary.conversation!;
  const others = (v.members ?? []).filter((m) => m.userId !== me?.id);
  switch (c.kind) {
    case ConversationKind.PRIVATE:
      return others[0] ? others[0].displayName || others[0].userId : c.title || "Private conversation";
    case ConversationKind.CASE:
      return c.title ? `${c.title} · ${c.caseId}` : `Case ${c.caseId}`;
    case ConversationKind.SUPPORT:
      return c.title || `Support · ${names.get(c.createdBy) ?? c.createdBy}`;
    default:
      return c.title || others.map((m) => m.displayName || m.userId).join(", ") || "Group";
  }
}

function kindLabel(k: ConversationKind): string {
  return (
    { [ConversationKind.PRIVATE]: "Private", [ConversationKind.GROUP]: "Group", [ConversationKind.CASE]: "Case", [ConversationKind.SUPPORT]: "Support" } as Record<number, string>
  )[k] ?? "";
}

function peerOf(v: ConvView): string | undefined {
  if (v.summary.conversation?.kind !== ConversationKind.PRIVATE) return undefined;
  return (v.members ?? []).find((m) => m.userId !== me?.id)?.userId;
}

function nameOf(id: string): string {
  return names.get(id) ?? id;
}

function timeOf(ms: bigint): string {
  const d = new Date(Number(ms));
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

function preview(m: Message | undefined): string {
  if (!m || m.body?.content.case !== "text") return m?.body?.content.case === "ciphertext" ? "Encrypted message" : "";
  const t = plainText(m.body.content.value);
  const who = m.kind === pb.MessageKind.SYSTEM ? "" : m.senderId === me?.id ? "You: " : `${nameOf(m.senderId)}: `;
  return who + (t.length > 80 ? `${t.slice(0, 80)}…` : t);
}

// ---------------------------------------------------------------- rendering

function buildShell(): void {
  clear(root);
  append(root, [
    h(
      "div",
      { class: "shell", id: "shell" },
      h(
        "aside",
        { class: "sidebar" },
        h(
          "header",
          { class: "me" },
          h("div", { class: "me-name" }, h("span", { class: "dot online", id: "conn-dot" }), h("strong", { id: "me-name" }, me?.displayName || me?.id || "")),
          h("div", { class: "me-actions" },
            h("button", { type: "button", id: "new-conv", class: "primary", onclick: () => openDialog() }, "New"),
            h("button", { type: "button", id: "sign-out", onclick: () => signOut() }, "Sign out"),
          ),
        ),
        h("div", { id: "status", class: "status", role: "status" }),
        h("div", { id: "queue" }),
        h("nav", { id: "conv-list", class: "conv-list", "aria-label": "Conversations" }),
      ),
      h(
        "main",
        { class: "chat", id: "chat" },
        h("header", { class: "chat-header", id: "chat-header" }),
        h("div", { class: "messages", id: "messages", onscroll: onScrollMessages }),
        h("div", { class: "typing", id: "typing", "aria-live": "polite" }),
        composer(),
      ),
    ),
    h("div", { id: "dialog" }),
  ]);
  render();
}

function composer(): HTMLElement {
  const input = h("textarea", {
    id: "composer-input",
    rows: 2,
    placeholder: "Write a message — **bold**, *italic*, `code`, [link](https://…), - list",
    "aria-label": "Message",
    oninput: () => onComposerInput(input),
    onkeydown: (ev: Event) => {
      const k = ev as KeyboardEvent;
      if (k.key === "Enter" && !k.shiftKey && !k.isComposing) {
        k.preventDefault();
        sendCurrent(input);
      }
    },
    onblur: () => stopTyping(),
  });
  return h(
    "form",
    { class: "composer", id: "composer", onsubmit: (ev: Event) => (ev.preventDefault(), sendCurrent(input)) },
    input,
    h("button", { type: "submit", class: "primary", id: "send" }, "Send"),
  );
}

function onScrollMessages(): void {
  const list = document.getElementById("messages");
  const v = current ? convs.get(current) : undefined;
  if (list && v && list.scrollTop < 60 && v.hasOlder && !v.loadingOlder) void loadOlder(v);
}

/** A person's presence as this app knows it: unknown while the app itself is not connected. */
function presenceOf(user: string): "online" | "offline" | "unknown" {
  if (connState !== "online") return "unknown";
  return presence.get(user) ? "online" : "offline";
}

function presenceTitle(user: string): string {
  const p = presenceOf(user);
  return p === "unknown" ? "unknown while reconnecting" : p;
}

let renderQueued = false;
function render(): void {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    if (!document.getElementById("shell")) return;
    document.getElementById("shell")!.classList.toggle("has-current", current !== undefined);
    renderStatus();
    renderQueue();
    renderList();
    renderHeader();
    renderMessages();
    renderTyping();
  });
}

function renderStatus(): void {
  const el = document.getElementById("status");
  const dot = document.getElementById("conn-dot");
  if (!el || !dot) return;
  dot.className = `dot ${connState === "online" ? "online" : "offline"}`;
  dot.setAttribute("title", connState);
  el.setAttribute("data-state", connState);
  el.setAttribute("data-transport", transport);
  clear(el);
  const label = connState === "online" ? `Connected · ${transport === "websocket" ? "WebSocket" : "WebTransport"}` : connState === "closed" ? "Disconnected" : "Reconnecting…";
  append(el, [h("span", {}, label)]);
  if (banner) append(el, [h("div", { class: "banner" }, banner)]);
}

function renderQueue(): void {
  const el = document.getElementById("queue");
  if (!el) return;
  clear(el);
  if (!isAdmin() || supportQueue.length === 0) return;
  append(el, [
    h(
      "section",
      { class: "queue" },
      h("h2", {}, `Support queue (${supportQueue.length}${supportQueueMore ? "+" : ""})`),
      ...supportQueue.map((s) =>
        h(
          "div",
          { class: "queue-item" },
          h("span", {}, s.conversation?.title || `From ${s.conversation?.createdBy ?? "?"}`),
          h(
            "button",
            {
              type: "button",
              onclick: async () => {
                if (!client || !s.conversation) return;
                try {
                  const ok = await client.join(s.conversation.id);
                  if (ok?.summary) upsertSummary(ok.summary, true);
                  await refreshSupportQueue();
                  await reloadAll();
                  await openConversation(key(s.conversation.id));
                } catch (e) {
                  banner = describeError(e);
                  render();
                }
              },
            },
            "Pick up",
          ),
        ),
      ),
    ),
  ]);
}

function sortedConvs(): ConvView[] {
  const at = (v: ConvView) => v.summary.lastMessage?.serverTimeMs ?? v.summary.conversation?.createdAtMs ?? 0n;
  return [...convs.values()]
    .filter((v) => v.summary.conversation)
    .sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
}

function renderList(): void {
  const el = document.getElementById("conv-list");
  if (!el) return;
  clear(el);
  const list = sortedConvs();
  if (list.length === 0) {
    append(el, [h("p", { class: "muted empty" }, "No conversations yet. Start one with “New”.")]);
    return;
  }
  for (const v of list) {
    const c = v.summary.conversation!;
    const id = key(c.id);
    const peer = peerOf(v);
    const unread = current === id && document.visibilityState === "visible" ? 0n : v.unread;
    const item = h(
      "button",
      {
        type: "button",
        class: `conv${current === id ? " active" : ""}${c.archivedAtMs > 0n ? " archived" : ""}`,
        "data-conv": id,
        "data-title": convTitle(v),
        onclick: () => void openConversation(id),
      },
      h(
        "div",
        { class: "conv-top" },
        peer !== undefined ? h("span", { class: `dot ${presenceOf(peer)}`, "data-presence": peer, title: presenceTitle(peer) }) : h("span", { class: `kind kind-${c.kind}` }, kindLabel(c.kind).slice(0, 1)),
        h("span", { class: "conv-title" }, convTitle(v)),
        v.summary.lastMessage ? h("span", { class: "conv-time" }, timeOf(v.summary.lastMessage.serverTimeMs)) : null,
      ),
      h(
        "div",
        { class: "conv-bottom" },
        h("span", { class: "conv-last" }, preview(v.summary.lastMessage)),
        unread > 0n ? h("span", { class: "badge", "aria-label": `${unread} unread` }, unread.toString()) : null,
      ),
    );
    el.appendChild(item);
  }
}

function renderHeader(): void {
  const el = document.getElementById("chat-header");
  if (!el) return;
  clear(el);
  const v = current ? convs.get(current) : undefined;
  const back = h("button", { type: "button", class: "back", "aria-label": "Back to conversations", onclick: () => { stopTyping(); current = undefined; render(); } }, "‹");
  if (!v || !v.summary.conversation) {
    append(el, [h("div", { class: "chat-title muted" }, "Select a conversation")]);
    return;
  }
  const c = v.summary.conversation;
  const members = (v.members ?? []).filter((m) => m.userId !== me?.id);
  append(el, [
    back,
    h(
      "div",
      { class: "chat-title" },
      h("strong", { id: "chat-title" }, convTitle(v)),
      h(
        "div",
        { class: "chat-sub" },
        h("span", { class: "kind-label" }, kindLabel(c.kind)),
        c.kind === ConversationKind.SUPPORT ? h("span", {}, c.supportState === pb.SupportState.ASSIGNED ? " · assigned" : " · waiting for staff") : null,
        c.archivedAtMs > 0n ? h("span", {}, " · archived") : null,
        ...members.slice(0, 8).map((m) =>
          h("span", { class: "member" }, h("span", { class: `dot ${presenceOf(m.userId)}`, "data-presence": m.userId, title: presenceTitle(m.userId) }), m.displayName || m.userId),
        ),
        members.length > 8 ? h("span", {}, ` +${members.length - 8}`) : null,
      ),
    ),
    v.summary.myRole === pb.MemberRole.ADMIN && c.kind !== ConversationKind.PRIVATE
      ? h("button", { type: "button", class: "small", onclick: () => addMemberPrompt(v) }, "Add")
      : null,
  ]);
}

function addMemberPrompt(v: ConvView): void {
  openDialog("add", v);
}

/** Delivered/read state of one of my messages. */
function markOf(v: ConvView, seq: bigint): "sent" | "delivered" | "read" {
  const others = (v.members ?? []).filter((m) => m.userId !== me?.id);
  if (others.length === 0) return "sent";
  if (others.every((m) => (v.read.get(m.userId) ?? 0n) >= seq)) return "read";
  if (others.every((m) => (v.delivered.get(m.userId) ?? 0n) >= seq)) return "delivered";
  return "sent";
}

const MARKS = { sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" } as const;
const MARK_TITLES = { sending: "Sending", sent: "Stored", delivered: "Delivered", read: "Read", failed: "Not sent" } as const;

function renderMessages(stick = false): void {
  const el = document.getElementById("messages");
  if (!el) return;
  const v = current ? convs.get(current) : undefined;
  const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  clear(el);
  if (!v) {
    append(el, [h("div", { class: "empty muted" }, "Your conversations are on the left.")]);
    return;
  }
  if (v.hasOlder && v.loaded) append(el, [h("div", { class: "older muted" }, v.loadingOlder ? "Loading…" : "Scroll up for older messages")]);
  const seqs = [...v.messages.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let prevSender = "";
  for (const s of seqs) {
    const m = v.messages.get(s)!;
    if (m.kind === pb.MessageKind.SYSTEM) {
      prevSender = "";
      el.appendChild(h("div", { class: "system", "data-seq": s.toString() }, m.body?.content.case === "text" ? m.body.content.value : ""));
      continue;
    }
    const mine = m.senderId === me?.id;
    const text = m.body?.content.case === "text" ? m.body.content.value : "Encrypted message";
    const mark = mine ? markOf(v, s) : undefined;
    const body = h("div", { class: "body" });
    body.appendChild(renderMarkdown(document, text));
    el.appendChild(
      h(
        "div",
        { class: `msg${mine ? " mine" : ""}`, "data-seq": s.toString(), "data-sender": m.senderId, ...(mark ? { "data-mark": mark } : {}) },
        prevSender !== m.senderId && !mine ? h("div", { class: "sender" }, nameOf(m.senderId)) : null,
        body,
        h(
          "div",
          { class: "meta" },
          h("time", {}, timeOf(m.serverTimeMs)),
          mark ? h("span", { class: `mark mark-${mark}`, title: MARK_TITLES[mark] }, MARKS[mark]) : null,
        ),
      ),
    );
    prevSender = m.senderId;
  }
  for (const p of v.pending) {
    const state = p.error ? "failed" : "sending";
    const body = h("div", { class: "body" });
    body.appendChild(renderMarkdown(document, p.text));
    el.appendChild(
      h(
        "div",
        { class: "msg mine pending", "data-mark": state, "data-client-msg-id": p.clientMsgId },
        body,
        h("div", { class: "meta" }, p.error ? h("span", { class: "error" }, p.error) : null, h("span", { class: `mark mark-${state}`, title: MARK_TITLES[state] }, MARKS[state])),
      ),
    );
  }
  if (stick ? atBottom || v.pending.length > 0 : atBottom) el.scrollTop = el.scrollHeight;
}

function renderTyping(): void {
  const el = document.getElementById("typing");
  if (!el) return;
  clear(el);
  const v = current ? convs.get(current) : undefined;
  if (!v || v.typing.size === 0) return;
  const who = [...v.typing.keys()].map(nameOf);
  append(el, [who.length === 1 ? `${who[0]} is typing…` : `${who.slice(0, -1).join(", ")} and ${who.at(-1)} are typing…`]);
}

// ---------------------------------------------------------------- dialogs

function openDialog(mode: "new" | "add" = "new", target?: ConvView): void {
  const el = document.getElementById("dialog");
  if (!el || dialogOpen) return;
  dialogOpen = true;
  const close = () => {
    dialogOpen = false;
    clear(el);
  };
  const error = h("p", { class: "error", role: "alert" });
  if (mode === "add" && target?.summary.conversation) {
    const ids = h("input", { id: "add-members", placeholder: "user ids, comma separated", autocomplete: "off" });
    append(el, [
      h(
        "div",
        { class: "overlay" },
        h(
          "form",
          {
            class: "dialog",
            onsubmit: async (ev: Event) => {
              ev.preventDefault();
              try {
                await client!.addMembers(target.summary.conversation!.id, splitIds(ids.value));
                await loadMembers(target);
                close();
                render();
              } catch (e) {
                error.textContent = describeError(e);
              }
            },
          },
          h("h2", {}, "Add members"),
          ids,
          error,
          h("div", { class: "row" }, h("button", { type: "button", onclick: close }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Add")),
        ),
      ),
    ]);
    ids.focus();
    return;
  }
  const kind = h(
    "select",
    { id: "new-kind", "aria-label": "Kind" },
    h("option", { value: "private" }, "Private (one person)"),
    h("option", { value: "group" }, "Group"),
    h("option", { value: "case" }, "Case"),
    h("option", { value: "support" }, "Support request"),
  );
  const title = h("input", { id: "new-title", placeholder: "Title", autocomplete: "off" });
  const caseId = h("input", { id: "new-case", placeholder: "Case id (e.g. 2024-CV-0113)", autocomplete: "off" });
  const members = h("input", { id: "new-members", placeholder: "User id (or ids, comma separated)", autocomplete: "off" });
  const fields = h("div", { class: "fields" });
  const layout = () => {
    clear(fields);
    const k = kind.value;
    if (k === "private") append(fields, [h("label", {}, "With (user id)", members)]);
    if (k === "group") append(fields, [h("label", {}, "Title", title), h("label", {}, "Members", members)]);
    if (k === "case") append(fields, [h("label", {}, "Case id", caseId), h("label", {}, "Title", title), h("label", {}, "Members", members)]);
    if (k === "support") append(fields, [h("label", {}, "Subject", title)]);
  };
  kind.addEventListener("change", layout);
  layout();
  append(el, [
    h(
      "div",
      { class: "overlay" },
      h(
        "form",
        {
          class: "dialog",
          id: "new-dialog",
          onsubmit: async (ev: Event) => {
            ev.preventDefault();
            if (!client) return;
            const kinds: Record<string, ConversationKind> = {
              private: ConversationKind.PRIVATE,
              group: ConversationKind.GROUP,
              case: ConversationKind.CASE,
              support: ConversationKind.SUPPORT,
            };
            try {
              const ok = await client.createConversation(kinds[kind.value]!, {
                title: title.value.trim(),
                caseId: caseId.value.trim(),
                members: kind.value === "support" ? [] : splitIds(members.value),
              });
              close();
              if (ok.summary?.conversation) {
                const v = upsertSummary(ok.summary, true);
                await loadMembers(v);
                await refreshPresence();
                await openConversation(key(ok.summary.conversation.id));
              }
            } catch (e) {
              error.textContent = describeError(e);
            }
          },
        },
        h("h2", {}, "New conversation"),
        h("label", {}, "Kind", kind),
        fields,
        error,
        h("div", { class: "row" }, h("button", { type: "button", onclick: close }, "Cancel"), h("button", { type: "submit", class: "primary", id: "create" }, "Create")),
      ),
    ),
  ]);
  kind.focus();
}

function splitIds(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter((x) => x !== "");
}

// ---------------------------------------------------------------- boot

const fromUrl = readTokenFromFragment();
const saved = fromUrl ?? sessionStorage.getItem(TOKEN_KEY) ?? undefined;
if (saved) void start(saved);
else signInScreen();

// For tests and debugging in the console: the app's state, read-only.
(globalThis as { chatApp?: unknown }).chatApp = {
  get client() {
    return client;
  },
  get conversations() {
    return convs;
  },
  get current() {
    return current;
  },
};
