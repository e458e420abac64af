// One erasure form of the Compliance screen (a user's, a conversation's):
// its target, a reason for the audit trail and an explicit confirmation
// (without it the screen says so and nothing is sent), then the action the
// screen gives it. The screen shows the result and the server's refusals.

import { useState } from "preact/hooks";

/** What one erasure form asks and does. */
export interface EraseFormProps {
  /** Prefix of the element ids: `${prefix}-form`, `-reason`, `-sure`, `-run`. */
  prefix: string;
  /** The target input's id. */
  targetId: string;
  title: string;
  about: string;
  targetLabel: string;
  placeholder: string;
  /** The confirmation's words. */
  confirm: string;
  button: string;
  /** Shows a refusal of the form itself. */
  setError: (message: string) => void;
  /** Runs the erasure (the screen's `run`: errors shown, status kept). */
  run: (action: () => Promise<void>) => Promise<void>;
  erase: (target: string, reason: string) => Promise<void>;
}

/** A confirmed erasure form. */
export function EraseForm(props: EraseFormProps) {
  const [form, setForm] = useState({ target: "", reason: "", sure: false });
  const { prefix } = props;
  return (
    <section aria-labelledby={`${prefix}-title`}>
      <h3 id={`${prefix}-title`}>{props.title}</h3>
      <p class="muted">{props.about}</p>
      <form
        class="audit-filters"
        id={`${prefix}-form`}
        onSubmit={(e) => {
          e.preventDefault();
          if (!form.sure) {
            props.setError("Tick the confirmation first: an erasure cannot be undone.");
            return;
          }
          void props.run(async () => {
            await props.erase(form.target, form.reason);
            setForm({ target: "", reason: "", sure: false });
          });
        }}
      >
        <label>
          {props.targetLabel}
          <input id={props.targetId} placeholder={props.placeholder} value={form.target} onInput={(e) => setForm({ ...form, target: e.currentTarget.value })} />
        </label>
        <label>
          Reason
          <input id={`${prefix}-reason`} placeholder="the request, for the audit trail" value={form.reason} onInput={(e) => setForm({ ...form, reason: e.currentTarget.value })} />
        </label>
        <label class="check">
          <input id={`${prefix}-sure`} type="checkbox" checked={form.sure} onChange={(e) => setForm({ ...form, sure: e.currentTarget.checked })} />
          {props.confirm}
        </label>
        <div class="row">
          <button type="submit" class="danger" id={`${prefix}-run`}>
            {props.button}
          </button>
        </div>
      </form>
    </section>
  );
}
