// The people picker of the New conversation and Add members dialogs: a text
// field of user ids (comma separated, as typed) that offers, for the word
// being typed, the people of the user directory whose name or id matches
// (the server's `SearchUsers`); choosing one puts their id in its place.

import { useEffect, useRef, useState } from "preact/hooks";
import { type pb, Users } from "../../src/sdk/index.js";
import { store } from "../state.js";

/** Suggestions shown at most. */
const SUGGESTIONS = 8;
/** Wait after a keystroke before asking the server, ms. */
const DEBOUNCE_MS = 150;

/** The word being typed: what follows the last comma or space. */
export function lastWord(text: string): string {
  return /[^\s,]*$/.exec(text)?.[0] ?? "";
}

/** `text` with its last word replaced by `id`, ready for the next one. */
export function withPicked(text: string, id: string): string {
  return `${text.slice(0, text.length - lastWord(text).length)}${id}, `;
}

interface Props {
  id: string;
  placeholder: string;
  value: string;
  onInput: (v: string) => void;
  autofocus?: boolean;
}

/** A user-ids field with directory suggestions. */
export function PeoplePicker({ id, placeholder, value, onInput, autofocus }: Props) {
  const [found, setFound] = useState<pb.DirectoryUser[]>([]);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (autofocus) input.current?.focus();
  }, []);
  const word = lastWord(value);
  useEffect(() => {
    const client = store.client;
    if (!client || word === "") {
      setFound([]);
      return;
    }
    let stale = false;
    const t = setTimeout(() => {
      new Users(client)
        .search(word, { limit: SUGGESTIONS })
        .then((page) => stale || setFound(page.users.filter((u) => u.id !== store.me?.id)))
        .catch(() => stale || setFound([]));
    }, DEBOUNCE_MS);
    return () => {
      stale = true;
      clearTimeout(t);
    };
  }, [word]);
  const pick = (u: pb.DirectoryUser) => {
    onInput(withPicked(value, u.id));
    setFound([]);
    input.current?.focus();
  };
  const listId = `${id}-people`;
  return (
    <div class="people-picker">
      <input
        id={id}
        ref={input}
        placeholder={placeholder}
        autocomplete="off"
        // Names the list only while it is there (a missing target is invalid ARIA).
        aria-controls={found.length > 0 ? listId : undefined}
        value={value}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
      {found.length > 0 && (
        <ul id={listId} class="people" aria-label="People">
          {found.map((u) => (
            <li key={u.id}>
              <button type="button" class="person" onClick={() => pick(u)}>
                {u.displayName || u.id} <span class="person-id">{u.id}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
