// Shared setup for the SDK suite: the client, exactly as a user builds it
// (base URL and key from FREESTYLE_API_URL / FREESTYLE_API_KEY), plus small
// helpers. Nothing here changes what the SDK sends.
//
// The client gets a `fetch` option, the SDK's one documented transport hook.
// It forwards every request unchanged except for three things:
//  - a relative URL ("/v1/vms/<id>/watch-files": the SDK's watchFiles does not
//    prefix the base URL) is resolved against FREESTYLE_API_URL, the
//    client-side workaround from the wire notes (§10);
//  - each request gets an AbortSignal, so a test can end a watch stream (the
//    SDK's generator has no way to cancel its reader);
//  - with FORKVM_SDK_TRACE=FILE, one JSON line per request is appended to
//    FILE: the running test, method, path, body keys and the status.
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { Freestyle } from 'freestyle-sandboxes';

export const baseUrl = (process.env.FREESTYLE_API_URL ?? '').replace(/\/+$/, '');
export const apiKey = process.env.FREESTYLE_API_KEY ?? '';
if (!baseUrl || !apiKey) throw new Error('FREESTYLE_API_URL and FREESTYLE_API_KEY must be set (tests/sdk/run sets them)');

// Per-test timeout: guests run under nested emulation on CI and are slow.
export const TEST_TIMEOUT = Number(process.env.FORKVM_SDK_TEST_TIMEOUT_MS ?? 120_000);
// A bound for anything the tests poll for (service active, watch event).
export const POLL_MS = Math.min(60_000, TEST_TIMEOUT / 2);

const traceFile = process.env.FORKVM_SDK_TRACE;
export const trace = { label: '' };
const SLOW_MS = 60_000;

// With FORKVM_SDK_SERVE_DATA and _LOG (tests/sdk/run --serve sets them): what a VM a call
// has waited on for long says of itself, while it still exists (a timed-out
// test's cleanup deletes it): the server's lines about it, its VMM's log and
// its guest console's last lines.
const serveData = process.env.FORKVM_SDK_SERVE_DATA;
const serveLog = process.env.FORKVM_SDK_SERVE_LOG;
function tail(path, lines, filter = () => true) {
  try {
    const all = readFileSync(path, 'utf8').replaceAll('\r', '').split('\n');
    return all.filter((l) => l !== '' && filter(l)).slice(-lines).join('\n');
  } catch (e) {
    return `(${e.code ?? e.message})`;
  }
}
// Each thread of a process and of its children: name, state and where it
// sleeps in the kernel ("S futex_wait_queue": a lock; "S pipe_read": a pipe).
function threads(pid, depth = 0) {
  const read = (p) => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return '?';
    }
  };
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [`pid ${pid}: gone`];
  }
  const out = [];
  const children = [];
  for (const tid of tids) {
    const stat = read(`/proc/${pid}/task/${tid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime + stime, in clock ticks of 10 ms: a vCPU that spins shows here.
    const cpu = (Number(fields[11]) + Number(fields[12])) / 100;
    out.push(`${'  '.repeat(depth)}pid ${pid} thread ${tid} ${read(`/proc/${pid}/task/${tid}/comm`)}: ` +
      `${fields[0]} ${read(`/proc/${pid}/task/${tid}/wchan`)}, cpu ${cpu.toFixed(1)} s`);
    children.push(...read(`/proc/${pid}/task/${tid}/children`).split(' ').filter((c) => /^\d+$/.test(c)));
  }
  for (const c of children) if (depth < 2) out.push(...threads(c, depth + 1));
  return out;
}

// The VMs a stuck call waits on: the one its path names, or, for a create
// (no id in the path yet), the two whose consoles were written last (the
// golden VM's boot among them).
function describeCall(pathname) {
  if (!serveData) return '';
  const id = /^\/v1\/vms\/([a-z0-9]{20})(\/|$)/.exec(pathname)?.[1];
  if (id) return describeVm(id);
  const written = (v) => {
    try {
      return statSync(`${serveData}/vms/${v}/console.log`).mtimeMs;
    } catch {
      return 0;
    }
  };
  let ids = [];
  try {
    ids = readdirSync(`${serveData}/vms`).map((v) => [written(v), v]).sort((a, b) => b[0] - a[0]);
  } catch {
    // no VM directory yet
  }
  const lines = tail(serveLog, 12).split('\n').map((l) => `  serve: ${l}`);
  return ['sdk: the server\'s last lines:', ...lines, ''].join('\n') +
    ids.slice(0, 2).map(([, v]) => describeVm(v)).join('');
}

function describeVm(id) {
  const indent = (tag, text) => text.split('\n').map((l) => `  ${tag}: ${l}`).join('\n');
  const lines = [
    `sdk: VM ${id}, which this call waits on:`,
    indent('serve', tail(serveLog, 8, (l) => l.includes(id))),
    indent('vmm', tail(`${serveData}/vms/${id}/vmm.log`, 12)),
    indent('console', tail(`${serveData}/vms/${id}/console.log`, 25)),
    // The first lines of a stall or lockup report, which the tail above has scrolled past.
    indent('console faults', tail(`${serveData}/vms/${id}/console.log`, 12,
      (l) => /BUG:|rcu:|watchdog:|NMI|Oops|panic|CPU: \d/.test(l))),
  ];
  // A VMM still starting has no runtime file yet (or an old one): its command
  // line (`forkvm run|restore ...`) names the VM's directory. Only forkvm
  // processes are asked: reading a command line waits for that process's
  // memory map, which a process stuck in its kernel may hold for good.
  const pids = new Set([/^pid (\d+)$/m.exec(tail(`${serveData}/vms/${id}/runtime`, 10))?.[1]]);
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!['forkvm', 'exe'].includes(readFileSync(`/proc/${p}/comm`, 'utf8').trim())) continue;
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (['run', 'restore'].includes(argv[1]) && argv.some((a) => a.includes(`/vms/${id}/`))) pids.add(p);
    } catch {
      // gone meanwhile
    }
  }
  for (const pid of pids) if (pid) lines.push(indent('vmm threads', threads(pid).join('\n')));
  return lines.join('\n') + '\n';
}
let controller = new AbortController();

/** Aborts every request still open (watch streams), then arms a new signal. */
export function abortOpenRequests() {
  controller.abort(new Error('aborted by the test'));
  controller = new AbortController();
}

function bodyKeys(body) {
  if (typeof body !== 'string') return body == null ? null : '<non-JSON>';
  try {
    const v = JSON.parse(body);
    return v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v) : typeof v;
  } catch {
    return '<non-JSON>';
  }
}

async function transport(input, init = {}) {
  let url = typeof input === 'string' ? input : input.url;
  if (url.startsWith('/')) url = baseUrl + url;
  // A request still open after SLOW_MS names itself on stderr, so a test
  // that times out says which call it was waiting for.
  const started = Date.now();
  const what = () => `${init.method ?? 'GET'} ${new URL(url).pathname} (test: ${trace.label || '-'})`;
  let waits = 0;
  const slow = setInterval(() => {
    process.stderr.write(`sdk: still waiting after ${Math.round((Date.now() - started) / 1000)} s: ${what()}\n`);
    if (++waits === 2) process.stderr.write(describeCall(new URL(url).pathname));
  }, SLOW_MS);
  slow.unref();
  let res;
  try {
    res = await fetch(url, { ...init, signal: init.signal ?? controller.signal });
  } finally {
    clearInterval(slow);
  }
  if (Date.now() - started >= SLOW_MS) {
    process.stderr.write(`sdk: answered ${res.status} after ${Math.round((Date.now() - started) / 1000)} s: ${what()}\n`);
  }
  if (traceFile) {
    const u = new URL(url);
    appendFileSync(traceFile, JSON.stringify({
      test: trace.label,
      method: init.method ?? 'GET',
      path: u.pathname + u.search,
      bodyKeys: bodyKeys(init.body),
      headers: Object.keys(init.headers ?? {}).filter((h) => /^x-freestyle-vm|^content-type$/i.test(h)),
      status: res.status,
    }) + '\n');
  }
  return res;
}

/** A client as a user makes one: options from the environment, our transport. */
export function client(extra = {}) {
  return new Freestyle({ fetch: transport, ...extra });
}

export const freestyle = client();

// Every VM a test creates, deleted (best effort) by cleanup().
const created = new Set();
export function track(vmId) {
  if (vmId) created.add(vmId);
  return vmId;
}
export async function cleanup() {
  abortOpenRequests();
  await Promise.allSettled([...created].map((vmId) => freestyle.vms.delete({ vmId })));
  created.clear();
}

/** vms.create through the SDK, checked and tracked for cleanup. */
export async function createVm(opts) {
  const r = await freestyle.vms.create(opts);
  track(r.vmId);
  assert.match(r.vmId, /^[a-z0-9]{20}$/, 'VM ids are 20 lowercase alphanumerics');
  assert.ok(Array.isArray(r.domains), 'domains is an array');
  assert.equal(r.vm.vmId, r.vmId);
  return r;
}

/** exec that must succeed; returns stdout. */
export async function sh(vm, command) {
  const r = await vm.exec(command);
  assert.equal(r.statusCode, 0, `\`${command}\` exited ${r.statusCode}; stderr: ${r.stderr}`);
  return r.stdout ?? '';
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value or POLL_MS passes. */
export async function until(what, fn, ms = POLL_MS, every = 1000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}; last: ${last?.message ?? JSON.stringify(last)}`);
    await sleep(every);
  }
}

/** Asserts that promise rejects with an SDK error carrying one of `codes`. */
export async function rejectsWithCode(promise, codes) {
  codes = [codes].flat();
  await assert.rejects(promise, (e) => {
    const code = e?.body?.code ?? e?.constructor?.code;
    assert.ok(codes.includes(code), `expected an SDK error with code ${codes.join(' or ')}, got ${e?.name}: ${e?.message}`);
    assert.ok(e.message.startsWith(`${code}: `), `SDK error message starts with the code: ${e.message}`);
    return true;
  });
}

export const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
export const token = () => randomBytes(6).toString('hex');

/** Plain HTTP against the server, for endpoints the SDK does not call. */
export async function http(method, path, { body, key = apiKey, headers = {}, raw } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(baseUrl + path, {
    method,
    headers: h,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The error body every non-2xx must carry: error and code equal, a message. */
export function assertErrorBody(r, status, code) {
  assert.equal(r.status, status, `HTTP ${r.status}: ${r.text}`);
  assert.ok(r.json && typeof r.json === 'object', `JSON error body: ${r.text}`);
  assert.equal(r.json.code, code, r.text);
  assert.equal(r.json.error, code, r.text);
  assert.equal(typeof r.json.message, 'string');
  assert.ok(r.json.message.length > 0);
}

/** Creates a VM over plain HTTP (POST /v1/vms {}), tracked for cleanup. */
export async function httpCreateVm(body = {}) {
  const r = await http('POST', '/v1/vms', { body });
  assert.equal(r.status, 200, `create: HTTP ${r.status}: ${r.text}`);
  assert.match(r.json.id, /^[a-z0-9]{20}$/);
  return track(r.json.id);
}
