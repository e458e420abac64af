// The sign-in screen's provider part: "Sign in with <provider>" when the
// server has one configured, and whether the development-token form shows.

import { useEffect, useState } from "preact/hooks";
import { signInWithProvider } from "../oidc-signin.js";
import { loadConfig, type ServerConfig } from "../session.js";

/** The server's sign-in options, once /config.json is read (undefined until then). */
export function useSignInOptions(): ServerConfig | undefined {
  const [cfg, setCfg] = useState<ServerConfig | undefined>(undefined);
  useEffect(() => {
    loadConfig().then(setCfg, () => setCfg({}));
  }, []);
  return cfg;
}

/** The provider's button, if the server has one. */
export function ProviderSignIn({ cfg }: { cfg: ServerConfig | undefined }) {
  if (!cfg?.oidc) return null;
  return (
    <button type="button" class="primary" id="oidc-sign-in" onClick={() => void signInWithProvider()}>
      Sign in with {cfg.oidc.display_name}
    </button>
  );
}
