// The SDK against the API without any VM: listing, auth, typed errors, and
// every VM method the SDK has reaching its route (an unknown but well-formed
// VM id must come back as VM_NOT_FOUND, never "no such endpoint" or 405).
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Errors } from 'freestyle-sandboxes';
import { TEST_TIMEOUT, client, freestyle, rejectsWithCode, trace } from './lib/env.mjs';

const opts = { timeout: TEST_TIMEOUT };
const UNKNOWN = 'abcdefghij0123456789';

describe('sdk: API without VMs', () => {
  beforeEach((t) => { trace.label = t.name; });

  it('vms.list() returns the list shape', opts, async () => {
    const r = await freestyle.vms.list();
    assert.ok(Array.isArray(r.vms));
    for (const k of ['totalCount', 'runningCount', 'startingCount', 'suspendedCount', 'stoppedCount'])
      assert.equal(typeof r[k], 'number', k);
  });

  it('a wrong API key is an UnauthorizedError', opts, async () => {
    const bad = client({ apiKey: 'fvm_not-a-real-key' });
    await assert.rejects(bad.vms.list(), Errors.UnauthorizedError);
  });

  it('an unknown VM is a VmNotFoundError with the parsed body', opts, async () => {
    const vm = freestyle.vms.ref({ vmId: UNKNOWN });
    await assert.rejects(vm.getInfo(), (e) => {
      assert.ok(e instanceof Errors.VmNotFoundError, `${e.name}: ${e.message}`);
      assert.equal(e.body.code, 'VM_NOT_FOUND');
      assert.equal(e.body.error, 'VM_NOT_FOUND');
      assert.match(e.message, /^VM_NOT_FOUND: /);
      return true;
    });
  });

  it('a malformed VM id is an InvalidVmIdError', opts, async () => {
    await rejectsWithCode(freestyle.vms.ref({ vmId: 'Not-A-Vm-Id' }).getInfo(), 'INVALID_VM_ID');
  });

  it('every VM method of the SDK reaches its route (VM_NOT_FOUND for an unknown id)', opts, async () => {
    const vm = freestyle.vms.ref({ vmId: UNKNOWN });
    const svc = vm.systemd.service('sdk-svc');
    const calls = {
      'vm.start': () => vm.start(),
      'vm.stop': () => vm.stop(),
      'vm.suspend': () => vm.suspend(),
      'vm.kill': () => vm.kill(),
      'vm.waitForExit': () => vm.waitForExit(),
      'vm.optimize': () => vm.optimize(),
      'vm.snapshot': () => vm.snapshot(),
      'vm.fork': () => vm.fork({ count: 1 }),
      'vm.resize': () => vm.resize({ rootfsSizeGb: 20 }),
      'vm.exec': () => vm.exec('true'),
      'vm.user().exec': () => vm.user({ username: 'root' }).exec('true'),
      'vm.fs.readFile': () => vm.fs.readFile('/home/user/a b/ü?#%.txt'),
      'vm.fs.writeFile': () => vm.fs.writeFile('/tmp/x y.bin', Buffer.from([0, 255])),
      'vm.fs.readDir': () => vm.fs.readDir('/'),
      'vm.systemd.list': () => vm.systemd.list(),
      'vm.systemd.create': () => vm.systemd.create({ name: 'sdk-svc', mode: 'service', exec: ['sleep 1'] }),
      'service.status': () => svc.status(),
      'service.logs': () => svc.logs({ lines: 5, since: '2024-01-01T00:00:00Z' }),
      'service.start': () => svc.start(),
      'service.stop': () => svc.stop(),
      'service.restart': () => svc.restart(),
      'service.delete': () => svc.delete(),
      'vm.terminals.list': () => vm.terminals.list(),
      'vm.terminals.getLogs': () => vm.terminals.getLogs({ terminalId: 'term 1' }),
      'vm.terminals.getOutput': () => vm.terminals.getOutput({ terminalId: 'term 1' }),
      'vm.delete': () => vm.delete(),
      'vms.delete': () => freestyle.vms.delete({ vmId: UNKNOWN }),
    };
    const wrong = [];
    for (const [name, call] of Object.entries(calls)) {
      try {
        await call();
        wrong.push(`${name}: resolved`);
      } catch (e) {
        const code = e?.body?.code;
        if (code !== 'VM_NOT_FOUND' && !(name === 'vm.fork' && code === 'FORK_VM_NOT_FOUND'))
          wrong.push(`${name}: ${e?.name}: ${e?.message}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('vm.fs.watchFiles() on an unknown VM fails with the HTTP status', opts, async () => {
    const vm = freestyle.vms.ref({ vmId: UNKNOWN });
    await assert.rejects(async () => {
      for await (const _ of vm.fs.watchFiles()) break;
    }, /Failed to watch files: 404/);
  });

  it('snapshots.delete of an unknown snapshot is a SnapshotNotFoundError', opts, async () => {
    await rejectsWithCode(freestyle.vms.snapshots.delete({ snapshotId: 'sc-abcdefghij0123456789' }),
      'SNAPSHOT_NOT_FOUND');
    await rejectsWithCode(freestyle.vms.snapshots.delete({ snapshotId: 'not-a-snapshot' }),
      ['INVALID_SNAPSHOT_ID', 'SNAPSHOT_NOT_FOUND']);
  });

  it('vms.create from an unknown snapshot is a typed error', opts, async () => {
    await rejectsWithCode(freestyle.vms.create({ snapshotId: 'sc-abcdefghij0123456789' }),
      ['SNAPSHOT_NOT_FOUND', 'CREATE_VM_BAD_REQUEST']);
  });
});
