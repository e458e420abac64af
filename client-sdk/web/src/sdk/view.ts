// A conversation's messages in their latest state: the port of the Rust SDK's
// `view.rs`. Edits, deletes and reactions are entries of their own in the
// conversation's sequence (live, on resume and in history); each is applied
// to the message it names exactly once and in order. A history page already
// shows each message as it is now, so a change that page includes (one not
// newer than anything this view had seen when the message came in) is not
// applied again. Pure: no connection, no clock.

import { type Message, MessageKind, type Reaction, ReactionSchema } from "../gen/chat/v1/chat_pb.js";
import { create } from "@bufbuild/protobuf";

/** Whether `m` is an edit, delete or reaction (an entry that changes an earlier message). */
export function isChange(m: Message): boolean {
  return m.kind === MessageKind.EDIT || m.kind === MessageKind.DELETE || m.kind === MessageKind.REACTION;
}

/** What applying one entry did to the view. */
export type Applied = "added" | "changed" | "ignored";

/** Messages (not the change entries) by seq, each in its latest state. */
export class MessageView {
  /** The messages by seq (replaced, never mutated, when a change applies). */
  readonly messages = new Map<bigint, Message>();
  /** Per message: the newest seq whose effect it already shows. */
  private readonly asOf = new Map<bigint, bigint>();
  private head = 0n;

  /** The highest seq this view has taken in (messages and changes). */
  get lastSeq(): bigint {
    return this.head;
  }

  /** Takes in one entry: a message is added once, a change applied once to its target (if held). */
  apply(m: Message): Applied {
    if (m.seq > this.head) this.head = m.seq;
    if (!isChange(m)) {
      if (this.messages.has(m.seq)) return "ignored";
      this.messages.set(m.seq, m);
      // A message from a history page already shows every change seen so far.
      this.asOf.set(m.seq, this.head);
      return "added";
    }
    const target = this.messages.get(m.targetSeq);
    const seen = this.asOf.get(m.targetSeq);
    if (!target || seen === undefined || m.seq <= seen) return "ignored";
    this.asOf.set(m.targetSeq, m.seq);
    const next = changed(target, m);
    if (!next) return "ignored";
    this.messages.set(m.targetSeq, next);
    return "changed";
  }

  /** Takes in entries in order; returns whether any message was added or changed. */
  applyAll(entries: Iterable<Message>): boolean {
    let any = false;
    for (const m of entries) if (this.apply(m) !== "ignored") any = true;
    return any;
  }

  /** Drops every message at or below `through` (the server purged them; 0: nothing); whether any was held. */
  forgetThrough(through: bigint): boolean {
    if (through <= 0n) return false;
    let any = false;
    for (const seq of [...this.messages.keys()]) {
      if (seq <= through) {
        this.messages.delete(seq);
        this.asOf.delete(seq);
        any = true;
      }
    }
    return any;
  }

  /** The messages in seq order. */
  ordered(): Message[] {
    return [...this.messages.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  }
}

/** The messages `entries` leave behind, in seq order (the view a fresh reader would build). */
export function applyEntries(entries: Iterable<Message>): Message[] {
  const v = new MessageView();
  v.applyAll(entries);
  return v.ordered();
}

/** `target` after the change `c`, or undefined when it changes nothing (a deleted message stays deleted). */
function changed(target: Message, c: Message): Message | undefined {
  if (target.deleted) return undefined;
  switch (c.kind) {
    case MessageKind.EDIT:
      return { ...target, body: c.body, editedAtMs: c.serverTimeMs > target.editedAtMs ? c.serverTimeMs : target.editedAtMs || 1n };
    case MessageKind.DELETE:
      return { ...target, body: undefined, deleted: true, deletedBy: c.senderId, reactions: [] };
    case MessageKind.REACTION:
      if (!c.reaction) return undefined;
      return { ...target, reactions: toggle(target.reactions, c.reaction.emoji, c.senderId, c.reaction.on) };
    default:
      return undefined;
  }
}

/** `reactions` with `user` having (`on`) or not having `emoji`; the order of first reaction is kept. */
export function toggle(reactions: Reaction[], emoji: string, user: string, on: boolean): Reaction[] {
  const out: Reaction[] = [];
  let found = false;
  for (const r of reactions) {
    if (r.emoji !== emoji) {
      out.push(r);
      continue;
    }
    found = true;
    const has = r.userIds.includes(user);
    if (on && !has) out.push(create(ReactionSchema, { emoji, userIds: [...r.userIds, user] }));
    else if (!on && has) {
      const rest = r.userIds.filter((u) => u !== user);
      if (rest.length > 0) out.push(create(ReactionSchema, { emoji, userIds: rest }));
    } else out.push(r);
  }
  if (!found && on) out.push(create(ReactionSchema, { emoji, userIds: [user] }));
  return out;
}
