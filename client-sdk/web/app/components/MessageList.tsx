// The messages of the open conversation in seq order with a separator at
// each new day and the "joined / left" lines where they happened, then the
// pending sends: Markdown bodies (or "message deleted"), the quote a reply answers,
// "(edited)", reactions and the message actions (MessageParts.tsx), sender
// names, times, and the sending / stored / delivered / read / failed marks
// on my own; a refused send offers Retry and Discard. A message jumped to is scrolled into view and highlighted. Keeps the view at the newest
// message when it was there, and in place when an older page arrives; asks
// for the older page when scrolled near the top.

import { Fragment } from "preact";
import { useLayoutEffect, useRef } from "preact/hooks";
import { pb } from "../../src/sdk/index.js";
import { loadOlder } from "../actions.js";
import { dayKey, dayLabel, isCommit, markOf, membershipLine, nameOf, systemSender, timeOf } from "../format.js";
import { renderMarkdown } from "../markdown.js";
import { type ConvView, type Note, type Pending, store } from "../state.js";
import { discardSend, retrySend } from "../unsent.js";
import { MessageAttachments } from "./AttachmentParts.js";
import { InlineEditor, MessageActions, Reactions, ReplyQuote, shownText } from "./MessageParts.js";

const MARKS = { sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" } as const;
const MARK_TITLES = { sending: "Sending", sent: "Stored", delivered: "Delivered", read: "Read", failed: "Not sent" } as const;
type Mark = keyof typeof MARKS;

/** Within this many px of the end counts as "at the newest message". */
const AT_BOTTOM_PX = 40;
/** Within this many px of the top, the older page is loaded. */
const NEAR_TOP_PX = 60;

function MarkSign({ mark }: { mark: Mark }) {
  return (
    <span class={`mark mark-${mark}`} title={MARK_TITLES[mark]} role="img" aria-label={MARK_TITLES[mark]}>
      {MARKS[mark]}
      {/* Read differs from delivered by more than colour. */}
      {mark === "read" && <span class="mark-text" aria-hidden="true">Read</span>}
    </span>
  );
}

function Stored({ v, m, showSender }: { v: ConvView; m: pb.Message; showSender: boolean }) {
  const seq = m.seq.toString();
  if (m.kind === pb.MessageKind.SYSTEM) {
    // Posted by the firm's systems through the server API: shown apart, as plain text.
    return (
      <div class="system" data-seq={seq} role="note">
        <span class="system-from">{systemSender(m.senderId)}</span>
        <span class="system-text">{m.body?.content.case === "text" ? m.body.content.value : ""}</span>
        <time class="system-time">{timeOf(m.serverTimeMs)}</time>
      </div>
    );
  }
  const mine = m.senderId === store.me?.id;
  const mark = mine ? markOf(v, m.seq) : undefined;
  const editing = store.task?.kind === "edit" && store.task.seq === m.seq;
  const cls = `msg${mine ? " mine" : ""}${m.deleted ? " deleted" : ""}${store.highlight === m.seq ? " highlight" : ""}`;
  let body;
  if (m.deleted) {
    const by = m.deletedBy && m.deletedBy !== m.senderId ? ` by ${nameOf(m.deletedBy)}` : "";
    body = <div class="body deleted-note">{`message deleted${by}`}</div>;
  } else if (editing) {
    body = <InlineEditor v={v} m={m} />;
  } else {
    body = <div class="body">{renderMarkdown(shownText(m))}</div>;
  }
  return (
    <div class={cls} data-seq={seq} data-sender={m.senderId} data-mark={mark}>
      {showSender && !mine && <div class="sender">{nameOf(m.senderId)}</div>}
      {m.replyTo !== 0n && <ReplyQuote v={v} seq={m.replyTo} />}
      {body}
      <MessageAttachments m={m} />
      <Reactions v={v} m={m} />
      <div class="meta">
        {m.editedAtMs > 0n && !m.deleted && (
          <span class="edited" title={`Edited ${timeOf(m.editedAtMs)}`}>
            (edited)
          </span>
        )}
        <time>{timeOf(m.serverTimeMs)}</time>
        {mark && <MarkSign mark={mark} />}
      </div>
      {!editing && <MessageActions v={v} m={m} />}
    </div>
  );
}

/** A message not stored yet: "sending", or the server's refusal with Retry and Discard. */
function PendingLine({ v, p }: { v: ConvView; p: Pending }) {
  const state: Mark = p.error ? "failed" : "sending";
  return (
    <div class="msg mine pending" data-mark={state} data-client-msg-id={p.clientMsgId}>
      {p.replyTo !== undefined && <ReplyQuote v={v} seq={p.replyTo} />}
      <div class="body">{renderMarkdown(p.text)}</div>
      <div class="meta">
        {p.error && <span class="error">{p.error}</span>}
        {p.retryAt !== undefined && <span class="retry-note">{`trying again at ${new Date(p.retryAt).toLocaleTimeString()}`}</span>}
        <MarkSign mark={state} />
      </div>
      {p.error && (
        <div class="row pending-actions">
          <button type="button" class="small" onClick={() => retrySend(v, p)}>
            Retry
          </button>
          <button type="button" class="small" onClick={() => discardSend(v, p)}>
            Discard
          </button>
        </div>
      )}
    </div>
  );
}

/** The message list of `v` (or a hint when no conversation is open). */
export function MessageList({ v }: { v: ConvView | undefined }) {
  const ref = useRef<HTMLDivElement>(null);
  // Measured before this render changes the list.
  const el = ref.current;
  const atBottom = el ? el.scrollHeight - el.scrollTop - el.clientHeight < AT_BOTTOM_PX : true;
  useLayoutEffect(() => {
    const list = ref.current;
    if (!list) return;
    const target = store.scrollToHighlight && store.highlight !== undefined ? list.querySelector(`[data-seq="${store.highlight}"]`) : null;
    if (target) {
      target.scrollIntoView({ block: "center" });
      store.scrollToHighlight = false;
      store.keepFromBottom = undefined;
    } else if (store.keepFromBottom !== undefined) {
      list.scrollTop = list.scrollHeight - store.keepFromBottom;
      store.keepFromBottom = undefined;
    } else if (store.stickBottom || atBottom) {
      list.scrollTop = list.scrollHeight;
    }
    store.stickBottom = false;
  });
  const onScroll = () => {
    const list = ref.current;
    if (list && v && list.scrollTop < NEAR_TOP_PX && v.hasOlder && !v.loadingOlder) {
      void loadOlder(v, list.scrollHeight - list.scrollTop);
    }
  };
  let body;
  if (!v) {
    body = <div class="empty muted">Your conversations are on the left.</div>;
  } else {
    // E2E commits change the group's keys: no line of their own.
    const seqs = [...v.messages.keys()].filter((s) => !isCommit(v.messages.get(s)!)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    // Each line goes after the newest message it followed (changes such as reactions have seqs but no line).
    const anchored = new Map<bigint, Note[]>();
    for (const n of v.notes) {
      let at = -1n;
      for (const s of seqs) if (s <= n.afterSeq) at = s;
      anchored.set(at, [...(anchored.get(at) ?? []), n]);
    }
    const notes = (at: bigint) =>
      (anchored.get(at) ?? []).map((n) => (
        <div class="system note" key={`note-${n.key}`} role="note">
          {membershipLine(n.event)}
        </div>
      ));
    let prevSender = "";
    let prevDay = "";
    body = (
      <>
        {v.hasOlder && v.loaded && <div class="older muted">{v.loadingOlder ? "Loading…" : "Scroll up for older messages"}</div>}
        {(!v.hasOlder || seqs.length === 0) && notes(-1n)}
        {seqs.map((s) => {
          const m = v.messages.get(s)!;
          const day = dayKey(m.serverTimeMs);
          const newDay = day !== prevDay;
          prevDay = day;
          const showSender = newDay || prevSender !== m.senderId;
          prevSender = m.kind === pb.MessageKind.SYSTEM ? "" : m.senderId;
          return (
            <Fragment key={s.toString()}>
              {newDay && (
                <div class="day-separator" role="separator" aria-label={dayLabel(m.serverTimeMs)} data-day={day}>
                  <span>{dayLabel(m.serverTimeMs)}</span>
                </div>
              )}
              <Stored v={v} m={m} showSender={showSender} />
              {notes(s)}
            </Fragment>
          );
        })}
        {v.pending.map((p) => (
          <PendingLine key={p.clientMsgId} v={v} p={p} />
        ))}
      </>
    );
  }
  return (
    <div class="messages" id="messages" ref={ref} onScroll={onScroll}>
      {body}
    </div>
  );
}
