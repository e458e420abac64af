// One connection over WebTransport or WebSocket behind one small interface:
// open, say Hello, wait for the Welcome, then hand every ServerFrame (control
// stream, events stream, datagrams, or WebSocket messages) to the client.
//
// WebTransport: the client opens one bidirectional control stream; the server
// opens one unidirectional events stream; typing may come as datagrams, each
// one unprefixed ServerFrame. WebSocket: every binary message carries one or
// more whole length-delimited frames, both ways; the session is otherwise the
// same. The WebSocket offers the subprotocol chat.mux.v1 (./mux.ts): then each
// message names its stream, stream 0 carries those frames, and attachment
// transfers get streams of their own as on WebTransport. A close code carries the wire error code (mapped into 4000-4999 on a
// WebSocket, see wsCloseError).

import { create } from "@bufbuild/protobuf";
import {
  type ClientFrame,
  ErrorSchema,
  type ServerFrame,
  type Welcome,
} from "../gen/chat/v1/chat_pb.js";
import { decodeServerFrame, encodeClientFrame, ServerFrameReader } from "./codec.js";
import { codeName, type WireError, wireError } from "./errors.js";
import { type DuplexStream, encodeMux, MUX_PROTOCOL, Mux } from "./mux.js";

export type TransportKind = "webtransport" | "websocket";

/** Why a connection could not be made or was lost. */
export interface Lost {
  reason: string;
  error?: WireError;
  /** The transport could not be opened at all (no handshake reached the server). */
  unreachable?: boolean;
}

export interface LinkHandlers {
  onFrame(frame: ServerFrame): void;
  onLost(lost: Lost): void;
}

/** An open, handshaken connection. */
export interface Link {
  readonly kind: TransportKind;
  /** The server's Welcome. */
  readonly welcome: Welcome;
  /** Writes one encoded ClientFrame (in order). */
  send(frame: ClientFrame): void;
  /** Starts handing frames to `h` (frames that arrived since the Welcome first). */
  attach(h: LinkHandlers): void;
  close(code: number, reason: string): void;
  /** Opens a bidirectional stream of its own (an attachment transfer); absent on a WebSocket without the multiplex. */
  openStream?(): Promise<DuplexStream>;
}

export interface OpenOptions {
  url: string;
  certHashes: Uint8Array<ArrayBuffer>[];
  hello: ClientFrame;
  /** Open and handshake within this many ms. */
  timeoutMs: number;
}

export function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const clean = hex.replace(/[:\s]/g, "");
  if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length % 2 !== 0) throw new Error("certificate hash is not hex");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The wire error a WebTransport session close code stands for (the code itself). */
function wtCloseError(code: number, reason: string): WireError | undefined {
  if (code >= 1000 && code < 5000) return { code, name: codeName(code), message: reason };
  return undefined;
}

/**
 * The wire error a WebSocket close code stands for. The server maps error code
 * `c` to `4000 + (c / 1000) * 100 + c % 1000` (3002 -> 4302, 4001 -> 4401), in
 * the application range browsers allow.
 */
export function wsCloseError(wsCode: number, reason: string): WireError | undefined {
  if (wsCode < 4100 || wsCode >= 5000) return undefined;
  const n = wsCode - 4000;
  const code = Math.floor(n / 100) * 1000 + (n % 100);
  return { code, name: codeName(code), message: reason };
}

/** Buffers frames until attached; reports loss once. */
class Sink {
  private queue: ServerFrame[] = [];
  private lostEarly: Lost | undefined;
  private h: LinkHandlers | undefined;
  private ended = false;

  frame(f: ServerFrame): void {
    if (this.ended) return;
    if (this.h) this.h.onFrame(f);
    else this.queue.push(f);
  }

  lost(l: Lost): void {
    if (this.ended) return;
    this.ended = true;
    if (this.h) this.h.onLost(l);
    else this.lostEarly = l;
  }

  attach(h: LinkHandlers): void {
    this.h = h;
    const q = this.queue;
    this.queue = [];
    for (const f of q) {
      if (this.ended && !this.lostEarly) break;
      h.onFrame(f);
    }
    if (this.lostEarly) h.onLost(this.lostEarly);
  }

  get isEnded(): boolean {
    return this.ended;
  }
}

/** Waits for the first frame: the Welcome, or an error reply. */
class Handshake {
  private settled = false;
  resolve!: (w: Welcome) => void;
  reject!: (l: Lost) => void;
  readonly promise: Promise<Welcome>;

  constructor() {
    this.promise = new Promise<Welcome>((res, rej) => {
      this.resolve = (w) => {
        if (!this.settled) {
          this.settled = true;
          res(w);
        }
      };
      this.reject = (l) => {
        if (!this.settled) {
          this.settled = true;
          rej(l);
        }
      };
    });
  }

  get done(): boolean {
    return this.settled;
  }

  /** Routes one frame: true when it belongs to the handshake. */
  take(f: ServerFrame): boolean {
    if (this.settled) return false;
    if (f.kind.case === "welcome") {
      this.resolve(f.kind.value);
    } else if (f.kind.case === "reply" && f.kind.value.result.case === "error") {
      const e = wireError(f.kind.value.result.value);
      this.reject({ reason: `${e.name}: ${e.message}`, error: e });
    } else {
      this.reject({ reason: "unexpected frame during the handshake" });
    }
    return true;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => {
      onTimeout();
      reject({ reason: `no connection within ${ms} ms`, unreachable: true } satisfies Lost);
    }, ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Whether this browser has WebTransport at all. */
export function hasWebTransport(): boolean {
  return typeof (globalThis as { WebTransport?: unknown }).WebTransport === "function";
}

// ---------------------------------------------------------------- WebTransport

async function pumpStream(
  stream: ReadableStream<Uint8Array>,
  onFrames: (f: ServerFrame[]) => void,
  onEnd: (l: Lost) => void,
  name: string,
): Promise<void> {
  const reader = stream.getReader();
  const frames = new ServerFrameReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        onEnd({ reason: `${name} stream closed` });
        return;
      }
      onFrames(frames.push(value));
    }
  } catch (e) {
    onEnd({ reason: `${name} stream: ${String((e as Error)?.message ?? e)}` });
  }
}

export async function openWebTransport(o: OpenOptions): Promise<Link> {
  if (!hasWebTransport()) throw { reason: "WebTransport is not available", unreachable: true } satisfies Lost;
  const opts: WebTransportOptions = {};
  if (o.certHashes.length > 0) {
    opts.serverCertificateHashes = o.certHashes.map((value) => ({ algorithm: "sha-256", value }));
  }
  let wt: WebTransport;
  try {
    wt = new WebTransport(o.url, opts);
  } catch (e) {
    throw { reason: `cannot open WebTransport: ${String(e)}`, unreachable: true } satisfies Lost;
  }
  const sink = new Sink();
  const hs = new Handshake();
  let opened = false;
  let closeInfo: Lost | undefined;
  const lostNow = (l: Lost) => {
    const full = closeInfo ?? l;
    if (!hs.done) hs.reject({ ...full, unreachable: full.unreachable ?? !opened });
    sink.lost(full);
  };
  wt.closed.then(
    (info) => {
      closeInfo = {
        reason: `closed by server: ${info.closeCode ?? 0} ${info.reason ?? ""}`.trim(),
        error: wtCloseError(info.closeCode ?? 0, info.reason ?? ""),
      };
      lostNow(closeInfo);
    },
    (e) => lostNow({ reason: `connection lost: ${String((e as Error)?.message ?? e)}` }),
  );
  // Only the control stream carries the handshake; events and datagrams may
  // overtake the Welcome and wait in the sink until the client attaches.
  const routeControl = (frames: ServerFrame[]) => {
    for (const f of frames) if (!hs.take(f)) sink.frame(f);
  };
  const routeEvents = (frames: ServerFrame[]) => {
    for (const f of frames) sink.frame(f);
  };
  const run = async (): Promise<Welcome> => {
    await wt.ready;
    opened = true;
    const bidi = await wt.createBidirectionalStream();
    const writer = bidi.writable.getWriter();
    const write = (f: ClientFrame) => {
      writer.write(encodeClientFrame(f)).catch((e) => lostNow({ reason: `cannot write: ${String(e)}` }));
    };
    write(o.hello);
    void pumpStream(bidi.readable, routeControl, lostNow, "control");
    // The events stream: the first unidirectional stream the server opens.
    void (async () => {
      try {
        const uni = wt.incomingUnidirectionalStreams.getReader();
        const { value } = await uni.read();
        uni.releaseLock();
        if (value) await pumpStream(value, routeEvents, lostNow, "events");
      } catch (e) {
        lostNow({ reason: `events stream: ${String(e)}` });
      }
    })();
    void (async () => {
      try {
        const dg = wt.datagrams.readable.getReader();
        for (;;) {
          const { value, done } = await dg.read();
          if (done) return;
          try {
            routeEvents([decodeServerFrame(value)]);
          } catch {
            // A datagram that does not decode is dropped (datagrams may be lost).
          }
        }
      } catch {
        // The connection's end is reported by the streams.
      }
    })();
    linkSend = write;
    return hs.promise;
  };
  let linkSend: (f: ClientFrame) => void = () => {};
  let welcome: Welcome;
  try {
    welcome = await withTimeout(
      Promise.race([run(), hs.promise]),
      o.timeoutMs,
      () => {
        try {
          wt.close({ closeCode: 0, reason: "timeout" });
        } catch {
          /* already closed */
        }
      },
    );
  } catch (e) {
    const l = e as Lost;
    if (l && typeof l === "object" && "reason" in l) {
      throw { ...l, unreachable: l.unreachable ?? !opened };
    }
    throw { reason: `WebTransport: ${String((e as Error)?.message ?? e)}`, unreachable: !opened } satisfies Lost;
  }
  return {
    kind: "webtransport",
    welcome,
    send: (f) => linkSend(f),
    attach: (h) => sink.attach(h),
    close: (code, reason) => {
      try {
        wt.close({ closeCode: code, reason });
      } catch {
        /* already closed */
      }
    },
    openStream: () => wt.createBidirectionalStream(),
  };
}

// ---------------------------------------------------------------- WebSocket

export async function openWebSocket(o: OpenOptions): Promise<Link> {
  if (typeof WebSocket !== "function") throw { reason: "WebSocket is not available", unreachable: true };
  let ws: WebSocket;
  try {
    ws = new WebSocket(o.url, [MUX_PROTOCOL]);
  } catch (e) {
    throw { reason: `cannot open WebSocket: ${String(e)}`, unreachable: true } satisfies Lost;
  }
  ws.binaryType = "arraybuffer";
  const sink = new Sink();
  const hs = new Handshake();
  const frames = new ServerFrameReader();
  let opened = false;
  let mux: Mux | undefined;
  const lostNow = (l: Lost) => {
    mux?.close(l.reason);
    if (!hs.done) hs.reject({ ...l, unreachable: l.unreachable ?? !opened });
    sink.lost(l);
  };
  const control = (bytes: Uint8Array) => {
    for (const f of frames.push(bytes)) if (!hs.take(f)) sink.frame(f);
  };
  /** Writes a control frame (on stream 0 under the multiplex). */
  const sendFrame = (f: ClientFrame) => ws.send(mux ? encodeMux(0, 0, encodeClientFrame(f)) : encodeClientFrame(f));
  ws.onopen = () => {
    opened = true;
    // An older server takes no subprotocol: then one byte stream, no transfers.
    if (ws.protocol === MUX_PROTOCOL) mux = new Mux((m) => ws.send(m), control);
    sendFrame(o.hello);
  };
  ws.onmessage = (ev: MessageEvent) => {
    if (!(ev.data instanceof ArrayBuffer)) return;
    try {
      const bytes = new Uint8Array(ev.data);
      if (mux) mux.receive(bytes);
      else control(bytes);
    } catch (e) {
      ws.close(4000, "protocol error");
      lostNow({ reason: `protocol error: ${String((e as Error)?.message ?? e)}` });
    }
  };
  ws.onerror = () => {
    // The close event that follows says more.
  };
  ws.onclose = (ev: CloseEvent) => {
    lostNow({
      reason: `closed: ${ev.code} ${ev.reason}`.trim(),
      error: wsCloseError(ev.code, ev.reason),
      unreachable: !opened,
    });
  };
  const welcome = await withTimeout(hs.promise, o.timeoutMs, () => ws.close(1000, "timeout"));
  return {
    kind: "websocket",
    welcome,
    send: (f) => {
      if (ws.readyState === WebSocket.OPEN) sendFrame(f);
      else lostNow({ reason: "cannot write: the WebSocket is closed" });
    },
    attach: (h) => sink.attach(h),
    close: (code, reason) => {
      try {
        // Browsers allow only 1000 and 3000-4999 as close codes.
        ws.close(1000, reason);
      } catch {
        /* already closed */
      }
    },
    openStream: mux
      ? async () => {
          if (ws.readyState !== WebSocket.OPEN) throw new Error("the WebSocket is closed");
          return (mux as Mux).open();
        }
      : undefined,
  };
}

export { create, ErrorSchema };
