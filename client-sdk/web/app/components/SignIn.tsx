// The sign-in screen: the identity provider's button (if configured), a
// development token pasted into a form (unless the server turned those
// off), and the reason the last attempt failed.

import { useEffect, useRef } from "preact/hooks";
import { start } from "../session.js";
import { ProviderSignIn, useSignInOptions } from "./ProviderSignIn.js";

/** The sign-in form. */
export function SignIn({ error }: { error: string | undefined }) {
  const input = useRef<HTMLTextAreaElement>(null);
  const cfg = useSignInOptions();
  const devTokens = cfg?.dev_tokens !== false;
  useEffect(() => input.current?.focus(), [devTokens]);
  const submit = (ev: Event) => {
    ev.preventDefault();
    const t = input.current?.value.trim() ?? "";
    if (t !== "") void start(t);
  };
  return (
    <form class="signin" onSubmit={submit}>
      <h1>chatd</h1>
      <p class="muted">Secure chat for advocates, clients and staff.</p>
      <ProviderSignIn cfg={cfg} />
      {devTokens && (
        <>
          <label for="token">Development token (for development only)</label>
          <textarea
            id="token"
            ref={input}
            rows={5}
            placeholder="Paste a development token (chatd token --user alice)"
            autocomplete="off"
            spellcheck={false}
          />
        </>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {devTokens && (
        <>
          <button type="submit" class="primary">
            Sign in
          </button>
          <p class="muted small">
            Mint one with <code>chatd token --user &lt;id&gt; --role advocate</code>.
          </p>
        </>
      )}
    </form>
  );
}
