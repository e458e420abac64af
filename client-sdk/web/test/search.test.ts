// The search call: the command it sends (filters, cursor, limit as given,
// defaults filled in) and how it reads the reply, against a scripted `request`.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { type Command, ConversationKind, SearchResultsSchema } from "../src/gen/chat/v1/chat_pb.js";
import { Client } from "../src/sdk/client.js";
import { ClientError } from "../src/sdk/errors.js";

type Body = Command["body"];

function scripted(answer: (body: Body) => unknown) {
  const sent: Body[] = [];
  const fake = {
    request: async (body: Body) => {
      sent.push(body);
      return answer(body);
    },
  };
  const search = Client.prototype.search.bind(fake as unknown as Client);
  return { search, sent };
}

describe("Client.search", () => {
  it("sends the query with its filters and returns the page", async () => {
    const page = create(SearchResultsSchema, {
      hits: [{ conversationId: 4n, seq: 2n, senderId: "bob", snippet: "the deposition", highlights: [{ start: 4, end: 14 }] }],
      nextCursor: "abc",
    });
    const { search, sent } = scripted(() => ({ case: "search", value: page }));
    const r = await search({ query: "deposition", senderId: "bob", kind: ConversationKind.CASE, limit: 1 });
    const hit = r.hits[0]!;
    const hl = hit.highlights[0]!;
    expect(hit.snippet.slice(hl.start, hl.end)).toBe("deposition");
    expect(r.nextCursor).toBe("abc");
    expect(sent[0]).toMatchObject({
      case: "search",
      value: { query: "deposition", senderId: "bob", kind: ConversationKind.CASE, limit: 1, cursor: "", conversationId: 0n },
    });
  });

  it("refuses a reply of the wrong kind", async () => {
    const { search } = scripted(() => ({ case: "pong", value: {} }));
    await expect(search({ query: "x" })).rejects.toBeInstanceOf(ClientError);
  });
});
