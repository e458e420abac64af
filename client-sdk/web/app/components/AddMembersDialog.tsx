// The "Add members" dialog of a group, case or support conversation (its
// admins): user ids, and the server's refusal shown in the dialog.

import { useEffect, useRef, useState } from "preact/hooks";
import { addMembers } from "../actions.js";
import { describeError, splitIds } from "../format.js";
import { DialogForm } from "./DialogForm.js";

/** The add-members dialog for conversation `conv`. */
export function AddMembersDialog({ conv }: { conv: string }) {
  const [ids, setIds] = useState("");
  const [error, setError] = useState("");
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    try {
      await addMembers(conv, splitIds(ids));
    } catch (e) {
      setError(describeError(e));
    }
  };
  return (
    <DialogForm title="Add members" titleId="add-dialog-title" submitLabel="Add" error={error} onSubmit={submit}>
      <label for="add-members">User ids (comma separated)</label>
      <input
        id="add-members"
        ref={input}
        placeholder="user ids, comma separated"
        autocomplete="off"
        value={ids}
        onInput={(e) => setIds(e.currentTarget.value)}
      />
    </DialogForm>
  );
}
