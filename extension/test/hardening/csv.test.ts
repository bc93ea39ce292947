// Issue #16 item 7: a CSV prompt file with an unclosed quote made the rest of the file one
// field, buffered whole: memory grew with the file size. The reader now stops at the record
// cap with an error naming the line where the record starts; the count of bytes it pulled
// from the source is the bound checked (counted work, not a timing).
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { it } from 'node:test';
import { MAX_LINE_BYTES, readCsv, type ReadItem } from '../../src/core/allocator/read';

it('an unclosed quote is reported at its line and the reader stops after the record cap, not at the end of a 512 MB file', async () => {
  let pulled = 0;
  const MB = 1024 * 1024;
  const chunk = Buffer.from('more text, and more, unquoted bits\n'.repeat(Math.ceil(MB / 36)));
  async function* source() {
    const head = Buffer.from('id,prompt\n1,first prompt\n2,"second never closes\n');
    pulled += head.length;
    yield head;
    for (let i = 0; i < 512; i++) {
      pulled += chunk.length;
      yield chunk;
    }
  }
  const items: ReadItem[] = [];
  for await (const it of readCsv(Readable.from(source()))) items.push(it);
  assert.deepEqual(items[0], { kind: 'prompt', line: 2, id: '1', prompt: 'first prompt' });
  const err = items.find((x) => x.kind === 'error');
  assert.ok(err && err.kind === 'error', JSON.stringify(items.slice(0, 3)));
  assert.equal(err.line, 3, 'the line where the unclosed record starts');
  assert.match(err.message, /longer than 16777216 characters \(an unclosed quote\?\)/);
  assert.ok(pulled < MAX_LINE_BYTES + 16 * MB, `pulled ${Math.round(pulled / MB)} MB of 512 MB`);
});
