// The Manage dialog of the open conversation: its members with their roles
// (admins change a role or remove a member), Archive / Unarchive (admins)
// and Leave (not for private conversations, which have no one to hand over
// to). The server's refusal shows in the dialog; it closes on Escape.

import { useState } from "preact/hooks";
import { ConversationKind, pb } from "../../src/sdk/index.js";
import { leaveConversation, removeMember, ROLES, setArchived, setRole } from "../conv-actions.js";
import { convTitle, describeError, roleLabel } from "../format.js";
import { store } from "../state.js";
import { closeDialog } from "./DialogForm.js";
import { Modal } from "./Modal.js";

/** The Manage dialog of conversation `conv`. */
export function ManageDialog({ conv }: { conv: string }) {
  const [error, setError] = useState("");
  const [confirmLeave, setConfirmLeave] = useState(false);
  const v = store.convs.get(conv);
  const c = v?.summary.conversation;
  if (!v || !c) return null;
  const admin = v.summary.myRole === pb.MemberRole.ADMIN;
  const archived = c.archivedAtMs > 0n;
  const run = (f: () => Promise<void>) => () => {
    setError("");
    f().catch((e: unknown) => setError(describeError(e)));
  };
  const me = store.me?.id;
  return (
    <Modal class="dialog manage-dialog" id="manage-dialog" labelledBy="manage-title" onClose={closeDialog}>
      <h2 id="manage-title">{`Manage “${convTitle(v)}”`}</h2>
      <section aria-labelledby="manage-members">
        <h3 id="manage-members">Members</h3>
        <ul class="member-list">
          {(v.members ?? []).map((m) => {
            const name = m.displayName || m.userId;
            return (
              <li key={m.userId} class="member-row" data-user={m.userId}>
                <span class="member-name">{m.userId === me ? `${name} (you)` : name}</span>
                {admin && m.userId !== me && c.kind !== ConversationKind.PRIVATE ? (
                  <>
                    <select
                      aria-label={`Role of ${name}`}
                      value={String(m.role)}
                      onChange={(e) => run(() => setRole(v, m.userId, Number(e.currentTarget.value) as pb.MemberRole))()}
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={String(r)}>
                          {roleLabel(r)}
                        </option>
                      ))}
                    </select>
                    <button type="button" class="small" aria-label={`Remove ${name}`} onClick={run(() => removeMember(v, m.userId))}>
                      Remove
                    </button>
                  </>
                ) : (
                  <span class="muted member-role">{roleLabel(m.role)}</span>
                )}
              </li>
            );
          })}
        </ul>
      </section>
      <p class="error" role="alert">
        {error}
      </p>
      <div class="row">
        {admin && (
          <button type="button" id="archive-toggle" onClick={run(() => setArchived(v, !archived))}>
            {archived ? "Unarchive" : "Archive"}
          </button>
        )}
        {c.kind !== ConversationKind.PRIVATE &&
          (confirmLeave ? (
            <button type="button" class="danger" id="leave-confirm" onClick={run(() => leaveConversation(v))}>
              Leave for good
            </button>
          ) : (
            <button type="button" id="leave" onClick={() => setConfirmLeave(true)}>
              Leave…
            </button>
          ))}
        <button type="button" class="primary" onClick={closeDialog}>
          Done
        </button>
      </div>
    </Modal>
  );
}
