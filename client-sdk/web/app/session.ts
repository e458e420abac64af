// Signing in and out: the token (from the address's fragment, the tab's
// storage or the sign-in form), the server's /config.json, the SDK client
// with its transport choice, and the staff's support-queue polling.

import { Client, ClientError, pb } from "../src/sdk/index.js";
import { refreshSupportQueue, reloadAll } from "./actions.js";
import { forgetE2e, startE2e } from "./e2e-actions.js";
import { onEvent, TOKEN_KEY } from "./events.js";
import { describeError, isAdmin } from "./format.js";
import { connectedAs, forgetSaved, showSaved } from "./pwa/offline.js";
import { type OidcSettings, refreshingProvider, signOutAtProvider } from "./oidc.js";
import { restoreUnsent } from "./unsent.js";
import { changed, store } from "./state.js";

/** The transport a fallback chose, kept for this tab's session. */
const TRANSPORT_KEY = "chatd.transport";
/** Staff: the server pushes nothing when a support request waits, so the queue is polled. */
const QUEUE_POLL_MS = 5000;

/** What /config.json says. */
export interface ServerConfig {
  webtransport_url?: string;
  websocket_url?: string;
  cert_hashes?: string[];
  version?: string;
  /** Whether development tokens are accepted. */
  dev_tokens?: boolean;
  /** The identity provider, if sign-in with one is configured. */
  oidc?: OidcSettings | null;
  /** The case-management system's page of a case, `{case_id}` replaced (empty: none). */
  case_link?: string;
}

/** The provider of the last configuration read (for signing out there). */
let provider: OidcSettings | undefined;

/** The token of a sign-in link (`#token=...`), removed from the address bar and the history. */
export function readTokenFromFragment(): string | undefined {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return undefined;
  const token = decodeURIComponent(m[1]!);
  history.replaceState(null, "", location.pathname + location.search);
  return token;
}

/** The token this tab signed in with before, if any. */
export function savedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/**
 * The SDK's token provider: the token this tab's sign-in stored last, if it
 * is not the one the session runs on (a sign-in with the identity provider
 * stores its renewed tokens there). A pasted development token has nothing
 * fresher: the session then ends when it lapses, and the app asks for a new one.
 */
export function fresherToken(first: string): () => Promise<string> {
  let current = first;
  return async () => {
    const saved = savedToken();
    if (!saved || saved === current) throw new Error("no fresher token in this tab");
    current = saved;
    return saved;
  };
}

/** The server's /config.json. */
export async function loadConfig(): Promise<ServerConfig> {
  const r = await fetch("/config.json", { cache: "no-store" });
  if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`);
  const cfg = (await r.json()) as ServerConfig;
  provider = cfg.oidc ?? undefined;
  return cfg;
}

function signInScreen(error?: string): void {
  store.screen = error === undefined ? { kind: "signin" } : { kind: "signin", error };
  changed();
}

/** Whether a failed first connection was a refusal of the token itself
 * (UNAUTHENTICATED, TOKEN_EXPIRED): only then is it forgotten. */
export function tokenRefused(e: unknown): boolean {
  const code = e instanceof ClientError ? e.wire?.code : undefined;
  return code === pb.ErrorCode.UNAUTHENTICATED || code === pb.ErrorCode.TOKEN_EXPIRED;
}

/** How long before the next try: what the server asked, else 2 s doubling up to 30 s. */
export function retryDelayMs(e: unknown, attempt: number): number {
  const asked = e instanceof ClientError ? e.wire?.retryAfterMs : undefined;
  return Math.max(asked ?? 0, Math.min(30_000, 2_000 * 2 ** attempt));
}

let retryTimer: ReturnType<typeof setTimeout> | undefined;

/** Shows why the connection failed (or the saved history) and tries again, keeping the token. */
async function retryLater(token: string, e: unknown, attempt: number): Promise<void> {
  const wait = retryDelayMs(e, attempt);
  const problem = `${describeError(e)}; trying again in ${Math.ceil(wait / 1000)} s`;
  if (!(await showSaved())) store.screen = { kind: "connecting", problem, retryAt: Date.now() + wait };
  changed();
  retryTimer = setTimeout(() => void start(token, attempt + 1), wait);
}

/** Connects with `token` and shows the conversations, or the sign-in screen with the reason. */
export async function start(token: string, attempt = 0): Promise<void> {
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = undefined;
  if (store.screen.kind !== "connecting" && !store.offline) store.screen = { kind: "connecting" };
  changed();
  let cfg: ServerConfig;
  try {
    cfg = await loadConfig();
  } catch (e) {
    // Unreachable with a saved history: shown offline while the app tries again.
    if (await showSaved()) return retryLater(token, e, attempt);
    signInScreen(`Cannot load the server configuration: ${describeError(e)}`);
    return;
  }
  store.caseLink = cfg.case_link ?? "";
  const params = new URLSearchParams(location.search);
  const forced = params.get("transport") ?? sessionStorage.getItem(TRANSPORT_KEY);
  let client: Client;
  try {
    client = await Client.connect(
      {
        token,
        webtransportUrl: cfg.webtransport_url,
        websocketUrl: cfg.websocket_url,
        certHashes: cfg.cert_hashes ?? [],
        transport: forced === "websocket" || forced === "webtransport" ? forced : "auto",
        clientName: `chat-web/${cfg.version ?? "dev"}`,
        tokenProvider: (cfg.oidc && refreshingProvider(cfg.oidc)) || fresherToken(token),
      },
      onEvent,
    );
  } catch (e) {
    if (!tokenRefused(e)) {
      // A limit, the network, a server restarting: the token is still good.
      sessionStorage.setItem(TOKEN_KEY, token);
      await retryLater(token, e, attempt);
      return;
    }
    sessionStorage.removeItem(TOKEN_KEY);
    signInScreen(`Sign-in failed: ${describeError(e)}`);
    return;
  }
  store.client = client;
  sessionStorage.setItem(TOKEN_KEY, token);
  if (client.user) connectedAs(client.user.id);
  // WebTransport failed and WebSocket worked: skip the wait on reloads in this tab.
  if (client.transport === "websocket" && cfg.webtransport_url && !params.get("transport")) {
    sessionStorage.setItem(TRANSPORT_KEY, "websocket");
  }
  store.me = client.user;
  if (store.me) store.names.set(store.me.id, store.me.displayName || store.me.id);
  store.transport = client.transport ?? "";
  store.connState = client.state;
  store.screen = { kind: "shell" };
  changed();
  await reloadAll();
  await restoreUnsent();
  await startE2e(client);
  if (isAdmin()) startQueuePolling();
}

let queueTimer: ReturnType<typeof setInterval> | undefined;
function startQueuePolling(): void {
  if (queueTimer) clearInterval(queueTimer);
  queueTimer = setInterval(() => {
    if (store.client?.state !== "online") return;
    void refreshSupportQueue().then(changed);
  }, QUEUE_POLL_MS);
}

/** Closes the connection, forgets the token and shows the sign-in screen. */
export function signOut(): void {
  const token = savedToken();
  sessionStorage.removeItem(TOKEN_KEY);
  void forgetSaved();
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = undefined;
  if (queueTimer) clearInterval(queueTimer);
  queueTimer = undefined;
  store.client?.close();
  store.client = undefined;
  forgetE2e();
  store.convs.clear();
  store.current = undefined;
  store.dialog = undefined;
  signInScreen();
  signOutAtProvider(provider, token);
}
