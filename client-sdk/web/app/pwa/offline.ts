//! The offline app: keeps the signed-in user's saved history up to date
//! (a second after the state changes, while connected), shows it read-only
//! when the server cannot be reached at start, lets the live state replace
//! it once connected, and deletes it at sign-out, so privileged content does
//! not linger in the browser. Which user's history this tab shows is kept in
//! the tab's storage beside its token.

import { showDecryptedOffline } from "../e2e-actions.js";
import { describeError } from "../format.js";
import { changed, key, newView, onChanged, store } from "../state.js";
import { restoreSnapshot, SavedHistory, snapshotOf } from "./history-cache.js";

/** This tab's signed-in user (sessionStorage), whose saved history it may show. */
const USER_KEY = "chatd.user";
/** How long after a change the history is saved. */
const SAVE_DELAY_MS = 1000;

/** The saved histories; undefined where the browser has no IndexedDB. */
const saved = typeof indexedDB !== "undefined" ? new SavedHistory() : undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let stopWatching: (() => void) | undefined;

function saveNow(): void {
  timer = undefined;
  const me = store.me;
  if (!saved || !me || !store.client || store.offline) return;
  const convs = [...store.convs.values()].map((v) => ({ summary: v.summary, members: v.members ?? [], messages: v.view.ordered() }));
  const snap = snapshotOf({ me, names: store.names, convs, current: store.current }, Date.now());
  void saved.save(snap).catch(() => {
    // Not saved (storage full or refused): the app works as before, without its offline copy.
  });
}

/** Connected as `user`: from now on its history is saved as it changes, and the live state replaces the saved one. */
export function connectedAs(user: string): void {
  sessionStorage.setItem(USER_KEY, user);
  if (store.offline) {
    store.offline = false;
    store.convs.clear();
  }
  stopWatching ??= onChanged(() => {
    timer ??= setTimeout(saveNow, SAVE_DELAY_MS);
  });
}

/**
 * The server cannot be reached: shows this tab's user's saved history, if
 * any, read-only. Returns whether it shows (it may already).
 */
export async function showSaved(): Promise<boolean> {
  if (store.offline) return true;
  const user = sessionStorage.getItem(USER_KEY);
  if (!saved || !user) return false;
  let snap;
  try {
    snap = await saved.load(user);
  } catch (e) {
    store.banner = `Could not read the saved messages: ${describeError(e)}`;
    return false;
  }
  if (!snap || store.client) return false;
  const s = restoreSnapshot(snap);
  store.me = s.me;
  store.names = s.names;
  store.convs.clear();
  for (const c of s.convs) {
    if (!c.summary.conversation) continue;
    const v = newView(c.summary);
    v.view.applyAll(c.messages);
    v.loaded = c.messages.length > 0;
    v.hasOlder = false;
    v.members = c.members;
    store.convs.set(key(c.summary.conversation.id), v);
  }
  store.current = s.current !== undefined && store.convs.get(s.current)?.loaded ? s.current : undefined;
  store.connState = "closed";
  store.offline = true;
  store.screen = { kind: "shell" };
  changed();
  void showDecryptedOffline(user);
  return true;
}

/** Signing out: stops saving and deletes the user's saved history. */
export async function forgetSaved(): Promise<void> {
  if (timer) clearTimeout(timer);
  timer = undefined;
  stopWatching?.();
  stopWatching = undefined;
  const user = sessionStorage.getItem(USER_KEY) ?? store.me?.id;
  sessionStorage.removeItem(USER_KEY);
  store.offline = false;
  if (saved && user) await saved.clear(user).catch(() => {});
}
