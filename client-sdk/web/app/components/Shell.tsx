// The signed-in layout: the sidebar (me with New, Templates, Audit and Compliance for
// admins, and Sign out, connection status, the notification setting,
// "Download my data", search,
// support queue, conversation list) beside the open conversation, and the
// dialog on top. On a phone only one of the two shows (`has-current`, see
// app.css). Keeps the tab title's unread count and the live region that
// announces new messages; focus goes to the conversation list once signed in.

import { useEffect, useRef, useState } from "preact/hooks";
import { openAudit } from "../audit-actions.js";
import { openCompliance } from "../compliance-actions.js";
import { openIntegrations } from "../integration-actions.js";
import { notificationsOn, setNotifications, updateTitle } from "../attention.js";
import { isAdmin } from "../format.js";
import { AppNotices } from "./AppNotices.js";
import { signOut } from "../session.js";
import { changed, store } from "../state.js";
import { openTemplates } from "../template-actions.js";
import { ConversationList } from "./ConversationList.js";
import { ConversationView } from "./ConversationView.js";
import { Dialogs } from "./Dialogs.js";
import { MyData } from "./MyData.js";
import { SearchPanel } from "./SearchPanel.js";
import { StatusBar } from "./StatusBar.js";
import { SupportQueue } from "./SupportQueue.js";

function openNew(): void {
  if (store.dialog) return;
  store.dialog = { kind: "new" };
  changed();
}

/** The background-notification setting (off until the user turns it on). */
function NotifySetting() {
  const [on, setOn] = useState(notificationsOn());
  if (typeof Notification === "undefined") return null;
  return (
    <label class="setting">
      <input
        type="checkbox"
        id="notify-toggle"
        checked={on}
        onChange={(e) => {
          const want = e.currentTarget.checked;
          void setNotifications(want).then((now) => {
            setOn(now);
            changed();
          });
        }}
      />
      Notify me of messages while this tab is in the background
    </label>
  );
}

/** The chat screen. */
export function Shell() {
  const me = store.me;
  const list = useRef<HTMLElement>(null);
  // Signed in: the conversation list is where the user goes next.
  useEffect(() => list.current?.focus(), []);
  useEffect(updateTitle);
  return (
    <>
      <AppNotices />
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
                <>
                  <button type="button" id="audit-button" onClick={openAudit}>
                    Audit
                  </button>
                  <button type="button" id="compliance-button" onClick={openCompliance}>
                    Compliance
                  </button>
                  <button type="button" id="integrations-button" onClick={openIntegrations}>
                    Integrations
                  </button>
                </>
              )}
              <button type="button" id="sign-out" onClick={signOut}>
                Sign out
              </button>
            </div>
          </header>
          <StatusBar />
          <NotifySetting />
          <MyData />
          <SearchPanel />
          <div id="queue">
            <SupportQueue />
          </div>
          <nav id="conv-list" class="conv-list" aria-label="Conversations" tabindex={-1} ref={list}>
            <ConversationList />
          </nav>
        </aside>
        <ConversationView />
      </div>
      <div id="dialog">
        <Dialogs />
      </div>
      <div class="sr-only" id="announcer" aria-live="polite">
        {store.announcement}
      </div>
    </>
  );
}
