// Plain fetch against the endpoints the SDK does not call (stats stream,
// snapshot list/get/patch, resize, optimize, await, builds) and the error
// contract every client relies on.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  POLL_MS, TEST_TIMEOUT, apiKey, assertErrorBody, baseUrl, cleanup, http, httpCreateVm, token, until,
} from './lib/env.mjs';

const opts = { timeout: TEST_TIMEOUT };
const UNKNOWN_VM = 'abcdefghij0123456789';
const UNKNOWN_SNAP = 'sc-abcdefghij0123456789';
const exec = (id, command) => http('POST', `/v1/vms/${id}/exec-await`, { body: { command, terminal: null, timeoutMs: 60_000 } });

describe('http: without VMs', () => {
  it('healthz needs no key', opts, async () => {
    const r = await http('GET', '/healthz', { key: null });
    assert.equal(r.status, 200);
  });

  it('401 UNAUTHORIZED without a key or with a wrong key', opts, async () => {
    assertErrorBody(await http('GET', '/v1/vms', { key: null }), 401, 'UNAUTHORIZED');
    assertErrorBody(await http('GET', '/v1/vms', { key: 'fvm_wrong' }), 401, 'UNAUTHORIZED');
    assertErrorBody(await http('POST', '/v1/vms', { key: null, body: {} }), 401, 'UNAUTHORIZED');
  });

  it('GET /v1/vms returns the list shape', opts, async () => {
    const r = await http('GET', '/v1/vms?limit=10&offset=0');
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.json.vms));
    for (const k of ['totalCount', 'runningCount', 'startingCount', 'suspendedCount', 'stoppedCount'])
      assert.equal(typeof r.json[k], 'number', k);
  });

  it('unknown VM: 404 with {error, code, message}', opts, async () => {
    const r = await http('GET', `/v1/vms/${UNKNOWN_VM}`);
    assertErrorBody(r, 404, 'VM_NOT_FOUND');
    assert.equal(r.json.message, `VM not found: ${UNKNOWN_VM}`);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  });

  it('malformed VM id: 400 INVALID_VM_ID', opts, async () => {
    assertErrorBody(await http('GET', '/v1/vms/NOT-A-VM'), 400, 'INVALID_VM_ID');
  });

  it('malformed JSON: 400 with a code', opts, async () => {
    assertErrorBody(await http('POST', '/v1/vms', { raw: '{"name":', headers: { 'Content-Type': 'application/json' } }),
      400, 'CREATE_VM_BAD_REQUEST');
    const r = await http('POST', '/v1/vms/snapshots', { raw: '[1,', headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.code, r.json.error);
  });

  it('unknown endpoint 404 and wrong method 405 carry error bodies', opts, async () => {
    const nf = await http('GET', '/v1/nothing-here');
    assert.equal(nf.status, 404);
    assert.equal(nf.json.code, nf.json.error);
    const na = await http('PATCH', '/v1/vms');
    assert.equal(na.status, 405);
    assert.equal(na.json.code, na.json.error);
  });

  it('GET /v1/vms/snapshots returns the list shape', opts, async () => {
    for (const q of ['', '?includeDeleted=true&includeFailed=true&includeBuilding=true']) {
      const r = await http('GET', `/v1/vms/snapshots${q}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(Array.isArray(r.json.snapshots));
      for (const k of ['totalCount', 'buildingCount', 'readyCount', 'failedCount', 'cancelledCount', 'lostCount', 'deletedCount'])
        assert.equal(typeof r.json[k], 'number', k);
    }
  });

  it('unknown snapshot: get/patch/delete 404 SNAPSHOT_NOT_FOUND; bad id 400', opts, async () => {
    assertErrorBody(await http('GET', `/v1/vms/snapshots/${UNKNOWN_SNAP}`), 404, 'SNAPSHOT_NOT_FOUND');
    assertErrorBody(await http('PATCH', `/v1/vms/snapshots/${UNKNOWN_SNAP}`, { body: { name: 'x' } }), 404, 'SNAPSHOT_NOT_FOUND');
    assertErrorBody(await http('DELETE', `/v1/vms/snapshots/${UNKNOWN_SNAP}`), 404, 'SNAPSHOT_NOT_FOUND');
    assertErrorBody(await http('GET', '/v1/vms/snapshots/nope'), 400, 'INVALID_SNAPSHOT_ID');
  });

  it('builds: unknown build and its phases 404 BUILD_NOT_FOUND', opts, async () => {
    assertErrorBody(await http('GET', '/v1/vms/builds/bld-abcdefghij0123456789'), 404, 'BUILD_NOT_FOUND');
    assertErrorBody(await http('GET', '/v1/vms/builds/bld-abcdefghij0123456789/phases'), 404, 'BUILD_NOT_FOUND');
  });

  it('stats stream of an unknown VM: 404 VM_NOT_FOUND', opts, async () => {
    assertErrorBody(await http('GET', `/v1/vms/${UNKNOWN_VM}/stats/stream`), 404, 'VM_NOT_FOUND');
  });
});

describe('http: with a VM', () => {
  after(cleanup, opts);
  let creating;
  const vm = () => (creating ??= httpCreateVm());

  it('POST /v1/vms {} creates a VM', opts, async () => {
    const id = await vm();
    const r = await http('GET', `/v1/vms/${id}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, id);
  });

  it('stats/stream: NDJSON lines arrive, then the client aborts', opts, async () => {
    const id = await vm();
    const ac = new AbortController();
    const res = await fetch(`${baseUrl}/v1/vms/${id}/stats/stream?interval_ms=200`, {
      headers: { Authorization: `Bearer ${apiKey}` }, signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    const samples = [];
    let buf = '';
    const deadline = Date.now() + POLL_MS;
    try {
      while (samples.length < 2 && Date.now() < deadline) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) samples.push(JSON.parse(line));
        }
      }
    } finally {
      ac.abort();
    }
    assert.ok(samples.length >= 2, `two samples, got ${samples.length}`);
    for (const s of samples) {
      assert.equal(typeof s.timestamp, 'string');
      assert.equal(typeof s.memoryTotalBytes, 'number');
      assert.equal(typeof s.cpuPercent, 'number');
    }
    // The server is still fine after the abort.
    assert.equal((await http('GET', `/v1/vms/${id}`)).status, 200);
  });

  it('snapshot: list, get, patch name, delete', opts, async () => {
    const id = await vm();
    const name = `http-${token()}`;
    const s = await http('POST', `/v1/vms/${id}/snapshot`, { body: { name } });
    assert.equal(s.status, 200, s.text);
    const snapId = s.json.snapshotId;
    assert.match(snapId, /^sc-[a-z0-9]{20}$/);
    const got = await http('GET', `/v1/vms/snapshots/${snapId}`);
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.snapshotId, snapId);
    assert.equal(got.json.sourceVmId, id);
    assert.equal(got.json.name, name);
    const list = await http('GET', '/v1/vms/snapshots');
    assert.ok(list.json.snapshots.some((x) => x.snapshotId === snapId));
    const renamed = await http('PATCH', `/v1/vms/snapshots/${snapId}`, { body: { name: `${name}-2` } });
    assert.equal(renamed.status, 200, renamed.text);
    assert.equal(renamed.json.name, `${name}-2`);
    assert.equal((await http('GET', `/v1/vms/snapshots/${snapId}`)).json.name, `${name}-2`);
    const bad = await http('PATCH', `/v1/vms/snapshots/${snapId}`, { raw: '{', headers: { 'Content-Type': 'application/json' } });
    assert.equal(bad.status, 400);
    const del = await http('DELETE', `/v1/vms/snapshots/${snapId}`);
    assert.equal(del.status, 200, del.text);
    assert.equal((await http('GET', `/v1/vms/snapshots/${snapId}`)).json.deleted, true);
    assertErrorBody(await http('DELETE', `/v1/vms/snapshots/${snapId}`), 409, 'SNAPSHOT_ALREADY_DELETED');
  });

  it('resize: the root filesystem of a running VM grows at once; shrinking is refused', opts, async () => {
    const id = await vm();
    const sizeMiB = async () => {
      const e = await exec(id, 'df -B1M --output=size / | tail -1');
      assert.equal(e.status, 200, e.text);
      return Number(e.json.stdout.trim());
    };
    const before = await sizeMiB();
    const gb = Math.ceil(before / 1024) + 1;
    const r = await http('POST', `/v1/vms/${id}/resize`, { body: { rootfsSizeGb: gb } });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json && typeof r.json === 'object');
    const after = await sizeMiB();
    assert.ok(after > before + 512, `df: ${before} MiB before, ${after} MiB after growing the disk to ${gb} GiB`);
    const shrink = await http('POST', `/v1/vms/${id}/resize`, { body: { rootfsSizeGb: 1 } });
    assert.equal(shrink.status, 400, shrink.text);
    assert.equal(shrink.json.code, 'INVALID_PARAMETERS');
    assert.equal(await sizeMiB(), after, 'a refused shrink changes nothing');
    const bad = await http('POST', `/v1/vms/${id}/resize`, { body: { rootfsSizeGb: 'big' } });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json.code, bad.json.error);
  });

  it('optimize answers {id, message}', opts, async () => {
    const id = await vm();
    const r = await http('POST', `/v1/vms/${id}/optimize`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, id);
    assert.equal(typeof r.json.message, 'string');
  });

  it('GET /v1/vms/{id}/build of a VM not made by a build: 404', opts, async () => {
    const id = await vm();
    const r = await http('GET', `/v1/vms/${id}/build`);
    assert.equal(r.status, 404, r.text);
    assert.match(r.json.code, /^BUILD_NOT_FOUND/);
  });

  it('await: returns once the guest powers off', opts, async () => {
    const id = await httpCreateVm();
    const e = await exec(id, "setsid sh -c 'sleep 2; poweroff -f' >/dev/null 2>&1 < /dev/null &");
    assert.equal(e.status, 200, e.text);
    const r = await http('POST', `/v1/vms/${id}/await`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, id);
    assert.equal(typeof r.json.exitStatus, 'string');
    await until('state stopped', async () => (await http('GET', `/v1/vms/${id}`)).json?.state === 'stopped');
  });
});
