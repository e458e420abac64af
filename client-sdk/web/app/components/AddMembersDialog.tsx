// The "Add members" dialog of a group, case or support conversation (its
// admins): people picked by name (or ids typed), and the server's refusal
// shown in the dialog.

import { useState } from "preact/hooks";
import { addMembers } from "../actions.js";
import { describeError, splitIds } from "../format.js";
import { DialogForm } from "./DialogForm.js";
import { PeoplePicker } from "./PeoplePicker.js";

/** The add-members dialog for conversation `conv`. */
export function AddMembersDialog({ conv }: { conv: string }) {
  const [ids, setIds] = useState("");
  const [error, setError] = useState("");
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
      <label>
        People (names or user ids, comma separated)
        <PeoplePicker id="add-members" placeholder="Name or user id" value={ids} onInput={setIds} autofocus />
      </label>
    </DialogForm>
  );
}
