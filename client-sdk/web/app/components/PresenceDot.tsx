// A person's presence: a dot whose shape and colour differ (filled online,
// a ring offline, a dashed ring unknown) with its text as the accessible name.

import { presenceOf, presenceTitle } from "../format.js";

/** The presence dot of `user`. */
export function PresenceDot({ user }: { user: string }) {
  const text = presenceTitle(user);
  return <span class={`dot ${presenceOf(user)}`} data-presence={user} role="img" aria-label={text} title={text} />;
}
