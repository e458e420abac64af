// The one modal dialog frame every dialog shares: `role=dialog`,
// `aria-modal`, labelled by its heading; focus moves in when it opens, Tab
// and Shift+Tab stay inside, Escape closes it (even with the focus lost to
// the page), and focus goes back to the element that opened it when it closes.

import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

/** What can take focus inside a dialog. */
const FOCUSABLE = 'a[href],button:not([disabled]),input:not([disabled]),select:not([disabled]),textarea:not([disabled]),[tabindex]:not([tabindex="-1"])';

/** The focusable elements of `root`, in tab order. */
export function focusables(root: HTMLElement): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => el.getClientRects().length > 0);
}

/** A modal dialog labelled by the element with id `labelledBy`; `onClose` runs on Escape. */
export function Modal(props: { id?: string; class?: string; labelledBy: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDivElement>(null);
  // Taken at the first render, before the dialog's fields focus themselves.
  const openerRef = useRef<Element | null | undefined>(undefined);
  if (openerRef.current === undefined) openerRef.current = document.activeElement;
  useEffect(() => {
    const opener = openerRef.current instanceof HTMLElement ? openerRef.current : undefined;
    const root = ref.current;
    // A field the dialog focuses itself (autofocus in an effect) wins; else the first control.
    if (root && !root.contains(document.activeElement)) (focusables(root)[0] ?? root).focus();
    return () => {
      // After the re-render that removed the dialog: the opener is in the page again.
      setTimeout(() => {
        if (opener?.isConnected && !document.querySelector('[aria-modal="true"]')?.contains(document.activeElement)) opener.focus();
      }, 0);
    };
  }, []);
  const onClose = useRef(props.onClose);
  onClose.current = props.onClose;
  useEffect(() => {
    // Escape with the focus lost to the page (the focused element inside was
    // removed, e.g. a sub-form that closed) still closes the topmost dialog.
    const onPageKey = (e: KeyboardEvent) => {
      const root = ref.current;
      if (e.key !== "Escape" || e.defaultPrevented || !root || root.contains(document.activeElement)) return;
      if ([...document.querySelectorAll('[aria-modal="true"]')].pop() !== root) return;
      e.preventDefault();
      onClose.current();
    };
    document.addEventListener("keydown", onPageKey);
    return () => document.removeEventListener("keydown", onPageKey);
  }, []);
  const onKeyDown = (e: KeyboardEvent) => {
    const root = ref.current;
    if (!root) return;
    if (e.key === "Escape") {
      e.preventDefault();
      props.onClose();
      return;
    }
    if (e.key !== "Tab") return;
    const items = focusables(root);
    if (items.length === 0) {
      e.preventDefault();
      return;
    }
    const first = items[0]!;
    const last = items[items.length - 1]!;
    const active = document.activeElement;
    if (e.shiftKey && (active === first || !root.contains(active))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (active === last || !root.contains(active))) {
      e.preventDefault();
      first.focus();
    }
  };
  return (
    <div
      ref={ref}
      id={props.id}
      class={props.class}
      role="dialog"
      aria-modal="true"
      aria-labelledby={props.labelledBy}
      tabindex={-1}
      onKeyDown={onKeyDown}
    >
      {props.children}
    </div>
  );
}
