// Per-conversation in-order, exactly-once delivery: the port of
// `chat_protocol::sequencer`. Held-back items are bounded.

export type Offer<T> =
  | { kind: "ready"; items: T[] }
  | { kind: "duplicate" }
  | { kind: "gap"; from: bigint; to: bigint };

interface Conv<T> {
  /** Highest seq surfaced; every seq at or below it has been surfaced. */
  delivered: bigint;
  held: Map<bigint, T>;
}

export class Sequencer<T> {
  private convs = new Map<bigint, Conv<T>>();

  constructor(readonly maxHeld: number) {}

  private conv(id: bigint): Conv<T> {
    let c = this.convs.get(id);
    if (!c) {
      c = { delivered: 0n, held: new Map() };
      this.convs.set(id, c);
    }
    return c;
  }

  /** Sets where a conversation stands; moves forward only; drops held items at or below it. */
  setCursor(conv: bigint, seq: bigint): void {
    const c = this.conv(conv);
    if (seq > c.delivered) {
      c.delivered = seq;
      for (const k of [...c.held.keys()]) if (k <= seq) c.held.delete(k);
    }
  }

  cursor(conv: bigint): bigint {
    return this.convs.get(conv)?.delivered ?? 0n;
  }

  cursors(): [bigint, bigint][] {
    return [...this.convs.entries()].map(([k, c]) => [k, c.delivered]);
  }

  knows(conv: bigint): boolean {
    return this.convs.has(conv);
  }

  retain(keep: (conv: bigint) => boolean): void {
    for (const k of [...this.convs.keys()]) if (!keep(k)) this.convs.delete(k);
  }

  clear(): void {
    this.convs.clear();
  }

  /** How many items are held back in a conversation. */
  heldCount(conv: bigint): number {
    return this.convs.get(conv)?.held.size ?? 0;
  }

  /**
   * Seqs at or below `seq` will never come (the server purged them): they
   * count as surfaced. Moves forward only; drops held items at or below it
   * and returns the held ones that are ready now, in order.
   */
  skipTo(conv: bigint, seq: bigint): T[] {
    this.setCursor(conv, seq);
    return this.release(this.conv(conv));
  }

  /** Takes the held items that follow the cursor without a gap. */
  private release(c: Conv<T>): T[] {
    const items: T[] = [];
    for (;;) {
      const next = c.held.get(c.delivered + 1n);
      if (next === undefined) break;
      c.held.delete(c.delivered + 1n);
      c.delivered += 1n;
      items.push(next);
    }
    return items;
  }

  offer(conv: bigint, seq: bigint, item: T): Offer<T> {
    const c = this.conv(conv);
    if (seq <= c.delivered || c.held.has(seq)) return { kind: "duplicate" };
    if (seq !== c.delivered + 1n) {
      const from = c.delivered + 1n;
      if (c.held.size < this.maxHeld) c.held.set(seq, item);
      let to = seq;
      for (const k of c.held.keys()) if (k < to) to = k;
      return { kind: "gap", from, to };
    }
    c.delivered = seq;
    return { kind: "ready", items: [item, ...this.release(c)] };
  }
}
