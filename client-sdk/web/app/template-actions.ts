// What the Templates screen does with the server: open and close the screen,
// save a draft (create, or an update
// naming the version it edits), delete, and render a saved template in the
// open conversation for the preview. Each action refreshes `store.templates`
// (which the composer's `/` menu and quick replies read) and calls
// `changed()`; refusals are thrown as the SDK's `ClientError` for the screen
// to place next to their field.

import { type pb, Templates } from "../src/sdk/index.js";
import { loadTemplates } from "./actions.js";
import { convTitle } from "./format.js";
import { changed, closeScreen, connectedClient, currentView, openScreen } from "./state.js";
import type { Draft } from "./template-form.js";

/** Opens the Templates screen (over the chat) and lists the templates afresh. */
export function openTemplates(): void {
  openScreen("templates");
  void loadTemplates().then(changed);
}

/** Closes the Templates screen; its dialog frame (Modal.tsx) gives focus back to what opened it. */
export const closeTemplates = (): void => closeScreen("templates");

function templates(): Templates {
  return new Templates(connectedClient());
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
