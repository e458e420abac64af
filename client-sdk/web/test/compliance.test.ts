// What the Compliance screen says about an erasure, and how it names hold scopes.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EraseResultSchema, ErasureKeptSchema, HoldScope } from "../src/gen/chat/v1/chat_pb.js";
import { describeErasure, scopeLabel } from "../app/compliance-actions.js";

describe("an erasure's summary", () => {
  it("counts what went, with singular and plural", () => {
    const r = create(EraseResultSchema, { userId: "bob", pseudonym: "Erased user 7f3a1c2b", messagesErased: 1n, attachmentsErased: 2n });
    expect(describeErasure(r)).toBe("Erased bob (now shown as Erased user 7f3a1c2b): 1 message and 2 attachments erased.");
  });
  it("says what failed and that holds kept some", () => {
    const kept = [create(ErasureKeptSchema, { conversationId: 9n, scope: HoldScope.CASE, target: "C-1", messages: 3n })];
    const r = create(EraseResultSchema, { userId: "bob", pseudonym: "p", messagesFailed: 1n, kept });
    expect(describeErasure(r)).toBe(
      "Erased bob (now shown as p): 0 messages and 0 attachments erased. 1 message could not be erased; run the erasure again. Kept under legal hold in 1 conversation.",
    );
  });
});

describe("hold scopes", () => {
  it("are named as on the screen", () => {
    expect([HoldScope.CASE, HoldScope.USER, HoldScope.CONVERSATION, HoldScope.UNSPECIFIED].map(scopeLabel)).toEqual(["Case", "User", "Conversation", "Unknown"]);
  });
});
