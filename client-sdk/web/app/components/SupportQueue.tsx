// Staff only: the support requests waiting for someone, each with who asked
// and when, and a button that joins and opens it.

import { pickUp } from "../actions.js";
import { isAdmin, nameOf, timeOf } from "../format.js";
import { store } from "../state.js";

/** The support queue (empty for non-staff or when nothing waits). */
export function SupportQueue() {
  if (!isAdmin() || store.supportQueue.length === 0) return null;
  return (
    <section class="queue">
      <h2>{`Support queue (${store.supportQueue.length}${store.supportQueueMore ? "+" : ""})`}</h2>
      {store.supportQueue.map((s) => (
        <div class="queue-item" key={s.conversation?.id.toString()}>
          <span class="queue-text">
            <span>{s.conversation?.title || "Support request"}</span>
            <span class="muted queue-meta">
              {`From ${nameOf(s.conversation?.createdBy ?? "?")} · `}
              <time dateTime={new Date(Number(s.conversation?.createdAtMs ?? 0n)).toISOString()}>{timeOf(s.conversation?.createdAtMs ?? 0n)}</time>
            </span>
          </span>
          <button type="button" onClick={() => void pickUp(s)}>
            Pick up
          </button>
        </div>
      ))}
    </section>
  );
}
