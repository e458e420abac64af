// The dialog on top of the chat, if any: new conversation or add members.

import { store } from "../state.js";
import { AddMembersDialog } from "./AddMembersDialog.js";
import { NewConversationDialog } from "./NewConversationDialog.js";

/** The open dialog in its overlay. */
export function Dialogs() {
  const d = store.dialog;
  if (!d) return null;
  return <div class="overlay">{d.kind === "new" ? <NewConversationDialog /> : <AddMembersDialog conv={d.conv} />}</div>;
}
