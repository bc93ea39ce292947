#!/usr/bin/env node
// Packages the linux-x64 .vsix: `npm run package` (and the vsix test and bench, with their own
// -o). vsce lists every file under the folder it packages before .vscodeignore filters them,
// each one matched against every pattern; in a working tree with the Python virtualenvs
// (~150,000 files) that took over 3 minutes of CPU. So vsce runs in a staging folder holding only
// the top-level entries .vscodeignore's allow-list can let in (hard links, no copies), and the
// .vsix is the same as one packaged from the working tree.
//
//   node scripts/package.mjs [--production] [-o FILE] [extra vsce options...]
//
// --production first builds the minified bundles (node esbuild.mjs --production).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Top-level names a `!pattern` line of .vscodeignore can let in (the first path segment). */
export function allowedTopLevel(ignoreText) {
  const names = new Set(['package.json', '.vscodeignore']);
  for (const raw of ignoreText.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line.startsWith('!')) continue;
    const first = line.slice(1).replace(/^\/+/, '').split('/')[0];
    if (!first || /[*?[{]/.test(first)) {
      throw new Error(`.vscodeignore: "${line}" lets in files at any top-level path; name the folder it is under`);
    }
    names.add(first);
  }
  return [...names];
}

function link(src, dst) {
  try {
    execFileSync('cp', ['-al', '--', src, dst], { stdio: 'pipe' });
  } catch {
    cpSync(src, dst, { recursive: true }); // another file system, or no cp -l
  }
}

function main(argv) {
  const args = [...argv];
  const production = args.includes('--production');
  if (production) args.splice(args.indexOf('--production'), 1);
  const o = args.findIndex((a) => a === '-o' || a === '--out');
  let out;
  if (o >= 0) {
    if (!args[o + 1]) throw new Error(`${args[o]} needs a file name`);
    out = resolve(args[o + 1]);
    args.splice(o, 2);
  } else {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    out = join(ROOT, `${pkg.name}-linux-x64-${pkg.version}.vsix`);
  }
  if (production) execFileSync(process.execPath, ['esbuild.mjs', '--production'], { cwd: ROOT, stdio: 'inherit' });

  const names = allowedTopLevel(readFileSync(join(ROOT, '.vscodeignore'), 'utf8'));
  // inside the repository (.cache/ is git-ignored), so hard links stay on one file system
  mkdirSync(join(ROOT, '.cache'), { recursive: true });
  const stage = mkdtempSync(join(ROOT, '.cache', 'package-'));
  try {
    for (const name of names) {
      if (existsSync(join(ROOT, name))) link(join(ROOT, name), join(stage, name));
    }
    const vsce = join(ROOT, 'node_modules', '@vscode', 'vsce', 'vsce');
    execFileSync(process.execPath, [vsce, 'package', '--target', 'linux-x64', '--dependencies',
      '--allow-missing-repository', '--no-rewrite-relative-links', ...args, '-o', out], { cwd: stage, stdio: 'inherit' });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`package: ${err.message ?? err}\n`);
    process.exit(1);
  }
}
