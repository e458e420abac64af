// The WebSocket multiplex `chat.mux.v1` (see "Transfer streams" in
// schemas/chat/v1/chat.proto): every binary message is
// `id (u32 BE) | kind (u8) | rest`; kinds are data (payload), fin, reset
// (u32 code), stop (u32 code) and credit (u32 bytes). Stream 0 is the control
// stream; transfer streams get odd ids 1, 3, 5, ... Each side sends at most
// WINDOW bytes of a transfer stream beyond the credit the receiver granted;
// data goes in chunks of at most CHUNK bytes so chat frames interleave. A
// transfer stream is a { readable, writable } pair like a WebTransport
// bidirectional stream, so the attachment code serves both transports.

/** The WebSocket subprotocol that turns the multiplex on. */
export const MUX_PROTOCOL = "chat.mux.v1";
/** Unacknowledged bytes in flight per stream and direction. */
export const WINDOW = 256 * 1024;
/** Largest data payload per message. */
export const CHUNK = 32 * 1024;
const HEADER = 5;
const enum Kind {
  Data = 0,
  Fin = 1,
  Reset = 2,
  Stop = 3,
  Credit = 4,
}

/** A bidirectional byte stream of its own (a WebTransport stream or a multiplexed one). */
export interface DuplexStream {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

/** One mux message. */
export function encodeMux(id: number, kind: number, payload?: Uint8Array, n?: number): Uint8Array<ArrayBuffer> {
  const extra = kind === Kind.Data ? (payload?.length ?? 0) : kind === Kind.Fin ? 0 : 4;
  const out = new Uint8Array(HEADER + extra);
  const v = new DataView(out.buffer);
  v.setUint32(0, id);
  v.setUint8(4, kind);
  if (kind === Kind.Data && payload) out.set(payload, HEADER);
  else if (extra === 4) v.setUint32(HEADER, n ?? 0);
  return out;
}

interface Open {
  read: ReadableStreamDefaultController<Uint8Array>;
  /** Bytes enqueued for the reader in all, and granted back in all. */
  enqueued: number;
  granted: number;
  /** Bytes we may still send. */
  credit: number;
  /** Wakes a writer waiting for credit. */
  wake?: () => void;
  /** The server stopped reading (code), or the socket ended. */
  stopped?: string;
  readEnded: boolean;
  writeEnded: boolean;
}

/** The client side of the multiplex over one WebSocket. */
export class Mux {
  private next = 1;
  private readonly streams = new Map<number, Open>();
  private gone: string | undefined;

  constructor(
    private readonly send: (msg: Uint8Array<ArrayBuffer>) => void,
    private readonly onControl: (bytes: Uint8Array) => void,
  ) {}

  /** Routes one incoming message; throws on a malformed one. */
  receive(msg: Uint8Array): void {
    if (msg.length < HEADER) throw new Error(`a mux message of ${msg.length} bytes has no header`);
    const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    const id = v.getUint32(0);
    const kind = v.getUint8(4);
    const body = msg.subarray(HEADER);
    if (id === 0) {
      if (kind !== Kind.Data) throw new Error("stream 0 carries data only");
      this.onControl(body);
      return;
    }
    const s = this.streams.get(id);
    if (!s) return; // a stream we let go of: late messages are dropped
    const n = body.length >= 4 ? new DataView(body.buffer, body.byteOffset, 4).getUint32(0) : 0;
    switch (kind) {
      case Kind.Data:
        if (!s.readEnded) {
          s.enqueued += body.length;
          s.read.enqueue(body.slice());
        }
        break;
      case Kind.Fin:
        this.endRead(s, undefined);
        break;
      case Kind.Reset:
        this.endRead(s, `the server reset the stream (code ${n})`);
        break;
      case Kind.Stop:
        // Like QUIC's STOP_SENDING: our half ends with a reset at once.
        s.stopped = `the server stopped reading (code ${n})`;
        this.endWrite(id, s, Kind.Reset);
        s.wake?.();
        break;
      case Kind.Credit:
        s.credit += n;
        s.wake?.();
        break;
      default:
        throw new Error(`mux message kind ${kind} is unknown`);
    }
    this.forgetIfDone(id, s);
  }

  /** The socket is gone: every stream fails. */
  close(reason: string): void {
    this.gone = reason;
    for (const [id, s] of this.streams) {
      this.endRead(s, reason);
      s.stopped = reason;
      s.wake?.();
      this.streams.delete(id);
    }
  }

  /** Opens a transfer stream. */
  open(): DuplexStream {
    if (this.gone) throw new Error(this.gone);
    const id = this.next;
    this.next += 2;
    let s!: Open;
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (read) => {
          s = { read, enqueued: 0, granted: 0, credit: WINDOW, readEnded: false, writeEnded: false };
        },
        // Called as the reader takes bytes: grant back what it consumed.
        pull: (read) => {
          const consumed = s.enqueued - (WINDOW - (read.desiredSize ?? WINDOW));
          const grant = consumed - s.granted;
          if (grant >= CHUNK && !s.readEnded) {
            s.granted += grant;
            this.send(encodeMux(id, Kind.Credit, undefined, grant));
          }
        },
        cancel: () => {
          if (!s.readEnded) this.send(encodeMux(id, Kind.Stop, undefined, 0));
          s.readEnded = true;
          this.forgetIfDone(id, s);
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: WINDOW }),
    );
    const writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        let rest = chunk;
        while (rest.length > 0) {
          if (s.stopped) throw new Error(s.stopped);
          if (s.credit <= 0) {
            await new Promise<void>((r) => {
              s.wake = r;
            });
            s.wake = undefined;
            continue;
          }
          const n = Math.min(rest.length, CHUNK, s.credit);
          s.credit -= n;
          this.send(encodeMux(id, Kind.Data, rest.subarray(0, n)));
          rest = rest.subarray(n);
        }
      },
      close: () => this.endWrite(id, s, Kind.Fin),
      abort: () => this.endWrite(id, s, Kind.Reset),
    });
    this.streams.set(id, s);
    return { readable, writable };
  }

  private endWrite(id: number, s: Open, kind: Kind): void {
    if (s.writeEnded) return;
    s.writeEnded = true;
    if (!this.gone) this.send(encodeMux(id, kind, undefined, 0));
    this.forgetIfDone(id, s);
  }

  private endRead(s: Open, error: string | undefined): void {
    if (s.readEnded) return;
    s.readEnded = true;
    try {
      if (error) s.read.error(new Error(error));
      else s.read.close();
    } catch {
      /* already closed */
    }
  }

  private forgetIfDone(id: number, s: Open): void {
    if (s.readEnded && s.writeEnded) this.streams.delete(id);
  }
}
