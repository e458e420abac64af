// The Templates screen (from the Templates button of the sidebar's header):
// the user's personal templates and the firm's, each with its name, scope
// and the start of its text; New, Edit and Delete (after an inline
// confirmation) for the ones the user may change, firm ones read-only for
// everyone but admins. A modal dialog (Modal.tsx): focus moves in when it
// opens, Esc closes it (or the open editor first), and focus goes back to the opener.

import { useRef, useState } from "preact/hooks";
import { pb } from "../../src/sdk/index.js";
import { describeError, isAdmin } from "../format.js";
import { store } from "../state.js";
import { closeTemplates, deleteTemplate } from "../template-actions.js";
import { type Draft, draftOf, mayChange, newDraft, scopeLabel } from "../template-form.js";
import { Modal } from "./Modal.js";
import { ScreenTop } from "./ScreenParts.js";
import { TemplateEditor } from "./TemplateEditor.js";

/** Characters of a template's text shown in the list. */
const PREVIEW_CHARS = 120;

function Row(props: {
  t: pb.Template;
  admin: boolean;
  confirming: boolean;
  edit: () => void;
  askDelete: () => void;
  confirmDelete: () => void;
  cancelDelete: () => void;
}) {
  const { t } = props;
  const body = t.body.length > PREVIEW_CHARS ? `${t.body.slice(0, PREVIEW_CHARS)}…` : t.body;
  const scope = scopeLabel(t.scope);
  return (
    <li class="template-row" data-name={t.name} data-scope={scope.toLowerCase()}>
      <div class="template-head">
        <strong class="template-name">/{t.name}</strong>
        <span class={`scope-badge ${scope.toLowerCase()}`}>{scope}</span>
        {!mayChange(t, props.admin) && <span class="muted read-only">read-only</span>}
      </div>
      <div class="template-body muted">{body}</div>
      {mayChange(t, props.admin) && (
        <div class="row template-actions">
          {props.confirming ? (
            <>
              <span class="muted">Delete /{t.name}?</span>
              <button type="button" class="small" onClick={props.cancelDelete}>
                Keep
              </button>
              <button type="button" class="small danger confirm-delete-template" onClick={props.confirmDelete}>
                Delete
              </button>
            </>
          ) : (
            <>
              <button type="button" class="small" id={`template-edit-${t.id}`} aria-label={`Edit /${t.name}`} onClick={props.edit}>
                Edit
              </button>
              <button type="button" class="small" id={`template-delete-${t.id}`} aria-label={`Delete /${t.name}`} onClick={props.askDelete}>
                Delete
              </button>
            </>
          )}
        </div>
      )}
    </li>
  );
}

/** The Templates screen in its overlay. */
export function TemplatesScreen() {
  const admin = isAdmin();
  const [editing, setEditing] = useState<Draft | undefined>(undefined);
  const [confirming, setConfirming] = useState<bigint | undefined>(undefined);
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  /** What gets focus once the editor closes (the button that opened it). */
  const back = useRef("templates-new");

  const focusLater = (id: string) => setTimeout(() => (document.getElementById(id) ?? document.getElementById("templates-title"))?.focus(), 0);
  const startEdit = (d: Draft, opener: string) => {
    back.current = opener;
    setConfirming(undefined);
    setError("");
    setStatus("");
    setEditing(d);
  };
  const done = (saved: pb.Template | undefined) => {
    setEditing(undefined);
    if (saved) {
      setStatus(`Saved /${saved.name}.`);
      focusLater(`template-edit-${saved.id}`);
    } else {
      focusLater(back.current);
    }
  };
  const remove = async (t: pb.Template) => {
    setConfirming(undefined);
    try {
      await deleteTemplate(t.id);
      setStatus(`Deleted /${t.name}.`);
      setError("");
      focusLater("templates-new");
    } catch (e) {
      setError(`Could not delete /${t.name}: ${describeError(e)}`);
    }
  };
  const personal = store.templates.filter((t) => t.scope !== pb.TemplateScope.FIRM);
  const firm = store.templates.filter((t) => t.scope === pb.TemplateScope.FIRM);
  const list = (title: string, items: pb.Template[], empty: string) => (
    <section aria-label={title}>
      <h3>{title}</h3>
      {items.length === 0 ? (
        <p class="muted">{empty}</p>
      ) : (
        <ul class="template-list">
          {items.map((t) => (
            <Row
              key={t.id.toString()}
              t={t}
              admin={admin}
              confirming={confirming === t.id}
              edit={() => startEdit(draftOf(t), `template-edit-${t.id}`)}
              askDelete={() => {
                setConfirming(t.id);
                focusLater(`template-delete-${t.id}`);
              }}
              confirmDelete={() => void remove(t)}
              cancelDelete={() => {
                setConfirming(undefined);
                focusLater(`template-delete-${t.id}`);
              }}
            />
          ))}
        </ul>
      )}
    </section>
  );
  return (
    <Modal class="dialog templates-screen" id="templates-screen" labelledBy="templates-title" onClose={editing ? () => done(undefined) : closeTemplates}>
      <ScreenTop id="templates" title="Templates" closeLabel="Close templates" onClose={closeTemplates} />
      <p class="muted">
        Type / and a name in a message to use one; the first three are also quick replies.
        {admin ? " As an admin you also manage the firm's templates." : " The firm's templates are managed by admins."}
      </p>
      <div class="status-line" role="status" id="templates-status">
        {status}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {editing ? (
        <TemplateEditor initial={editing} admin={admin} onDone={done} />
      ) : (
        <>
          <div class="row">
            <button type="button" class="primary" id="templates-new" onClick={() => startEdit(newDraft(), "templates-new")}>
              New template
            </button>
          </div>
          {list("Personal", personal, "No personal templates yet.")}
          {list("Firm", firm, "The firm has no templates yet.")}
        </>
      )}
    </Modal>
  );
}
