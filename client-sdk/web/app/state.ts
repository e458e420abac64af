// The app's state, in one place: who is signed in, the conversations and
// their messages, presence, the connection, the open screen and dialog.
// Actions and the event handler mutate it and call `changed()`; the root
// component re-renders on every change (see useStore).

import { useEffect, useState } from "preact/hooks";
import { type Client, type ConnectionState, type E2e, MessageView, type pb } from "../src/sdk/index.js";

/** A message written here and not yet stored by the server. */
export interface Pending {
  clientMsgId: string;
  conversationId: bigint;
  text: string;
  /** The message it answers. */
  replyTo?: bigint;
  attachmentIds: string[];
  createdAtMs: number;
  /** Why the server refused it (it then offers Retry and Discard). */
  error?: string;
  /** When it is sent again by itself (a limit's retry_after), epoch ms. */
  retryAt?: number;
  retryTimer?: ReturnType<typeof setTimeout>;
}

/** A file being attached to the next message of a conversation. */
export interface Upload {
  /** Local key. */
  key: number;
  name: string;
  size: number;
  sent: number;
  /** Stored: goes with the next message. */
  attachment?: pb.Attachment;
  error?: string;
}

/** One conversation as the app shows it. */
export interface ConvView {
  summary: pb.ConversationSummary;
  /** The messages in their latest state (edits, deletes and reactions applied once). */
  view: MessageView;
  /** The view's messages by seq. */
  messages: ReadonlyMap<bigint, pb.Message>;
  /** Whether the newest page was loaded. */
  loaded: boolean;
  loadingOlder: boolean;
  hasOlder: boolean;
  members: pb.Member[] | undefined;
  /** Watermarks per member. */
  delivered: Map<string, bigint>;
  read: Map<string, bigint>;
  typing: Map<string, ReturnType<typeof setTimeout>>;
  pending: Pending[];
  /** Files attached to the next message. */
  uploads: Upload[];
  unread: bigint;
  /** Membership changes seen live ("Ben joined"), each after the message it followed; the last NOTES_MAX. */
  notes: Note[];
}

/** Most membership lines kept per conversation. */
export const NOTES_MAX = 100;

/** A membership change shown in the message list. */
export interface Note {
  /** Local key. */
  key: number;
  /** The newest message seq when it happened (it shows after that message). */
  afterSeq: bigint;
  /** The change (worded when shown: names may arrive later). */
  event: pb.MembershipEvent;
}

/** A search and the pages of hits so far. */
export interface SearchState {
  query: string;
  hits: pb.SearchHit[];
  /** The cursor of the next page ("" : none). */
  next: string;
  busy: boolean;
  error?: string;
}

/** What fills the window. */
export type Screen =
  | { kind: "signin"; error?: string }
  | { kind: "connecting"; problem?: string; retryAt?: number }
  | { kind: "shell" };

/** The dialog on top, if any. */
export type Dialog =
  | { kind: "new" }
  | { kind: "add"; conv: string }
  | { kind: "manage"; conv: string }
  | { kind: "safety"; conv: string }
  | { kind: ScreenKind }
  | undefined;

/** What the open conversation's message actions are doing (one at a time). */
export type MessageTask =
  | { kind: "edit"; seq: bigint }
  | { kind: "confirm-delete"; seq: bigint }
  | { kind: "react"; seq: bigint }
  | undefined;

/** The whole app state (one instance, `store`). */
export interface Store {
  screen: Screen;
  client: Client | undefined;
  me: pb.User | undefined;
  convs: Map<string, ConvView>;
  presence: Map<string, boolean>;
  names: Map<string, string>;
  current: string | undefined;
  connState: ConnectionState;
  transport: string;
  banner: string;
  /** The last search and its hits (undefined: no search open). */
  search: SearchState | undefined;
  supportQueue: pb.ConversationSummary[];
  /** More support requests wait than the first page shows. */
  supportQueueMore: boolean;
  dialog: Dialog;
  /** The message list scrolls to its end on its next render. */
  stickBottom: boolean;
  /** The message list keeps this distance from its end on its next render (older page loaded). */
  keepFromBottom: number | undefined;
  /** The message action in progress in the open conversation. */
  task: MessageTask;
  /** The message the composer answers (open conversation), if any. */
  replyTo: bigint | undefined;
  /** The message jumped to: highlighted, scrolled into view on the next render. */
  highlight: bigint | undefined;
  scrollToHighlight: boolean;
  /** The templates this user may use (personal first, then the firm's). */
  templates: pb.Template[];
  /** What the polite live region says last (a new message from someone else). */
  announcement: string;
  /** The server cannot be reached: the saved history shows, read-only (see pwa/offline.ts). */
  offline: boolean;
  /** A new version of the app waits: the app offers to reload (see pwa/register.ts). */
  updateReady: boolean;
  /** The case-management system's page of a case (`{case_id}` in it), from /config.json; empty: none. */
  caseLink: string;
  /** This browser's MLS device and its calls, once started (see e2e-actions.ts). */
  e2e: E2e | undefined;
  /** Why end-to-end encryption does not run on this device (empty: it does). */
  e2eProblem: string;
  /** What this device decrypted (or sent) in E2E conversations, by conversation and seq. */
  decrypted: Map<string, Map<bigint, pb.E2eContent>>;
}

/** The app state. */
export const store: Store = {
  screen: { kind: "signin" },
  client: undefined,
  me: undefined,
  convs: new Map(),
  presence: new Map(),
  names: new Map(),
  current: undefined,
  connState: "connecting",
  transport: "",
  banner: "",
  search: undefined,
  supportQueue: [],
  supportQueueMore: false,
  dialog: undefined,
  stickBottom: false,
  keepFromBottom: undefined,
  task: undefined,
  replyTo: undefined,
  highlight: undefined,
  scrollToHighlight: false,
  templates: [],
  announcement: "",
  offline: false,
  updateReady: false,
  caseLink: "",
  e2e: undefined,
  e2eProblem: "",
  decrypted: new Map(),
};

const listeners = new Set<() => void>();

/** The full screens opened from the sidebar's header. */
export type ScreenKind = "templates" | "audit" | "compliance" | "integrations";

/** Opens a full screen over the chat (not while another dialog is open). */
export function openScreen(kind: ScreenKind): void {
  if (store.dialog) return;
  store.dialog = { kind };
  changed();
}

/** Closes the full screen `kind` if it is open; its dialog frame (Modal.tsx) gives focus back to what opened it. */
export function closeScreen(kind: ScreenKind): void {
  if (store.dialog?.kind !== kind) return;
  store.dialog = undefined;
  changed();
}

/** The signed-in client, for a request; throws while there is none. */
export function connectedClient(): Client {
  if (!store.client) throw new Error("not connected");
  return store.client;
}

/** Tells the components that the state changed (they re-render once per task). */
export function changed(): void {
  for (const l of listeners) l();
}

/** Calls `l` after every change (until the returned function is called). */
export function onChanged(l: () => void): () => void {
  listeners.add(l);
  return () => void listeners.delete(l);
}

/** Re-renders the calling component whenever the state changes. */
export function useStore(): Store {
  const [, setVersion] = useState(0);
  useEffect(() => {
    const l = () => setVersion((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return store;
}

/** A conversation's key in `store.convs`. */
export const key = (id: bigint): string => id.toString();

/** The open conversation, if any. */
export function currentView(): ConvView | undefined {
  return store.current ? store.convs.get(store.current) : undefined;
}

/** A fresh view of a conversation summary. */
export function newView(s: pb.ConversationSummary): ConvView {
  const view = new MessageView();
  return {
    summary: s,
    view,
    messages: view.messages,
    loaded: false,
    loadingOlder: false,
    hasOlder: true,
    members: undefined,
    delivered: new Map(),
    read: new Map(),
    typing: new Map(),
    pending: [],
    uploads: [],
    unread: s.unreadCount,
    notes: [],
  };
}
