// The app's side of a provider sign-in: the button's action, and the page
// load that returns from the provider (code exchanged, then connected).

import { describeError } from "./format.js";
import { beginSignIn, completeSignIn } from "./oidc.js";
import { loadConfig, start } from "./session.js";
import { changed, store } from "./state.js";

/** Whether this page load is the provider sending the browser back. */
export function returningFromProvider(): boolean {
  const q = new URLSearchParams(location.search);
  return q.has("state") && (q.has("code") || q.has("error"));
}

/** Exchanges the code and connects; the sign-in screen with the reason if that fails. */
export async function finishProviderSignIn(): Promise<void> {
  try {
    const cfg = await loadConfig();
    const token = await completeSignIn(cfg.oidc ?? undefined);
    if (token) await start(token);
  } catch (e) {
    store.screen = { kind: "signin", error: `Sign-in failed: ${describeError(e)}` };
    changed();
  }
}

/** "Sign in with ...": off to the provider. */
export async function signInWithProvider(): Promise<void> {
  const cfg = await loadConfig();
  if (cfg.oidc) await beginSignIn(cfg.oidc);
}
