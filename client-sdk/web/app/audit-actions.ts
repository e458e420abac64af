// What the Audit screen (system admins only) does with the server: open and
// close the screen (giving focus back to the Audit button), read a filtered
// page of the trail, and export what a filter passes as a JSON lines or CSV
// file the browser saves (the server records the export). The form's
// fields become an `AuditFilter` here (`filterOf`), so the screen holds no
// rules of its own.

import { Audit, type AuditFilter, type AuditFormat, formatAudit, type pb } from "../src/sdk/index.js";
import { closeScreen, connectedClient, openScreen } from "./state.js";
import { saveFile } from "./save-file.js";

/** The Audit screen's fields, as typed. */
export type AuditForm = { user: string; conversation: string; kind: string; since: string; until: string };

/** An empty form: everything. */
export const EMPTY_FORM: AuditForm = { user: "", conversation: "", kind: "", since: "", until: "" };

/** Entries per page on the screen. */
const PAGE = 50;

/** The filter a form asks for; throws a readable error for a field that does not parse. */
export function filterOf(f: AuditForm): AuditFilter {
  const conv = f.conversation.trim();
  if (conv && !/^\d+$/.test(conv)) throw new Error("Conversation: a conversation id (digits)");
  const time = (v: string, name: string) => {
    if (!v) return 0n;
    const ms = Date.parse(v);
    if (Number.isNaN(ms)) throw new Error(`${name}: not a date and time`);
    return BigInt(ms);
  };
  return {
    user: f.user.trim(),
    conversationId: conv ? BigInt(conv) : 0n,
    kinds: f.kind ? [f.kind] : [],
    sinceMs: time(f.since, "From"),
    untilMs: time(f.until, "Until"),
    limit: PAGE,
  };
}

/** Opens the Audit screen over the chat. */
export const openAudit = (): void => openScreen("audit");

/** Closes the Audit screen; focus goes back to the Audit button. */
export const closeAudit = (): void => closeScreen("audit");

function audit(): Audit {
  return new Audit(connectedClient());
}

/** One page of entries the filter passes, after `cursor`. */
export function readAudit(filter: AuditFilter, cursor: string): Promise<pb.AuditPage> {
  return audit().read(filter, cursor);
}

/** Exports what the filter passes and hands the file to the browser; resolves with the entry count. */
export async function exportAudit(filter: AuditFilter, format: AuditFormat): Promise<number> {
  const a = audit();
  const entries = await a.readAll({ ...filter, limit: 500 }, format);
  const text = formatAudit(entries, format);
  const type = format === "csv" ? "text/csv" : "application/x-ndjson";
  saveFile(new Blob([text], { type }), `audit-${new Date().toISOString().slice(0, 19).replaceAll(":", "")}.${format}`);
  return entries.length;
}
