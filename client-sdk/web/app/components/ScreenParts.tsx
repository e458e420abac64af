// What the sidebar's full screens (Templates, Audit, Compliance) share: the
// top row with the heading (focused when the screen opens) and the ✕ button,
// the status line with the error under it, tables, and `useRun`, which runs one request at a time and shows its failure.

import type { ComponentChildren } from "preact";
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

/** The screen's status line (`${id}-status`, polite) and its error, if any (`${id}-error`, an alert). */
export function ScreenStatus(props: { id: string; status: string; error: string }) {
  return (
    <>
      <div class="status-line" role="status" id={`${props.id}-status`}>
        {props.status}
      </div>
      {props.error && (
        <p class="error" role="alert" id={`${props.id}-error`}>
          {props.error}
        </p>
      )}
    </>
  );
}

/**
 * A screen's table (`id`) with its column headings and a last, unlabelled
 * column of actions; `empty` instead (`${id}-empty`) when it has no rows.
 */
export function ScreenTable(props: { id: string; rows: number; empty: string; headers: string[]; children: ComponentChildren }) {
  if (props.rows === 0) {
    return (
      <p class="muted" id={`${props.id}-empty`}>
        {props.empty}
      </p>
    );
  }
  return (
    <div class="audit-table-wrap">
      <table class="audit-table" id={props.id}>
        <thead>
          <tr>
            {props.headers.map((h) => (
              <th key={h}>{h}</th>
            ))}
            <th>
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
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
