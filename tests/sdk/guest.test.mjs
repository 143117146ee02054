// The SDK against one VM made with the default image: exec, files, watch,
// terminals, systemd. The VM is created once (the first test checks it) and
// deleted at the end; every later test awaits the same creation, so a failed
// create fails each test quickly with the create error.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, beforeEach, describe, it } from 'node:test';
import {
  TEST_TIMEOUT, abortOpenRequests, cleanup, createVm, freestyle, rejectsWithCode, sh, sha256, sleep, token,
  trace, until,
} from './lib/env.mjs';

const opts = { timeout: TEST_TIMEOUT };
let creating;
const shared = () => (creating ??= createVm());

describe('sdk: one VM (default image)', () => {
  beforeEach((t) => { trace.label = t.name; });
  after(cleanup, opts);

  it('vms.create() with no options, then exec `echo hi` and `uname -a`', opts, async () => {
    const { vm, vmId } = await shared();
    const hi = await vm.exec('echo hi');
    assert.deepEqual({ stdout: hi.stdout, statusCode: hi.statusCode }, { stdout: 'hi\n', statusCode: 0 });
    const uname = await sh(vm, 'uname -a');
    assert.match(uname, /^Linux /);
    const info = await vm.getInfo();
    assert.equal(info.id, vmId);
    assert.equal(info.state, 'running');
    const list = await freestyle.vms.list();
    assert.ok(list.vms.some((v) => v.id === vmId), 'vms.list() shows the new VM');
  });

  it('exec: stderr and a non-zero exit status come back', opts, async () => {
    const { vm } = await shared();
    const r = await vm.exec({ command: 'echo to-out; echo to-err >&2; exit 7', timeoutMs: 60_000 });
    assert.equal(r.stdout, 'to-out\n');
    assert.equal(r.stderr, 'to-err\n');
    assert.equal(r.statusCode, 7);
  });

  it('fs: 1 MiB of random bytes round-trips (sha256 on both sides)', opts, async () => {
    const { vm } = await shared();
    const data = randomBytes(1024 * 1024);
    await vm.fs.writeFile('/tmp/sdk-random.bin', data);
    const back = await vm.fs.readFile('/tmp/sdk-random.bin');
    assert.equal(back.length, data.length);
    assert.equal(sha256(back), sha256(data));
    const inGuest = await sh(vm, 'sha256sum /tmp/sdk-random.bin');
    assert.equal(inGuest.split(' ')[0], sha256(data));
  });

  it('fs: text file with spaces and UTF-8 in the path, exists, stat', opts, async () => {
    const { vm } = await shared();
    const dir = '/tmp/sdk text dir';
    const file = `${dir}/héllo wörld.txt`;
    const text = 'line one\nzwei: äöü ✓\n';
    await vm.fs.mkdir(dir, true);
    await vm.fs.writeTextFile(file, text);
    assert.equal(await vm.fs.readTextFile(file), text);
    assert.equal(await sh(vm, `cat "${file}"`), text);
    assert.equal(await vm.fs.exists(file), true);
    assert.equal(await vm.fs.exists(`${dir}/missing`), false);
    const st = await vm.fs.stat(file);
    assert.equal(st.isFile, true);
    assert.equal(st.size, Buffer.byteLength(text));
    await rejectsWithCode(vm.fs.readFile(`${dir}/missing`), 'FILE_NOT_FOUND');
  });

  it('fs: readDir lists files and directories with their kinds', opts, async () => {
    const { vm } = await shared();
    const dir = `/tmp/sdk-dir-${token()}`;
    await vm.fs.mkdir(`${dir}/sub`, true);
    await vm.fs.writeTextFile(`${dir}/a.txt`, 'a');
    await vm.fs.writeFile(`${dir}/b.bin`, Buffer.from([0, 1, 2, 255]));
    const entries = await vm.fs.readDir(dir);
    const byName = Object.fromEntries(entries.map((e) => [e.name, e.kind]));
    assert.deepEqual(byName, { 'a.txt': 'file', 'b.bin': 'file', sub: 'directory' });
  });

  it('fs: watchFiles yields events while files are created', opts, async () => {
    const { vm } = await shared();
    // The watched root is the server's choice; create under the exec working
    // directory and match on a unique name.
    const cwd = (await sh(vm, 'pwd')).trim() || '/';
    const tag = `sdkwatch${token()}`;
    const dir = `${cwd.replace(/\/$/, '')}/${tag}`;
    await vm.fs.mkdir(dir, true);
    const events = [];
    let streamError;
    const reading = (async () => {
      try {
        for await (const ev of vm.fs.watchFiles()) events.push(ev);
      } catch (e) {
        streamError = e;
      }
    })();
    try {
      // No ready event in the SDK's framing: keep creating files until some arrive.
      const seen = await until('watch events for the new files', async () => {
        if (streamError && !/aborted/.test(String(streamError.message))) throw streamError;
        await vm.fs.writeTextFile(`${dir}/f-${events.length}-${Date.now()}.txt`, 'x');
        const mine = events.filter((e) => e.filename.includes(tag));
        return mine.length > 0 && mine;
      });
      for (const ev of seen) {
        assert.equal(typeof ev.eventType, 'string');
        assert.equal(typeof ev.filename, 'string');
      }
      assert.ok(seen.some((e) => /\.txt$/.test(e.filename)), JSON.stringify(seen));
    } finally {
      abortOpenRequests();
      await reading;
    }
    if (streamError && !/abort/i.test(`${streamError.name} ${streamError.message}`)) throw streamError;
  });

  it('terminals: exec in a named terminal, list, logs, output', opts, async () => {
    const { vm } = await shared();
    const name = `sdkterm${token()}`;
    const r = await vm.exec({ command: 'echo term-hello', terminal: name });
    assert.equal(r.statusCode ?? 0, 0);
    const { terminals } = await vm.terminals.list();
    const t = terminals.find((x) => x.name === name);
    assert.ok(t, `terminal ${name} listed: ${JSON.stringify(terminals)}`);
    assert.equal(typeof t.status, 'string');
    const logs = await until('terminal logs with the output', async () => {
      const { logs } = await vm.terminals.getLogs({ terminalId: name });
      return logs.some((l) => l.line.includes('term-hello')) && logs;
    });
    assert.ok(logs.length > 0);
    const out = await vm.terminals.getOutput({ terminalId: name });
    assert.equal(typeof out.output, 'string');
    assert.match(out.output, /term-hello/);
  });

  it('systemd: create a service, active, logs, stop, delete', opts, async () => {
    const { vm } = await shared();
    const name = `sdk-ticker-${token()}`;
    const out = `/tmp/${name}.log`;
    await vm.fs.writeTextFile(`/tmp/${name}.sh`,
      `#!/bin/sh\nwhile true; do echo tick >> ${out}; echo "ticked"; sleep 1; done\n`);
    const created = await vm.systemd.create({ name, mode: 'service', exec: [`/bin/sh /tmp/${name}.sh`] });
    assert.equal(created.success, true, JSON.stringify(created));
    const svc = vm.systemd.service(name);
    await until('service active', async () => (await svc.status()).activeState === 'active');
    const { services } = await vm.systemd.list();
    assert.ok(services.some((s) => s.name === name || s.name === `${name}.service`), JSON.stringify(services));
    await until('two ticks in the file', async () => {
      const r = await vm.exec(`wc -l < ${out}`);
      return r.statusCode === 0 && Number(r.stdout.trim()) >= 2;
    });
    const logs = await until('journal lines', async () => {
      const { logs } = await svc.logs({ lines: 20 });
      return logs.some((l) => l.message.includes('ticked')) && logs;
    });
    assert.equal(typeof logs[0].timestamp, 'string');
    const stopped = await svc.stop();
    assert.equal(stopped.results.length, 1);
    assert.equal(stopped.results[0].success, true, JSON.stringify(stopped));
    await until('service inactive', async () => (await svc.status()).activeState !== 'active');
    const n = Number((await sh(vm, `wc -l < ${out}`)).trim());
    await sleep(2500);
    assert.equal(Number((await sh(vm, `wc -l < ${out}`)).trim()), n, 'no ticks after stop');
    const deleted = await svc.delete();
    assert.equal(deleted.success, true);
    await rejectsWithCode(svc.status(), 'SERVICE_NOT_FOUND');
  });
});
