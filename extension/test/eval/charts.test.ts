// Eval metrics (eval/<arm>/<group>/<stat>, written by conscience.eval and by evaluation during
// training) become dashboard charts with one series per arm, so they show as curves over steps.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chartSpecs } from '../../src/core/dashboard/charts';

describe('eval charts in the dashboard', () => {
  it('one chart per eval measure, one series per arm', () => {
    const keys = ['reward', 'loss', 'eval/label/harmful/refusal', 'eval/fixed:8/harmful/refusal', 'eval/label/benign/refusal',
      'eval/label/all/safety_tokens', 'eval/none/all/safety_tokens', 'eval/label/all/format_ok', 'eval/done', 'eval/fixed:8/all/no_answer'];
    const byId = new Map(chartSpecs(keys).map((c) => [c.id, c]));
    assert.deepEqual(byId.get('eval-harmful')?.series, [{ key: 'eval/fixed:8/harmful/refusal', label: 'fixed:8' }, { key: 'eval/label/harmful/refusal', label: 'label' }]);
    assert.deepEqual(byId.get('eval-benign')?.series.map((s) => s.label), ['label']);
    assert.deepEqual(byId.get('eval-tokens')?.series.map((s) => s.label), ['label', 'none']);
    assert.deepEqual(byId.get('eval-no-answer')?.series, [{ key: 'eval/fixed:8/all/no_answer', label: 'fixed:8' }]);
    assert.ok(byId.has('reward') && byId.has('loss'));
  });

  it('no eval chart for a run without eval metrics', () => {
    assert.deepEqual(chartSpecs(['reward', 'loss']).filter((c) => c.id.startsWith('eval')), []);
  });
});
