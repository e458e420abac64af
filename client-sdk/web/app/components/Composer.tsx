// The message box of the open conversation: Enter sends (Shift+Enter is a
// new line), typing is announced to the others, leaving the box stops it.
// Above it: the message being answered (with Cancel), and quick-reply
// buttons for the first templates. Typing `/` at the start opens the
// template menu, filtered as one types; Enter or a click puts the template,
// filled in for this conversation, in the box. Files come with the paper
// clip button or by dropping them on the composer; they upload at once and
// go with the next message (in an E2E conversation: sealed on this device
// and sent at once).

import { useEffect, useRef, useState } from "preact/hooks";
import { matchTemplates, type pb } from "../../src/sdk/index.js";
import { composerInput, loadTemplates, sendToCurrent, stopTyping } from "../actions.js";
import { attachFiles } from "../attachments.js";
import { sendE2e, sendE2eFiles } from "../e2e-actions.js";
import { renderTemplate, replyTo } from "../message-actions.js";
import { changed, currentView, store } from "../state.js";
import { UploadTray } from "./AttachmentParts.js";
import { quoteText } from "./MessageParts.js";

/** How many templates get a quick-reply button. */
const QUICK_REPLIES = 3;
/** Most entries the template menu lists. */
const MENU_ITEMS = 8;

/** What follows `/` at the start of the box when it opens the menu (a single word), else undefined. */
function slashWord(text: string): string | undefined {
  return /^\/\S*$/.test(text) ? text : undefined;
}

function Replying({ seq }: { seq: bigint }) {
  const v = currentView();
  if (!v) return null;
  const q = quoteText(v, seq);
  return (
    <div class="replying" id="replying">
      <div class="quote-static">
        <span class="muted">Replying to </span>
        {q.who && <span class="quote-who">{q.who}</span>}
        <span class="quote-text">{q.text}</span>
      </div>
      <button type="button" class="small" aria-label="Cancel the reply" onClick={() => replyTo(undefined)}>
        ✕
      </button>
    </div>
  );
}

function TemplateMenu({ items, active, pick }: { items: pb.Template[]; active: number; pick: (t: pb.Template) => void }) {
  if (items.length === 0) {
    return (
      <div class="template-menu empty-menu muted" id="template-menu" role="status">
        No template starts with that
      </div>
    );
  }
  return (
    <ul class="template-menu" id="template-menu" role="listbox" aria-label="Templates">
      {items.map((t, i) => (
        <li
          key={t.id.toString()}
          id={`template-${t.id}`}
          role="option"
          aria-selected={i === active}
          class={i === active ? "active" : ""}
          data-name={t.name}
          onMouseDown={(e) => e.preventDefault()}
          onClick={() => pick(t)}
        >
          <span class="template-name">/{t.name}</span>
          <span class="template-body muted">{t.body}</span>
        </li>
      ))}
    </ul>
  );
}

/** The composer; focused when a conversation opens. */
export function Composer() {
  const input = useRef<HTMLTextAreaElement>(null);
  const [word, setWord] = useState<string | undefined>(undefined);
  const [active, setActive] = useState(0);
  const current = store.current;
  useEffect(() => {
    if (current !== undefined) input.current?.focus();
  }, [current]);
  const items = word === undefined ? [] : matchTemplates(store.templates, word).slice(0, MENU_ITEMS);
  const v = currentView();
  const e2e = v?.summary.conversation?.e2e === true;
  // In an E2E conversation files are sealed here and sent at once, each message with its files.
  const attach = (files: File[]) => (e2e && v ? void sendE2eFiles(v, files) : attachFiles(files));
  const send = () => {
    const el = input.current;
    if (!el) return;
    if (e2e && v) {
      // Encrypted on this device; the box empties once the server stored it.
      const text = el.value;
      stopTyping();
      void sendE2e(v, text).then((ok) => {
        if (ok && el.value === text) el.value = "";
      });
      return;
    }
    if (sendToCurrent(el.value)) el.value = "";
  };
  const insert = async (t: pb.Template) => {
    setWord(undefined);
    const text = await renderTemplate(t);
    const el = input.current;
    if (text === undefined || !el) return;
    el.value = text;
    el.focus();
    el.setSelectionRange(text.length, text.length);
    composerInput(text);
    changed();
  };
  const onInput = () => {
    const text = input.current?.value ?? "";
    const w = slashWord(text);
    // The menu opens: the templates may have changed since they were listed.
    if (w === "/" && word === undefined) void loadTemplates().then(changed);
    setWord(w);
    setActive(0);
    composerInput(text);
  };
  const onKeyDown = (k: KeyboardEvent) => {
    if (word !== undefined && items.length > 0) {
      if (k.key === "ArrowDown" || k.key === "ArrowUp") {
        k.preventDefault();
        const n = items.length;
        setActive((a) => (a + (k.key === "ArrowDown" ? 1 : n - 1)) % n);
        return;
      }
      if ((k.key === "Enter" || k.key === "Tab") && !k.shiftKey && !k.isComposing) {
        k.preventDefault();
        void insert(items[Math.min(active, items.length - 1)]!);
        return;
      }
    }
    if (k.key === "Escape" && word !== undefined) {
      k.preventDefault();
      setWord(undefined);
      return;
    }
    if (k.key === "Escape" && store.replyTo !== undefined) {
      k.preventDefault();
      replyTo(undefined);
      return;
    }
    if (k.key === "Enter" && !k.shiftKey && !k.isComposing) {
      k.preventDefault();
      send();
    }
  };
  const quick = store.templates.slice(0, QUICK_REPLIES);
  const [dragging, setDragging] = useState(false);
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (e.dataTransfer?.files.length) attach(Array.from(e.dataTransfer.files));
  };
  return (
    <div
      class={`composer-wrap${dragging ? " dragging" : ""}`}
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      {v && !e2e && <UploadTray v={v} />}
      {store.replyTo !== undefined && <Replying seq={store.replyTo} />}
      {word !== undefined && <TemplateMenu items={items} active={active} pick={(t) => void insert(t)} />}
      {current !== undefined && quick.length > 0 && (
        <div class="quick-replies" role="group" aria-label="Quick replies">
          {quick.map((t) => (
            <button
              type="button"
              class="small quick-reply"
              key={t.id.toString()}
              data-name={t.name}
              title={t.body}
              onClick={() => void insert(t)}
            >
              {t.name}
            </button>
          ))}
        </div>
      )}
      <form
        class="composer"
        id="composer"
        onSubmit={(ev) => {
          ev.preventDefault();
          send();
        }}
      >
        <textarea
          id="composer-input"
          ref={input}
          rows={2}
          placeholder="Write a message — **bold**, *italic*, `code`, [link](https://…), - list; / for templates"
          aria-label="Message"
          aria-autocomplete="list"
          aria-controls={word !== undefined ? "template-menu" : undefined}
          aria-activedescendant={word !== undefined && items[active] ? `template-${items[active]!.id}` : undefined}
          onInput={onInput}
          onKeyDown={onKeyDown}
          onBlur={stopTyping}
        />
        <label class="attach-button" title="Attach files" aria-label="Attach files">
          📎
          <input
            type="file"
            id="attach-input"
            multiple
            hidden
            onChange={(e) => {
              const input = e.currentTarget;
              if (input.files?.length) attach(Array.from(input.files));
              input.value = "";
            }}
          />
        </label>
        <button type="submit" class="primary" id="send">
          Send
        </button>
      </form>
    </div>
  );
}
