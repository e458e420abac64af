// How E2E conversations' entries look in the list: a message the app cannot
// read is "Encrypted message"; an MLS commit is no message at all.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { E2eCiphertextSchema, MessageBodySchema, MessageSchema } from "../src/gen/chat/v1/chat_pb.js";
import { isCommit, preview } from "../app/format.js";
import { store } from "../app/state.js";

const entry = (commit: boolean) =>
  create(MessageSchema, {
    senderId: "ann",
    body: create(MessageBodySchema, {
      content: { case: "ciphertext", value: create(E2eCiphertextSchema, { epoch: 3n, commit, mls: new Uint8Array([1]) }) },
    }),
  });

describe("E2E entries", () => {
  store.names.set("ann", "Ann Advocate");
  it("show a message as encrypted and hide commits", () => {
    expect(isCommit(entry(false))).toBe(false);
    expect(isCommit(entry(true))).toBe(true);
    expect(preview(entry(false))).toBe("Encrypted message");
    expect(preview(entry(true))).toBe("Encryption keys changed");
    expect(isCommit(create(MessageSchema, { body: create(MessageBodySchema, { content: { case: "text", value: "hi" } }) }))).toBe(false);
  });
});
