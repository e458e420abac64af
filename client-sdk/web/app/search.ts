// Search in the app: a query across the user's conversations, newest hits
// first, more pages on demand; a hit opens its conversation at the message.
// Snippets are split by `snippet.ts`.

import { ClientError, type pb } from "../src/sdk/index.js";
import { openConversation } from "./actions.js";
import { describeError } from "./format.js";
import { jumpTo } from "./message-actions.js";
import { changed, key, store } from "./state.js";

/** Hits per page. */
const PAGE = 20;

/** Runs `query` (a new search), or the next page of the open one. */
export async function runSearch(query?: string): Promise<void> {
  const c = store.client;
  if (!c) return;
  const more = query === undefined;
  const s = store.search;
  if (more && (!s || s.next === "")) return;
  const q = more ? s!.query : query.trim();
  if (q === "") return;
  const state = more ? s! : { query: q, hits: [], next: "", busy: true };
  state.busy = true;
  delete state.error;
  store.search = state;
  changed();
  try {
    const r = await c.search({ query: q, limit: PAGE, cursor: more ? state.next : "" });
    if (store.search !== state) return;
    state.hits = [...state.hits, ...r.hits];
    state.next = r.nextCursor;
  } catch (e) {
    state.error = e instanceof ClientError && e.wire ? `${e.wire.name}: ${e.wire.message}` : describeError(e);
  }
  state.busy = false;
  changed();
}

/** Closes the search. */
export function closeSearch(): void {
  store.search = undefined;
  changed();
}

/** Opens a hit's conversation and shows the message. */
export async function openHit(h: pb.SearchHit): Promise<void> {
  await openConversation(key(h.conversationId));
  await jumpTo(h.seq);
}
