// The chatd TypeScript SDK: the same protobuf frames and behaviour as the Rust SDK.
export * from "./client.js";
export * from "./errors.js";
export * from "./codec.js";
export * from "./backoff.js";
export {
  Outbox,
  newClientMsgId,
  MemoryOutboxStore,
  type OutboxStore,
  OutboxStoreFull,
  STORED_SENDS_MAX,
  type StoredSend,
} from "./outbox.js";
export { IndexedDbOutboxStore } from "./outbox-idb.js";
export { idbCommitted, idbDone, idbOpen } from "./idb.js";
export { Sequencer, type Offer } from "./sequencer.js";
export { Delivery, type ResumeState } from "./delivery.js";
export { type Link, type LinkHandlers, type Lost, type TransportKind, hasWebTransport, hexToBytes } from "./transport.js";
export * as pb from "../gen/chat/v1/chat_pb.js";
export { Attachments, type DownloadRange, type Downloaded, type Exported } from "./attachments.js";
export { Audit, type AuditFilter, type AuditFormat, AUDIT_CSV_HEADER, auditCsvLine, auditJsonLine, formatAudit } from "./audit.js";
export { Templates, type TemplateSave, TemplateScope, matchTemplates } from "./templates.js";
export { Users } from "./users.js";
export { LegalHolds } from "./holds.js";
export { SCOPES, ServiceAccounts } from "./service-accounts.js";
export { TokenRefresh, REFRESH_LEAD_MS } from "./refresh.js";
export { MessageView, applyEntries, isChange, toggle, type Applied } from "./view.js";
export { CIPHERSUITE, type Change, type Decrypted, MlsDevice, MlsRefusal, type Pending, type Received, groupId } from "./mls/device.js";
export { E2e } from "./mls/e2e.js";
export { IndexedDbKeyValue, type KeyValue, MemoryKeyValue } from "./mls/store.js";
export { safetyNumber } from "./mls/encoding.js";
export { E2E_MEDIA_TYPE, openFile, sealFile } from "./mls/files.js";
