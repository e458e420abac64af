// The audit trail over a connected Client, for system admins (anyone else
// is refused with FORBIDDEN): one filtered page, every page, or an export
// as JSON lines or CSV in the same shape as `chatd audit export` (the
// server records the export when its first page is read). See `ReadAudit`
// in schemas/chat/v1/chat.proto for the filters.
import { create } from "@bufbuild/protobuf";
import { type AuditEntry, type AuditPage, type ReadAudit, ReadAuditSchema } from "../gen/chat/v1/chat_pb.js";
import type { Client } from "./client.js";
import { ClientError } from "./errors.js";

/** The filters of a read: user (actor or target), conversation, kinds, time range, page size. */
export type AuditFilter = Partial<Pick<ReadAudit, "user" | "conversationId" | "kinds" | "sinceMs" | "untilMs" | "limit">>;

/** An export format, as `chatd audit export --format` names it. */
export type AuditFormat = "jsonl" | "csv";

/** The CSV header, the same columns as `chatd audit export --format csv`. */
export const AUDIT_CSV_HEADER = "chain,seq,at_ms,kind,actor,conversation_id,target_user,details,prev_hash,hash\n";

/** The audit calls of one client. */
export class Audit {
  constructor(private readonly client: Client) {}

  /** One page after `cursor` (a previous page's `next`; "" for the first). */
  async read(filter: AuditFilter, cursor = "", exportFormat = ""): Promise<AuditPage> {
    const value = create(ReadAuditSchema, { ...filter, cursor, exportFormat });
    const r = await this.client.request({ case: "readAudit", value });
    if (r.case !== "audit") throw new ClientError("protocol", "reply is not an audit page");
    return r.value;
  }

  /** Every entry the filter passes, page after page (`exportFormat` set: recorded as an export). */
  async readAll(filter: AuditFilter, exportFormat = ""): Promise<AuditEntry[]> {
    const all: AuditEntry[] = [];
    let cursor = "";
    for (;;) {
      const page = await this.read(filter, cursor, cursor ? "" : exportFormat);
      all.push(...page.entries);
      if (!page.next) return all;
      cursor = page.next;
    }
  }

  /** Every entry the filter passes, as the text of an export file. */
  async export(filter: AuditFilter, format: AuditFormat): Promise<string> {
    const entries = await this.readAll(filter, format);
    return formatAudit(entries, format);
  }
}

/** One entry as `chatd audit export` writes a JSON line (numbers unquoted, the same key order). */
export function auditJsonLine(e: AuditEntry): string {
  const s = JSON.stringify;
  return (
    `{"chain":${s(e.chain)},"seq":${e.seq},"at_ms":${e.atMs},"kind":${s(e.kind)},"actor":${s(e.actor)},` +
    `"conversation_id":${e.conversationId},"target_user":${s(e.targetUser)},"details":${s(e.details)},` +
    `"prev_hash":${s(e.prevHash)},"hash":${s(e.hash)}}\n`
  );
}

/** A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). */
function csvField(f: string): string {
  return /[",\n\r]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f;
}

/** One entry as a CSV line. */
export function auditCsvLine(e: AuditEntry): string {
  const fields = [e.chain, `${e.seq}`, `${e.atMs}`, e.kind, e.actor, `${e.conversationId}`, e.targetUser, e.details, e.prevHash, e.hash];
  return `${fields.map(csvField).join(",")}\n`;
}

/** Entries as the text of an export file. */
export function formatAudit(entries: AuditEntry[], format: AuditFormat): string {
  if (format === "csv") return AUDIT_CSV_HEADER + entries.map(auditCsvLine).join("");
  return entries.map(auditJsonLine).join("");
}
