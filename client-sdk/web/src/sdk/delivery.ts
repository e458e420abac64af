// Sequencing glue, the port of the Rust SDK's `delivery.rs`: every message goes
// through the Sequencer so the application sees each conversation in seq
// order, exactly once, with no hole. Holes are filled with history pages;
// handshakes and resyncs set the cursors; delivered receipts are coalesced.
// No I/O here.

import { create } from "@bufbuild/protobuf";
import {
  type Cursor,
  CursorSchema,
  type History,
  type Message,
  type ResyncRequired,
  type Welcome,
} from "../gen/chat/v1/chat_pb.js";
import { Sequencer } from "./sequencer.js";

/** Most messages held back per conversation while a hole is being filled. */
export const MAX_HELD = 10_000;
/** Ticks a hole may stay open before its page is fetched (see the Rust SDK). */
export const HOLE_GRACE_TICKS = 2;

export interface Fetch {
  conv: bigint;
  afterSeq: bigint;
  limit: number;
}

export interface Step {
  ready: Message[];
  fetch?: Fetch;
}

/** What a client persists to resume where it stopped. */
export interface ResumeState {
  epoch: string;
  /** Last seq surfaced per conversation (decimal strings, JSON-safe). */
  cursors: Record<string, string>;
}

interface Hole {
  fetching: boolean;
  upto: bigint;
  age: number;
}

const clampLimit = (n: bigint, page: number): number => {
  if (n < 1n) return 1;
  if (n > BigInt(page)) return page;
  return Number(n);
};

export class Delivery {
  private seq = new Sequencer<Message>(MAX_HELD);
  private holes = new Map<bigint, Hole>();
  private receipts = new Map<bigint, bigint>();
  private epoch = "";
  private started = false;
  private heads: Cursor[] = [];
  private welcomeEpoch = "";
  private readonly page: number;

  constructor(resume: ResumeState | undefined, page: number) {
    this.page = Math.max(1, page);
    if (resume) {
      this.started = true;
      this.epoch = resume.epoch;
      for (const [conv, seq] of Object.entries(resume.cursors)) this.seq.setCursor(BigInt(conv), BigInt(seq));
    }
  }

  /** What the next Hello carries. */
  hello(): { epoch: string; cursors: Cursor[]; resume: boolean } {
    if (!this.started) return { epoch: "", cursors: [], resume: false };
    const cursors = this.seq
      .cursors()
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([conversationId, seq]) => create(CursorSchema, { conversationId, seq }));
    return { epoch: this.epoch, cursors, resume: true };
  }

  /** A handshake succeeded; returns whether the session resumed the previous state. */
  onWelcome(w: Welcome, sentEpoch: string, sentResume: boolean): boolean {
    this.heads = w.heads;
    this.welcomeEpoch = w.epoch;
    this.started = true;
    if (!sentResume) {
      this.takeHeads();
      return false;
    }
    if (w.epoch === sentEpoch) {
      const current = new Set(this.heads.map((h) => h.conversationId));
      this.seq.retain((c) => current.has(c));
      for (const h of this.heads) {
        if (!this.seq.knows(h.conversationId)) this.seq.setCursor(h.conversationId, h.seq);
      }
    }
    return w.epoch === sentEpoch;
  }

  onResync(r: ResyncRequired): void {
    this.seq.clear();
    this.holes.clear();
    this.receipts.clear();
    this.takeHeads();
    if (r.epoch !== "") this.epoch = r.epoch;
  }

  private takeHeads(): void {
    for (const h of this.heads) this.seq.setCursor(h.conversationId, h.seq);
    this.epoch = this.welcomeEpoch;
  }

  /** A conversation appeared or changed: one new to this client is live after `lastSeq`. */
  onConversation(conv: bigint, lastSeq: bigint): void {
    if (!this.seq.knows(conv)) this.seq.setCursor(conv, lastSeq);
  }

  onMessage(m: Message): Step {
    const conv = m.conversationId;
    const offer = this.seq.offer(conv, m.seq, m);
    if (offer.kind === "ready") {
      this.noteReceipt(conv, offer.items);
      const h = this.holes.get(conv);
      if (h && !h.fetching && this.seq.cursor(conv) >= h.upto) this.holes.delete(conv);
      return { ready: offer.items };
    }
    if (offer.kind === "gap") {
      const hole = this.holes.get(conv);
      if (hole) hole.upto = hole.upto > m.seq ? hole.upto : m.seq;
      else this.holes.set(conv, { fetching: false, upto: m.seq, age: 0 });
    }
    return { ready: [] };
  }

  /** A history page asked for by a Fetch of conversation `conv`. */
  onHistory(conv: bigint, page: History): Step {
    // Seqs the server purged never come: they count as received.
    const ready: Message[] = this.seq.skipTo(conv, page.purgedThrough);
    let last: bigint | undefined;
    for (const m of page.messages) {
      if (m.conversationId !== conv) continue;
      if (last === undefined || m.seq > last) last = m.seq;
      const offer = this.seq.offer(conv, m.seq, m);
      if (offer.kind === "ready") ready.push(...offer.items);
      else if (offer.kind === "gap") {
        const h = this.holes.get(conv);
        if (h && m.seq > h.upto) h.upto = m.seq;
      }
    }
    this.noteReceipt(conv, ready);
    const cursor = this.seq.cursor(conv);
    const hole = this.holes.get(conv);
    if (!hole) return { ready };
    hole.fetching = false;
    if (cursor >= hole.upto) {
      this.holes.delete(conv);
      return { ready };
    }
    const top = last === undefined ? undefined : last > cursor ? last : cursor;
    if (top === undefined || top >= hole.upto) {
      // History cannot fill the hole: messages after it stay held.
      this.holes.delete(conv);
      return { ready };
    }
    hole.fetching = true;
    return { ready, fetch: { conv, afterSeq: top, limit: clampLimit(hole.upto - top, this.page) } };
  }

  onFetchFailed(conv: bigint): void {
    const h = this.holes.get(conv);
    if (h) {
      h.fetching = false;
      h.age = 0;
    }
  }

  /** Called every tick: pages to fetch for holes open longer than the grace period. */
  dueFetches(): Fetch[] {
    const out: Fetch[] = [];
    for (const [conv, hole] of this.holes) {
      if (hole.fetching) continue;
      hole.age += 1;
      if (hole.age < HOLE_GRACE_TICKS) continue;
      hole.fetching = true;
      const afterSeq = this.seq.cursor(conv);
      out.push({ conv, afterSeq, limit: clampLimit(hole.upto - afterSeq, this.page) });
    }
    return out.sort((a, b) => (a.conv < b.conv ? -1 : a.conv > b.conv ? 1 : 0));
  }

  /** The connection dropped: page requests died with it; the resume replays. */
  onDisconnect(): void {
    this.holes.clear();
  }

  private noteReceipt(conv: bigint, ready: Message[]): void {
    let top: bigint | undefined;
    for (const m of ready) if (top === undefined || m.seq > top) top = m.seq;
    if (top === undefined) return;
    const r = this.receipts.get(conv) ?? 0n;
    this.receipts.set(conv, r > top ? r : top);
  }

  /** Delivered receipts to send: the highest surfaced seq per conversation since the last call. */
  takeReceipts(): [bigint, bigint][] {
    const v = [...this.receipts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.receipts.clear();
    return v;
  }

  cursor(conv: bigint): bigint {
    return this.seq.cursor(conv);
  }

  resumeState(): ResumeState {
    const cursors: Record<string, string> = {};
    for (const [c, s] of this.seq.cursors()) cursors[c.toString()] = s.toString();
    return { epoch: this.epoch, cursors };
  }
}
