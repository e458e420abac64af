// The template calls: the commands they send and how they read the replies
// (every page of a list, refusals surfaced), against a scripted `request`.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { type Command, TemplateSchema, TemplateScope } from "../src/gen/chat/v1/chat_pb.js";
import type { Client } from "../src/sdk/client.js";
import { ClientError } from "../src/sdk/errors.js";
import { Templates, matchTemplates } from "../src/sdk/templates.js";

type Body = Command["body"];

function scripted(answer: (body: Body) => unknown) {
  const sent: Body[] = [];
  const client = {
    request: async (body: Body) => {
      sent.push(body);
      return answer(body);
    },
  } as unknown as Client;
  return { templates: new Templates(client), sent };
}

const t = (id: bigint, scope: TemplateScope, name: string) => create(TemplateSchema, { id, scope, name, body: `b${id}` });

describe("Templates", () => {
  it("lists every page, personal first as the server orders them", async () => {
    const pages: Record<string, unknown> = {
      "": { case: "templates", value: { templates: [t(1n, TemplateScope.PERSONAL, "sig")], next: "1:sig" } },
      "1:sig": { case: "templates", value: { templates: [t(2n, TemplateScope.FIRM, "intake")], next: "" } },
    };
    const { templates, sent } = scripted((b) => pages[(b.value as { page: string }).page]);
    const all = await templates.list();
    expect(all.map((x) => x.name)).toEqual(["sig", "intake"]);
    expect(sent.map((b) => [b.case, (b.value as { page: string }).page])).toEqual([
      ["listTemplates", ""],
      ["listTemplates", "1:sig"],
    ]);
  });

  it("sends a save as PutTemplate and returns the saved template", async () => {
    const saved = t(9n, TemplateScope.PERSONAL, "hi");
    const { templates, sent } = scripted(() => ({ case: "template", value: { template: saved } }));
    await expect(templates.create(TemplateScope.PERSONAL, "hi", "Dear {client_name}")).resolves.toEqual(saved);
    await templates.put({ id: 9n, scope: TemplateScope.PERSONAL, name: "hi", body: "x", expectedUpdatedAtMs: 5n });
    expect(sent[0]).toMatchObject({ case: "putTemplate", value: { id: 0n, scope: TemplateScope.PERSONAL, name: "hi" } });
    expect(sent[1]).toMatchObject({ case: "putTemplate", value: { id: 9n, expectedUpdatedAtMs: 5n } });
  });

  it("renders in a conversation and reports missing placeholders", async () => {
    const { templates, sent } = scripted(() => ({
      case: "rendered",
      value: { templateId: 9n, conversationId: 4n, text: "Dear Bob, re {case_id}", missing: ["case_id"] },
    }));
    const r = await templates.render(9n, 4n);
    expect([r.text, r.missing]).toEqual(["Dear Bob, re {case_id}", ["case_id"]]);
    expect(sent[0]).toMatchObject({ case: "renderTemplate", value: { templateId: 9n, conversationId: 4n } });
  });

  it("refuses a reply of the wrong kind and passes the server's refusals on", async () => {
    const { templates } = scripted(() => ({ case: "pong", value: {} }));
    await expect(templates.render(1n, 1n)).rejects.toBeInstanceOf(ClientError);
    const refused = new ClientError("server", "only admins create, update or delete firm templates");
    const failing = scripted(() => Promise.reject(refused)).templates;
    await expect(failing.create(TemplateScope.FIRM, "x", "y")).rejects.toBe(refused);
  });

  it("matches what follows / by name prefix", () => {
    const all = [t(1n, TemplateScope.PERSONAL, "intro"), t(2n, TemplateScope.FIRM, "intake"), t(3n, TemplateScope.FIRM, "sig")];
    expect(matchTemplates(all, "/int").map((x) => x.name)).toEqual(["intro", "intake"]);
    expect(matchTemplates(all, "/").length).toBe(3);
    expect(matchTemplates(all, "/zz")).toEqual([]);
  });
});
