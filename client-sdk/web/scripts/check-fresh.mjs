// The freshness check CI runs: regenerating src/gen/ from schemas/ and
// rebuilding dist/ must leave the committed files unchanged.
import { execFileSync } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const run = (cmd, args) => execFileSync(cmd, args, { cwd: here, stdio: "inherit" });
run("npm", ["run", "--silent", "gen"]);
run("npm", ["run", "--silent", "build"]);
const status = execFileSync("git", ["status", "--porcelain", "--", "src/gen", "dist"], { cwd: here }).toString();
if (status.trim() !== "") {
  console.error("Generated files are stale; commit the output of `npm run gen && npm run build`:\n" + status);
  process.exit(1);
}
console.log("src/gen and dist are fresh");
