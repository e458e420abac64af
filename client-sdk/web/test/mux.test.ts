import { describe, expect, it } from "vitest";
import { CHUNK, encodeMux, Mux, WINDOW } from "../src/sdk/mux.js";

function header(m: Uint8Array): [number, number] {
  const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
  return [v.getUint32(0), v.getUint8(4)];
}

describe("the WebSocket multiplex", () => {
  it("routes stream 0 to the control stream and refuses a malformed message", () => {
    const control: Uint8Array[] = [];
    const mux = new Mux(() => {}, (b) => control.push(b));
    mux.receive(encodeMux(0, 0, new Uint8Array([1, 2, 3])));
    expect(control).toEqual([new Uint8Array([1, 2, 3])]);
    expect(() => mux.receive(new Uint8Array([0, 0]))).toThrow(/no header/);
    expect(() => mux.receive(encodeMux(0, 1))).toThrow(/data only/);
  });

  it("sends in chunks within the credit and waits for more", async () => {
    const sent: Uint8Array[] = [];
    const mux = new Mux((m) => sent.push(m), () => {});
    const s = mux.open();
    const w = s.writable.getWriter();
    const done = w.write(new Uint8Array(WINDOW + 1000));
    await new Promise((r) => setTimeout(r, 10));
    const bytes = () => sent.reduce((n, m) => n + m.length - 5, 0);
    expect(bytes()).toBe(WINDOW);
    expect(sent.every((m) => m.length - 5 <= CHUNK && header(m)[0] === 1)).toBe(true);
    mux.receive(encodeMux(1, 4, undefined, 1000));
    await done;
    expect(bytes()).toBe(WINDOW + 1000);
    await w.close();
    expect(header(sent[sent.length - 1] as Uint8Array)).toEqual([1, 1]);
  });

  it("answers a stop with a reset and fails the writer", async () => {
    const sent: Uint8Array[] = [];
    const mux = new Mux((m) => sent.push(m), () => {});
    const s = mux.open();
    mux.receive(encodeMux(1, 3, undefined, 0));
    expect(header(sent[sent.length - 1] as Uint8Array)).toEqual([1, 2]);
    await expect(s.writable.getWriter().write(new Uint8Array(10))).rejects.toThrow(/stopped/);
  });

  it("grants credit as the reader consumes, and ends on fin", async () => {
    const sent: Uint8Array[] = [];
    const mux = new Mux((m) => sent.push(m), () => {});
    const s = mux.open();
    const r = s.readable.getReader();
    mux.receive(encodeMux(1, 0, new Uint8Array(CHUNK)));
    mux.receive(encodeMux(1, 0, new Uint8Array(CHUNK)));
    expect(sent.length).toBe(0);
    expect((await r.read()).value?.length).toBe(CHUNK);
    await new Promise((res) => setTimeout(res, 0));
    const credits = sent.filter((m) => header(m)[1] === 4);
    expect(credits.length).toBe(1);
    expect(new DataView((credits[0] as Uint8Array).buffer).getUint32(5)).toBe(CHUNK);
    mux.receive(encodeMux(1, 1));
    expect((await r.read()).value?.length).toBe(CHUNK);
    expect((await r.read()).done).toBe(true);
  });
});
