// The SDK's VM lifecycle: fork, snapshot + create from it, suspend/resume,
// stop/start, delete. Each test makes its own VM(s).
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { TEST_TIMEOUT, cleanup, createVm, freestyle, rejectsWithCode, sh, token, trace, track } from './lib/env.mjs';

const opts = { timeout: TEST_TIMEOUT };

// Interrupts the guest took on the ACPI GED's line: one per new VM generation
// (a restore or fork), each making the vmgenid driver reseed the kernel's RNG.
async function vmGenerationNotifies(vm) {
  const awk = "awk '/ACPI:Ged/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }'";
  return Number((await sh(vm, `${awk} /proc/interrupts`)).trim());
}

describe('sdk: VM lifecycle', () => {
  beforeEach((t) => { trace.label = t.name; });
  after(cleanup, opts);

  it('fork({count: 2}): children see the parent file, not each other', opts, async () => {
    const { vm: parent } = await createVm();
    const mark = token();
    await parent.fs.writeTextFile('/root/parent.txt', mark);
    assert.match(await sh(parent, 'ls /sys/bus/acpi/drivers/vmgenid'), /VMGENCTR:00/, 'the vmgenid driver is bound');
    const notifiesBefore = await vmGenerationNotifies(parent);
    const { forks } = await parent.fork({ count: 2 });
    assert.equal(forks.length, 2);
    forks.forEach((f) => track(f.vmId));
    const ids = forks.map((f) => f.vmId);
    ids.forEach((id) => assert.match(id, /^[a-z0-9]{20}$/));
    assert.equal(new Set([...ids, parent.vmId]).size, 3, 'fork ids are new and distinct');
    for (const [i, f] of forks.entries()) {
      assert.equal(await f.vm.fs.readTextFile('/root/parent.txt'), mark);
      await f.vm.fs.writeTextFile(`/root/child-${i}.txt`, `child ${i}`);
    }
    for (const [i, f] of forks.entries()) {
      assert.equal(await f.vm.fs.exists(`/root/child-${i}.txt`), true);
      assert.equal(await f.vm.fs.exists(`/root/child-${1 - i}.txt`), false, `fork ${i} does not see its sibling's file`);
    }
    const random = [];
    for (const f of forks) {
      assert.ok(await vmGenerationNotifies(f.vm) > notifiesBefore, 'the child was told of its new VM generation');
      random.push(await sh(f.vm, 'head -c 16 /dev/urandom | od -An -tx1'));
    }
    assert.notEqual(random[0], random[1], 'the children draw different random numbers');
    assert.equal(await parent.fs.exists('/root/child-0.txt'), false, 'the parent sees no child file');
    assert.equal(await parent.fs.readTextFile('/root/parent.txt'), mark, 'the parent keeps running');
  });

  it('snapshot(), then vms.create({snapshotId}) sees the file', opts, async () => {
    const { vm } = await createVm();
    const mark = token();
    await vm.fs.writeTextFile('/root/snap.txt', mark);
    await sh(vm, 'sync');
    const snap = await vm.snapshot({ name: `sdk-${mark}` });
    assert.match(snap.snapshotId, /^sc-[a-z0-9]{20}$/);
    assert.equal(snap.sourceVmId, vm.vmId);
    const { vm: copy, vmId } = await createVm({ snapshotId: snap.snapshotId });
    assert.notEqual(vmId, vm.vmId);
    assert.equal(await copy.fs.readTextFile('/root/snap.txt'), mark);
    // The source VM goes on independently.
    await copy.fs.writeTextFile('/root/only-copy.txt', 'x');
    assert.equal(await vm.fs.exists('/root/only-copy.txt'), false);
    // Clean up the snapshot through the SDK as well.
    await cleanup();
    const del = await freestyle.vms.snapshots.delete({ snapshotId: snap.snapshotId });
    assert.equal(del.snapshotId, snap.snapshotId, 'the SDK types promise {snapshotId}');
    await rejectsWithCode(freestyle.vms.snapshots.delete({ snapshotId: snap.snapshotId }),
      ['SNAPSHOT_ALREADY_DELETED', 'SNAPSHOT_NOT_FOUND']);
  });

  it('suspend(), then exec resumes the VM transparently', opts, async () => {
    const { vm, vmId } = await createVm();
    const mark = token();
    await sh(vm, `echo ${mark} > /dev/shm/in-memory.txt`);
    const s = await vm.suspend();
    assert.equal(s.id, vmId);
    assert.equal((await vm.getInfo()).state, 'suspended');
    assert.equal(await sh(vm, 'cat /dev/shm/in-memory.txt'), `${mark}\n`, 'memory state survives suspend');
    assert.equal((await vm.getInfo()).state, 'running');
  });

  it('stop() then start(): the disk persists (flattened by optimize, grown by resize meanwhile), the VM runs again', opts, async () => {
    const { vm, vmId } = await createVm({ persistence: { type: 'persistent' } });
    const dfMiB = async () => Number((await sh(vm, 'df -B1M --output=size / | tail -1')).trim());
    const mark = token();
    await vm.fs.writeTextFile('/root/persist.txt', mark);
    await sh(vm, 'sync');
    const before = await dfMiB();
    // A snapshot stacks a layer on the VM's disk; optimize merges them once it is stopped.
    const snap = await vm.snapshot();
    const stopped = await vm.stop();
    assert.equal(stopped.vmId, vmId);
    assert.equal((await vm.getInfo()).state, 'stopped');
    const optimized = await vm.optimize();
    assert.match(optimized.message, /^flattened the VM's \d+ disk layers into one$/, optimized.message);
    await freestyle.vms.snapshots.delete({ snapshotId: snap.snapshotId });
    // A stopped VM's disk grows at once, its filesystem at the next start.
    await vm.resize({ rootfsSizeGb: Math.ceil(before / 1024) + 1 });
    const started = await vm.start();
    assert.equal(started.id, vmId);
    assert.ok(Array.isArray(started.domains));
    assert.equal((await vm.getInfo()).state, 'running');
    assert.equal(await vm.fs.readTextFile('/root/persist.txt'), mark);
    assert.equal(await sh(vm, 'echo up'), 'up\n');
    const after = await dfMiB();
    assert.ok(after > before + 512, `df: ${before} MiB before, ${after} MiB after the resize and start`);
  });

  it('delete(): the VM is gone (VM_DELETED / VM_NOT_FOUND as SDK errors)', opts, async () => {
    const { vm, vmId } = await createVm();
    const r = await vm.delete();
    assert.equal(r.id, vmId);
    await rejectsWithCode(vm.getInfo(), ['VM_DELETED', 'VM_NOT_FOUND']);
    await rejectsWithCode(vm.exec('true'), ['VM_DELETED', 'VM_NOT_FOUND']);
    const list = await freestyle.vms.list();
    assert.ok(!list.vms.some((v) => v.id === vmId), 'a deleted VM is not listed');
  });
});
