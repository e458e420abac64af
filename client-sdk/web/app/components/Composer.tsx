// The message box of the open conversation: Enter sends (Shift+Enter is a
// new line), typing is announced to the others, leaving the box stops it.

import { useEffect, useRef } from "preact/hooks";
import { composerInput, sendToCurrent, stopTyping } from "../actions.js";
import { store } from "../state.js";

/** The composer; focused when a conversation opens. */
export function Composer() {
  const input = useRef<HTMLTextAreaElement>(null);
  const current = store.current;
  useEffect(() => {
    if (current !== undefined) input.current?.focus();
  }, [current]);
  const send = () => {
    const el = input.current;
    if (el && sendToCurrent(el.value)) el.value = "";
  };
  const onKeyDown = (k: KeyboardEvent) => {
    if (k.key === "Enter" && !k.shiftKey && !k.isComposing) {
      k.preventDefault();
      send();
    }
  };
  return (
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
        placeholder="Write a message — **bold**, *italic*, `code`, [link](https://…), - list"
        aria-label="Message"
        onInput={() => composerInput(input.current?.value ?? "")}
        onKeyDown={onKeyDown}
        onBlur={stopTyping}
      />
      <button type="submit" class="primary" id="send">
        Send
      </button>
    </form>
  );
}
