// The signed-in layout: the sidebar (me with New, Templates, Audit for admins, and Sign out,
// connection status, search, support queue, conversation list) beside the open conversation, and the dialog on top.
// On a phone only one of the two shows (`has-current`, see app.css).

import { openAudit } from "../audit-actions.js";
import { isAdmin } from "../format.js";
import { signOut } from "../session.js";
import { changed, store } from "../state.js";
import { openTemplates } from "../template-actions.js";
import { ConversationList } from "./ConversationList.js";
import { ConversationView } from "./ConversationView.js";
import { Dialogs } from "./Dialogs.js";
import { SearchPanel } from "./SearchPanel.js";
import { StatusBar } from "./StatusBar.js";
import { SupportQueue } from "./SupportQueue.js";

function openNew(): void {
  if (store.dialog) return;
  store.dialog = { kind: "new" };
  changed();
}

/** The chat screen. */
export function Shell() {
  const me = store.me;
  return (
    <>
      <div class={`shell${store.current !== undefined ? " has-current" : ""}`} id="shell">
        <aside class="sidebar">
          <header class="me">
            <div class="me-name">
              <span class={`dot ${store.connState === "online" ? "online" : "offline"}`} id="conn-dot" title={store.connState} />
              <strong id="me-name">{me?.displayName || me?.id || ""}</strong>
            </div>
            <div class="me-actions">
              <button type="button" id="new-conv" class="primary" onClick={openNew}>
                New
              </button>
              <button type="button" id="templates-button" onClick={openTemplates}>
                Templates
              </button>
              {isAdmin() && (
                <button type="button" id="audit-button" onClick={openAudit}>
                  Audit
                </button>
              )}
              <button type="button" id="sign-out" onClick={signOut}>
                Sign out
              </button>
            </div>
          </header>
          <StatusBar />
          <SearchPanel />
          <div id="queue">
            <SupportQueue />
          </div>
          <nav id="conv-list" class="conv-list" aria-label="Conversations">
            <ConversationList />
          </nav>
        </aside>
        <ConversationView />
      </div>
      <div id="dialog">
        <Dialogs />
      </div>
    </>
  );
}
