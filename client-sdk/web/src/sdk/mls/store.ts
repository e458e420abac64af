// Where an MLS device keeps its secrets: a small key-value store of byte
// strings. `MemoryKeyValue` keeps them in memory (tests, tools); in the
// browser `IndexedDbKeyValue` keeps them in IndexedDB (database
// "chatd-mls-<user>"), each value sealed with AES-256-GCM under a key that is
// made non-extractable by WebCrypto and stored beside them: script on the
// page can use it but never read it, and a copy of the database files holds
// no key in the clear.

import { idbCommitted as committed, idbDone as done, idbOpen } from "../idb.js";

/** The device's key-value store: values are written in batches, atomically. */
export interface KeyValue {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Writes `puts` and removes `deletes` in one transaction. */
  write(puts: [string, Uint8Array][], deletes?: string[]): Promise<void>;
  /** The keys that start with `prefix`. */
  keys(prefix: string): Promise<string[]>;
}

/** A store in memory, lost with the page or process. */
export class MemoryKeyValue implements KeyValue {
  private readonly map = new Map<string, Uint8Array>();

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.map.get(key)?.slice();
  }

  async write(puts: [string, Uint8Array][], deletes: string[] = []): Promise<void> {
    for (const [k, v] of puts) this.map.set(k, v.slice());
    for (const k of deletes) this.map.delete(k);
  }

  async keys(prefix: string): Promise<string[]> {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  /** Every value as stored (tests look for plaintext in them). */
  values(): Uint8Array[] {
    return [...this.map.values()];
  }
}

const VALUES = "values";
const KEYS = "keys";
const SEALING_KEY = "sealing";
const NONCE = 12;

/** The store of `user`'s device in this browser's IndexedDB, sealed. */
export class IndexedDbKeyValue implements KeyValue {
  private opened: Promise<{ db: IDBDatabase; key: CryptoKey }> | undefined;

  constructor(
    readonly user: string,
    private readonly factory: IDBFactory = indexedDB,
  ) {}

  /** The database's name. */
  get name(): string {
    return `chatd-mls-${this.user}`;
  }

  private open(): Promise<{ db: IDBDatabase; key: CryptoKey }> {
    this.opened ??= (async () => {
      const db = await idbOpen(this.factory, this.name, 1, (db) => {
        db.createObjectStore(VALUES);
        db.createObjectStore(KEYS);
      });
      const found = (await done(db.transaction(KEYS, "readonly").objectStore(KEYS).get(SEALING_KEY))) as CryptoKey | undefined;
      if (found) return { db, key: found };
      const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      const tx = db.transaction(KEYS, "readwrite");
      // Another tab may have made one first: keep the one stored.
      const store = tx.objectStore(KEYS);
      const raced = (await done(store.get(SEALING_KEY))) as CryptoKey | undefined;
      if (!raced) store.put(key, SEALING_KEY);
      await committed(tx);
      return { db, key: raced ?? key };
    })();
    return this.opened;
  }

  async get(k: string): Promise<Uint8Array | undefined> {
    const { db, key } = await this.open();
    const sealed = (await done(db.transaction(VALUES, "readonly").objectStore(VALUES).get(k))) as Uint8Array | undefined;
    if (!sealed) return undefined;
    const iv = sealed.subarray(0, NONCE) as BufferSource;
    const aad = new TextEncoder().encode(k);
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, key, sealed.subarray(NONCE) as BufferSource));
  }

  async write(puts: [string, Uint8Array][], deletes: string[] = []): Promise<void> {
    const { db, key } = await this.open();
    // Seal first: a transaction must not wait on anything but its own requests.
    const sealed: [string, Uint8Array][] = [];
    for (const [k, v] of puts) {
      const iv = crypto.getRandomValues(new Uint8Array(NONCE));
      const aad = new TextEncoder().encode(k);
      const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, key, v as BufferSource));
      const out = new Uint8Array(NONCE + ct.length);
      out.set(iv);
      out.set(ct, NONCE);
      sealed.push([k, out]);
    }
    const tx = db.transaction(VALUES, "readwrite");
    const store = tx.objectStore(VALUES);
    for (const [k, v] of sealed) store.put(v, k);
    for (const k of deletes) store.delete(k);
    await committed(tx);
  }

  async keys(prefix: string): Promise<string[]> {
    const { db } = await this.open();
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    const all = await done(db.transaction(VALUES, "readonly").objectStore(VALUES).getAllKeys(range));
    return (all as string[]).sort();
  }
}
