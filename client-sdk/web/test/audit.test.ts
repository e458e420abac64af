// The audit export's formats: the same lines as `chatd audit export` writes.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AuditEntrySchema } from "../src/gen/chat/v1/chat_pb.js";
import { AUDIT_CSV_HEADER, auditCsvLine, auditJsonLine, formatAudit } from "../src/sdk/audit.js";

const entry = create(AuditEntrySchema, {
  chain: "node-a",
  seq: 12n,
  atMs: 1_700_000_000_000n,
  kind: "member.added",
  actor: "alice",
  conversationId: 18_446_744_073_709_551_615n,
  targetUser: "bob",
  details: '{"a":"x, \\"y\\""}',
  prevHash: "00",
  hash: "ff",
});

describe("audit export", () => {
  it("writes JSON lines with exact 64-bit numbers in chatd's key order", () => {
    const line = auditJsonLine(entry);
    expect(line).toBe(
      '{"chain":"node-a","seq":12,"at_ms":1700000000000,"kind":"member.added","actor":"alice",' +
        '"conversation_id":18446744073709551615,"target_user":"bob","details":"{\\"a\\":\\"x, \\\\\\"y\\\\\\"\\"}",' +
        '"prev_hash":"00","hash":"ff"}\n',
    );
  });

  it("writes CSV with a header and quotes what needs it", () => {
    expect(auditCsvLine(entry)).toBe(
      'node-a,12,1700000000000,member.added,alice,18446744073709551615,bob,"{""a"":""x, \\""y\\""""}",00,ff\n',
    );
    expect(formatAudit([entry], "csv")).toBe(AUDIT_CSV_HEADER + auditCsvLine(entry));
    expect(formatAudit([], "jsonl")).toBe("");
  });
});
