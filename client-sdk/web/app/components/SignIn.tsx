// The sign-in screen: a development token pasted into a form, and the
// reason the last attempt failed.

import { useEffect, useRef } from "preact/hooks";
import { start } from "../session.js";

/** The sign-in form. */
export function SignIn({ error }: { error: string | undefined }) {
  const input = useRef<HTMLTextAreaElement>(null);
  useEffect(() => input.current?.focus(), []);
  const submit = (ev: Event) => {
    ev.preventDefault();
    const t = input.current?.value.trim() ?? "";
    if (t !== "") void start(t);
  };
  return (
    <form class="signin" onSubmit={submit}>
      <h1>chatd</h1>
      <p class="muted">Secure chat for advocates, clients and staff.</p>
      <label for="token">Development token</label>
      <textarea
        id="token"
        ref={input}
        rows={5}
        placeholder="Paste a development token (chatd token --user alice)"
        autocomplete="off"
        spellcheck={false}
      />
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="primary">
        Sign in
      </button>
      <p class="muted small">
        Mint one with <code>chatd token --user &lt;id&gt; --role advocate</code>.
      </p>
    </form>
  );
}
