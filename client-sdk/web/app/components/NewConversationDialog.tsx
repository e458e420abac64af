// The "New conversation" dialog: private (one person), group, case (with a
// case id) or support request, end-to-end encrypted or not (not support
// requests: staff join those later); the fields follow the kind, people are picked
// from the user directory by name, and the server's refusal is shown in the dialog.

import { useEffect, useRef, useState } from "preact/hooks";
import { ConversationKind } from "../../src/sdk/index.js";
import { createConversation } from "../actions.js";
import { describeError, splitIds } from "../format.js";
import { DialogForm } from "./DialogForm.js";
import { PeoplePicker } from "./PeoplePicker.js";

type Kind = "private" | "group" | "case" | "support";

const KINDS: Record<Kind, ConversationKind> = {
  private: ConversationKind.PRIVATE,
  group: ConversationKind.GROUP,
  case: ConversationKind.CASE,
  support: ConversationKind.SUPPORT,
};

/** The create dialog. */
export function NewConversationDialog() {
  const [kind, setKind] = useState<Kind>("private");
  const [title, setTitle] = useState("");
  const [caseId, setCaseId] = useState("");
  const [members, setMembers] = useState("");
  const [e2e, setE2e] = useState(false);
  const [error, setError] = useState("");
  const select = useRef<HTMLSelectElement>(null);
  useEffect(() => select.current?.focus(), []);

  const field = (id: string, placeholder: string, value: string, set: (v: string) => void) => (
    <input id={id} placeholder={placeholder} autocomplete="off" value={value} onInput={(e) => set(e.currentTarget.value)} />
  );
  const titleField = field("new-title", "Title", title, setTitle);
  const membersField = (
    <PeoplePicker id="new-members" placeholder="Name or user id (several: comma separated)" value={members} onInput={setMembers} />
  );
  const caseField = field("new-case", "Case id (e.g. 2024-CV-0113)", caseId, setCaseId);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    try {
      await createConversation(KINDS[kind], {
        title: title.trim(),
        caseId: caseId.trim(),
        members: kind === "support" ? [] : splitIds(members),
        e2e: e2e && kind !== "support",
      });
    } catch (e) {
      setError(describeError(e));
    }
  };
  return (
    <DialogForm title="New conversation" titleId="new-dialog-title" id="new-dialog" submitLabel="Create" submitId="create" error={error} onSubmit={submit}>
      <label>
        Kind
        <select id="new-kind" aria-label="Kind" ref={select} value={kind} onChange={(e) => setKind(e.currentTarget.value as Kind)}>
          <option value="private">Private (one person)</option>
          <option value="group">Group</option>
          <option value="case">Case</option>
          <option value="support">Support request</option>
        </select>
      </label>
      <div class="fields">
        {kind === "private" && <label>With (user id){membersField}</label>}
        {kind === "group" && (
          <>
            <label>Title{titleField}</label>
            <label>Members{membersField}</label>
          </>
        )}
        {kind === "case" && (
          <>
            <label>Case id{caseField}</label>
            <label>Title{titleField}</label>
            <label>Members{membersField}</label>
          </>
        )}
        {kind === "support" && <label>Subject{titleField}</label>}
      </div>
      {kind !== "support" && (
        <label class="check">
          <input type="checkbox" id="new-e2e" checked={e2e} onChange={(e) => setE2e(e.currentTarget.checked)} />
          End-to-end encrypted: only the members' devices can read it. The server cannot search it, and devices added later
          do not see what came before.
        </label>
      )}
    </DialogForm>
  );
}
