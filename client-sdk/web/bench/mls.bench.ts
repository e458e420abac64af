// The browser MLS device's cost per message, in Node (WebCrypto): encrypt
// (one application message and the group saved), receive (decrypt, check
// the sender, keep the text and the group), in a group of 2, with the store
// in memory. `npx vitest bench --run bench/mls.bench.ts`; figures in
// bench/RESULTS.md beside the openmls ones (`cargo bench -p bench --bench mls`).
import { create } from "@bufbuild/protobuf";
import { bench, describe } from "vitest";
import { ClaimedKeyPackageSchema, ClaimedKeyPackagesSchema, E2eContentSchema, MessageBodySchema, MessageSchema } from "../src/gen/chat/v1/chat_pb.js";
import { MlsDevice } from "../src/sdk/mls/device.js";
import { MemoryKeyValue } from "../src/sdk/mls/store.js";

const CONV = 1n;
const alice = await MlsDevice.open(new MemoryKeyValue(), "alice", "a");
const bob = await MlsDevice.open(new MemoryKeyValue(), "bob", "b");
const [kp] = await bob.newKeyPackages(1);
await alice.startGroup(CONV);
const claimed = create(ClaimedKeyPackagesSchema, { keyPackages: [create(ClaimedKeyPackageSchema, { userId: "bob", deviceId: "b", keyPackage: kp! })] });
const add = (await alice.prepare(CONV, { add: claimed }))!;
await alice.confirm(CONV, 1n, add);
const entry = (seq: bigint, ct: typeof add.ciphertext) =>
  create(MessageSchema, { conversationId: CONV, seq, senderId: "alice", body: create(MessageBodySchema, { content: { case: "ciphertext", value: ct } }) });
await bob.receive(entry(1n, add.ciphertext));
const content = create(E2eContentSchema, { text: "a message of about a hundred bytes, which is what most chat messages are, give or take" });
let seq = 1n;

describe("ts-mls device, group of 2", () => {
  bench("encrypt", async () => {
    await alice.encrypt(CONV, content);
  });
  bench("encrypt + receive", async () => {
    seq += 1n;
    await bob.receive(entry(seq, await alice.encrypt(CONV, content)));
  });
});
