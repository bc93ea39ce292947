// The runtime stacks a target can choose (`requirements:` in a target) and the TRL lines the
// validator knows are the same two: each stack's requirements file pins the TRL of one schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STACKS, requirementsPath } from '../../src/core/launch/env';
import { schemaForVersion, supportedSchemas } from '../../src/core/recipe';
import { REPO } from './helpers';

test('every stack a target can name has a requirements file that pins a TRL the validator has a schema for', () => {
  const lines = new Set<string>();
  for (const name of STACKS) {
    const rel = requirementsPath({ name: 't', type: 'local', requirements: name } as Parameters<typeof requirementsPath>[0]);
    const abs = join(REPO, rel);
    assert.ok(existsSync(abs), `${name} -> ${rel} exists`);
    const pin = /^trl(?:\[[^\]]*\])?==(\S+)$/m.exec(readFileSync(abs, 'utf8'))?.[1];
    assert.ok(pin, `${rel} pins trl`);
    const c = schemaForVersion(pin);
    assert.equal(c.schema.trlVersion, pin, `${rel}: TRL ${pin} has its own schema`);
    assert.equal(c.approximate, false);
    lines.add(pin);
    assert.equal(Number(pin.split('.')[0]) >= 1, name.endsWith('-current'), `${name} is ${name.endsWith('-current') ? 'the current (1.x)' : "open-r1's (0.18)"} line`);
  }
  assert.deepEqual([...lines].sort(), supportedSchemas().map((s) => s.trlVersion).sort());
  // A workspace file is passed through as is.
  assert.equal(requirementsPath({ name: 't', type: 'local', requirements: 'envs/mine.txt' } as Parameters<typeof requirementsPath>[0]), 'envs/mine.txt');
});

test('the Runs view names the stack a run used, from run_started.versions', async () => {
  const { runStack } = await import('../../src/core/runs/present');
  assert.equal(runStack({ versions: { python: '3.11.2', torch: '2.13.0+cpu', transformers: '5.24.0', trl: '1.16.0', accelerate: '1.15.0' } }), 'TRL 1.16.0 · transformers 5.24.0 · torch 2.13.0+cpu');
  assert.equal(runStack({ versions: { trl: '0.18.2', transformers: '4.52.4', torch: 'missing' } }), 'TRL 0.18.2 · transformers 4.52.4');
  assert.equal(runStack({}), undefined);
});
