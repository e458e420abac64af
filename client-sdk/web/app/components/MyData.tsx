// "Download my data" in the sidebar: the signed-in user's GDPR export,
// saved as one tar archive, with a status line saying what it holds or why
// it failed.

import { useState } from "preact/hooks";
import { describeExport, exportUserData } from "../export-actions.js";
import { useRun } from "./ScreenParts.js";

/** The button and its status. */
export function MyData() {
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const run = useRun(setError);
  return (
    <div class="setting my-data">
      <button
        type="button"
        class="small"
        id="export-mine"
        onClick={() =>
          void run(async () => {
            setStatus("Preparing your data…");
            setStatus(describeExport(await exportUserData()));
          })
        }
      >
        Download my data
      </button>
      <span class="muted" role="status" id="export-mine-status">
        {error ? "" : status}
      </span>
      {error && (
        <span class="error" role="alert" id="export-mine-error">
          {error}
        </span>
      )}
    </div>
  );
}
