// A node:test reporter that keeps the verdicts of leaf tests (not suites) in
// the file named by FORKVM_SDK_COUNTS, rewritten after every verdict, so the
// runner can still count when it had to kill a hung run. One line per test:
// "PASS <file>: <suite> > <test>" or "FAIL ..." (the format tools/test reads).
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';

export default async function* countReporter(source) {
  const out = process.env.FORKVM_SDK_COUNTS;
  const lines = [];
  const stack = [];  // names of the enclosing suites, by nesting level
  for await (const { type, data } of source) {
    if (type === 'test:start') stack[data.nesting] = data.name;
    if (type !== 'test:pass' && type !== 'test:fail') continue;
    if (data.details?.type === 'suite' && type === 'test:pass') continue;
    // A failed suite with no failed children (a hook failed, the file did not
    // load) counts as one failure; a suite whose children failed does not
    // count again.
    const path = [...stack.slice(0, data.nesting), data.name].join(' > ');
    const name = `${data.file ? basename(data.file) : '?'}: ${path}`;
    if (data.details?.type === 'suite') {
      if (lines.some((l) => l.startsWith(`FAIL ${name} > `))) continue;
      const err = data.details?.error;
      // A timed-out/cancelled child already counted.
      if (err?.failureType === 'subtestsFailed') continue;
    }
    if (data.skip || data.todo) lines.push(`SKIP ${name}`);
    else lines.push(`${type === 'test:pass' ? 'PASS' : 'FAIL'} ${name}`);
    if (out) writeFileSync(out, lines.join('\n') + '\n');
  }
}
