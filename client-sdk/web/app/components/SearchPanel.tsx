// The search box of the sidebar and its results: each hit shows its
// conversation, sender, time and snippet with the matched words marked; a
// click opens the conversation at the message; more pages on demand.

import { useRef } from "preact/hooks";
import type { pb } from "../../src/sdk/index.js";
import { nameOf, timeOf } from "../format.js";
import { closeSearch, openHit, runSearch } from "../search.js";
import { snippetParts } from "../snippet.js";
import { key, store } from "../state.js";

function Hit({ h }: { h: pb.SearchHit }) {
  const conv = store.convs.get(key(h.conversationId))?.summary.conversation;
  const title = conv?.title || conv?.caseId || "Conversation";
  return (
    <li>
      <button type="button" class="search-hit" data-seq={h.seq.toString()} onClick={() => void openHit(h)}>
        <span class="hit-head">
          <span class="hit-conv">{title}</span>
          <span class="muted">
            {nameOf(h.senderId)} · <time>{timeOf(h.serverTimeMs)}</time>
          </span>
        </span>
        <span class="hit-snippet">
          {snippetParts(h.snippet, h.highlights).map((p, i) => (p.mark ? <mark key={i}>{p.text}</mark> : p.text))}
        </span>
      </button>
    </li>
  );
}

/** The search form and, while a search is open, its hits. */
export function SearchPanel() {
  const input = useRef<HTMLInputElement>(null);
  const s = store.search;
  return (
    <div class="search" role="search">
      <form
        class="search-form"
        onSubmit={(e) => {
          e.preventDefault();
          void runSearch(input.current?.value ?? "");
        }}
      >
        <input id="search-input" ref={input} type="search" placeholder="Search messages" aria-label="Search messages" />
        {s && (
          <button type="button" class="small" aria-label="Close the search" onClick={closeSearch}>
            ✕
          </button>
        )}
      </form>
      {s && (
        <div class="search-results" id="search-results" aria-live="polite">
          {s.error && <div class="error">{s.error}</div>}
          {!s.error && !s.busy && s.hits.length === 0 && <div class="muted">No messages match “{s.query}”.</div>}
          <ul>
            {s.hits.map((h) => (
              <Hit key={`${h.conversationId}:${h.seq}`} h={h} />
            ))}
          </ul>
          {s.busy && <div class="muted">Searching…</div>}
          {!s.busy && s.next !== "" && (
            <button type="button" class="small" onClick={() => void runSearch()}>
              More results
            </button>
          )}
        </div>
      )}
    </div>
  );
}
