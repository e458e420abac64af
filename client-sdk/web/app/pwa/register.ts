//! The service worker's registration (see sw.ts) and the update offer: a
//! new version installs in the background and waits; the app then says so
//! (`store.updateReady`), and "Reload to update" lets the new worker take
//! over and reloads once it controls the page. Untouched, the new version
//! starts when every tab of the old one closed.

import { changed, store } from "../state.js";

let registration: ServiceWorkerRegistration | undefined;

/** Registers /sw.js (where the browser has service workers) and watches for a waiting new version. */
export function registerServiceWorker(): void {
  if (!("serviceWorker" in navigator)) return;
  const sw = navigator.serviceWorker;
  sw.register("/sw.js", { scope: "/" }).then(
    (reg) => {
      registration = reg;
      // Only an update waits while an older version controls the page (the first install activates at once).
      const offer = () => {
        if (reg.waiting && sw.controller && !store.updateReady) {
          store.updateReady = true;
          changed();
        }
      };
      offer();
      reg.addEventListener("updatefound", () => reg.installing?.addEventListener("statechange", offer));
    },
    () => {
      // No worker (a private window, a refusal): the app works, online only.
    },
  );
}

/** "Reload to update": the waiting version takes over, then the page reloads on it. */
export function applyUpdate(): void {
  const waiting = registration?.waiting;
  if (!waiting) return location.reload();
  navigator.serviceWorker.addEventListener("controllerchange", () => location.reload(), { once: true });
  waiting.postMessage({ type: "skip-waiting" });
}
