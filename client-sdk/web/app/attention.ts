// What draws the user to new messages: the unread count in the tab title,
// the polite live region's announcement of a message from someone else, and
// (when the user turned them on) a notification while the tab is in the
// background. The notification setting is kept in this browser.

import { type pb } from "../src/sdk/index.js";
import { convTitle, nameOf, preview } from "./format.js";
import { type ConvView, key, store } from "./state.js";

/** The app's name in the tab title. */
export const APP_TITLE = "chatd";
/** Where the notification setting is kept ("on" or absent). */
export const NOTIFY_KEY = "chatd.notify";

/** Unread messages over all conversations (the open one counts none while the tab is visible). */
export function totalUnread(): bigint {
  let n = 0n;
  for (const [id, v] of store.convs) {
    if (id === store.current && document.visibilityState === "visible") continue;
    n += v.unread;
  }
  return n;
}

/** The tab title for `unread` unread messages: "(3) chatd". */
export function titleFor(unread: bigint): string {
  return unread > 0n ? `(${unread}) ${APP_TITLE}` : APP_TITLE;
}

/** Sets the tab title from the unread count. */
export function updateTitle(): void {
  const t = titleFor(totalUnread());
  if (document.title !== t) document.title = t;
}

/** Whether the user turned background notifications on (and the browser has them). */
export function notificationsOn(): boolean {
  return typeof Notification !== "undefined" && localStorage.getItem(NOTIFY_KEY) === "on";
}

/** Turns background notifications on (asking the browser's permission) or off; returns the new setting. */
export async function setNotifications(on: boolean): Promise<boolean> {
  if (!on || typeof Notification === "undefined") {
    localStorage.removeItem(NOTIFY_KEY);
    return false;
  }
  const p = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
  if (p !== "granted") {
    localStorage.removeItem(NOTIFY_KEY);
    store.banner = "Notifications are blocked for this site in the browser's settings.";
    return false;
  }
  localStorage.setItem(NOTIFY_KEY, "on");
  return true;
}

/** A message from someone else arrived live in `v`: announce it, and notify when the tab is hidden. */
export function onIncoming(v: ConvView, m: pb.Message): void {
  const text = `${nameOf(m.senderId)} in ${convTitle(v)}: ${preview(m).replace(/^[^:]*: /, "")}`;
  store.announcement = `New message from ${text}`;
  if (document.visibilityState === "visible" || !notificationsOn() || Notification.permission !== "granted") return;
  const n = new Notification(`${nameOf(m.senderId)} · ${convTitle(v)}`, {
    body: preview(m).replace(/^[^:]*: /, ""),
    tag: key(m.conversationId),
  });
  n.onclick = () => {
    window.focus();
    n.close();
  };
}
