// What the Templates screen does with the server: open and close the screen
// (giving focus back to where it was), save a draft (create, or an update
// naming the version it edits), delete, and render a saved template in the
// open conversation for the preview. Each action refreshes `store.templates`
// (which the composer's `/` menu and quick replies read) and calls
// `changed()`; refusals are thrown as the SDK's `ClientError` for the screen
// to place next to their field.

import { type pb, Templates } from "../src/sdk/index.js";
import { loadTemplates } from "./actions.js";
import { convTitle } from "./format.js";
import { changed, currentView, store } from "./state.js";
import type { Draft } from "./template-form.js";

/** The element that had focus when the screen opened, focused again when it closes. */
let returnFocus: HTMLElement | undefined;

/** Opens the Templates screen (over the chat) and lists the templates afresh. */
export function openTemplates(): void {
  if (store.dialog) return;
  returnFocus = document.activeElement instanceof HTMLElement ? document.activeElement : undefined;
  store.dialog = { kind: "templates" };
  changed();
  void loadTemplates().then(changed);
}

/** Closes the Templates screen; focus goes back to what opened it. */
export function closeTemplates(): void {
  if (store.dialog?.kind !== "templates") return;
  store.dialog = undefined;
  changed();
  const back = returnFocus;
  returnFocus = undefined;
  // After the re-render: the opener is in the page again.
  queueMicrotask(() => (back?.isConnected ? back : document.getElementById("templates-button"))?.focus());
}

function templates(): Templates {
  if (!store.client) throw new Error("not connected");
  return new Templates(store.client);
}

/** Saves `d` (a create, or an update of the version it was opened at); resolves with the template as saved. */
export async function saveTemplate(d: Draft): Promise<pb.Template> {
  const saved = await templates().put({
    id: d.id,
    scope: d.scope,
    name: d.name.trim(),
    body: d.body,
    expectedUpdatedAtMs: d.id === 0n ? 0n : d.updatedAtMs,
  });
  await loadTemplates();
  changed();
  return saved;
}

/** Deletes the template `id`. */
export async function deleteTemplate(id: bigint): Promise<void> {
  await templates().delete(id);
  await loadTemplates();
  changed();
}

/** The open conversation's id and how it is called, if one is open. */
export function openConversation(): { id: bigint; title: string } | undefined {
  const v = currentView();
  const c = v?.summary.conversation;
  return v && c ? { id: c.id, title: convTitle(v) } : undefined;
}

/** The saved template `id` filled in for conversation `conv` by the server. */
export function renderIn(id: bigint, conv: bigint): Promise<pb.RenderedTemplate> {
  return templates().render(id, conv);
}
