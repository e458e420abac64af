// The Integrations screen (system admins; from the Integrations button of
// the sidebar's header): the service accounts of the server API with their
// scopes and state, a form to create one, and per account Rotate and Revoke
// (each after a confirmation). A new or rotated credential shows once, in a
// read-only field to copy, with the reminder that it is not stored. A modal
// dialog (Modal.tsx): focus moves to its heading when it opens, Esc closes
// it, and focus goes back to the Integrations button.

import { useEffect, useState } from "preact/hooks";
import { type pb, SCOPES } from "../../src/sdk/index.js";
import { closeIntegrations, createAccount, listAccounts, revokeAccount, rotateAccount } from "../integration-actions.js";
import { Modal } from "./Modal.js";
import { ScreenStatus, ScreenTable, ScreenTop, useRun } from "./ScreenParts.js";

type Asking = { id: string; what: "rotate" | "revoke" } | undefined;

function AccountRow(props: { a: pb.ServiceAccount; asking: Asking; ask: (a: Asking) => void; act: () => void }) {
  const { a, asking } = props;
  const active = a.revokedAtMs === 0n;
  const mine = asking?.id === a.id ? asking.what : undefined;
  return (
    <tr class="account-row" data-id={a.id} data-state={active ? "active" : "revoked"}>
      <td>{a.id}</td>
      <td>{a.displayName}</td>
      <td>{a.scopes.join(", ")}</td>
      <td>{active ? "active" : `revoked by ${a.revokedBy}`}</td>
      <td>{a.webhooks}</td>
      <td>
        {!active ? null : mine ? (
          <span class="row">
            <button type="button" class="danger confirm-account" onClick={props.act}>
              {mine === "rotate" ? `Replace the credential of ${a.id}` : `Revoke ${a.id} for good`}
            </button>
            <button type="button" onClick={() => props.ask(undefined)}>
              Cancel
            </button>
          </span>
        ) : (
          <span class="row">
            <button type="button" aria-label={`Rotate the credential of ${a.id}`} onClick={() => props.ask({ id: a.id, what: "rotate" })}>
              Rotate
            </button>
            <button type="button" aria-label={`Revoke ${a.id}`} onClick={() => props.ask({ id: a.id, what: "revoke" })}>
              Revoke
            </button>
          </span>
        )}
      </td>
    </tr>
  );
}

/** The Integrations screen in its overlay. */
export function IntegrationsScreen() {
  const [accounts, setAccounts] = useState<pb.ServiceAccount[]>([]);
  const [asking, setAsking] = useState<Asking>(undefined);
  const [form, setForm] = useState({ id: "", name: "", scopes: ["read", "write"] as string[] });
  const [credential, setCredential] = useState<pb.ServiceAccountCredential | undefined>(undefined);
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const run = useRun(setError);
  const reload = async () => setAccounts(await listAccounts());
  useEffect(() => void run(reload), []);
  const toggle = (s: string) =>
    setForm({ ...form, scopes: form.scopes.includes(s) ? form.scopes.filter((x) => x !== s) : [...form.scopes, s] });
  const act = (a: pb.ServiceAccount) =>
    void run(async () => {
      if (asking?.what === "rotate") {
        setCredential(await rotateAccount(a.id));
        setStatus(`New credential for ${a.id}; the old one no longer works.`);
      } else {
        await revokeAccount(a.id);
        setCredential(undefined);
        setStatus(`Revoked ${a.id}.`);
      }
      setAsking(undefined);
      await reload();
    });

  return (
    <Modal class="dialog audit-screen integrations-screen" id="integrations-screen" labelledBy="integrations-title" onClose={closeIntegrations}>
      <ScreenTop id="integrations" title="Integrations" closeLabel="Close integrations" onClose={closeIntegrations} />
      <ScreenStatus id="integrations" status={status} error={error} />
      {credential && (
        <section class="credential" aria-labelledby="credential-title">
          <h3 id="credential-title">Credential of {credential.account?.id}</h3>
          <p>Give it to the integration now: it is shown this once and the server keeps only its hash.</p>
          <input id="credential" readonly value={credential.credential} aria-labelledby="credential-title" onFocus={(e) => e.currentTarget.select()} />
        </section>
      )}
      <section aria-labelledby="accounts-title">
        <h3 id="accounts-title">Service accounts</h3>
        <p class="muted">Your firm's systems call the server API (/api/v1) with these. See README "Integrate".</p>
        <ScreenTable id="accounts" rows={accounts.length} empty="No service account yet." headers={["Id", "Name", "Scopes", "State", "Webhooks"]}>
          {accounts.map((a) => (
            <AccountRow key={a.id} a={a} asking={asking} ask={setAsking} act={() => act(a)} />
          ))}
        </ScreenTable>
        <form
          class="audit-filters"
          id="account-form"
          onSubmit={(e) => {
            e.preventDefault();
            void run(async () => {
              const made = await createAccount(form.id, form.name, form.scopes);
              setCredential(made);
              setStatus(`Created ${made.account?.id ?? form.id}.`);
              setForm({ ...form, id: "", name: "" });
              await reload();
            });
          }}
        >
          <label>
            Id (a-z, 0-9, -)
            <input id="account-id" required value={form.id} onInput={(e) => setForm({ ...form, id: e.currentTarget.value })} />
          </label>
          <label>
            Name shown with its messages
            <input id="account-name" required value={form.name} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} />
          </label>
          <fieldset>
            <legend>Scopes</legend>
            {SCOPES.map((s) => (
              <label key={s}>
                <input type="checkbox" id={`scope-${s}`} checked={form.scopes.includes(s)} onChange={() => toggle(s)} />
                {s}
              </label>
            ))}
          </fieldset>
          <button type="submit" class="primary" id="account-create">
            Create
          </button>
        </form>
      </section>
    </Modal>
  );
}
