// The list of the user's conversations, newest first: presence or kind,
// title (a case's number in full), time and a one-line preview of the
// last message, unread badge.

import { ConversationKind } from "../../src/sdk/index.js";
import { openConversation } from "../actions.js";
import { convTitle, kindLabel, peerOf, preview, sortedConvs, timeOf } from "../format.js";
import { type ConvView, key, store } from "../state.js";
import { PresenceDot } from "./PresenceDot.js";

function Item({ v }: { v: ConvView }) {
  const c = v.summary.conversation!;
  const id = key(c.id);
  const peer = peerOf(v);
  const active = store.current === id;
  const unread = active && document.visibilityState === "visible" ? 0n : v.unread;
  const title = convTitle(v);
  const last = v.summary.lastMessage;
  return (
    <button
      type="button"
      class={`conv${active ? " active" : ""}${c.archivedAtMs > 0n ? " archived" : ""}`}
      data-conv={id}
      data-title={title}
      onClick={() => void openConversation(id)}
    >
      <div class="conv-top">
        {peer !== undefined ? (
          <PresenceDot user={peer} />
        ) : (
          <span class={`kind kind-${c.kind}`}>{kindLabel(c.kind).slice(0, 1)}</span>
        )}
        {c.kind === ConversationKind.CASE ? (
          <>
            {/* The case number never ellipsizes; a long title does. */}
            <span class="conv-title">{c.title || "Case"}</span>
            <span class="conv-case">{c.caseId}</span>
          </>
        ) : (
          <span class="conv-title">{title}</span>
        )}
        {last && <span class="conv-time">{timeOf(last.serverTimeMs)}</span>}
      </div>
      <div class="conv-bottom">
        <span class="conv-last">{preview(last)}</span>
        {unread > 0n && (
          <span class="badge" aria-label={`${unread} unread`}>
            {unread.toString()}
          </span>
        )}
      </div>
    </button>
  );
}

/** The conversation list, or how to start one. */
export function ConversationList() {
  const list = sortedConvs();
  if (list.length === 0) return <p class="muted empty">No conversations yet. Start one with “New”.</p>;
  return (
    <>
      {list.map((v) => (
        <Item key={key(v.summary.conversation!.id)} v={v} />
      ))}
    </>
  );
}
