// Builds the web app into dist/: index.html, app.js, app.css, deterministic
// (no timestamps, no hashes of paths), so the committed files can be checked
// for freshness. `chatd serve` embeds exactly these three files.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

await build({
  entryPoints: [join(here, "app/main.tsx")],
  jsx: "automatic",
  jsxImportSource: "preact",
  outfile: join(dist, "app.js"),
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
await build({
  entryPoints: [join(here, "app/app.css")],
  outfile: join(dist, "app.css"),
  bundle: true,
  minify: true,
  logLevel: "warning",
});
copyFileSync(join(here, "app/index.html"), join(dist, "index.html"));
const files = readdirSync(dist).sort();
if (files.join(",") !== "app.css,app.js,index.html") throw new Error(`dist/ holds ${files.join(", ")}`);
console.log(`built ${files.join(", ")} in dist/`);
