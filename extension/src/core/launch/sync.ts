// Content-hashed, incremental sync of the runtime, the recipe and the files it references to a
// per-project folder on the host. A manifest (path -> sha256, size) of what was last sent
// lives on the host at <projectDir>/.conscience-manifest.json; only files whose hash differs
// (or that the manifest lacks) are sent. Paths keep their workspace-relative layout so paths
// relative to the recipe resolve the same on the host.
import { createHash } from 'node:crypto';
import { constants, existsSync, readFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { open, readFile, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { load } from 'js-yaml';
import type { Host } from './host';
import { shQuote } from './quote';

export interface ManifestEntry {
  sha256: string;
  size: number;
}
export type Manifest = Record<string, ManifestEntry>;

export interface SyncProgress {
  phase: 'hashing' | 'sending' | 'done';
  file?: string;
  filesDone: number;
  filesTotal: number;
  bytesSent: number;
}

export interface SyncResult {
  filesSent: number;
  bytesSent: number;
  filesTotal: number;
  bytesTotal: number;
  /** Bytes sent for files under runtime/ (the bench's resync figure). */
  runtimeBytesSent: number;
}

// Caches and VCS metadata are never synced. The build/test leftovers of a Python package are
// skipped only under runtime/: a dataset folder's own tests/ or build/ is data the recipe names.
// caches and environments: a value naming a project folder would otherwise send its virtualenv
const SKIP_DIRS = new Set(['__pycache__', '.git', 'node_modules', '.venv', '.tox', '.mypy_cache', '.pytest_cache']);
const RUNTIME_SKIP_DIRS = new Set(['.pytest_cache', 'build', 'tests']);
const SKIP_FILE = (n: string) => n.endsWith('.pyc') || n === '.DS_Store';
/**
 * Files inside a synced folder that look like credentials (.env, *.pem, ssh private keys,
 * .netrc): skipped. A recipe value that names one of them directly still sends it.
 */
export const SECRET_FILE = (n: string) =>
  n === '.env' || n.startsWith('.env.') || n === '.netrc' || n === '.git-credentials' || n === '.npmrc' || n === '.pypirc' ||
  /\.(pem|key|p12|pfx|ppk)$/.test(n) || /^id_(rsa|dsa|ecdsa|ed25519)(_sk)?$/.test(n);
export const MANIFEST_NAME = '.conscience-manifest.json';
const MAX_FILE_BYTES = 2 * 1024 ** 3;

/**
 * Where each synced path is read from. The recipe and the files it names come from the
 * workspace. The runtime package (runtime/) and the shipped allocator (models/allocator/) come
 * from the workspace when it has its own copy (someone developing the runtime itself), else
 * from the bundle: the extension's own folder, or the npm package for the CLI. So any
 * workspace can launch, not only a checkout of this repository.
 */
export class SyncSource {
  private readonly runtimeBase: string;
  private readonly modelsBase: string;
  constructor(readonly workspace: string, bundle: string = workspace) {
    this.runtimeBase = existsSync(join(workspace, 'runtime', 'conscience')) ? workspace : bundle;
    this.modelsBase = existsSync(join(workspace, 'models', 'allocator', 'allocator.json')) ? workspace : bundle;
  }

  /** The folder a workspace-relative path is read from. */
  baseOf(rel: string): string {
    const parts = rel.split(/[\\/]/);
    if (parts[0] === 'runtime') return this.runtimeBase;
    if (parts[0] === 'models' && parts[1] === 'allocator') return this.modelsBase;
    return this.workspace;
  }

  abs(rel: string): string {
    return join(this.baseOf(rel), rel);
  }

  static of(src: string | SyncSource): SyncSource {
    return typeof src === 'string' ? new SyncSource(src) : src;
  }
}

/**
 * The folder this code ships in (the extension's install folder, or the npm package for the
 * CLI): the first folder above this module with our package.json. It holds runtime/ and
 * models/allocator/ (the .vsix carries both).
 */
export function packageRoot(from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg?.name === 'chain-of-conscience') return dir;
    } catch {
      /* not here: keep going up */
    }
    if (dirname(dir) === dir) return from;
  }
}

interface WalkCtx {
  /** What is being walked, for errors: "the runtime package", "recipe value 'data'". */
  what: string;
  /** Real paths of the folders walked, so a link back up does not loop. */
  seen: Set<string>;
  realBases: Map<string, string>;
}

/** True when `p` lies inside `root` (no ../ escape). */
function inside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r !== '' && !r.startsWith('..') && !isAbsolute(r);
}

/**
 * The real path and kind of a workspace-relative path, refusing one that (through a symbolic
 * link) lies outside the folder it is read from: nothing outside the workspace (or the
 * bundle, for runtime/) is ever sent to a host. `skip`: it resolves to what a walk never
 * sends, whatever the link is called: the workspace root itself (all of it again: .venv, other
 * runs' outputs), .conscience/, or a .git, node_modules or __pycache__ folder.
 */
async function resolveInside(src: SyncSource, rel: string, ctx: WalkCtx): Promise<{ real: string; st: Stats; skip: boolean }> {
  const base = src.baseOf(rel);
  let baseReal = ctx.realBases.get(base);
  if (baseReal === undefined) ctx.realBases.set(base, (baseReal = await realpath(base)));
  const real = await realpath(join(base, rel));
  if (real !== baseReal && !inside(baseReal, real)) {
    throw new Error(
      `${ctx.what}: ${rel.split(sep).join('/')} is a symbolic link to ${real}, outside ${base}: refusing to send it to the host ` +
        `(copy it into the workspace, or name its path on the host instead)`,
    );
  }
  const parts = relative(baseReal, real).split(sep);
  const skip = real === baseReal || parts[0] === '.conscience' || parts.some((p) => SKIP_DIRS.has(p));
  return { real, st: await stat(real), skip };
}

async function walk(src: SyncSource, rel: string, out: string[], ctx: WalkCtx): Promise<void> {
  const { real, st, skip } = await resolveInside(src, rel, ctx);
  if (skip) return;
  if (st.isFile()) {
    out.push(rel);
    return;
  }
  if (!st.isDirectory() || ctx.seen.has(real)) return;
  ctx.seen.add(real);
  const underRuntime = rel.split(/[\\/]/)[0] === 'runtime';
  for (const e of await readdir(join(src.baseOf(rel), rel), { withFileTypes: true })) {
    const child = join(rel, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      let target: Stats;
      try {
        const r = await resolveInside(src, child, ctx);
        // a link is judged by what it points at: data/extra.jsonl -> ../.env is a credential file
        if (r.skip || (r.st.isFile() && SECRET_FILE(basename(r.real)))) continue;
        target = r.st;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ELOOP') continue; // a dangling link
        throw err;
      }
      isDir = target.isDirectory();
      isFile = target.isFile();
    }
    if (isDir) {
      if (SKIP_DIRS.has(e.name)) continue;
      if (underRuntime && (RUNTIME_SKIP_DIRS.has(e.name) || e.name.endsWith('.egg-info'))) continue;
      await walk(src, child, out, ctx);
    } else if (isFile && !SKIP_FILE(e.name) && !SECRET_FILE(e.name)) out.push(child);
  }
}

/**
 * The files a run needs, workspace-relative: everything under runtime/ (no tests or caches),
 * the recipe, and every string value of the recipe that names an existing file or folder
 * inside the workspace (relative to the recipe's folder first, then the workspace root).
 * Symbolic links are followed only while they stay inside the workspace: the recipe, a value or
 * a folder entry that resolves outside it is an error naming it (never sent); one that resolves
 * to the workspace root, .conscience/ or .git is skipped like those paths named directly. Inside
 * named folders, caches (__pycache__, .git, *.pyc) and credential-looking files (SECRET_FILE)
 * are skipped.
 */
export async function collectFiles(source: string | SyncSource, recipeRel: string, extra: string[] = []): Promise<string[]> {
  const src = SyncSource.of(source);
  const root = src.workspace;
  const files: string[] = [];
  const realBases = new Map<string, string>();
  const newCtx = (what: string): WalkCtx => ({ what, seen: new Set(), realBases });
  const runtimeDir = src.abs('runtime');
  try {
    await walk(src, 'runtime', files, newCtx('the runtime package'));
  } catch (err) {
    throw new Error(`${runtimeDir}: cannot read the runtime package: ${(err as Error).message}`);
  }
  const recipeAbs = join(root, recipeRel);
  // checked through symbolic links like the files it names: a recipe linked to a file outside the workspace is refused
  await resolveInside(src, recipeRel, newCtx('the recipe'));
  files.push(recipeRel);
  let doc: unknown;
  try {
    doc = load(await readFile(recipeAbs, 'utf8'), { filename: recipeAbs });
  } catch (err) {
    throw new Error(`${recipeAbs}: ${(err as Error).message}`);
  }
  const refs = new Set<string>(extra);
  // An alias (*a) loads as a second reference to its anchor's object, so "9 levels of 10
  // aliases" is a tree of 10^9 paths over 90 objects: each object and list is walked once
  // (issue #16 item 2), and an explicit stack keeps deep nesting off the call stack.
  const seen = new WeakSet<object>();
  const stack: Array<[unknown, string | undefined]> = [[doc, undefined]];
  while (stack.length) {
    const [v, key] = stack.pop()!;
    // output folders are results, not inputs: never synced
    if (key && /(^|_)output_dir$|logging_dir$/.test(key)) continue;
    if (typeof v === 'string') {
      if (v.length > 0 && v.length < 4096 && !/[\n\0]/.test(v) && !/^[a-z]+:\/\//i.test(v)) refs.add(v);
    } else if (v && typeof v === 'object') {
      if (seen.has(v)) continue;
      seen.add(v);
      if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], undefined]);
      else for (const [k, x] of Object.entries(v).reverse()) stack.push([x, k]);
    }
  }
  // the shipped allocator model (the runtime's default: <project>/models/allocator) when the recipe uses one
  if (doc && typeof doc === 'object' && 'allocator' in (doc as object)) {
    // (absent: no shipped model in this workspace)
    if (existsSync(src.abs('models/allocator'))) await walk(src, 'models/allocator', files, newCtx('the allocator model'));
  }
  for (const ref of refs) {
    for (const base of [dirname(recipeAbs), root]) {
      const abs = resolve(base, ref);
      if (!inside(root, abs)) continue;
      const top = relative(root, abs).split(sep)[0];
      if (top === '.conscience' || top === '.git' || top === 'node_modules') continue;
      try {
        await stat(abs);
      } catch {
        continue;
      }
      // checked through symbolic links: a value naming a link to ~/.ssh/id_rsa is refused
      await walk(src, relative(root, abs), files, newCtx(`recipe value '${ref}'`));
      break;
    }
  }
  return [...new Set(files.map((f) => f.split(sep).join('/')))].sort();
}

export async function hashFile(abs: string): Promise<ManifestEntry> {
  const st = await stat(abs);
  if (st.size > MAX_FILE_BYTES) throw new Error(`${abs}: ${st.size} bytes is too large to sync (limit 2 GiB)`);
  const data = await readFile(abs);
  return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
}

/** The files of `local` that `remote` lacks or has with another hash. */
export function diffManifests(local: Manifest, remote: Manifest): string[] {
  return Object.keys(local)
    .filter((f) => remote[f]?.sha256 !== local[f]!.sha256)
    .sort();
}

async function readRemoteManifest(host: Host, projectDir: string): Promise<Manifest> {
  const buf = await host.readFrom(`${projectDir}/${MANIFEST_NAME}`);
  if (!buf || !buf.length) return {};
  try {
    const m = JSON.parse(buf.toString('utf8'));
    return m && typeof m === 'object' && !Array.isArray(m) ? (m as Manifest) : {};
  } catch {
    return {}; // a damaged manifest means: send everything again
  }
}

/** Sends what changed; the host's manifest is rewritten last, so an interrupted sync is redone. */
export async function syncToHost(
  host: Host,
  source: string | SyncSource,
  files: string[],
  projectDir: string,
  onProgress?: (p: SyncProgress) => void,
): Promise<SyncResult> {
  const src = SyncSource.of(source);
  onProgress?.({ phase: 'hashing', filesDone: 0, filesTotal: files.length, bytesSent: 0 });
  // The list may be minutes old (the preview): each file is checked again through symbolic links
  // where it is read, so one replaced by a link out of the workspace since is refused, not sent.
  const ctx: WalkCtx = { what: `sync to ${host.label}`, seen: new Set(), realBases: new Map() };
  const checked = async (f: string) => (await resolveInside(src, f, ctx)).real;
  const local: Manifest = {};
  for (const f of files) local[f] = await hashFile(await checked(f));
  await host.mkdirp(projectDir);
  const remote = await readRemoteManifest(host, projectDir);
  const changed = diffManifests(local, remote);
  const dirs = [...new Set(changed.map((f) => dirname(`${projectDir}/${f}`)))];
  if (dirs.length) {
    const r = await host.exec(`mkdir -p -- ${dirs.map(shQuote).join(' ')}`);
    if (r.code !== 0) throw new Error(`${host.label}: cannot create folders under ${projectDir}: ${r.stderr.trim()}`);
  }
  let bytesSent = 0;
  let runtimeBytesSent = 0;
  let done = 0;
  // a few transfers in flight at once: SFTP round trips dominate for small files
  const queue = [...changed];
  const worker = async () => {
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      // the path checked just now, not followed again if its last part became a link meanwhile
      const fh = await open(await checked(f), constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
      const data = await fh.readFile().finally(() => fh.close());
      // the host's manifest describes what was sent, even if the file changed since it was hashed
      local[f] = { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
      await host.writeFile(`${projectDir}/${f}`, data, 0o644);
      bytesSent += data.length;
      if (f.startsWith('runtime/')) runtimeBytesSent += data.length;
      done++;
      onProgress?.({ phase: 'sending', file: f, filesDone: done, filesTotal: changed.length, bytesSent });
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, changed.length) }, worker));
  if (changed.length || Object.keys(remote).length !== Object.keys(local).length) {
    await host.writeFile(`${projectDir}/${MANIFEST_NAME}`, JSON.stringify({ ...remote, ...local }, null, 0), 0o644);
  }
  onProgress?.({ phase: 'done', filesDone: changed.length, filesTotal: changed.length, bytesSent });
  const bytesTotal = Object.values(local).reduce((s, e) => s + e.size, 0);
  return { filesSent: changed.length, bytesSent, filesTotal: files.length, bytesTotal, runtimeBytesSent };
}
