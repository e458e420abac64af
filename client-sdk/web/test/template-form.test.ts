// The Templates screen's rules: who may change which template, which field
// each of the server's refusals of a save is shown next to (with the
// messages the server words), and the example preview of placeholders.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { TemplateSchema, TemplateScope } from "../src/gen/chat/v1/chat_pb.js";
import type { WireError } from "../src/sdk/errors.js";
import { draftOf, EXAMPLE_VALUES, errorField, fillPreview, mayChange, newDraft } from "../app/template-form.js";

const wire = (name: string, message: string, limit?: string): WireError => ({ code: 0, name, message, ...(limit ? { limit } : {}) });

describe("mayChange", () => {
  const personal = create(TemplateSchema, { id: 1n, scope: TemplateScope.PERSONAL, name: "a" });
  const firm = create(TemplateSchema, { id: 2n, scope: TemplateScope.FIRM, name: "b" });
  it("lets anyone change their personal templates", () => {
    expect(mayChange(personal, false)).toBe(true);
    expect(mayChange(personal, true)).toBe(true);
  });
  it("keeps firm templates read-only but for admins", () => {
    expect(mayChange(firm, false)).toBe(false);
    expect(mayChange(firm, true)).toBe(true);
  });
});

describe("errorField", () => {
  it.each([
    [wire("INVALID_ARGUMENT", "template name is empty"), "name"],
    [wire("INVALID_ARGUMENT", 'template name "Hi!" may hold only a-z, 0-9, `_` and `-`'), "name"],
    [wire("INVALID_ARGUMENT", "template name is 70 bytes, over the 64-byte limit", "template_name_bytes"), "name"],
    [wire("CONFLICT", 'a template named "hi" exists already in this scope'), "name"],
    [wire("INVALID_ARGUMENT", "template body is empty"), "body"],
    [wire("INVALID_ARGUMENT", "unknown placeholder {fee}; known placeholders: {client_name}, ..."), "body"],
    [wire("TEXT_TOO_LONG", "text is 10241 bytes, over the 10240-byte limit", "max_text_bytes"), "body"],
    [wire("FORBIDDEN", "only admins create, update or delete firm templates"), "form"],
    [wire("INVALID_ARGUMENT", "at most 100 personal templates per user; delete one first", "templates_per_user"), "form"],
    [wire("CONFLICT", "template 3 was changed (updated_at_ms 5, not 4); reload it and try again"), "form"],
    [wire("NOT_FOUND", "template 9 not found"), "form"],
  ])("%o goes by the %s", (e, field) => {
    expect(errorField(e)).toBe(field);
  });
});

describe("fillPreview", () => {
  it("fills known placeholders, keeps and marks unknown ones, keeps other braces as text", () => {
    expect(fillPreview("Dear {client_name}, re {case_id}: {fee} {not a placeholder}", EXAMPLE_VALUES)).toEqual([
      { text: "Dear ", kind: "text" },
      { text: "Jane Client", kind: "filled" },
      { text: ", re ", kind: "text" },
      { text: "2024-CV-0113", kind: "filled" },
      { text: ": ", kind: "text" },
      { text: "{fee}", kind: "unknown" },
      { text: " {not a placeholder}", kind: "text" },
    ]);
  });
  it("gives nothing for an empty text and the text itself without placeholders", () => {
    expect(fillPreview("", EXAMPLE_VALUES)).toEqual([]);
    expect(fillPreview("plain", EXAMPLE_VALUES)).toEqual([{ text: "plain", kind: "text" }]);
  });
});

describe("drafts", () => {
  it("start empty and personal, or from a saved template with its version", () => {
    expect(newDraft()).toEqual({ id: 0n, scope: TemplateScope.PERSONAL, name: "", body: "", updatedAtMs: 0n });
    const t = create(TemplateSchema, { id: 7n, scope: TemplateScope.FIRM, name: "x", body: "y", updatedAtMs: 42n });
    expect(draftOf(t)).toEqual({ id: 7n, scope: TemplateScope.FIRM, name: "x", body: "y", updatedAtMs: 42n });
  });
});
