// The frame every form dialog shares: a modal (Modal.tsx: labelled, focus
// kept inside, Escape closes) holding a form with a heading, the server's
// refusal (if any), and Cancel beside the dialog's submit button.

import type { ComponentChildren } from "preact";
import { changed, store } from "../state.js";
import { Modal } from "./Modal.js";

/** Closes the open dialog. */
export function closeDialog(): void {
  store.dialog = undefined;
  changed();
}

/** A dialog's form: `children` are its fields; the heading's id is `titleId`. */
export function DialogForm(props: {
  title: string;
  titleId: string;
  id?: string;
  submitLabel: string;
  submitId?: string;
  error: string;
  onSubmit: (ev: Event) => void;
  children: ComponentChildren;
}) {
  return (
    <Modal labelledBy={props.titleId} onClose={closeDialog}>
      <form class="dialog" id={props.id} onSubmit={props.onSubmit}>
        <h2 id={props.titleId}>{props.title}</h2>
        {props.children}
        <p class="error" role="alert">
          {props.error}
        </p>
        <div class="row">
          <button type="button" onClick={closeDialog}>
            Cancel
          </button>
          <button type="submit" class="primary" id={props.submitId}>
            {props.submitLabel}
          </button>
        </div>
      </form>
    </Modal>
  );
}
