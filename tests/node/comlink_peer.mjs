#!/usr/bin/env node
// Node test peer for multifrost (wire protocol comlink_ipc_v4, see shared PROTOCOL.md).
//
// One file, zeromq (v6) + msgpackr + Node's standard library only. It is the Node counterpart
// of tests/python/comlink_peer.py and behaves like the upstream Node implementation, quirks
// included (each deliberate quirk is marked "QUIRK" below):
//
//   - values are packed with msgpackr's defaults: a JS number that is an integer outside the
//     32-bit range goes on the wire as a float64 (2 ** 40 is cb 42 70 00 ...), and 64-bit
//     integers that arrive are decoded as BigInt;
//   - outgoing values are sanitised: NaN and +-Infinity become nil, a BigInt becomes a
//     number (so a float64 as well), undefined is left out (a method that returns nothing
//     gives a response without `result`);
//   - a call carries `clientName`, not `client_name`;
//   - the child runs one message at a time: while a call runs it answers no heartbeat;
//   - the child echoes a heartbeat's metadata unchanged, without `hb_response`;
//   - an error reply holds the message only (no exception type, no stack);
//   - the child ignores (no reply) a call for another namespace;
//   - console.log / console.error inside the child are sent to the parent as `stdout` /
//     `stderr` messages (with the full ROUTER envelope, so they do arrive).
//
// Command line (a "--worker" argument is ignored, except in the argument list that
// parent-suite passes on to the child):
//
//   comlink_peer.mjs [worker]                       child, spawn mode (needs COMLINK_ZMQ_PORT)
//   comlink_peer.mjs parent-suite <executable> [args...]
//                                                   spawn <executable> as a child and run the
//                                                   math-worker suite against it: one line per
//                                                   check, then "N passed, M failed"; exit 1
//                                                   on any failure
//   comlink_peer.mjs parent-bench <executable> [args...]
//                                                   spawn, then print the p50/p99 latency of
//                                                   sequential add() calls and the rate with
//                                                   1,000 calls in flight (PEER_BENCH_CALLS,
//                                                   default 2000)
//   comlink_peer.mjs parent-call <executable> <function> [json args...]
//                                                   spawn, make one call, print the result as
//                                                   JSON (BigInt as a decimal string) or
//                                                   "ERROR <text>" and exit 1
//
// Environment: COMLINK_ZMQ_PORT (spawn mode), PEER_NAMESPACE (child namespace, and the
// namespace parent-call uses; default "default"), PEER_CONTRACT_ONLY=1 (parent-suite skips
// the checks of test-only methods: get_metadata, print_line, heartbeat_during_sleep).

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { format } from "node:util";

import { pack, unpack } from "msgpackr";
import { Dealer, Router } from "zeromq";

const APP = "comlink_ipc_v4";
const CLIENT_NAME = "node-peer";

const now = () => Date.now() / 1000;

// The console as it was, before the child redirects it to the parent.
const realConsole = { log: console.log.bind(console), error: console.error.bind(console) };

/**
 * What the Node implementation does to every value before packing it.
 * QUIRK: NaN/Infinity -> nil, BigInt -> number (float64 once outside 32 bits),
 * undefined left out of maps (nil inside arrays).
 */
function sanitize(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "bigint") return Number(value);
  if (value === undefined) return null;
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array) return value; // Buffer included: msgpack bin
  if (Array.isArray(value)) return value.map(sanitize);
  const out = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) out[key] = sanitize(item);
  }
  return out;
}

function encode(message) {
  return pack(sanitize(message));
}

/** A msgpack map, or null for anything else (garbage is dropped without a reply). */
function decode(payload) {
  try {
    const msg = unpack(payload);
    return msg !== null && typeof msg === "object" && !Array.isArray(msg) ? msg : null;
  } catch {
    return null;
  }
}

function envelope(id, type) {
  return { app: APP, id, type, timestamp: now() };
}

/**
 * A zeromq v6 socket allows one send in progress at a time: every send goes through this
 * chain, in order. A failed send is reported to its caller and does not stop the chain.
 */
class SendQueue {
  constructor(socket) {
    this.socket = socket;
    this.tail = Promise.resolve();
  }

  send(frames) {
    const sent = this.tail.then(() => this.socket.send(frames));
    this.tail = sent.catch(() => {});
    return sent;
  }
}

// ======================================================================================
// Child (worker) role.
// ======================================================================================

// Metadata of the call being executed, for get_metadata() (one call at a time).
let currentMetadata = null;

/** The cross-language "math worker" contract, plus the test-only methods of the Python peer. */
class MathWorker {
  constructor(namespace) {
    // Like the upstream ChildWorker: a public non-callable property.
    this.namespace = namespace;
  }

  add(a, b) {
    return a + b; // QUIRK: a BigInt and a number do not mix: TypeError, sent as the error
  }

  multiply(a, b) {
    return a * b;
  }

  divide(a, b) {
    if (b === 0) throw new Error("Cannot divide by zero");
    return a / b;
  }

  factorial(n) {
    if (n < 0) throw new Error("Factorial is not defined for negative numbers");
    let result = 1;
    for (let i = 2; i <= n; i++) result *= i;
    return result;
  }

  fibonacci(n) {
    let [a, b] = [0, 1];
    for (let i = 0; i < n; i++) [a, b] = [b, a + b];
    return a;
  }

  echo(value) {
    return value;
  }

  get_info() {
    return { language: "node", pid: process.pid };
  }

  throw_error(message) {
    throw new Error(message);
  }

  async async_add(a, b) {
    await null;
    return a + b;
  }

  async fibonacci_async(n) {
    await null;
    return this.fibonacci(n);
  }

  large_data(size) {
    return { data: Array.from({ length: size }, (_, i) => i), length: size };
  }

  async sleep(seconds) {
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    return seconds;
  }

  print_line(text) {
    console.log(text); // forwarded to the parent as a stdout message
  }

  get_metadata() {
    return currentMetadata;
  }

  _secret() {
    return "you should not see this";
  }
}

/** The method `name` of `worker`, or throws the error the Node implementation sends. */
function lookup(worker, name) {
  if (typeof name !== "string" || name === "") throw new Error("Message missing 'function' field");
  if (name.startsWith("_")) throw new Error(`Cannot call private method '${name}'`);
  // Own properties and the class's own methods only: not constructor, toString, ...
  const own =
    Object.hasOwn(worker, name) ||
    (name !== "constructor" && Object.hasOwn(Object.getPrototypeOf(worker), name));
  if (!own) throw new Error(`Function '${name}' not found`);
  const member = worker[name];
  if (typeof member !== "function") throw new Error(`'${name}' is not callable`);
  return member;
}

class ChildServer {
  constructor(worker, namespace) {
    this.worker = worker;
    this.namespace = namespace;
    this.socket = new Router({ linger: 1000 });
    this.out = new SendQueue(this.socket);
    // Routing ids of the parents heard from, for forwarded output.
    this.parents = new Map();
    this.stopping = false;
  }

  forwardOutput(type, text) {
    if (this.parents.size === 0) {
      (type === "stdout" ? realConsole.log : realConsole.error)(text);
      return;
    }
    const payload = encode({ ...envelope(randomUUID(), type), output: text });
    for (const sender of this.parents.values()) {
      this.out.send([sender, "", payload]).catch(() => {});
    }
  }

  redirectConsole() {
    console.log = (...args) => this.forwardOutput("stdout", format(...args));
    console.info = console.log;
    console.error = (...args) => this.forwardOutput("stderr", format(...args));
    console.warn = console.error;
  }

  reply(sender, message) {
    return this.out.send([sender, "", encode(message)]).catch(() => {});
  }

  async dispatch(msg) {
    try {
      if (!msg.id) throw new Error("Message missing 'id' field");
      const method = lookup(this.worker, msg.function);
      const args = Array.isArray(msg.args) ? msg.args : [];
      currentMetadata = msg.metadata ?? {};
      let result;
      try {
        result = await method.apply(this.worker, args);
      } finally {
        currentMetadata = null;
      }
      // QUIRK: undefined is left out by sanitize(): no `result` key means nil.
      return { ...envelope(msg.id, "response"), result };
    } catch (error) {
      // QUIRK: the message only.
      const text = error instanceof Error ? error.message : String(error);
      return { ...envelope(msg.id ?? randomUUID(), "error"), error: text };
    }
  }

  /** One message, handled completely before the next is read (QUIRK: like upstream). */
  async handle(frames) {
    if (frames.length < 2) return;
    const sender = frames[0];
    const msg = decode(frames[frames.length - 1]);
    if (msg === null || msg.app !== APP) return;
    this.parents.set(sender.toString("hex"), sender);
    switch (msg.type) {
      case "call":
        // QUIRK: a call for another namespace is ignored: the caller waits for its timeout.
        if ((msg.namespace ?? "default") !== this.namespace) return;
        await this.reply(sender, await this.dispatch(msg));
        return;
      case "heartbeat":
        // QUIRK: the metadata is echoed unchanged, without hb_response.
        await this.reply(sender, { ...envelope(msg.id, "heartbeat"), metadata: msg.metadata });
        return;
      case "shutdown":
        this.stopping = true;
        return;
      default:
        return; // unknown types are ignored
    }
  }

  async serve(endpoint) {
    this.socket.connect(endpoint);
    this.redirectConsole();
    try {
      for await (const frames of this.socket) {
        await this.handle(frames);
        if (this.stopping) break;
      }
    } catch (error) {
      if (!this.stopping) throw error;
    }
  }

  stop() {
    this.stopping = true;
    this.socket.close();
  }
}

async function runChild() {
  const namespace = process.env.PEER_NAMESPACE || "default";
  const portText = process.env.COMLINK_ZMQ_PORT ?? "";
  if (portText === "") {
    realConsole.error("FATAL: Need COMLINK_ZMQ_PORT env or service_id parameter");
    return 1;
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1024 || port > 65535) {
    realConsole.error(`FATAL: Invalid port '${portText}': must be an integer in 1024..65535`);
    return 1;
  }
  const server = new ChildServer(new MathWorker(namespace), namespace);
  const onSignal = () => {
    server.stop();
    process.exit(0);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  await server.serve(`tcp://127.0.0.1:${port}`);
  server.stop();
  return 0;
}

// ======================================================================================
// Parent (caller) role.
// ======================================================================================

class RemoteError extends Error {
  constructor(text) {
    super(typeof text === "string" ? text : format(text));
    this.name = "RemoteError";
    this.errorText = text;
  }
}

class TimeoutError extends Error {
  constructor(what, seconds) {
    super(`${what} got no reply within ${seconds}s`);
    this.name = "TimeoutError";
  }
}

/** DEALER side in spawn mode. Replies may arrive in any order; they are matched by id. */
class Parent {
  constructor() {
    this.socket = new Dealer({ linger: 0 });
    this.out = new SendQueue(this.socket);
    this.pending = new Map();
    this.output = []; // [type, text] from stdout/stderr messages
    this.unmatched = [];
    this.childStdout = [];
    this.childStderr = [];
    this.process = null;
    this.exited = null; // resolves with {code, signal} when the child exits
    this.closed = false;
  }

  static async spawn(executable, args, readyTimeout = 10) {
    const parent = new Parent();
    await parent.socket.bind("tcp://127.0.0.1:*");
    const port = Number(parent.socket.lastEndpoint.split(":").pop());
    parent.receiveLoop();
    const env = { ...process.env, COMLINK_ZMQ_PORT: String(port), COMLINK_WORKER_MODE: "1" };
    const child = spawn(executable, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    parent.process = child;
    parent.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => resolve({ code, signal }));
      child.on("error", (error) => resolve({ code: null, signal: null, error }));
    });
    drainLines(child.stdout, parent.childStdout);
    drainLines(child.stderr, parent.childStderr);
    try {
      await parent.waitReady(readyTimeout);
    } catch (error) {
      await parent.close();
      throw error;
    }
    return parent;
  }

  async receiveLoop() {
    try {
      for await (const frames of this.socket) this.onFrames(frames);
    } catch {
      // the socket was closed
    }
  }

  onFrames(frames) {
    const msg = decode(frames[frames.length - 1]); // the last frame is the payload
    if (msg === null) {
      this.unmatched.push(frames);
      return;
    }
    if (msg.type === "stdout" || msg.type === "stderr") {
      this.output.push([msg.type, msg.output]);
      return;
    }
    const waiter = this.pending.get(msg.id);
    if (waiter === undefined) {
      this.unmatched.push(msg);
      return;
    }
    this.pending.delete(msg.id);
    waiter(msg);
  }

  /** Sends `message` and resolves with the reply carrying its id; TimeoutError otherwise. */
  request(message, what, timeoutSeconds) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(message.id);
        reject(new TimeoutError(what, timeoutSeconds));
      }, timeoutSeconds * 1000);
      this.pending.set(message.id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.out.send(["", encode(message)]).catch((error) => {
        clearTimeout(timer);
        this.pending.delete(message.id);
        reject(error);
      });
    });
  }

  async call(fn, args = [], { namespace = "default", metadata = {}, timeout = 10 } = {}) {
    const message = {
      ...envelope(randomUUID(), "call"),
      function: fn,
      args,
      namespace,
      clientName: CLIENT_NAME, // QUIRK: not client_name
      metadata,
    };
    const reply = await this.request(message, `${fn}`, timeout);
    if (reply.type === "response") return reply.result ?? null;
    if (reply.type === "error") throw new RemoteError(reply.error);
    throw new Error(`unexpected reply type ${format(reply.type)}: ${format(reply)}`);
  }

  /** RTT in ms: (now - hb_timestamp) * 1000. */
  async heartbeat(timeout = 3) {
    const sentAt = now();
    const message = { ...envelope(randomUUID(), "heartbeat"), metadata: { hb_timestamp: sentAt } };
    const reply = await this.request(message, "heartbeat", timeout);
    if (reply.type !== "heartbeat") throw new Error(`heartbeat answered with ${format(reply)}`);
    const echoed = reply.metadata?.hb_timestamp;
    return (now() - (typeof echoed === "number" ? echoed : sentAt)) * 1000;
  }

  /**
   * The DEALER holds messages until the child connects, so one heartbeat is enough: its
   * echo means the child is serving. Fails at once if the child exits first.
   */
  async waitReady(timeout) {
    const exited = this.exited.then(({ code, signal, error }) => {
      const why = error ? error.message : `status ${code}, signal ${signal}`;
      const stderr = this.childStderr.slice(-5).join(" | ");
      throw new Error(`child exited before it was ready (${why}); stderr: ${stderr}`);
    });
    await Promise.race([this.heartbeat(timeout), exited]);
  }

  sendShutdown() {
    return this.out.send(["", encode(envelope(randomUUID(), "shutdown"))]);
  }

  /** Waits up to `seconds` for the child to exit; its {code, signal}, or null. */
  async waitExit(seconds) {
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), seconds * 1000);
    });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    return result;
  }

  /** Shutdown message, then SIGTERM after 2 s, then SIGKILL after 2 more. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    const child = this.process;
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      await Promise.race([this.sendShutdown().catch(() => {}), this.waitExit(1)]);
      if ((await this.waitExit(2)) === null) {
        child.kill("SIGTERM");
        if ((await this.waitExit(2)) === null) {
          child.kill("SIGKILL");
          await this.waitExit(5);
        }
      }
    }
    this.socket.close();
  }
}

function drainLines(stream, sink) {
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop();
    sink.push(...lines);
  });
  stream.on("end", () => {
    if (rest) sink.push(rest);
  });
}

// ======================================================================================
// Parent suite (the cross-language math-worker contract, as a Node parent sees it).
// ======================================================================================

/** Deep equality that also compares types (true is not 1, a Buffer is not a string). */
function same(a, b) {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(b);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]));
  }
  return typeof a === typeof b && Object.is(a, b);
}

/**
 * Numeric equality for results: a Rust child answers an i64 outside 32 bits as msgpack
 * int64, which msgpackr decodes as a BigInt; within 32 bits (or as a float) it is a number.
 */
function numEq(got, expected) {
  if (typeof got === "bigint") return typeof expected === "bigint" ? got === expected : got === BigInt(expected);
  return typeof got === "number" && got === Number(expected);
}

function show(value) {
  return format("%o", value).replace(/\n\s*/g, " ");
}

function assert(condition, detail) {
  if (!condition) throw new Error(detail);
}

async function expectRemoteError(promise, needles, { anyOf = false } = {}) {
  let value;
  try {
    value = await promise;
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    const text = String(error.errorText);
    const found = needles.filter((n) => text.includes(n));
    if ((anyOf && found.length > 0) || (!anyOf && found.length === needles.length)) return `"${text.split("\n")[0]}"`;
    throw new Error(`error text lacks ${show(needles)}: ${show(text)}`);
  }
  throw new Error(`expected an error reply, got result ${show(value)}`);
}

// Checks of test-only methods (not in the cross-language math contract).
const EXTRA_CHECKS = new Set(["get_metadata", "print_line", "heartbeat_during_sleep"]);

async function runSuite(parent) {
  let passed = 0;
  let failed = 0;
  const info = {}; // what get_info said: some checks depend on the child's language
  const contractOnly = process.env.PEER_CONTRACT_ONLY === "1";

  async function check(name, fn) {
    if (contractOnly && EXTRA_CHECKS.has(name)) {
      console.log(`skip ${name} (not in the math contract)`);
      return;
    }
    try {
      const detail = await fn();
      passed += 1;
      console.log(`ok ${name}${detail ? ` (${detail})` : ""}`);
    } catch (error) {
      failed += 1;
      let text = `${error.name}: ${error.message}`.replaceAll("\n", "\\n");
      if (text.length > 400) text = `${text.slice(0, 400)}...`;
      console.log(`FAIL ${name}: ${text}`);
    }
  }

  const checkValue = (name, fn, args, expected, cmp = same) =>
    check(name, async () => {
      const got = await parent.call(fn, args);
      assert(cmp(got, expected), `got ${show(got)}, expected ${show(expected)}`);
    });

  await check("heartbeat", async () => {
    const rtt = await parent.heartbeat();
    assert(rtt >= 0, `rtt ${rtt}`);
    return `rtt ${rtt.toFixed(2)} ms`;
  });

  await check("get_info", async () => {
    const got = await parent.call("get_info");
    assert(got !== null && typeof got === "object", `got ${show(got)}`);
    assert(typeof got.language === "string", `no language in ${show(got)}`);
    assert(Number.isInteger(got.pid), `no integer pid in ${show(got)}`);
    info.language = got.language;
    return `language=${got.language} pid=${got.pid}`;
  });

  await checkValue("add", "add", [1, 2], 3, numEq);
  await checkValue("multiply", "multiply", [6, 7], 42, numEq);
  await checkValue("divide", "divide", [10, 4], 2.5, numEq);
  await check("divide_by_zero", () => expectRemoteError(parent.call("divide", [1, 0]), ["zero"]));
  await checkValue("factorial", "factorial", [10], 3628800, numEq);
  await checkValue("fibonacci", "fibonacci", [50], 12586269025n, numEq);
  // An i64 reply outside 32 bits is msgpack int64 from Rust: msgpackr makes it a BigInt.
  await checkValue("factorial_20", "factorial", [20], 2432902008176640000n, numEq);

  // QUIRK on the way out: msgpackr packs these integers as float64; the Rust worker's i64
  // parameters must take a float64 that holds an exact integer.
  await check("float64_integer_args", async () => {
    const wire = pack(2 ** 40);
    assert(wire[0] === 0xcb, `msgpackr packed 2**40 as 0x${wire[0].toString(16)}, not float64`);
    const sum = await parent.call("add", [2 ** 40, 1]);
    assert(numEq(sum, 2 ** 40 + 1), `add(2**40, 1) = ${show(sum)}`);
    const product = await parent.call("multiply", [-(2 ** 33), 3]);
    assert(numEq(product, -(2 ** 33) * 3), `multiply(-(2**33), 3) = ${show(product)}`);
    return "add(2**40, 1), multiply(-(2**33), 3) sent as float64";
  });
  await check("bigint_args_go_as_float64", async () => {
    // QUIRK: the sanitiser turns a BigInt into a number before packing.
    const got = await parent.call("add", [2n ** 40n, 2n]);
    assert(numEq(got, 2 ** 40 + 2), `add(2n**40n, 2n) = ${show(got)}`);
  });

  await check("integral_timestamps", async () => {
    // QUIRK: Date.now() / 1000 is a whole number once in a thousand milliseconds, and msgpackr
    // then packs it as an integer: `timestamp` and `hb_timestamp` may arrive as msgpack ints.
    const whole = Math.floor(now());
    const message = { ...envelope(randomUUID(), "heartbeat"), timestamp: whole, metadata: { hb_timestamp: whole } };
    assert(pack(whole)[0] === 0xce, "msgpackr did not pack the whole timestamp as uint32");
    const reply = await parent.request(message, "heartbeat", 3);
    assert(reply.type === "heartbeat", `answered with ${show(reply)}`);
    assert(Number(reply.metadata?.hb_timestamp) === whole, `hb_timestamp echoed as ${show(reply.metadata)}`);
    const call = { ...envelope(randomUUID(), "call"), timestamp: whole, function: "add", args: [1, 2], namespace: "default", clientName: CLIENT_NAME };
    const answer = await parent.request(call, "add", 5);
    assert(answer.type === "response" && numEq(answer.result, 3), `add answered ${show(answer)}`);
  });

  const echoes = [
    ["none", null],
    ["true", true],
    ["int", 42],
    ["negative_int", -7],
    ["float", 1.5],
    ["str", "héllo ✓"],
    ["bytes", Buffer.from([0x00, 0xff, 0x62, 0x79, 0x74, 0x65, 0x73])],
    ["nested_list", [1, [2, [3]]]],
    ["nested_map", { a: { b: [1, 2] } }],
    ["empty_map", {}],
  ];
  for (const [label, value] of echoes) await checkValue(`echo_${label}`, "echo", [value], value);
  await check("echo_float64_integer", async () => {
    // 2**53 leaves as float64 and comes back as a float64 (echo keeps the value's kind).
    const got = await parent.call("echo", [2 ** 53]);
    assert(numEq(got, 2 ** 53), `got ${show(got)}`);
    return `came back as ${typeof got}`;
  });
  await check("echo_nan_is_nil", async () => {
    const got = await parent.call("echo", [[1.5, NaN, Infinity]]);
    assert(same(got, [1.5, null, null]), `got ${show(got)}`);
  });

  await check("throw_error", () => expectRemoteError(parent.call("throw_error", ["boom"]), ["boom"]));
  await check("unknown_function", () =>
    expectRemoteError(parent.call("nope"), ["Function 'nope' not found"]),
  );
  await check("private_function", () =>
    expectRemoteError(parent.call("_secret"), ["private", "not found"], { anyOf: true }),
  );
  await checkValue("async_add", "async_add", [2, 3], 5, numEq);
  await checkValue("fibonacci_async", "fibonacci_async", [10], 55, numEq);

  await check("large_data", async () => {
    const got = await parent.call("large_data", [1000]);
    assert(got !== null && typeof got === "object", `got ${typeof got}`);
    assert(Array.isArray(got.data) && got.data.length === 1000, "data is not 1000 items");
    assert(numEq(got.data[999], 999), `data[999] = ${show(got.data[999])}`);
    assert(numEq(got.length, 1000), `length = ${show(got.length)}`);
  });

  await check("concurrent_200", async () => {
    const n = 200;
    const start = performance.now();
    const results = await Promise.all(Array.from({ length: n }, (_, i) => parent.call("add", [i, i], { timeout: 30 })));
    const wrong = results.map((got, i) => [i, got]).filter(([i, got]) => !numEq(got, 2 * i));
    assert(wrong.length === 0, `${wrong.length} wrong, first ${show(wrong.slice(0, 3))}`);
    return `${n} calls in ${(performance.now() - start).toFixed(0)} ms`;
  });

  await check("get_metadata", async () => {
    const got = await parent.call("get_metadata", [], { metadata: { user_key: "v" } });
    assert(got !== null && typeof got === "object", `got ${show(got)}`);
    assert(got.user_key === "v", `user_key missing in ${show(got)}`);
  });

  await check("print_line", async () => {
    const marker = `node-peer-print-${randomUUID().slice(0, 8)}`;
    const got = await parent.call("print_line", [marker]);
    assert(got === null, `got ${show(got)}, expected nil`);
    const deadline = performance.now() + 2000;
    while (performance.now() < deadline) {
      if (parent.output.some(([, text]) => String(text).includes(marker))) return "output forwarded as a stdout message";
      if (parent.childStdout.some((line) => line.includes(marker))) return "output on the child's own stdout";
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error("output not seen");
  });

  await check("heartbeat_during_sleep", async () => {
    // A Node or Python child answers no heartbeat while a call runs (PROTOCOL.md section 2).
    if (info.language === "node" || info.language === "python") return `skipped: a ${info.language} child is busy`;
    const sleeping = parent.call("sleep", [1.0]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const rtt = await parent.heartbeat(0.7);
    const got = await sleeping;
    assert(numEq(got, 1.0), `sleep returned ${show(got)}`);
    return `rtt ${rtt.toFixed(2)} ms during a 1 s call`;
  });

  await check("namespace_mismatch", async () => {
    try {
      const value = await parent.call("add", [1, 2], { namespace: "other", timeout: 2 });
      throw new Error(`got a result ${show(value)} for namespace 'other'`);
    } catch (error) {
      if (error instanceof TimeoutError && info.language !== "rust") return `timeout: the ${info.language} child ignored it`;
      if (!(error instanceof RemoteError)) throw error;
      const text = String(error.errorText);
      assert(text.includes("other") && text.includes("default"), `error text lacks 'other'/'default': ${show(text)}`);
      return "error reply";
    }
  });

  await check("shutdown_stops_the_child", async () => {
    await parent.sendShutdown();
    const exit = await parent.waitExit(5);
    assert(exit !== null, "the child still runs 5 s after shutdown");
    assert(exit.code === 0, `exit ${show(exit)}`);
    return "exit status 0";
  });

  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

/** Sequential latency and in-flight throughput of add(i, 1), as a Node parent sees them. */
async function runBench(parent, count) {
  for (let i = 0; i < 200; i++) await parent.call("add", [i, 1]); // warm-up
  const micros = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await parent.call("add", [i, 1]);
    micros.push((performance.now() - start) * 1000);
  }
  micros.sort((a, b) => a - b);
  const at = (q) => micros[Math.min(micros.length - 1, Math.floor(q * micros.length))].toFixed(0);
  console.log(`sequential ${count} calls: p50 ${at(0.5)} us, p99 ${at(0.99)} us`);
  const inFlight = 1000;
  const rounds = Math.max(1, Math.floor(count / inFlight));
  const start = performance.now();
  for (let r = 0; r < rounds; r++) {
    await Promise.all(Array.from({ length: inFlight }, (_, i) => parent.call("add", [i, r], { timeout: 60 })));
  }
  const seconds = (performance.now() - start) / 1000;
  console.log(`${inFlight} in flight: ${((rounds * inFlight) / seconds).toFixed(0)} calls/s`);
  return 0;
}

async function withParent(executable, args, body) {
  let parent;
  try {
    parent = await Parent.spawn(executable, args);
  } catch (error) {
    console.log(`FAIL start: ${error.name}: ${error.message}`.replaceAll("\n", "\\n"));
    return null;
  }
  try {
    return await body(parent);
  } finally {
    await parent.close();
  }
}

/** Arguments of parent-call: JSON when they parse, plain strings otherwise. */
function parseArg(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function toJson(value) {
  return JSON.stringify(value, (_, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Uint8Array || v?.type === "Buffer") return { $bin: Buffer.from(v.data ?? v).toString("base64") };
    return v;
  });
}

// ======================================================================================
// Command line.
// ======================================================================================

async function main(argv) {
  const mode = argv[0];
  if (mode === "parent-suite") {
    if (argv.length < 2) return usage();
    const code = await withParent(argv[1], argv.slice(2), runSuite);
    if (code === null) {
      console.log("0 passed, 1 failed");
      return 1;
    }
    return code;
  }
  if (mode === "parent-call") {
    if (argv.length < 3) return usage();
    const namespace = process.env.PEER_NAMESPACE || "default";
    const code = await withParent(argv[1], [], async (parent) => {
      try {
        const result = await parent.call(argv[2], argv.slice(3).map(parseArg), { namespace });
        console.log(toJson(result));
        return 0;
      } catch (error) {
        console.log(`ERROR ${error instanceof RemoteError ? error.errorText : error.message}`);
        return 1;
      }
    });
    return code ?? 1;
  }
  if (mode === "parent-bench") {
    if (argv.length < 2) return usage();
    const count = Number(process.env.PEER_BENCH_CALLS || 2000);
    return (await withParent(argv[1], argv.slice(2), (parent) => runBench(parent, count))) ?? 1;
  }
  const rest = argv.filter((a) => a !== "--worker");
  if (rest.length === 0 || (rest.length === 1 && rest[0] === "worker")) return runChild();
  return usage();
}

function usage() {
  realConsole.error(
    "usage: comlink_peer.mjs [worker] | parent-suite <executable> [args...] | " +
      "parent-bench <executable> [args...] | parent-call <executable> <function> [json args...]",
  );
  return 2;
}

// zeromq keeps the event loop alive: leave explicitly once done.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    realConsole.error(`FATAL: ${error?.stack ?? error}`);
    process.exit(1);
  },
);
