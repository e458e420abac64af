// The browser's outbox store: unsent messages in IndexedDB (database
// "chatd-outbox", object store "sends" keyed by client_msg_id, indexed by
// user), so they outlive a reload or a closed tab and go out once, with
// their client_msg_id, when the app comes back.

import { idbCommitted as committed, idbDone as done, idbOpen } from "./idb.js";
import { type OutboxStore, OutboxStoreFull, STORED_SENDS_MAX, sortStored, type StoredSend } from "./outbox.js";

const DB = "chatd-outbox";
const STORE = "sends";

/** Unsent messages in this browser's IndexedDB. */
export class IndexedDbOutboxStore implements OutboxStore {
  private db: Promise<IDBDatabase> | undefined;

  constructor(
    private readonly factory: IDBFactory = indexedDB,
    readonly capacity = STORED_SENDS_MAX,
  ) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= idbOpen(this.factory, DB, 1, (db) => db.createObjectStore(STORE, { keyPath: "clientMsgId" }).createIndex("user", "user"));
    return this.db;
  }

  async load(user: string): Promise<StoredSend[]> {
    const db = await this.open();
    const all = await done(db.transaction(STORE, "readonly").objectStore(STORE).index("user").getAll(user));
    return sortStored(all as StoredSend[]);
  }

  async put(s: StoredSend): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    const store = tx.objectStore(STORE);
    const exists = (await done(store.getKey(s.clientMsgId))) !== undefined;
    const count = await done(store.index("user").count(s.user));
    if (!exists && count >= this.capacity) {
      tx.abort();
      throw new OutboxStoreFull(this.capacity);
    }
    store.put({ ...s });
    await committed(tx);
  }

  async remove(clientMsgId: string): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).delete(clientMsgId);
    await committed(tx);
  }
}
