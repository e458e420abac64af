//! The saved history of the offline app: what the app shows of the signed-in
//! user (the conversation list and the last messages of the conversations it
//! loaded) as one bounded snapshot per user in IndexedDB (database
//! "chatd-history", store "snapshots" keyed by user). `snapshotOf` and
//! `restoreSnapshot` are the rules (which conversations and messages are
//! kept, within what bounds) and touch no storage; `SavedHistory` reads,
//! writes and deletes the records. Attachments are never saved (only the
//! messages' descriptions of them).

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { idbCommitted, idbDone, idbOpen, pb } from "../../src/sdk/index.js";

/** Most conversations kept (the most recently active). */
export const SAVED_CONVERSATIONS_MAX = 50;
/** Most messages kept per conversation (the newest). */
export const SAVED_MESSAGES_MAX = 200;
/** Most bytes of messages kept in all; past it older conversations keep only their summary. */
export const SAVED_BYTES_MAX = 4 * 1024 * 1024;

/** One user's saved view, as stored. */
export interface Snapshot {
  user: string;
  savedAtMs: number;
  me: Uint8Array;
  names: [string, string][];
  /** Most recently active first. */
  convs: { summary: Uint8Array; members: Uint8Array[]; messages: Uint8Array[] }[];
  current?: string;
}

/** What a snapshot is made of (the app's state, read-only). */
export interface SnapshotInput {
  me: pb.User;
  names: ReadonlyMap<string, string>;
  convs: SavedConversation[];
  current: string | undefined;
}

/** A restored conversation. */
export interface SavedConversation {
  summary: pb.ConversationSummary;
  /** Its members as last loaded (names and titles come from them). */
  members: pb.Member[];
  messages: pb.Message[];
}

/** When a conversation was last active (its newest message, else its creation). */
function activeAt(s: pb.ConversationSummary): bigint {
  return s.lastMessage?.serverTimeMs ?? s.conversation?.createdAtMs ?? 0n;
}

/** The bounded snapshot of `input`, for `nowMs`. */
export function snapshotOf(input: SnapshotInput, nowMs: number, budget = SAVED_BYTES_MAX): Snapshot {
  const convs = [...input.convs]
    .sort((a, b) => (activeAt(b.summary) > activeAt(a.summary) ? 1 : activeAt(b.summary) < activeAt(a.summary) ? -1 : 0))
    .slice(0, SAVED_CONVERSATIONS_MAX);
  let left = budget;
  const out = convs.map((c) => {
    const messages: Uint8Array[] = [];
    for (const m of c.messages.slice(-SAVED_MESSAGES_MAX).reverse()) {
      const bytes = toBinary(pb.MessageSchema, m);
      if (bytes.length > left) break;
      left -= bytes.length;
      messages.push(bytes);
    }
    return {
      summary: toBinary(pb.ConversationSummarySchema, c.summary),
      members: c.members.map((m) => toBinary(pb.MemberSchema, m)),
      messages: messages.reverse(),
    };
  });
  return {
    user: input.me.id,
    savedAtMs: nowMs,
    me: toBinary(pb.UserSchema, input.me),
    names: [...input.names],
    convs: out,
    ...(input.current !== undefined ? { current: input.current } : {}),
  };
}

/** The app state a snapshot holds. */
export function restoreSnapshot(s: Snapshot): { me: pb.User; names: Map<string, string>; convs: SavedConversation[]; current?: string } {
  return {
    me: fromBinary(pb.UserSchema, s.me),
    names: new Map(s.names),
    convs: s.convs.map((c) => ({
      summary: fromBinary(pb.ConversationSummarySchema, c.summary),
      members: (c.members ?? []).map((m) => fromBinary(pb.MemberSchema, m)),
      messages: c.messages.map((m) => fromBinary(pb.MessageSchema, m)),
    })),
    ...(s.current !== undefined ? { current: s.current } : {}),
  };
}

const DB = "chatd-history";
const STORE = "snapshots";

/** The snapshots in this browser's IndexedDB. */
export class SavedHistory {
  private db: Promise<IDBDatabase> | undefined;

  constructor(private readonly factory: IDBFactory = indexedDB) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= idbOpen(this.factory, DB, 1, (db) => db.createObjectStore(STORE, { keyPath: "user" }));
    return this.db;
  }

  /** The user's snapshot, if one is saved. */
  async load(user: string): Promise<Snapshot | undefined> {
    const db = await this.open();
    return (await idbDone(db.transaction(STORE, "readonly").objectStore(STORE).get(user))) as Snapshot | undefined;
  }

  /** Replaces the user's snapshot. */
  async save(s: Snapshot): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).put(s);
    await idbCommitted(tx);
  }

  /** Deletes the user's snapshot. */
  async clear(user: string): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).delete(user);
    await idbCommitted(tx);
  }
}
