// Sign-in with the firm's OpenID Connect provider: the authorization-code
// flow with PKCE (S256) as a public client. The code verifier, state and
// nonce live in sessionStorage only for the redirect round-trip; the code is
// exchanged at the token endpoint from the browser; the ID token is what the
// app connects with, and the refresh token (if the provider gives one) renews
// it before it lapses. Signing out ends the provider's session too when it
// offers an end_session_endpoint.

import { TOKEN_KEY } from "./events.js";

/** What /config.json says about the provider (nothing secret). */
export interface OidcSettings {
  issuer: string;
  client_id: string;
  scopes: string;
  display_name: string;
  authorization_endpoint: string;
  token_endpoint: string;
  end_session_endpoint?: string | null;
}

/** The redirect round-trip's secrets (this tab only). */
const PENDING_KEY = "chatd.oidc.pending";
/** The refresh token of this tab's sign-in. */
const REFRESH_KEY = "chatd.oidc.refresh";

interface Pending {
  verifier: string;
  state: string;
  nonce: string;
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** The redirect URI registered at the provider: this app's root. */
export function redirectUri(): string {
  return `${location.origin}/`;
}

/** Sends the browser to the provider's sign-in page. */
export async function beginSignIn(o: OidcSettings): Promise<void> {
  const p: Pending = { verifier: random(), state: random(16), nonce: random(16) };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(p));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(p.verifier));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: o.client_id,
    redirect_uri: redirectUri(),
    scope: o.scopes,
    state: p.state,
    nonce: p.nonce,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  });
  if (o.scopes.split(" ").includes("offline_access")) q.set("prompt", "consent");
  location.assign(`${o.authorization_endpoint}?${q.toString()}`);
}

/** The claims of a JWT's payload (not verified: the server verifies). */
export function jwtClaims(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as Record<string, unknown>;
}

interface TokenAnswer {
  id_token?: string;
  refresh_token?: string;
  error?: string;
  error_description?: string;
}

async function tokenRequest(o: OidcSettings, params: Record<string, string>): Promise<string> {
  const r = await fetch(o.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: o.client_id, ...params }).toString(),
  });
  const a = (await r.json().catch(() => ({}))) as TokenAnswer;
  if (!r.ok || !a.id_token) {
    throw new Error(`the identity provider refused: ${a.error_description ?? a.error ?? `HTTP ${r.status}`}`);
  }
  if (a.refresh_token) sessionStorage.setItem(REFRESH_KEY, a.refresh_token);
  sessionStorage.setItem(TOKEN_KEY, a.id_token);
  return a.id_token;
}

/**
 * Back from the provider (`?code=...&state=...` on this page): checks the
 * state, exchanges the code, checks the ID token's nonce; the ID token.
 * Undefined when this page load is not a return from the provider.
 */
export async function completeSignIn(o: OidcSettings | undefined): Promise<string | undefined> {
  const q = new URLSearchParams(location.search);
  const code = q.get("code");
  const error = q.get("error");
  if (!code && !error) return undefined;
  history.replaceState(null, "", location.pathname);
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  if (error) throw new Error(`the identity provider said: ${q.get("error_description") ?? error}`);
  if (!o) throw new Error("this server has no identity provider configured");
  const p = raw ? (JSON.parse(raw) as Pending) : undefined;
  if (!p || q.get("state") !== p.state) throw new Error("the sign-in answer does not match this tab's request (state)");
  const idToken = await tokenRequest(o, {
    grant_type: "authorization_code",
    code: code!,
    redirect_uri: redirectUri(),
    code_verifier: p.verifier,
  });
  if (jwtClaims(idToken).nonce !== p.nonce) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new Error("the ID token was not made for this sign-in (nonce)");
  }
  return idToken;
}

/** The SDK's token provider for a provider sign-in: a refresh-token grant, if one was given. */
export function refreshingProvider(o: OidcSettings): (() => Promise<string>) | undefined {
  if (!sessionStorage.getItem(REFRESH_KEY)) return undefined;
  return () => {
    const rt = sessionStorage.getItem(REFRESH_KEY);
    if (!rt) return Promise.reject(new Error("no refresh token in this tab"));
    return tokenRequest(o, { grant_type: "refresh_token", refresh_token: rt });
  };
}

/** Forgets this tab's provider tokens; at the provider too if it offers that (leaves the page then). */
export function signOutAtProvider(o: OidcSettings | undefined, idToken: string | undefined): void {
  sessionStorage.removeItem(REFRESH_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  if (!o?.end_session_endpoint || !idToken) return;
  let fromProvider = false;
  try {
    fromProvider = jwtClaims(idToken).iss === o.issuer;
  } catch {
    // Not a JWT: a development token.
  }
  if (!fromProvider) return;
  const q = new URLSearchParams({ client_id: o.client_id, post_logout_redirect_uri: redirectUri(), id_token_hint: idToken });
  location.assign(`${o.end_session_endpoint}?${q.toString()}`);
}
