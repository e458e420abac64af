// The root component: the sign-in screen, a splash while connecting, or the
// chat shell; re-rendered on every change of the store.

import { useEffect } from "preact/hooks";
import { APP_TITLE } from "../attention.js";
import { useStore } from "../state.js";
import { Shell } from "./Shell.js";
import { SignIn } from "./SignIn.js";

/** The whole app. */
export function App() {
  const s = useStore();
  useEffect(() => {
    // The shell keeps the unread count in the title; other screens have none.
    if (s.screen.kind !== "shell") document.title = APP_TITLE;
  });
  switch (s.screen.kind) {
    case "signin":
      return <SignIn error={s.screen.error} />;
    case "connecting":
      return (
        <div class="splash" role="status">
          <p>Connecting…</p>
          {s.screen.problem && <p class="splash-problem">{s.screen.problem}</p>}
        </div>
      );
    case "shell":
      return <Shell />;
  }
}
