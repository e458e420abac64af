//! The service worker (built to dist/sw.js, served from the root scope): it
//! owns the app shell's cache. At install it stores the shell (the files the
//! build lists in `__SHELL__`) in a cache named by the build's content hash;
//! it answers those files, and page navigations with the cached index, cache
//! first, so the app opens without the server. Everything else (/config.json,
//! which carries the server's certificate hashes, /ws, WebTransport, health
//! checks, attachments) is left to the network and never cached. A new
//! version installs, then waits until the app asks it to take over ("Reload
//! to update", see register.ts) or every tab of the old one closed; on
//! activation it deletes the caches of older versions.

/** The build's content hash of the shell (names the cache). */
declare const __SHELL_VERSION__: string;
/** The shell's paths, as the server serves them. */
declare const __SHELL__: string[];

/** The part of an install or activate event this worker uses. */
interface LifecycleEvent extends Event {
  waitUntil(p: Promise<unknown>): void;
}
/** The part of a fetch event this worker uses. */
interface FetchEvent extends LifecycleEvent {
  readonly request: Request;
  respondWith(r: Promise<Response>): void;
}
/** The part of the worker's global scope this worker uses. */
interface WorkerScope {
  addEventListener(type: "install" | "activate", l: (e: LifecycleEvent) => void): void;
  addEventListener(type: "fetch", l: (e: FetchEvent) => void): void;
  addEventListener(type: "message", l: (e: MessageEvent) => void): void;
  skipWaiting(): Promise<void>;
  readonly clients: { claim(): Promise<void> };
  readonly location: Location;
}

const sw = globalThis as unknown as WorkerScope;
const PREFIX = "chatd-shell-";
const CACHE = `${PREFIX}${__SHELL_VERSION__}`;
const SHELL = new Set(__SHELL__);

sw.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll([...SHELL].map((p) => new Request(p, { cache: "reload" })))));
});

sw.addEventListener("activate", (e) => {
  e.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener("message", (e) => {
  if ((e.data as { type?: string } | null)?.type === "skip-waiting") void sw.skipWaiting();
});

/** The shell path a request is answered from, or undefined: the network's. */
export function shellPath(req: Request, origin: string): string | undefined {
  if (req.method !== "GET") return undefined;
  const url = new URL(req.url);
  if (url.origin !== origin) return undefined;
  if (req.mode === "navigate") return url.pathname === "/" ? "/" : undefined;
  return SHELL.has(url.pathname) && url.pathname !== "/sw.js" ? url.pathname : undefined;
}

sw.addEventListener("fetch", (e) => {
  const path = shellPath(e.request, sw.location.origin);
  if (path === undefined) return;
  e.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const hit = await cache.match(path);
      return hit ?? fetch(e.request);
    })(),
  );
});
