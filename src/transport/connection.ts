/**
 * One TCP connection to or from a peer: handshake, frame decoding, batched writes, bounded close.
 *
 * A connection moves through `connecting` (outbound only) → `handshaking` → `open` → `closing` →
 * `closed`; it never goes back. The dialler writes its hello as soon as the socket is connected;
 * the first frame received must be the peer's hello, which is handed to the owner (`TcpTransport`)
 * to accept (`open`; an acceptor then answers with its own hello) or refuse (a refuse frame).
 * Any protocol violation closes this connection only, with a logged reason;
 * nothing here throws on peer input. Every close is bounded: a graceful close (`end`) that has not
 * finished after `closeTimeoutMs` becomes a `destroy`. `onClosed` is called exactly once.
 */
import type { Socket } from "node:net";
import { assert } from "../lib/assert.ts";
import type { ByteParts } from "../lib/byte-parts.ts";
import type { NodeId } from "../types/ids.ts";
import {
  encodeFrame,
  FrameDecoder,
  FrameType,
  frameHeaderBytes,
  MessageAssembler,
  partLengthBytes,
  writeFrameHeader,
} from "./frame.ts";
import { decodeHello, type Hello } from "./hello.ts";
import type { ConnectionInfo, TransportLog } from "./transport.ts";

/** Bodies at least this large are written as their own chunk instead of being copied into a batch. */
const coalesceBodyBytesMax = 16 * 1024;
/** Longest refusal reason sent to a peer, in bytes. */
const refuseReasonBytesMax = 256;

export type ConnectionState = "connecting" | "handshaking" | "open" | "closing" | "closed";
export type ConnectionDirection = "inbound" | "outbound";

export type ConnectionOwner = {
  /** The peer's hello arrived; the owner must call `accept` or `refuse` before returning. */
  readonly onHello: (connection: Connection, hello: Hello) => void;
  readonly onMessage: (connection: Connection, body: Uint8Array) => void;
  /** The socket can take more bytes again after `writeMessages` returned false. */
  readonly onDrain: (connection: Connection) => void;
  /** `protocolError` is true when the close was caused by a bad frame or a refusal. */
  readonly onClosed: (connection: Connection, reason: string, protocolError: boolean) => void;
};

export type ConnectionConfig = {
  readonly id: number;
  readonly direction: ConnectionDirection;
  /** The peer an outbound connection dials; null for inbound ones until their hello is accepted. */
  readonly peer: NodeId | null;
  readonly hello: Uint8Array;
  readonly frameBytesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly keepAliveDelayMs: number;
  readonly log: TransportLog;
};

export class Connection {
  readonly id: number;
  readonly direction: ConnectionDirection;
  readonly socket: Socket;
  #state: ConnectionState;
  #peer: NodeId | null;
  /** The peer's incarnation from its accepted hello. */
  remoteIncarnation: string | null = null;
  readonly #config: ConnectionConfig;
  readonly #owner: ConnectionOwner;
  readonly #decoder: FrameDecoder;
  readonly #assembler: MessageAssembler;
  #timer: NodeJS.Timeout | null = null;
  #closeReason: string | null = null;
  #protocolError = false;
  /** Set by `accept`; only an accepted connection delivers messages, even while it closes. */
  #accepted = false;

  constructor(socket: Socket, config: ConnectionConfig, owner: ConnectionOwner) {
    this.id = config.id;
    this.direction = config.direction;
    this.socket = socket;
    this.#peer = config.peer;
    this.#config = config;
    this.#owner = owner;
    this.#decoder = new FrameDecoder(config.frameBytesMax);
    this.#assembler = new MessageAssembler(config.frameBytesMax - frameHeaderBytes);
    this.#state = config.direction === "outbound" ? "connecting" : "handshaking";
    this.#timer = setTimeout(() => this.#onHandshakeTimeout(), config.handshakeTimeoutMs);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", (error: NodeJS.ErrnoException) =>
      this.#setReason(`socket-error:${error.code ?? error.message}`),
    );
    socket.on("close", () => this.#onClose());
    socket.on("drain", () => this.#state === "open" && this.#owner.onDrain(this));
    if (config.direction === "outbound") socket.once("connect", () => this.#onConnected());
    else this.#onConnected();
  }

  /** Known once the hello is accepted, or from the start for outbound connections. */
  get peer(): NodeId | null {
    return this.#peer;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The owner accepts the peer's hello: the connection carries messages from now on. */
  accept(peer: NodeId, incarnation: string): void {
    assert(this.#state === "handshaking", `accept in state ${this.#state}`);
    assert(this.peer === null || this.peer === peer, "accepted peer differs from the dialled one");
    this.#peer = peer;
    this.remoteIncarnation = incarnation;
    this.#accepted = true;
    this.#state = "open";
    this.#clearTimer();
    if (this.direction === "inbound") this.socket.write(encodeFrame(FrameType.hello, this.#config.hello));
  }

  /** The owner refuses the peer: tell it why, then close. */
  refuse(reason: string): void {
    assert(this.#state === "handshaking", `refuse in state ${this.#state}`);
    const reasonBytes = Buffer.from(reason, "utf8").subarray(0, refuseReasonBytesMax);
    this.socket.write(encodeFrame(FrameType.refuse, reasonBytes));
    this.close(`refused:${reason}`, { protocolError: true, graceful: true });
  }

  /**
   * Writes message frames in one batch: small frames are copied into one buffer, large bodies are
   * written as their own chunk, all under cork so the batch leaves in one system call. Returns
   * false when the socket asked the writer to wait for `drain`.
   */
  writeMessages(bodies: readonly Uint8Array[]): boolean {
    assert(this.#state === "open", `write in state ${this.#state}`);
    assert(bodies.length > 0, "empty batch");
    this.socket.cork();
    let small: Uint8Array[] = [];
    let smallBytes = 0;
    const writeSmall = (): void => {
      if (small.length === 0) return;
      const batch = new Uint8Array(smallBytes);
      let offset = 0;
      for (const body of small) {
        writeFrameHeader(batch, offset, FrameType.message, body);
        batch.set(body, offset + frameHeaderBytes);
        offset += frameHeaderBytes + body.length;
      }
      assert(offset === smallBytes, "batch length mismatch");
      this.socket.write(batch);
      small = [];
      smallBytes = 0;
    };
    for (const body of bodies) {
      if (body.length < coalesceBodyBytesMax) {
        small.push(body);
        smallBytes += frameHeaderBytes + body.length;
        continue;
      }
      writeSmall();
      const header = new Uint8Array(frameHeaderBytes);
      writeFrameHeader(header, 0, FrameType.message, body);
      this.socket.write(header);
      this.socket.write(body);
    }
    writeSmall();
    this.socket.uncork();
    return !this.socket.writableNeedDrain;
  }

  /**
   * Writes one piece of a message of `messageBytes` bytes sent in pieces: `first` marks its first
   * piece (which then names the message's length), `last` its final one; a message has at least two.
   * The caller sends a message's pieces in order on one connection, and starts the next such message
   * only after the last piece of this one; other message frames may go between the pieces. Returns
   * false when the socket asked the writer to wait for `drain`.
   */
  writePart(piece: ByteParts, position: { first: boolean; last: boolean; messageBytes: number }): boolean {
    assert(this.#state === "open", `write in state ${this.#state}`);
    assert(!(position.first && position.last), "a message in pieces has at least two");
    const type = position.last ? FrameType.lastPart : FrameType.part;
    const body: Uint8Array[] = [];
    if (position.first) {
      const named = new Uint8Array(partLengthBytes);
      new DataView(named.buffer).setUint32(0, position.messageBytes);
      body.push(named);
    }
    body.push(...piece);
    const header = new Uint8Array(frameHeaderBytes);
    writeFrameHeader(header, 0, type, body);
    this.socket.cork();
    this.socket.write(header);
    for (const part of body) this.socket.write(part);
    this.socket.uncork();
    return !this.socket.writableNeedDrain;
  }

  /** Whether `writeMessages` may be called now without overfilling the socket buffer. */
  get writable(): boolean {
    return this.#state === "open" && !this.socket.writableNeedDrain && !this.socket.destroyed;
  }

  /** Closes the connection; `graceful` lets written bytes flush first (bounded by closeTimeoutMs). */
  close(reason: string, options: { protocolError?: boolean; graceful?: boolean } = {}): void {
    if (this.#state === "closed" || this.#state === "closing") return;
    this.#setReason(reason);
    this.#protocolError ||= options.protocolError === true;
    this.#state = "closing";
    this.#clearTimer();
    if (options.graceful === true) {
      this.socket.end();
      this.#timer = setTimeout(() => this.socket.destroy(), this.#config.closeTimeoutMs);
    } else {
      this.socket.destroy();
    }
  }

  /** Addresses and dialler of an accepted connection; `selfId` is this end's node id. */
  info(selfId: NodeId): ConnectionInfo | null {
    const { localAddress, localPort, remoteAddress, remotePort } = this.socket;
    if (this.peer === null || !this.#accepted || localAddress === undefined || remoteAddress === undefined) {
      return null;
    }
    return {
      dialedBy: this.direction === "inbound" ? this.peer : selfId,
      localAddress,
      localPort: localPort ?? 0,
      remoteAddress,
      remotePort: remotePort ?? 0,
    };
  }

  logFields(): Record<string, unknown> {
    return {
      connection: this.id,
      direction: this.direction,
      peer: this.peer,
      remote: `${this.socket.remoteAddress ?? "?"}:${this.socket.remotePort ?? "?"}`,
    };
  }

  #onConnected(): void {
    if (this.#state !== "connecting" && this.#state !== "handshaking") return;
    this.#state = "handshaking";
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, this.#config.keepAliveDelayMs);
    // The dialler speaks first; the acceptor answers only once it has checked the dialler's hello,
    // so for the dialler a hello in reply means "accepted" and it never reports a peer connected
    // that is about to refuse it.
    if (this.direction === "outbound") this.socket.write(encodeFrame(FrameType.hello, this.#config.hello));
  }

  #onData(chunk: Buffer): void {
    if (this.#state === "closed") return;
    const { frames, error } = this.#decoder.push(chunk);
    for (const frame of frames) {
      // A callback may have closed this connection; frames after a refusal are never delivered.
      if (!this.#readsFrames()) return;
      this.#onFrame(frame.type, frame.body);
    }
    if (error !== null) this.#rejectFrame(error.reason, error.detail);
  }

  #readsFrames(): boolean {
    return this.#state !== "closed" && (this.#state !== "closing" || this.#accepted);
  }

  #onFrame(type: FrameType, body: Uint8Array): void {
    if (type === FrameType.refuse) {
      const reason = Buffer.from(body).toString("utf8");
      this.#config.log("warn", "transport.connection.refused-by-peer", { ...this.logFields(), reason });
      this.close(`refused-by-peer:${reason}`, { protocolError: true });
    } else if (this.#state === "handshaking") {
      this.#onHandshakeFrame(type, body);
    } else if (type === FrameType.hello) {
      this.#rejectFrame("unexpected-hello", "a second hello on an open connection");
    } else if (!this.#accepted) {
      return;
    } else if (type === FrameType.part || type === FrameType.lastPart) {
      const { message, error } = this.#assembler.add(type, body);
      if (error !== null) this.#rejectFrame(error.reason, error.detail);
      else if (message !== null) this.#owner.onMessage(this, message);
    } else {
      this.#owner.onMessage(this, body);
    }
  }

  #onHandshakeFrame(type: FrameType, body: Uint8Array): void {
    if (type !== FrameType.hello) {
      this.#rejectFrame("expected-hello", `frame type ${type}`);
      return;
    }
    const decoded = decodeHello(body);
    if (!decoded.ok) {
      this.#rejectFrame("bad-hello", decoded.detail);
      return;
    }
    this.#owner.onHello(this, decoded.hello);
    assert(this.#state !== "handshaking", "hello neither accepted nor refused");
  }

  #onHandshakeTimeout(): void {
    const timeoutMs = this.#config.handshakeTimeoutMs;
    this.#config.log("warn", "transport.handshake.timeout", {
      ...this.logFields(),
      state: this.#state,
      timeoutMs,
    });
    this.close("handshake-timeout", { protocolError: true });
  }

  #rejectFrame(reason: string, detail: string): void {
    this.#config.log("warn", "transport.frame.rejected", { ...this.logFields(), reason, detail });
    this.close(`bad-frame:${reason}`, { protocolError: true });
  }

  #onEnd(): void {
    const truncated = this.#decoder.finish();
    if (truncated !== null && this.#state !== "closing") {
      this.#config.log("warn", "transport.frame.rejected", { ...this.logFields(), reason: truncated.reason });
    }
    this.#setReason("ended-by-peer");
  }

  #onClose(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#clearTimer();
    this.#owner.onClosed(this, this.#closeReason ?? "closed", this.#protocolError);
  }

  #setReason(reason: string): void {
    this.#closeReason ??= reason;
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
