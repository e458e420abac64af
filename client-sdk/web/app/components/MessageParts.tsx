// The parts of a stored message beyond its text: the quote of the message it
// answers (a button that jumps there), the inline editor, the reaction chips,
// the emoji palette, the delete confirmation and the action toolbar (shown on
// hover and keyboard focus, always on touch screens).

import { useEffect, useLayoutEffect, useRef } from "preact/hooks";
import type { pb } from "../../src/sdk/index.js";
import { decryptedText, nameOf } from "../format.js";
import { plainText } from "../markdown.js";
import { deleteMessage, jumpTo, mayDelete, PALETTE, replyTo, saveEdit, setTask, toggleReaction } from "../message-actions.js";
import { type ConvView, store } from "../state.js";

/** Most characters of a quoted message shown in a preview. */
const QUOTE_CHARS = 120;

/** The text of a message, or undefined when it has none (deleted, encrypted). */
export function textOf(m: pb.Message): string | undefined {
  return m.body?.content.case === "text" ? m.body.content.value : undefined;
}

/** What a message shows: its text, an E2E message's as this device decrypted it, else "Encrypted message". */
export function shownText(m: pb.Message): string {
  return textOf(m) ?? decryptedText(m) ?? "Encrypted message";
}

/** A one-line preview of the message at `seq` for a quote. */
export function quoteText(v: ConvView, seq: bigint): { who: string; text: string } {
  const m = v.messages.get(seq);
  if (!m) return { who: "", text: "Original message not loaded" };
  if (m.deleted) return { who: nameOf(m.senderId), text: "message deleted" };
  const t = plainText(shownText(m));
  return { who: nameOf(m.senderId), text: t.length > QUOTE_CHARS ? `${t.slice(0, QUOTE_CHARS)}…` : t };
}

/** The quote above a reply: who and what it answers; a click jumps to the original. */
export function ReplyQuote({ v, seq }: { v: ConvView; seq: bigint }) {
  const q = quoteText(v, seq);
  return (
    <button
      type="button"
      class="quote"
      data-reply-to={seq.toString()}
      aria-label={`Go to the message answered${q.who ? ` (${q.who})` : ""}`}
      onClick={() => void jumpTo(seq)}
    >
      {q.who && <span class="quote-who">{q.who}</span>}
      <span class="quote-text">{q.text}</span>
    </button>
  );
}

/** The inline editor of my message: Enter saves, Shift+Enter is a new line, Esc cancels. */
export function InlineEditor({ v, m }: { v: ConvView; m: pb.Message }) {
  const ref = useRef<HTMLTextAreaElement>(null);
  // Before the editor is painted: once it shows, it has the focus and the
  // caret at the end, so nothing typed or pasted into it meanwhile (a test's
  // select-all-and-type, a fast user) lands elsewhere or gets moved.
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);
  const save = () => void saveEdit(v, m.seq, ref.current?.value ?? "");
  return (
    <div class="editor">
      <textarea
        ref={ref}
        class="edit-input"
        rows={2}
        aria-label="Edit message"
        defaultValue={textOf(m) ?? ""}
        onKeyDown={(k) => {
          if (k.key === "Enter" && !k.shiftKey && !k.isComposing) {
            k.preventDefault();
            save();
          } else if (k.key === "Escape") {
            k.preventDefault();
            setTask(undefined);
          }
        }}
      />
      <div class="editor-buttons">
        <button type="button" class="small" onClick={() => setTask(undefined)}>
          Cancel
        </button>
        <button type="button" class="small primary" onClick={save}>
          Save
        </button>
      </div>
    </div>
  );
}

/** The reactions on a message as chips with counts; a click toggles mine. */
export function Reactions({ v, m }: { v: ConvView; m: pb.Message }) {
  if (m.reactions.length === 0) return null;
  const me = store.me?.id ?? "";
  return (
    <div class="reactions" role="group" aria-label="Reactions">
      {m.reactions.map((r) => {
        const mine = r.userIds.includes(me);
        const who = r.userIds.map(nameOf).join(", ");
        return (
          <button
            type="button"
            key={r.emoji}
            class={`chip${mine ? " mine" : ""}`}
            data-emoji={r.emoji}
            aria-pressed={mine}
            title={`${r.emoji} ${who}`}
            aria-label={`${r.emoji} ${r.userIds.length}: ${who}${mine ? " (click to take yours away)" : ""}`}
            onClick={() => void toggleReaction(v, m.seq, r.emoji)}
          >
            {r.emoji} <span class="count">{r.userIds.length}</span>
          </button>
        );
      })}
    </div>
  );
}

/** The emoji palette of a message. */
function Palette({ v, m }: { v: ConvView; m: pb.Message }) {
  const first = useRef<HTMLButtonElement>(null);
  useEffect(() => first.current?.focus(), []);
  return (
    <div
      class="palette"
      role="menu"
      aria-label="React with"
      onKeyDown={(k) => {
        if (k.key === "Escape") setTask(undefined);
      }}
    >
      {PALETTE.map((e, i) => (
        <button
          type="button"
          role="menuitem"
          key={e}
          ref={i === 0 ? first : undefined}
          aria-label={`React ${e}`}
          onClick={() => void toggleReaction(v, m.seq, e)}
        >
          {e}
        </button>
      ))}
    </div>
  );
}

/** "Delete this message?" with Delete and Cancel. */
function ConfirmDelete({ v, m }: { v: ConvView; m: pb.Message }) {
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  const mine = m.senderId === store.me?.id;
  return (
    <div class="confirm" role="alertdialog" aria-label="Delete this message?">
      <span>{mine ? "Delete this message for everyone?" : `Delete ${nameOf(m.senderId)}'s message for everyone?`}</span>
      <button type="button" class="small danger confirm-delete" onClick={() => void deleteMessage(v, m.seq)}>
        Delete
      </button>
      <button type="button" class="small" ref={cancel} onClick={() => setTask(undefined)}>
        Cancel
      </button>
    </div>
  );
}

/** The action toolbar of a stored message, and the palette or confirmation it opened. */
export function MessageActions({ v, m }: { v: ConvView; m: pb.Message }) {
  if (m.deleted) return null;
  const mine = m.senderId === store.me?.id;
  const task = store.task?.seq === m.seq ? store.task.kind : undefined;
  const editable = mine && textOf(m) !== undefined;
  return (
    <>
      <div class="actions" role="toolbar" aria-label="Message actions">
        {!v.summary.conversation?.e2e && (
          <button type="button" class="act act-reply" aria-label="Reply" title="Reply" onClick={() => replyTo(m.seq)}>
            ↩
          </button>
        )}
        <button
          type="button"
          class="act act-react"
          aria-label="React"
          title="React"
          aria-haspopup="menu"
          aria-expanded={task === "react"}
          onClick={() => setTask({ kind: "react", seq: m.seq })}
        >
          ☺
        </button>
        {editable && (
          <button type="button" class="act act-edit" aria-label="Edit" title="Edit" onClick={() => setTask({ kind: "edit", seq: m.seq })}>
            ✎
          </button>
        )}
        {mayDelete(v, m) && (
          <button
            type="button"
            class="act act-delete"
            aria-label="Delete"
            title="Delete"
            onClick={() => setTask({ kind: "confirm-delete", seq: m.seq })}
          >
            🗑
          </button>
        )}
      </div>
      {task === "react" && <Palette v={v} m={m} />}
      {task === "confirm-delete" && <ConfirmDelete v={v} m={m} />}
    </>
  );
}
