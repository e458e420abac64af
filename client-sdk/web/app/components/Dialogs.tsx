// The dialog on top of the chat, if any: new conversation, add members,
// manage a conversation, an E2E conversation's safety numbers, the Templates screen, or (admins) the Audit and
// Compliance screens.

import { store } from "../state.js";
import { AddMembersDialog } from "./AddMembersDialog.js";
import { AuditScreen } from "./AuditScreen.js";
import { ComplianceScreen } from "./ComplianceScreen.js";
import { IntegrationsScreen } from "./IntegrationsScreen.js";
import { ManageDialog } from "./ManageDialog.js";
import { NewConversationDialog } from "./NewConversationDialog.js";
import { SafetyDialog } from "./SafetyDialog.js";
import { TemplatesScreen } from "./TemplatesScreen.js";

/** The open dialog in its overlay. */
export function Dialogs() {
  const d = store.dialog;
  if (!d) return null;
  return (
    <div class="overlay">
      {d.kind === "new" ? (
        <NewConversationDialog />
      ) : d.kind === "add" ? (
        <AddMembersDialog conv={d.conv} />
      ) : d.kind === "audit" ? (
        <AuditScreen />
      ) : d.kind === "compliance" ? (
        <ComplianceScreen />
      ) : d.kind === "integrations" ? (
        <IntegrationsScreen />
      ) : d.kind === "manage" ? (
        <ManageDialog conv={d.conv} />
      ) : d.kind === "safety" ? (
        <SafetyDialog conv={d.conv} />
      ) : (
        <TemplatesScreen />
      )}
    </div>
  );
}
