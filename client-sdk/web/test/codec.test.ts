import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ClientFrameSchema,
  CommandSchema,
  PushSchema,
  ServerFrameSchema,
  TypingEventSchema,
  type ServerFrame,
} from "../src/gen/chat/v1/chat_pb.js";
import {
  concat,
  decodeServerFrame,
  encodeClientFrame,
  encodeServerFrame,
  FrameDecoder,
  FrameError,
  frameBytes,
  ServerFrameReader,
} from "../src/sdk/codec.js";

function typing(i: number): ServerFrame {
  return create(ServerFrameSchema, {
    kind: {
      case: "push",
      value: create(PushSchema, {
        event: {
          case: "typing",
          value: create(TypingEventSchema, { conversationId: BigInt(i), userId: "u".repeat(i % 300), typing: i % 2 === 0 }),
        },
      }),
    },
  });
}

/** A deterministic PRNG, so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("frame codec", () => {
  it("round-trips client frames with a varint prefix", () => {
    const f = create(ClientFrameSchema, {
      kind: { case: "command", value: create(CommandSchema, { id: 300n, body: { case: "ping", value: {} } }) },
    });
    const bytes = encodeClientFrame(f);
    const body = toBinary(ClientFrameSchema, f);
    expect(bytes[0]).toBe(body.length);
    const dec = new FrameDecoder(1024);
    dec.push(bytes);
    expect(dec.next()).toEqual(body);
    expect(dec.next()).toBeUndefined();
  });

  it("encodes multi-byte lengths like prost", () => {
    const body = new Uint8Array(300);
    const framed = frameBytes(body);
    expect(Array.from(framed.subarray(0, 2))).toEqual([0xac, 0x02]);
    expect(framed.length).toBe(302);
  });

  it("decodes frames split at arbitrary points", () => {
    const frames = Array.from({ length: 200 }, (_, i) => typing(i));
    const stream = concat(frames.map(encodeServerFrame));
    for (let seed = 1; seed <= 30; seed++) {
      const r = rng(seed);
      const reader = new ServerFrameReader();
      const out: ServerFrame[] = [];
      let at = 0;
      while (at < stream.length) {
        const n = Math.min(stream.length - at, 1 + Math.floor(r() * (seed % 3 === 0 ? 3 : 700)));
        out.push(...reader.push(stream.subarray(at, at + n)));
        at += n;
      }
      expect(reader.buffered).toBe(0);
      expect(out.length).toBe(frames.length);
      out.forEach((f, i) => {
        expect(f.kind.case).toBe("push");
        const t = f.kind.value as { event: { value: { conversationId: bigint } } };
        expect(t.event.value.conversationId).toBe(BigInt(i));
      });
    }
  });

  it("byte-at-a-time keeps at most one frame buffered", () => {
    const stream = concat([typing(1), typing(2)].map(encodeServerFrame));
    const reader = new ServerFrameReader();
    let got = 0;
    for (const b of stream) got += reader.push(Uint8Array.of(b)).length;
    expect(got).toBe(2);
  });

  it("refuses an oversize frame from its prefix alone", () => {
    const dec = new FrameDecoder(100);
    dec.push(Uint8Array.of(0xe5, 0x00)); // 101
    expect(() => dec.next()).toThrow(FrameError);
    const ok = new FrameDecoder(100);
    ok.push(frameBytes(new Uint8Array(100)));
    expect(ok.next()?.length).toBe(100);
  });

  it("refuses a prefix longer than five bytes", () => {
    const dec = new FrameDecoder(100);
    dec.push(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x01));
    expect(() => dec.next()).toThrowError(/prefix/);
  });

  it("waits for an incomplete prefix", () => {
    const dec = new FrameDecoder(1 << 20);
    dec.push(Uint8Array.of(0x80));
    expect(dec.next()).toBeUndefined();
  });

  it("decodes an unprefixed datagram", () => {
    const f = typing(7);
    expect(decodeServerFrame(toBinary(ServerFrameSchema, f)).kind.case).toBe("push");
  });
});

import { wsCloseError } from "../src/sdk/transport.js";

describe("WebSocket close codes", () => {
  it("map back to wire error codes and classes", () => {
    expect(wsCloseError(4302, "bad")?.code).toBe(3002);
    expect(wsCloseError(4401, "expired")).toMatchObject({ code: 4001, name: "TOKEN_EXPIRED" });
    expect(wsCloseError(4300, "bye")).toMatchObject({ code: 3000, name: "SHUTTING_DOWN" });
    expect(wsCloseError(4100, "")?.code).toBe(1000);
    expect(wsCloseError(1006, "")).toBeUndefined();
    expect(wsCloseError(4000, "")).toBeUndefined();
  });
});
