// The Compliance screen (system admins; from the Compliance button of the
// sidebar's header): the legal holds in force with Release (after a
// confirmation), a form to set a hold on a case, a user or a conversation,
// the GDPR export of a user's data (saved as a file), the GDPR erasure of a
// user and the erasure of a whole conversation (EraseForm: a reason and an
// explicit confirmation required), whose results say what was erased and
// what holds kept. The
// server's refusals show as they come. A modal dialog (Modal.tsx): focus
// moves to its heading when it opens, Esc closes it, and focus goes back to
// the Compliance button.

import { useEffect, useState } from "preact/hooks";
import type { pb } from "../../src/sdk/index.js";
import {
  closeCompliance,
  describeConversationErasure,
  describeErasure,
  eraseConversation,
  eraseUser,
  HOLD_SCOPES,
  listHolds,
  releaseHold,
  scopeLabel,
  setHold,
} from "../compliance-actions.js";
import { describeExport, exportUserData } from "../export-actions.js";
import { counted } from "../format.js";
import { EraseForm } from "./EraseForm.js";
import { Modal } from "./Modal.js";
import { ScreenStatus, ScreenTable, ScreenTop, useRun } from "./ScreenParts.js";

const holdKey = (h: pb.LegalHold) => `${h.scope}/${h.target}`;

function HoldRow(props: { h: pb.LegalHold; confirming: boolean; ask: () => void; cancel: () => void; release: () => void }) {
  const { h } = props;
  const label = `${scopeLabel(h.scope)} ${h.target}`;
  return (
    <tr class="hold-row" data-scope={scopeLabel(h.scope).toLowerCase()} data-target={h.target}>
      <td>{scopeLabel(h.scope)}</td>
      <td>{h.target}</td>
      <td>{h.reason}</td>
      <td>{h.setBy}</td>
      <td>{new Date(Number(h.setAtMs)).toISOString().replace("T", " ").slice(0, 16)}</td>
      <td>
        {props.confirming ? (
          <span class="row">
            <button type="button" class="danger confirm-release" onClick={props.release}>
              Release hold on {label}
            </button>
            <button type="button" onClick={props.cancel}>
              Keep it
            </button>
          </span>
        ) : (
          <button type="button" aria-label={`Release the hold on ${label}`} onClick={props.ask}>
            Release
          </button>
        )}
      </td>
    </tr>
  );
}

/** The Compliance screen in its overlay. */
export function ComplianceScreen() {
  const [holds, setHolds] = useState<pb.LegalHold[]>([]);
  const [confirming, setConfirming] = useState<string | undefined>(undefined);
  const [hold, setHoldForm] = useState({ scope: HOLD_SCOPES[0]!.scope, target: "", reason: "" });
  const [erased, setErased] = useState<pb.EraseResult | undefined>(undefined);
  const [exportUser, setExportUser] = useState("");
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const run = useRun(setError);
  useEffect(() => void run(async () => setHolds(await listHolds())), []);
  const scope = HOLD_SCOPES.find((s) => s.scope === hold.scope) ?? HOLD_SCOPES[0]!;

  return (
    <Modal class="dialog audit-screen compliance-screen" id="compliance-screen" labelledBy="compliance-title" onClose={closeCompliance}>
      <ScreenTop id="compliance" title="Compliance" closeLabel="Close compliance" onClose={closeCompliance} />
      <ScreenStatus id="compliance" status={status} error={error} />
      <section aria-labelledby="holds-title">
        <h3 id="holds-title">Legal holds</h3>
        <p class="muted">While a hold is in force, nothing under it is purged by retention or erased.</p>
        <ScreenTable id="holds" rows={holds.length} empty="No legal hold is in force." headers={["Scope", "Target", "Reason", "Set by", "Since (UTC)"]}>
          {holds.map((h) => (
            <HoldRow
              key={holdKey(h)}
              h={h}
              confirming={confirming === holdKey(h)}
              ask={() => setConfirming(holdKey(h))}
              cancel={() => setConfirming(undefined)}
              release={() =>
                void run(async () => {
                  await releaseHold(h);
                  setConfirming(undefined);
                  setHolds(await listHolds());
                  setStatus(`Released the hold on ${scopeLabel(h.scope)} ${h.target}.`);
                })
              }
            />
          ))}
        </ScreenTable>
        <form
          class="audit-filters"
          id="hold-form"
          onSubmit={(e) => {
            e.preventDefault();
            void run(async () => {
              setHolds(await setHold(hold.scope, hold.target, hold.reason));
              setStatus(`Hold set on ${scope.label} ${hold.target.trim()}.`);
              setHoldForm({ ...hold, target: "", reason: "" });
            });
          }}
        >
          <label>
            Hold on
            <select
              id="hold-scope"
              value={String(hold.scope)}
              onChange={(e) => setHoldForm({ ...hold, scope: Number(e.currentTarget.value) as pb.HoldScope })}
            >
              {HOLD_SCOPES.map((s) => (
                <option key={s.scope} value={String(s.scope)}>
                  {s.label}
                </option>
              ))}
            </select>
          </label>
          <label>
            Target
            <input id="hold-target" placeholder={scope.target} value={hold.target} onInput={(e) => setHoldForm({ ...hold, target: e.currentTarget.value })} />
          </label>
          <label>
            Reason
            <input id="hold-reason" placeholder="the matter or order" value={hold.reason} onInput={(e) => setHoldForm({ ...hold, reason: e.currentTarget.value })} />
          </label>
          <div class="row">
            <button type="submit" class="primary" id="hold-set">
              Set hold
            </button>
          </div>
        </form>
      </section>
      <section aria-labelledby="export-title">
        <h3 id="export-title">Export a user's data (GDPR)</h3>
        <p class="muted">One archive of everything of theirs: profile, conversations and receipts, the messages they sent with earlier versions, their files and the audit entries about them.</p>
        <form
          class="audit-filters"
          id="export-form"
          onSubmit={(e) => {
            e.preventDefault();
            void run(async () => {
              setStatus(`Preparing the data of ${exportUser.trim()}…`);
              setStatus(describeExport(await exportUserData(exportUser)));
            });
          }}
        >
          <label>
            User
            <input id="export-user" placeholder="user id" value={exportUser} onInput={(e) => setExportUser(e.currentTarget.value)} />
          </label>
          <div class="row">
            <button type="submit" class="primary" id="export-run">
              Export
            </button>
          </div>
        </form>
      </section>
      <EraseForm
        prefix="erase"
        targetId="erase-user"
        title="Erase a user (GDPR)"
        about="Their messages become erased tombstones, their attachments go, their profile is pseudonymised and their sessions close. What a legal hold covers is kept."
        targetLabel="User"
        placeholder="user id"
        confirm="I understand an erasure cannot be undone"
        button="Erase user"
        setError={setError}
        run={run}
        erase={async (user, reason) => {
          const r = await eraseUser(user, reason);
          setErased(r);
          setStatus(describeErasure(r));
        }}
      />
      {erased && erased.kept.length > 0 && (
        <ul id="erase-kept" aria-label="Kept under legal hold">
          {erased.kept.map((k) => (
            <li key={k.conversationId.toString()} data-conversation={k.conversationId.toString()}>
              Conversation {k.conversationId.toString()}: {counted(k.messages, "message")} kept by the hold on {scopeLabel(k.scope)} {k.target}
            </li>
          ))}
        </ul>
      )}
      <EraseForm
        prefix="erase-conv"
        targetId="erase-conv-id"
        title="Erase a conversation"
        about="Every message, file and search entry of it goes and its encryption key is destroyed; it stays archived, with its members and audit trail. Refused while a legal hold covers it."
        targetLabel="Conversation"
        placeholder="conversation id (its header shows it after #)"
        confirm="I understand erasing a conversation cannot be undone"
        button="Erase conversation"
        setError={setError}
        run={run}
        erase={async (id, reason) => setStatus(describeConversationErasure(await eraseConversation(id, reason)))}
      />
    </Modal>
  );
}
