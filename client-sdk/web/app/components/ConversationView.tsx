// The open conversation: its header (title, kind, members with presence,
// Add, Manage), the message list, who is typing, and the composer.

import { closeConversation } from "../actions.js";
import { canWrite } from "../e2e-actions.js";
import { caseUrl, convTitle, kindLabel, nameOf, othersOf } from "../format.js";
import { ConversationKind, pb } from "../../src/sdk/index.js";
import { changed, type ConvView, currentView, store } from "../state.js";
import { Composer } from "./Composer.js";
import { PresenceDot } from "./PresenceDot.js";
import { MessageList } from "./MessageList.js";

const SHOWN_MEMBERS = 8;

/** The members other than me, with presence dots (the first few, then a count). */
function Members({ v }: { v: ConvView }) {
  const members = othersOf(v);
  return (
    <>
      {members.slice(0, SHOWN_MEMBERS).map((m) => (
        <span class="member" key={m.userId}>
          <PresenceDot user={m.userId} />
          {m.displayName || m.userId}
        </span>
      ))}
      {members.length > SHOWN_MEMBERS && <span>{` +${members.length - SHOWN_MEMBERS}`}</span>}
    </>
  );
}

function openDialog(kind: "add" | "manage" | "safety", v: ConvView): void {
  if (store.dialog || !v.summary.conversation) return;
  store.dialog = { kind, conv: v.summary.conversation.id.toString() };
  changed();
}

function Header({ v }: { v: ConvView | undefined }) {
  if (!v?.summary.conversation) {
    return (
      <header class="chat-header" id="chat-header">
        <div class="chat-title muted">Select a conversation</div>
      </header>
    );
  }
  const c = v.summary.conversation;
  return (
    <header class="chat-header" id="chat-header">
      <button type="button" class="back" aria-label="Back to conversations" onClick={closeConversation}>
        ‹
      </button>
      <div class="chat-title">
        <strong id="chat-title">{convTitle(v)}</strong>
        <div class="chat-sub">
          <span class="kind-label">{kindLabel(c.kind)}</span>
          {c.caseId && <CaseId caseId={c.caseId} />}
          {c.kind === ConversationKind.SUPPORT && (
            <span>{c.supportState === pb.SupportState.ASSIGNED ? " · assigned" : " · waiting for staff"}</span>
          )}
          {c.archivedAtMs > 0n && <span> · archived</span>}
          {c.e2e && (
            <span id="chat-e2e" class="e2e-badge" title="Only the members' devices can read it; the server stores ciphertext">
              {" · end-to-end encrypted"}
            </span>
          )}
          <span id="chat-conv-id" title="The conversation's id (for legal holds and erasure)">{` · #${c.id}`}</span>
          <span id="chat-retention">
            {c.retentionDays > 0 ? ` · kept ${c.retentionDays} days` : " · kept forever"}
            {c.legalHold && " · legal hold"}
          </span>
          <Members v={v} />
        </div>
      </div>
      {v.summary.myRole === pb.MemberRole.ADMIN && c.kind !== ConversationKind.PRIVATE && (
        <button type="button" class="small" onClick={() => openDialog("add", v)}>
          Add
        </button>
      )}
      {c.e2e && (
        <button type="button" class="small" id="safety-button" title="Compare the devices' safety numbers" onClick={() => openDialog("safety", v)}>
          Verify
        </button>
      )}
      <button type="button" class="small" id="manage-button" onClick={() => openDialog("manage", v)}>
        Manage
      </button>
    </header>
  );
}

function Typing({ v }: { v: ConvView | undefined }) {
  const who = v ? [...v.typing.keys()].map(nameOf) : [];
  const text =
    who.length === 0
      ? ""
      : who.length === 1
        ? `${who[0]} is typing…`
        : `${who.slice(0, -1).join(", ")} and ${who.at(-1)} are typing…`;
  return (
    <div class="typing" id="typing" aria-live="polite">
      {text}
    </div>
  );
}

/** A case conversation's case id: a link to the case-management system when the server names one. */
function CaseId({ caseId }: { caseId: string }) {
  const url = caseUrl(caseId);
  return (
    <span id="chat-case">
      {" · case "}
      {url ? (
        <a href={url} target="_blank" rel="noopener noreferrer" title="Open the case in the case-management system">
          {caseId}
        </a>
      ) : (
        caseId
      )}
    </span>
  );
}

/** Why this device cannot write in an E2E conversation now. */
function E2eNote({ v }: { v: ConvView }) {
  const why =
    store.offline || store.connState !== "online"
      ? "End-to-end encrypted: writing needs the connection."
      : store.e2eProblem
        ? store.e2eProblem
        : !store.e2e
          ? "End-to-end encryption is starting on this device…"
          : "End-to-end encrypted, and this device is not in the conversation's group yet: a member adds it (Add, or their app adds new devices).";
  return (
    <p class="offline-note" id="e2e-note" data-conv={v.summary.conversation?.id.toString()}>
      {why}
    </p>
  );
}

/** The right-hand pane (the whole screen on a phone once a conversation is open). */
export function ConversationView() {
  const v = currentView();
  return (
    <main class="chat" id="chat">
      <Header v={v} />
      <MessageList v={v} />
      <Typing v={v} />
      {v?.summary.conversation?.e2e && !(canWrite(v) && store.connState === "online") ? (
        <E2eNote v={v} />
      ) : store.offline ? (
        <p class="offline-note" id="offline-note">
          Saved messages, read-only: writing needs the connection.
        </p>
      ) : (
        <Composer />
      )}
    </main>
  );
}
