// `npm run bench`: runs every bench/*.bench.ts (each default-exports an async function that
// returns named figures), merges them into bench/results.json (a flat object) and prints a
// table. `npm run bench -- recipes allocator` runs only the named benches.
import { readdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

type Figures = Record<string, number | string | null>;

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const dir = __dirname;
  const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort();
  const out = join(dir, 'results.json');
  // Keep figures of benches not run this time, so a partial run does not erase the others.
  const results: Figures = only.length && existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : {};
  for (const f of files) {
    const name = f.replace(/\.bench\.ts$/, '');
    if (only.length && !only.includes(name)) continue;
    process.stderr.write(`[bench] ${name}\n`);
    delete results[`${name}.error`]; // an error from an earlier run is not this run's
    try {
      const mod = await import(join(dir, f));
      const figures: Figures = await (mod.default ?? mod.bench)();
      Object.assign(results, figures);
    } catch (err) {
      process.stderr.write(`[bench] ${name} failed: ${(err as Error).stack ?? err}\n`);
      results[`${name}.error`] = String((err as Error).message ?? err);
    }
  }
  writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  const width = Math.max(...Object.keys(results).map((k) => k.length), 6);
  console.log(`${'figure'.padEnd(width)}  value`);
  for (const [k, v] of Object.entries(results)) {
    console.log(`${k.padEnd(width)}  ${typeof v === 'number' ? +v.toPrecision(4) : v}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
