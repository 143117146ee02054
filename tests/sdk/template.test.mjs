// Templates and specs through the SDK: a layer is built once into a snapshot
// (a real VM given the layer's files, users and services, snapshotted, then
// deleted) and every later request for it restores that snapshot.
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { VmSpec, VmTemplate } from 'freestyle-sandboxes';
import { TEST_TIMEOUT, cleanup, createVm, freestyle, http, sh, token, trace, until } from './lib/env.mjs';

const opts = { timeout: TEST_TIMEOUT };

describe('sdk: templates and specs', () => {
  beforeEach((t) => { trace.label = t.name; });
  after(cleanup, opts);

  it('snapshots.ensure builds a template once; vms.create from it has its files and running service', opts, async () => {
    const mark = token();
    const template = () => new VmTemplate({
      discriminator: mark,  // a layer of its own, whatever earlier runs left in the cache
      additionalFiles: { '/etc/forkvm-template': { content: mark } },
      users: [{ name: 'builder' }],
      systemd: {
        services: [{ name: 'ticker', mode: 'service', bash: 'while true; do date +%s%N > /run/tick; sleep 0.2; done' }],
      },
    });
    const { snapshotId } = await freestyle.vms.snapshots.ensure({ template: template() });
    assert.match(snapshotId, /^sc-[a-z0-9]{20}$/);
    const again = await freestyle.vms.snapshots.ensure({ template: template() });
    assert.equal(again.snapshotId, snapshotId, 'the same template is answered from the cache');

    const info = await http('GET', `/v1/vms/snapshots/${snapshotId}`);
    assert.equal(info.status, 200, info.text);
    const build = await http('GET', `/v1/vms/builds/${info.json.buildId}`);
    assert.equal(build.status, 200, build.text);
    assert.equal(build.json.state, 'succeeded');
    const phases = await http('GET', `/v1/vms/builds/${info.json.buildId}/phases`);
    assert.deepEqual(phases.json.phases.map((p) => p.name), build.json.plannedPhases);

    const { vm, vmId } = await createVm({ template: template() });
    assert.equal(await vm.fs.readTextFile('/etc/forkvm-template'), mark);
    assert.match(await sh(vm, 'id builder'), /uid=/);
    assert.equal((await sh(vm, 'systemctl is-active ticker')).trim(), 'active');
    const first = await sh(vm, 'cat /run/tick');
    await until('the service to keep ticking', async () => (await sh(vm, 'cat /run/tick')) !== first);
    const got = await http('GET', `/v1/vms/${vmId}/build`);
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.buildId, info.json.buildId, 'the VM names the build that made its snapshot');
  });

  it('a two-layer VmSpec: the VM has both layers, the inner one is shared through the cache', opts, async () => {
    const mark = token();
    const inner = () => new VmSpec({
      discriminator: mark,
      additionalFiles: { '/etc/layer-inner': { content: `inner ${mark}` } },
    });
    const spec = new VmSpec({
      additionalFiles: { '/etc/layer-outer': { content: `outer ${mark}` } },
      snapshot: inner(),
    });
    const { vm } = await createVm({ spec });
    assert.equal(await vm.fs.readTextFile('/etc/layer-inner'), `inner ${mark}`);
    assert.equal(await vm.fs.readTextFile('/etc/layer-outer'), `outer ${mark}`);
    // The inner layer is in the cache now: asking for it alone builds nothing.
    const before = (await http('GET', '/v1/vms/snapshots')).json.totalCount;
    const { snapshotId } = await freestyle.vms.snapshots.ensure({
      template: new VmTemplate({ discriminator: mark, additionalFiles: { '/etc/layer-inner': { content: `inner ${mark}` } } }),
    });
    const listed = await http('GET', '/v1/vms/snapshots');
    assert.equal(listed.json.totalCount, before, 'no new snapshot');
    const hit = listed.json.snapshots.find((s) => s.snapshotId === snapshotId);
    assert.ok(hit, `${snapshotId} is listed`);
    assert.ok(hit.templateHash && hit.buildId);
  });
});
