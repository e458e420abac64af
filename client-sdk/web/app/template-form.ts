// The rules of the Templates screen, sans-IO: what a draft holds, who may
// change which template, which field a server refusal belongs next to, and
// the preview that fills placeholders with example values. The server stays
// the judge of names, bodies and limits; this only places its answers.

import type { WireError } from "../src/sdk/index.js";
import { pb } from "../src/sdk/index.js";

/** The placeholders the server knows, each with the example value the preview shows. */
export const PLACEHOLDERS: ReadonlyArray<{ name: string; example: string; means: string }> = [
  { name: "client_name", example: "Jane Client", means: "the conversation's clients" },
  { name: "case_id", example: "2024-CV-0113", means: "the case id" },
  { name: "conversation_title", example: "Lease dispute", means: "the conversation's title" },
  { name: "my_name", example: "Ann Advocate", means: "your name" },
  { name: "date", example: "2026-12-03", means: "today (UTC)" },
];

/** A template being written: `id` 0n for a new one. */
export interface Draft {
  id: bigint;
  scope: pb.TemplateScope;
  name: string;
  body: string;
  /** The version an update replaces (0n: a create). */
  updatedAtMs: bigint;
}

/** An empty personal draft. */
export function newDraft(scope: pb.TemplateScope = pb.TemplateScope.PERSONAL): Draft {
  return { id: 0n, scope, name: "", body: "", updatedAtMs: 0n };
}

/** A draft that edits the saved template `t`. */
export function draftOf(t: pb.Template): Draft {
  return { id: t.id, scope: t.scope, name: t.name, body: t.body, updatedAtMs: t.updatedAtMs };
}

/** Whether a user (an admin or not) may change `t`: their own personal ones, and firm ones only as admins. */
export function mayChange(t: pb.Template, admin: boolean): boolean {
  return t.scope === pb.TemplateScope.PERSONAL || (t.scope === pb.TemplateScope.FIRM && admin);
}

/** How a scope is shown. */
export function scopeLabel(scope: pb.TemplateScope): string {
  return scope === pb.TemplateScope.FIRM ? "Firm" : "Personal";
}

/** The field a refusal is shown next to. */
export type Field = "name" | "body" | "form";

/**
 * Where a refusal of a save belongs: name rules (empty, too long, characters,
 * taken) by the name; body rules (empty, too long, unknown placeholder, bad
 * characters) by the text; everything else (not allowed, counts, a
 * concurrent change, gone) above the buttons.
 */
export function errorField(e: WireError): Field {
  if (e.limit === "template_name_bytes") return "name";
  if (e.name === "TEXT_TOO_LONG" || e.limit === "max_text_bytes") return "body";
  if (e.name === "INVALID_ARGUMENT" || e.name === "CONFLICT") {
    if (/^template name\b/.test(e.message) || /^a template named\b/.test(e.message)) return "name";
    if (/^template body\b/.test(e.message) || /^unknown placeholder\b/.test(e.message)) return "body";
  }
  return "form";
}

/** One run of preview text: a filled placeholder, one left as written (unknown), or plain text. */
export interface PreviewPart {
  text: string;
  kind: "text" | "filled" | "unknown";
}

const PLACEHOLDER = /\{([A-Za-z0-9_]+)\}/g;

/** `body` with each placeholder that `values` names filled in; any other is kept as written and marked. */
export function fillPreview(body: string, values: Readonly<Record<string, string>>): PreviewPart[] {
  const parts: PreviewPart[] = [];
  let at = 0;
  for (const m of body.matchAll(PLACEHOLDER)) {
    const start = m.index ?? 0;
    if (start > at) parts.push({ text: body.slice(at, start), kind: "text" });
    const value = values[m[1]!];
    parts.push(value === undefined ? { text: m[0], kind: "unknown" } : { text: value, kind: "filled" });
    at = start + m[0].length;
  }
  if (at < body.length) parts.push({ text: body.slice(at), kind: "text" });
  return parts;
}

/** The example values by placeholder name. */
export const EXAMPLE_VALUES: Readonly<Record<string, string>> = Object.fromEntries(
  PLACEHOLDERS.map((p) => [p.name, p.example]),
);
