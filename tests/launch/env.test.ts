// The host Python environment path: a venv built from pinned requirements (uv when present,
// else python3 -m venv + pip), reused while the requirements' hash is unchanged, rebuilt when
// it changes. Same code as the real runtime environment, with a tiny pin list instead of
// torch/trl so the test takes seconds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensurePython } from '../../extension/src/core/launch/env';
import { LocalHost } from '../../extension/src/core/launch/host';
import { parseTarget } from '../../extension/src/core/launch/targets';

describe('host python environment', { timeout: 600_000 }, () => {
  it('builds a venv from the pins once, reuses it while the hash holds, and rebuilds on change', async () => {
    const root = mkdtempSync(join(tmpdir(), 'env-ws-'));
    const base = mkdtempSync(join(tmpdir(), 'env-host-'));
    try {
      writeFileSync(join(root, 'pins.txt'), 'six==1.17.0\n');
      const t = parseTarget('here', { type: 'local', requirements: 'pins.txt' });
      const host = new LocalHost();
      const messages: string[] = [];
      const first = await ensurePython(host, t, root, base, (m) => messages.push(m));
      assert.equal(first.built, true);
      assert.ok(first.tool === 'uv' || first.tool === 'venv');
      assert.ok(existsSync(first.python), first.python);
      assert.ok(messages.some((m) => /building the Python environment/.test(m)), 'progress is reported');
      const r = spawnSync(first.python, ['-c', 'import six; print(six.__version__)'], { encoding: 'utf8' });
      assert.equal(r.stdout.trim(), '1.17.0', r.stderr);

      const again = await ensurePython(host, t, root, base);
      assert.deepEqual([again.built, again.python], [false, first.python], 'same pins: the environment is reused');

      writeFileSync(join(root, 'pins.txt'), 'six==1.16.0\n');
      const changed = await ensurePython(host, t, root, base);
      assert.equal(changed.built, true);
      assert.notEqual(changed.python, first.python);

      // an explicit interpreter is used as is; a missing one is a clear error
      const given = await ensurePython(host, parseTarget('x', { type: 'local', python: first.python }), root, base);
      assert.deepEqual([given.built, given.python], [false, first.python]);
      await assert.rejects(ensurePython(host, parseTarget('y', { type: 'local', python: '/no/such/python' }), root, base), /not a working Python 3/);
      await assert.rejects(ensurePython(host, parseTarget('z', { type: 'local', requirements: 'missing.txt' }), root, base), /cannot read requirements .*missing\.txt/);
    } finally {
      // two virtual environments, about 50 MB
      rmSync(base, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
    }
  });
});
