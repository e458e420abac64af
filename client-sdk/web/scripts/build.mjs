// Builds the web app into dist/, deterministic (no timestamps, no hashes of
// paths), so the committed files can be checked for freshness: index.html,
// app.js, app.css, the manifest and its icons (scripts/icons.mjs), and the
// service worker sw.js, which carries the shell's file list and a hash of
// their contents (a changed app is a new worker version). `chatd serve`
// embeds exactly these files.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { icons } from "./icons.mjs";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const common = { bundle: true, minify: true, legalComments: "none", charset: "utf8", logLevel: "warning" };
const target = ["chrome110", "firefox115", "safari16"];
await build({
  ...common,
  entryPoints: [join(here, "app/main.tsx")],
  jsx: "automatic",
  jsxImportSource: "preact",
  outfile: join(dist, "app.js"),
  format: "esm",
  target,
  sourcemap: false,
});
await build({ ...common, entryPoints: [join(here, "app/app.css")], outfile: join(dist, "app.css") });
copyFileSync(join(here, "app/index.html"), join(dist, "index.html"));
copyFileSync(join(here, "app/manifest.webmanifest"), join(dist, "manifest.webmanifest"));
for (const [name, bytes] of Object.entries(icons())) writeFileSync(join(dist, name), bytes);

// The shell the worker precaches: every file but the worker itself, "/" for index.html.
const shellFiles = readdirSync(dist).sort();
const hash = createHash("sha256");
for (const f of shellFiles) hash.update(f).update(readFileSync(join(dist, f)));
const shell = shellFiles.map((f) => (f === "index.html" ? "/" : `/${f}`));
await build({
  ...common,
  entryPoints: [join(here, "app/pwa/sw.ts")],
  outfile: join(dist, "sw.js"),
  format: "iife",
  target,
  define: { __SHELL_VERSION__: JSON.stringify(hash.digest("hex").slice(0, 16)), __SHELL__: JSON.stringify(shell) },
});

const files = readdirSync(dist).sort();
const expected = "app.css,app.js,icon-192.png,icon-512.png,icon-maskable.png,index.html,manifest.webmanifest,sw.js";
if (files.join(",") !== expected) throw new Error(`dist/ holds ${files.join(", ")}`);
console.log(`built ${files.join(", ")} in dist/`);
