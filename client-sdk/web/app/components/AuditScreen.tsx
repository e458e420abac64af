// The Audit screen (system admins; from the Audit button of the sidebar's
// header): filters (user, conversation, event kind, time range), the
// matching entries newest page by page with "Load more", and Export as JSON
// lines or CSV. A modal dialog (Modal.tsx): focus moves to its heading when
// it opens, stays inside, Esc closes it, and focus goes back to the Audit button.

import { useEffect, useState } from "preact/hooks";
import type { pb } from "../../src/sdk/index.js";
import { type AuditForm, EMPTY_FORM, closeAudit, exportAudit, filterOf, readAudit } from "../audit-actions.js";
import { Modal } from "./Modal.js";
import { ScreenStatus, ScreenTop, useRun } from "./ScreenParts.js";

/** The event kinds offered in the filter (the server's names). */
const KINDS = [
  "session.opened",
  "session.refused",
  "conversation.created",
  "conversation.archived",
  "conversation.unarchived",
  "member.added",
  "member.removed",
  "member.left",
  "member.role_changed",
  "message.edited",
  "message.deleted",
  "attachment.uploaded",
  "attachment.downloaded",
  "audit.exported",
  "gdpr.exported",
  "gdpr.erased",
  "legal_hold.set",
  "legal_hold.released",
  "retention.purged",
  "admin.action",
  "config.start",
  "retention.set",
  "user.created",
  "conversation.erased",
  "api.call",
  "service_account.created",
  "service_account.rotated",
  "service_account.revoked",
  "transcript.exported",
];

function Entry(props: { e: pb.AuditEntry }) {
  const { e } = props;
  return (
    <tr class="audit-entry" data-kind={e.kind} data-seq={e.seq.toString()}>
      <td>{new Date(Number(e.atMs)).toISOString().replace("T", " ").slice(0, 19)}</td>
      <td>{e.kind}</td>
      <td>{e.actor || "—"}</td>
      <td>{e.targetUser || ""}</td>
      <td>{e.conversationId === 0n ? "" : e.conversationId.toString()}</td>
      <td class="audit-details">
        <code>{e.details}</code>
      </td>
    </tr>
  );
}

/** The Audit screen in its overlay. */
export function AuditScreen() {
  const [form, setForm] = useState<AuditForm>(EMPTY_FORM);
  const [entries, setEntries] = useState<pb.AuditEntry[]>([]);
  const [next, setNext] = useState("");
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const run = useRun(setError);
  const search = (cursor: string) =>
    run(async () => {
      const page = await readAudit(filterOf(form), cursor);
      const shown = cursor ? [...entries, ...page.entries] : page.entries;
      setEntries(shown);
      setNext(page.next);
      setStatus(`${shown.length} entr${shown.length === 1 ? "y" : "ies"}${page.next ? ", more to load" : ""}.`);
    });
  const exportAs = (format: "jsonl" | "csv") =>
    run(async () => {
      const n = await exportAudit(filterOf(form), format);
      setStatus(`Exported ${n} entr${n === 1 ? "y" : "ies"} as ${format === "csv" ? "CSV" : "JSON lines"}.`);
    });
  const field = (key: keyof AuditForm) => ({
    value: form[key],
    onInput: (ev: Event) => setForm({ ...form, [key]: (ev.target as HTMLInputElement).value }),
  });
  useEffect(() => void search(""), []);

  return (
    <Modal class="dialog audit-screen" id="audit-screen" labelledBy="audit-title" onClose={closeAudit}>
      <ScreenTop id="audit" title="Audit trail" closeLabel="Close audit trail" onClose={closeAudit} />
      <form
        class="audit-filters"
        onSubmit={(e) => {
          e.preventDefault();
          void search("");
        }}
      >
        <label>
          User
          <input id="audit-user" placeholder="user id (actor or target)" {...field("user")} />
        </label>
        <label>
          Conversation
          <input id="audit-conversation" inputMode="numeric" placeholder="conversation id" {...field("conversation")} />
        </label>
        <label>
          Event
          <select id="audit-kind" {...field("kind")}>
            <option value="">any</option>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input id="audit-since" type="datetime-local" {...field("since")} />
        </label>
        <label>
          Until
          <input id="audit-until" type="datetime-local" {...field("until")} />
        </label>
        <div class="row">
          <button type="submit" class="primary" id="audit-search">
            Search
          </button>
          <button type="button" id="audit-export-jsonl" onClick={() => void exportAs("jsonl")}>
            Export JSON lines
          </button>
          <button type="button" id="audit-export-csv" onClick={() => void exportAs("csv")}>
            Export CSV
          </button>
        </div>
      </form>
      <ScreenStatus id="audit" status={status} error={error} />
      <div class="audit-table-wrap">
        <table class="audit-table" id="audit-entries">
          <thead>
            <tr>
              <th>Time (UTC)</th>
              <th>Event</th>
              <th>By</th>
              <th>User</th>
              <th>Conversation</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <Entry key={`${e.chain}/${e.seq}`} e={e} />
            ))}
          </tbody>
        </table>
      </div>
      {next && (
        <button type="button" id="audit-more" onClick={() => void search(next)}>
          Load more
        </button>
      )}
    </Modal>
  );
}
