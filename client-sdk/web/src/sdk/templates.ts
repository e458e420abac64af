// Templates and quick replies over a connected Client: save (create, or an
// optimistic update naming the version seen), delete, list (the user's own
// and the firm's, every page) and render in a conversation. The rules and the
// placeholders ({client_name}, {case_id}, {conversation_title}, {my_name},
// {date}) are the server's; see `Template` in schemas/chat/v1/chat.proto.
import { create } from "@bufbuild/protobuf";
import {
  DeleteTemplateSchema,
  ListTemplatesSchema,
  type PutTemplate,
  PutTemplateSchema,
  RenderTemplateSchema,
  type RenderedTemplate,
  type Template,
  TemplateScope,
} from "../gen/chat/v1/chat_pb.js";
import type { Client } from "./client.js";
import { ClientError } from "./errors.js";

/** What a save sends: `id` 0n creates; with `expectedUpdatedAtMs` an update applies only over that version. */
export type TemplateSave = Partial<Pick<PutTemplate, "id" | "expectedUpdatedAtMs">> &
  Pick<PutTemplate, "scope" | "name" | "body">;

/** The template calls of one client. */
export class Templates {
  constructor(private readonly client: Client) {}

  /** Creates or updates a template; resolves with it as saved. */
  async put(save: TemplateSave): Promise<Template> {
    const r = await this.client.request({ case: "putTemplate", value: create(PutTemplateSchema, save) });
    if (r.case !== "template" || !r.value.template) throw new ClientError("protocol", "reply is not a template");
    return r.value.template;
  }

  /** Creates a template of `scope` named `name` (the word after `/`). */
  create(scope: TemplateScope, name: string, body: string): Promise<Template> {
    return this.put({ scope, name, body });
  }

  /** Deletes one of the user's personal templates, or (admins) a firm one. */
  async delete(id: bigint): Promise<void> {
    await this.client.request({ case: "deleteTemplate", value: create(DeleteTemplateSchema, { id }) });
  }

  /** Every template the user may use: personal ones first, then the firm's, each by name. */
  async list(): Promise<Template[]> {
    const all: Template[] = [];
    let page = "";
    for (;;) {
      const r = await this.client.request({ case: "listTemplates", value: create(ListTemplatesSchema, { page }) });
      if (r.case !== "templates") throw new ClientError("protocol", "reply is not a template list");
      all.push(...r.value.templates);
      if (!r.value.next) return all;
      page = r.value.next;
    }
  }

  /** The template filled in for a conversation the user belongs to; `missing` names placeholders with no value there. */
  async render(templateId: bigint, conversationId: bigint): Promise<RenderedTemplate> {
    const value = create(RenderTemplateSchema, { templateId, conversationId });
    const r = await this.client.request({ case: "renderTemplate", value });
    if (r.case !== "rendered") throw new ClientError("protocol", "reply is not a rendered template");
    return r.value;
  }
}

/** Templates whose name starts with what follows `/` in a composer (e.g. "/int" -> "intake"), personal first. */
export function matchTemplates(templates: Template[], typed: string): Template[] {
  const word = typed.startsWith("/") ? typed.slice(1) : typed;
  return templates.filter((t) => t.name.startsWith(word));
}

export { TemplateScope };
