// What the sidebar's full screens (Templates, Audit, Compliance) share: the
// top row with the heading (focused when the screen opens) and the ✕ button,
// and `useRun`, which runs one request at a time and shows its failure.

import { useEffect, useRef } from "preact/hooks";
import { describeError } from "../format.js";

/** The screen's heading (id `${id}-title`, focused at open) and its close button (`${id}-close`). */
export function ScreenTop(props: { id: string; title: string; closeLabel: string; onClose: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <div class="templates-top">
      <h2 id={`${props.id}-title`} ref={heading} tabindex={-1}>
        {props.title}
      </h2>
      <button type="button" class="small" id={`${props.id}-close`} aria-label={props.closeLabel} onClick={props.onClose}>
        ✕
      </button>
    </div>
  );
}

/**
 * Runs `what` unless a request is in flight (the buttons stay enabled: a
 * disabled button drops the focus), clearing the error first and setting it
 * to the failure's description.
 */
export function useRun(setError: (e: string) => void): (what: () => Promise<void>) => Promise<void> {
  const busy = useRef(false);
  return async (what) => {
    if (busy.current) return;
    busy.current = true;
    setError("");
    try {
      await what();
    } catch (e) {
      setError(describeError(e));
    } finally {
      busy.current = false;
    }
  };
}
