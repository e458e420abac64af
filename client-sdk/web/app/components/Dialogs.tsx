// The dialog on top of the chat, if any: new conversation or add members.

import { changed, store } from "../state.js";
import { AddMembersDialog } from "./AddMembersDialog.js";
import { NewConversationDialog } from "./NewConversationDialog.js";

/** Closes the open dialog. */
export function closeDialog(): void {
  store.dialog = undefined;
  changed();
}

/** The open dialog in its overlay. */
export function Dialogs() {
  const d = store.dialog;
  if (!d) return null;
  return <div class="overlay">{d.kind === "new" ? <NewConversationDialog /> : <AddMembersDialog conv={d.conv} />}</div>;
}
