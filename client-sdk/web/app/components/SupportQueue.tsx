// Staff only: the support requests waiting for someone, each with a button
// that joins and opens it.

import { pickUp } from "../actions.js";
import { isAdmin } from "../format.js";
import { store } from "../state.js";

/** The support queue (empty for non-staff or when nothing waits). */
export function SupportQueue() {
  if (!isAdmin() || store.supportQueue.length === 0) return null;
  return (
    <section class="queue">
      <h2>{`Support queue (${store.supportQueue.length}${store.supportQueueMore ? "+" : ""})`}</h2>
      {store.supportQueue.map((s) => (
        <div class="queue-item" key={s.conversation?.id.toString()}>
          <span>{s.conversation?.title || `From ${s.conversation?.createdBy ?? "?"}`}</span>
          <button type="button" onClick={() => void pickUp(s)}>
            Pick up
          </button>
        </div>
      ))}
    </section>
  );
}
