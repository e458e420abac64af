// The safety numbers of an end-to-end encrypted conversation: one per device
// in its MLS group (its user, device and twelve groups of five digits from
// its identity and signing key), to compare out of band, in person or on a
// call: every member's screen shows the same numbers, and a device added
// under someone's name by whoever controls the server shows up as one they
// do not recognise.

import { useEffect, useState } from "preact/hooks";
import { safetyNumbers } from "../e2e-actions.js";
import { convTitle, describeError, nameOf } from "../format.js";
import { store } from "../state.js";
import { closeDialog } from "./DialogForm.js";
import { Modal } from "./Modal.js";

type Numbers = { user: string; device: string; number: string }[];

/** The safety-numbers dialog of conversation `conv`. */
export function SafetyDialog({ conv }: { conv: string }) {
  const v = store.convs.get(conv);
  const [numbers, setNumbers] = useState<Numbers | undefined>(undefined);
  const [error, setError] = useState("");
  useEffect(() => {
    if (v) safetyNumbers(v).then(setNumbers, (e: unknown) => setError(describeError(e)));
  }, [conv]);
  if (!v) return null;
  const mine = store.e2e?.device.deviceId;
  return (
    <Modal class="dialog safety-dialog" id="safety-dialog" labelledBy="safety-title" onClose={closeDialog}>
      <h2 id="safety-title">{`Safety numbers of “${convTitle(v)}”`}</h2>
      <p class="muted">
        Each device that can read this conversation, with its safety number. Compare them with the people named, in person
        or on a call: they see the same numbers. A device you do not recognise may be someone listening.
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {numbers && (
        <ul class="safety-list">
          {numbers.map((n) => (
            <li key={`${n.user}/${n.device}`} class="safety-row" data-user={n.user} data-device={n.device}>
              <span class="safety-who">
                {nameOf(n.user)}
                <span class="muted">{` · device ${n.device}${n.user === store.me?.id && n.device === mine ? " (this one)" : ""}`}</span>
              </span>
              <code class="safety-number">{n.number}</code>
            </li>
          ))}
        </ul>
      )}
      <div class="dialog-buttons">
        <button type="button" onClick={closeDialog}>
          Close
        </button>
      </div>
    </Modal>
  );
}
