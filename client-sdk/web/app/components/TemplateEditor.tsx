// The form that writes one template on the Templates screen: scope (admins
// choose personal or firm for a new one), name (the word after `/`) and
// text, each with the server's refusal shown under it; a live preview with
// example values for the placeholders, and, when a conversation is open and
// the text is the saved one, the server's rendering for that conversation.

import { useEffect, useRef, useState } from "preact/hooks";
import { ClientError, pb } from "../../src/sdk/index.js";
import { describeError } from "../format.js";
import { openConversation, renderIn, saveTemplate } from "../template-actions.js";
import { type Draft, EXAMPLE_VALUES, errorField, type Field, fillPreview, PLACEHOLDERS, type PreviewPart } from "../template-form.js";

type Errors = Partial<Record<Field, string>>;

/** Preview text: filled placeholders and unknown ones marked. */
function Parts({ parts }: { parts: PreviewPart[] }) {
  return (
    <>
      {parts.map((p, i) =>
        p.kind === "text" ? p.text : <mark key={i} class={p.kind === "unknown" ? "unknown-placeholder" : "filled"}>{p.text}</mark>,
      )}
    </>
  );
}

/** The server's rendering of the saved template in the open conversation, when the text is unchanged. */
function InConversation({ draft, saved }: { draft: Draft; saved: string | undefined }) {
  const conv = openConversation();
  const [rendered, setRendered] = useState<{ text: string; missing: string[] } | string | undefined>(undefined);
  const unchanged = draft.id !== 0n && saved === draft.body;
  const convId = conv?.id;
  useEffect(() => {
    setRendered(undefined);
    if (!unchanged || convId === undefined) return;
    let live = true;
    renderIn(draft.id, convId).then(
      (r) => live && setRendered({ text: r.text, missing: r.missing }),
      (e) => live && setRendered(describeError(e)),
    );
    return () => void (live = false);
  }, [unchanged, convId, draft.id, draft.updatedAtMs]);
  if (!conv) return null;
  if (!unchanged) {
    return <p class="muted" id="template-preview-conv">Save it to see it filled in for {conv.title}.</p>;
  }
  return (
    <div id="template-preview-conv">
      <div class="muted">In {conv.title}:</div>
      {rendered === undefined && <div class="muted">Filling in…</div>}
      {typeof rendered === "string" && <div class="error">{rendered}</div>}
      {typeof rendered === "object" && (
        <>
          <div class="template-preview-text">{rendered.text}</div>
          {rendered.missing.length > 0 && (
            <div class="muted">No value here for {rendered.missing.map((m) => `{${m}}`).join(", ")}</div>
          )}
        </>
      )}
    </div>
  );
}

/** Writes `initial` (a new draft or a saved template's); `onDone` gets the saved template, or nothing when cancelled. */
export function TemplateEditor(props: {
  initial: Draft;
  admin: boolean;
  onDone: (saved: pb.Template | undefined) => void;
}) {
  const [draft, setDraft] = useState<Draft>(props.initial);
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const name = useRef<HTMLInputElement>(null);
  useEffect(() => name.current?.focus(), []);
  const isNew = draft.id === 0n;
  const set = (field: "name" | "body", value: string) => {
    setDraft({ ...draft, [field]: value });
    if (errors[field] || errors.form) setErrors({ ...errors, [field]: undefined, form: undefined });
  };
  const submit = async (ev: Event) => {
    ev.preventDefault();
    if (busy) return;
    setBusy(true);
    try {
      const saved = await saveTemplate(draft);
      props.onDone(saved);
    } catch (e) {
      const field = e instanceof ClientError && e.wire ? errorField(e.wire) : "form";
      setErrors({ [field]: describeError(e) });
      setBusy(false);
      document.getElementById(field === "form" ? "template-form-error" : `template-${field}`)?.focus();
    }
  };
  const described = (field: Field, hint?: string) => [hint, errors[field] ? `template-${field}-error` : undefined].filter(Boolean).join(" ") || undefined;
  return (
    <form
      class="template-editor"
      id="template-editor"
      aria-labelledby="template-editor-title"
      onSubmit={(e) => void submit(e)}
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          e.stopPropagation();
          props.onDone(undefined);
        }
      }}
    >
      <h3 id="template-editor-title">{isNew ? "New template" : `Edit /${props.initial.name}`}</h3>
      {isNew && props.admin ? (
        <label>
          Scope
          <select
            id="template-scope"
            value={String(draft.scope)}
            onChange={(e) => setDraft({ ...draft, scope: Number(e.currentTarget.value) as pb.TemplateScope })}
          >
            <option value={String(pb.TemplateScope.PERSONAL)}>Personal (only you)</option>
            <option value={String(pb.TemplateScope.FIRM)}>Firm (everyone)</option>
          </select>
        </label>
      ) : (
        <p class="muted">Scope: {draft.scope === pb.TemplateScope.FIRM ? "firm (everyone sees it)" : "personal (only you)"}</p>
      )}
      <label for="template-name">Name (typed after /)</label>
      <input
        id="template-name"
        ref={name}
        autocomplete="off"
        spellcheck={false}
        value={draft.name}
        aria-invalid={errors.name ? "true" : undefined}
        aria-describedby={described("name", "template-name-hint")}
        onInput={(e) => set("name", e.currentTarget.value)}
      />
      <div class="muted hint" id="template-name-hint">
        a-z, 0-9, _ and -, e.g. confirm
      </div>
      {errors.name && (
        <div class="error field-error" id="template-name-error" role="alert">
          {errors.name}
        </div>
      )}
      <label for="template-body">Text</label>
      <textarea
        id="template-body"
        rows={5}
        value={draft.body}
        aria-invalid={errors.body ? "true" : undefined}
        aria-describedby={described("body", "template-placeholders")}
        onInput={(e) => set("body", e.currentTarget.value)}
      />
      <div class="muted hint" id="template-placeholders">
        Placeholders: {PLACEHOLDERS.map((p) => `{${p.name}} ${p.means}`).join("; ")}
      </div>
      {errors.body && (
        <div class="error field-error" id="template-body-error" role="alert">
          {errors.body}
        </div>
      )}
      <section class="template-preview" aria-label="Preview" aria-live="polite">
        <div class="muted">Preview with example values:</div>
        <div class="template-preview-text" id="template-preview">
          <Parts parts={fillPreview(draft.body, EXAMPLE_VALUES)} />
        </div>
        <InConversation draft={draft} saved={isNew ? undefined : props.initial.body} />
      </section>
      <p class="error" id="template-form-error" role="alert" tabindex={-1}>
        {errors.form ?? ""}
      </p>
      <div class="row">
        <button type="button" onClick={() => props.onDone(undefined)}>
          Cancel
        </button>
        <button type="submit" class="primary" id="template-save" disabled={busy}>
          Save
        </button>
      </div>
    </form>
  );
}
