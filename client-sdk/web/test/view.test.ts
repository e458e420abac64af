// The message view: edits, deletes and reactions applied to their target
// exactly once and in order, whether they arrive live, again on resume, or
// in a history page whose messages already show them.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { type Message, MessageBodySchema, MessageKind, MessageSchema, type Reaction, ReactionChangeSchema, ReactionSchema } from "../src/gen/chat/v1/chat_pb.js";
import { applyEntries, MessageView } from "../src/sdk/view.js";

const text = (t: string) => create(MessageBodySchema, { content: { case: "text", value: t } });
const msg = (seq: bigint, by: string, t: string, extra: { editedAtMs?: bigint; reactions?: Reaction[] } = {}) =>
  create(MessageSchema, { conversationId: 1n, seq, senderId: by, kind: MessageKind.USER, body: text(t), serverTimeMs: seq * 10n, ...extra });
const edit = (seq: bigint, target: bigint, by: string, t: string) =>
  create(MessageSchema, { conversationId: 1n, seq, senderId: by, kind: MessageKind.EDIT, targetSeq: target, body: text(t), serverTimeMs: seq * 10n });
const del = (seq: bigint, target: bigint, by: string) =>
  create(MessageSchema, { conversationId: 1n, seq, senderId: by, kind: MessageKind.DELETE, targetSeq: target, serverTimeMs: seq * 10n });
const react = (seq: bigint, target: bigint, by: string, emoji: string, on = true) =>
  create(MessageSchema, {
    conversationId: 1n,
    seq,
    senderId: by,
    kind: MessageKind.REACTION,
    targetSeq: target,
    reaction: create(ReactionChangeSchema, { emoji, on }),
  });
const textOf = (m: Message) => (m.body?.content.case === "text" ? m.body.content.value : undefined);
const chips = (m: Message) => m.reactions.map((r) => [r.emoji, r.userIds]);

describe("MessageView", () => {
  it("applies edits, reactions and a delete to their target, and keeps events out of the messages", () => {
    const out = applyEntries([
      msg(1n, "ann", "hello"),
      react(2n, 1n, "bob", "👍"),
      react(3n, 1n, "cat", "👍"),
      react(4n, 1n, "bob", "❤️"),
      edit(5n, 1n, "ann", "hello, corrected"),
      msg(6n, "bob", "second"),
      react(7n, 1n, "bob", "👍", false),
      del(8n, 6n, "ann"),
    ]);
    expect(out.map((m) => m.seq)).toEqual([1n, 6n]);
    expect(textOf(out[0]!)).toBe("hello, corrected");
    expect(out[0]!.editedAtMs).toBe(50n);
    expect(chips(out[0]!)).toEqual([
      ["👍", ["cat"]],
      ["❤️", ["bob"]],
    ]);
    expect([out[1]!.deleted, out[1]!.deletedBy, out[1]!.body, out[1]!.reactions]).toEqual([true, "ann", undefined, []]);
  });

  it("applies each entry once: the same entries again (a resume) change nothing", () => {
    const entries = [msg(1n, "ann", "a"), react(2n, 1n, "bob", "👍"), react(3n, 1n, "bob", "👍", false), react(4n, 1n, "bob", "👍")];
    const v = new MessageView();
    v.applyAll(entries);
    const before = v.ordered();
    expect(v.applyAll(entries)).toBe(false);
    // A toggle seen twice would take the reaction away again.
    expect(v.apply(react(3n, 1n, "bob", "👍", false))).toBe("ignored");
    expect(v.ordered()).toEqual(before);
    expect(chips(v.ordered()[0]!)).toEqual([["👍", ["bob"]]]);
  });

  it("does not apply again what a history page's message already shows", () => {
    const v = new MessageView();
    // Newest page first: an edit (to v2) of a message not loaded yet, and the head.
    v.applyAll([edit(5n, 1n, "ann", "v2"), msg(6n, "bob", "later")]);
    // The older page: the message as it is now (v2, edited) and the first edit (v1).
    const now = msg(1n, "ann", "v2", { editedAtMs: 50n, reactions: [create(ReactionSchema, { emoji: "👍", userIds: ["bob"] })] });
    v.applyAll([now, edit(3n, 1n, "ann", "v1"), react(4n, 1n, "bob", "👍", false)]);
    const m = v.messages.get(1n)!;
    expect(textOf(m)).toBe("v2");
    expect(chips(m)).toEqual([["👍", ["bob"]]]);
    // A change after it applies.
    expect(v.apply(edit(7n, 1n, "ann", "v3"))).toBe("changed");
    expect(textOf(v.messages.get(1n)!)).toBe("v3");
  });

  it("leaves a deleted message deleted: no edit or reaction after the delete", () => {
    const out = applyEntries([msg(1n, "ann", "x"), del(2n, 1n, "mod"), edit(3n, 1n, "ann", "back"), react(4n, 1n, "bob", "👍")]);
    expect([out[0]!.deleted, out[0]!.deletedBy, textOf(out[0]!), out[0]!.reactions.length]).toEqual([true, "mod", undefined, 0]);
  });

  it("ignores a change of a message it does not hold, and a message seen twice", () => {
    const v = new MessageView();
    expect(v.apply(edit(2n, 1n, "ann", "x"))).toBe("ignored");
    expect(v.apply(msg(3n, "ann", "y"))).toBe("added");
    expect(v.apply(msg(3n, "ann", "y again"))).toBe("ignored");
    expect(v.lastSeq).toBe(3n);
    expect(textOf(v.messages.get(3n)!)).toBe("y");
  });
});

describe("MessageView.forgetThrough", () => {
  it("drops the messages the server purged and nothing after them", () => {
    const v = new MessageView();
    v.applyAll([msg(1n, "ann", "one"), msg(2n, "bob", "two"), edit(3n, 1n, "ann", "one, edited"), msg(4n, "ann", "four")]);
    expect(v.forgetThrough(3n)).toBe(true);
    expect(v.ordered().map((m) => m.seq)).toEqual([4n]);
    expect(v.forgetThrough(3n)).toBe(false);
    // An edit of a forgotten message arriving late changes nothing.
    expect(v.apply(edit(5n, 1n, "ann", "again"))).toBe("ignored");
  });
});
