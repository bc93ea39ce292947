// Launch targets: where a run goes. Read from the workspace file `conscience.targets.yaml`
// (or .json), from the VS Code setting `conscience.targets`, or a file named by --targets.
// Shape (YAML):
//   gpu-box:   { type: ssh, host: gpu1, user: me, port: 22, identityFile: ~/.ssh/id_ed25519,
//                proxyJump: bastion, python: /opt/venv/bin/python, workdir: /scratch/me/conscience }
//   cluster:   { type: slurm, via: gpu-box, partition: gpu, account: lab, nodes: 1,
//                gpusPerNode: 8, time: "04:00:00", sbatch: ["--qos=high"], setup: ["module load cuda/12.4"] }
//   here:      { type: local }
// `local` always exists. Values are validated here with errors naming the file, line and target;
// a bad entry fails only when that target is used (TargetMap).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';

interface TargetBase {
  name: string;
  /** Use this interpreter as is (an existing environment); no venv is built. */
  python?: string;
  /** Base folder on the host (default: ~/.conscience on SSH, <workspace>/.conscience/host locally). */
  workdir?: string;
  /**
   * Pinned requirements, which picks the runtime stack: 'cpu' (runtime/requirements/cpu.txt) or 'gpu'
   * (open-r1's TRL 0.18.2), 'cpu-current' or 'gpu-current' (TRL 1.x), or a workspace-relative file.
   */
  requirements?: string;
  /** Extra environment variables for the trainer (values quoted). */
  env?: Record<string, string>;
  /** Seconds without any event before a running run shows "unresponsive" (default 90). */
  heartbeatTimeout?: number;
  /** Seconds between SIGTERM and SIGKILL when cancelling (default 30). */
  cancelGrace?: number;
}
export interface LocalTarget extends TargetBase {
  type: 'local';
}
export interface SshTarget extends TargetBase {
  type: 'ssh';
  host: string;
  port?: number;
  user?: string;
  identityFile?: string;
  proxyJump?: string;
  /** known_hosts file (default ~/.ssh/known_hosts, or UserKnownHostsFile from ~/.ssh/config). */
  knownHostsFile?: string;
  /** ssh config file (default ~/.ssh/config). */
  sshConfigFile?: string;
  /** GPUs on the host (> 0: the environment is built from requirements/gpu.txt unless `requirements` says otherwise). */
  gpusPerNode?: number;
}
export interface SlurmTarget extends TargetBase {
  type: 'slurm';
  /** Name of an ssh target to reach the login node; absent = sbatch on this machine. */
  via?: string;
  partition?: string;
  account?: string;
  nodes?: number;
  gpusPerNode?: number;
  cpusPerTask?: number;
  /** Time limit in SLURM's format ("04:00:00", "1-00:00:00", minutes). */
  time?: string;
  /** Extra #SBATCH options, one per entry, e.g. "--qos=high" (no newlines). */
  sbatch?: string[];
  /** Shell lines run before the trainer, e.g. "module load cuda" (these ARE shell code, by design). */
  setup?: string[];
}
export type Target = LocalTarget | SshTarget | SlurmTarget;

export const LOCAL_TARGET: LocalTarget = { name: 'local', type: 'local' };

const TARGET_FILES = ['conscience.targets.yaml', 'conscience.targets.yml', 'conscience.targets.json'];

function fail(where: string, msg: string): never {
  throw new Error(`${where}: ${msg}`);
}

const str = (where: string, v: unknown, key: string, opts: { required?: boolean; oneLine?: boolean } = {}): string | undefined => {
  if (v === undefined || v === null) {
    if (opts.required) fail(where, `'${key}' is required`);
    return undefined;
  }
  if (typeof v !== 'string' && typeof v !== 'number') fail(where, `'${key}' must be a string`);
  const s = String(v);
  if (opts.oneLine !== false && /[\r\n\0]/.test(s)) fail(where, `'${key}' must be a single line`);
  return s;
};
const int = (where: string, v: unknown, key: string, min = 1, max?: number): number | undefined => {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || (max !== undefined && n > max)) {
    fail(where, `'${key}' must be an integer ${max !== undefined ? `from ${min} to ${max}` : `>= ${min}`}, got ${JSON.stringify(v)}`);
  }
  return n;
};
const strList = (where: string, v: unknown, key: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) fail(where, `'${key}' must be a list of strings`);
  return v.map((x, i) => str(where, x, `${key}[${i}]`, { required: true })!);
};

/** Validates one raw target object. */
export function parseTarget(name: string, raw: unknown, where = 'targets'): Target {
  const w = `${where}: target '${name}'`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) fail(where, `invalid target name '${name}' (letters, digits, . _ -)`);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail(w, 'must be a mapping');
  const o = raw as Record<string, unknown>;
  const type = o.type ?? o.kind;
  const known = new Set(['type', 'kind', 'python', 'workdir', 'requirements', 'env', 'heartbeatTimeout', 'cancelGrace']);
  let env: Record<string, string> | undefined;
  if (o.env !== undefined) {
    if (!o.env || typeof o.env !== 'object' || Array.isArray(o.env)) fail(w, "'env' must be a mapping");
    env = {};
    for (const [k, v] of Object.entries(o.env as Record<string, unknown>)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail(w, `invalid environment variable name '${k}'`);
      env[k] = str(w, v, `env.${k}`, { required: true, oneLine: false })!;
    }
  }
  const base: TargetBase = {
    name,
    python: str(w, o.python, 'python'),
    workdir: str(w, o.workdir, 'workdir'),
    requirements: str(w, o.requirements, 'requirements'),
    env,
    heartbeatTimeout: int(w, o.heartbeatTimeout, 'heartbeatTimeout'),
    cancelGrace: int(w, o.cancelGrace, 'cancelGrace', 0),
  };
  const check = (extra: string[]) => {
    for (const k of Object.keys(o)) if (!known.has(k) && !extra.includes(k)) fail(w, `unknown key '${k}'`);
  };
  switch (type) {
    case 'local':
      check([]);
      return { ...base, type: 'local' };
    case 'ssh':
      check(['host', 'port', 'user', 'identityFile', 'proxyJump', 'knownHostsFile', 'sshConfigFile', 'gpusPerNode']);
      return {
        ...base,
        type: 'ssh',
        host: str(w, o.host, 'host', { required: true })!,
        port: int(w, o.port, 'port', 1, 65535),
        user: str(w, o.user, 'user'),
        identityFile: str(w, o.identityFile, 'identityFile'),
        proxyJump: str(w, o.proxyJump, 'proxyJump'),
        knownHostsFile: str(w, o.knownHostsFile, 'knownHostsFile'),
        sshConfigFile: str(w, o.sshConfigFile, 'sshConfigFile'),
        gpusPerNode: int(w, o.gpusPerNode, 'gpusPerNode', 0),
      };
    case 'slurm':
      check(['via', 'partition', 'account', 'nodes', 'gpusPerNode', 'cpusPerTask', 'time', 'sbatch', 'setup']);
      return {
        ...base,
        type: 'slurm',
        via: str(w, o.via, 'via'),
        partition: str(w, o.partition, 'partition'),
        account: str(w, o.account, 'account'),
        nodes: int(w, o.nodes, 'nodes'),
        gpusPerNode: int(w, o.gpusPerNode, 'gpusPerNode', 0),
        cpusPerTask: int(w, o.cpusPerTask, 'cpusPerTask'),
        time: str(w, o.time, 'time'),
        sbatch: strList(w, o.sbatch, 'sbatch'),
        setup: strList(w, o.setup, 'setup'),
      };
    default:
      fail(w, `'type' must be local, ssh or slurm (got ${JSON.stringify(type)})`);
  }
}

/**
 * The targets by name. An entry that does not validate does not stop the others: its error is
 * kept and thrown when that target is used (`get`), so one bad entry does not block listing,
 * logs or cancel of runs on the other targets. Iteration gives the valid targets only.
 */
export class TargetMap extends Map<string, Target> {
  /** Invalid entries: name → the error (FILE:LINE: target 'name': ...), thrown by get(name). */
  readonly broken = new Map<string, Error>();
  override get(name: string): Target | undefined {
    const err = this.broken.get(name);
    if (err) throw err;
    return super.get(name);
  }
  override has(name: string): boolean {
    return this.broken.has(name) || super.has(name);
  }
  override set(name: string, t: Target): this {
    this.broken?.delete(name); // (undefined while Map's constructor runs)
    return super.set(name, t);
  }
  override delete(name: string): boolean {
    const b = this.broken.delete(name);
    return super.delete(name) || b;
  }
  /** Records `name` as invalid (replacing a valid entry of that name). */
  setBroken(name: string, err: Error): this {
    super.delete(name);
    this.broken.set(name, err);
    return this;
  }
}

/**
 * The line (1-based) of each mapping key in a YAML or JSON text, at its shallowest column:
 * where a target's entry starts, for error messages. A heuristic scan, not a parser.
 */
export function keyLines(text: string): Map<string, number> {
  const best = new Map<string, { line: number; col: number }>();
  const re = /(?:^|[{,])\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9][A-Za-z0-9._-]*))\s*:(?=\s|$|[{["'])/g;
  text.split(/\r?\n/).forEach((line, i) => {
    if (/^\s*#/.test(line)) return;
    for (const m of line.matchAll(re)) {
      const key = m[1] ?? m[2] ?? m[3]!;
      const col = m.index! + m[0].length - m[0].trimStart().length;
      const prev = best.get(key);
      if (!prev || col < prev.col) best.set(key, { line: i + 1, col });
    }
  });
  return new Map([...best].map(([k, v]) => [k, v.line]));
}

/**
 * Validates a name → target mapping; `local` is added when absent; `via` references are
 * checked. A bad entry is kept as an error for that name (TargetMap.broken), located as
 * `where:LINE` when `text` (the file's text) is given; a whole that is not a mapping throws.
 */
export function parseTargets(raw: unknown, where = 'targets', text?: string): TargetMap {
  const out = new TargetMap();
  const lines = text !== undefined ? keyLines(text) : undefined;
  const at = (name: string) => (lines?.has(name) ? `${where}:${lines.get(name)}` : where);
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== 'object' || Array.isArray(raw)) fail(where, 'targets must be a mapping of name to target');
    for (const [name, t] of Object.entries(raw as Record<string, unknown>)) {
      try {
        out.set(name, parseTarget(name, t, at(name)));
      } catch (err) {
        out.setBroken(name, err as Error);
      }
    }
  }
  if (!out.has('local')) out.set('local', LOCAL_TARGET);
  for (const t of [...out.values()]) {
    if (t.type === 'slurm' && t.via) {
      const v = out.broken.has(t.via) ? undefined : out.get(t.via);
      // a via naming a broken entry: the slurm target is usable once that entry is fixed (its error shows when connecting)
      if (!v && !out.broken.has(t.via)) out.setBroken(t.name, new Error(`${at(t.name)}: target '${t.name}': 'via' names an unknown target '${t.via}'`));
      else if (v && v.type !== 'ssh') out.setBroken(t.name, new Error(`${at(t.name)}: target '${t.name}': 'via' must name an ssh target ('${t.via}' is ${v.type})`));
    }
  }
  return out;
}

/** `12:5` (1-based line and column) of a character offset in `text`. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const nl = before.lastIndexOf('\n');
  return `${before.split('\n').length}:${offset - nl}`;
}

/**
 * Parses JSON (`comments`: JSONC as VS Code reads settings.json, comments and trailing commas
 * allowed); an error is one line naming FILE:LINE:COLUMN and what was expected there.
 */
function parseJsonAt(text: string, file: string, opts: { comments: boolean }): unknown {
  const errors: ParseError[] = [];
  const doc = parseJsonc(text, errors, { allowTrailingComma: opts.comments, disallowComments: !opts.comments, allowEmptyContent: true });
  const e = errors[0];
  if (e) {
    const what = printParseErrorCode(e.error).replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase(); // CommaExpected -> comma expected
    throw new Error(`${file}:${lineColumn(text, e.offset)}: invalid JSON: ${what}`);
  }
  return doc;
}

/** Reads targets for the CLI: --targets FILE, else the workspace's conscience.targets.{yaml,yml,json},
 * else (`settings`, on by default) the `conscience.targets` of `.vscode/settings.json`. The editor
 * passes `settings: false`: it reads the setting through VS Code, which ignores it in an untrusted
 * workspace (restrictedConfigurations), so reading the file itself would undo that. */
export async function loadTargets(root: string, file?: string, opts: { settings?: boolean } = {}): Promise<{ targets: TargetMap; file?: string }> {
  const candidates = file ? [file] : TARGET_FILES.map((f) => join(root, f));
  for (const f of candidates) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !file) continue;
      throw new Error(`${f}: cannot read targets: ${(err as Error).message}`);
    }
    // a byte-order mark (Windows editors write one) is not content
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    let raw: unknown;
    if (f.endsWith('.json')) {
      raw = parseJsonAt(text, f, { comments: false });
    } else if (text.split(/\r?\n/).every((l) => /^\s*(#.*)?$/.test(l))) {
      raw = undefined; // empty or only comments: no targets but `local` (js-yaml throws "input is empty")
    } else {
      try {
        raw = load(text, { filename: f });
      } catch (err) {
        // one line, FILE:LINE:COLUMN: why (js-yaml's message repeats the file and adds a snippet)
        const e = err as { reason?: string; mark?: { line: number; column: number } };
        throw new Error(e.mark && e.reason ? `${f}:${e.mark.line + 1}:${e.mark.column + 1}: invalid YAML: ${e.reason}` : `${f}: invalid YAML: ${e.reason ?? (err as Error).message}`);
      }
    }
    // allow either the mapping itself or { targets: mapping }
    if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'targets' in (raw as object) && Object.keys(raw as object).length === 1) {
      raw = (raw as { targets: unknown }).targets;
    }
    return { targets: parseTargets(raw, f, text), file: f };
  }
  // no targets file: the workspace's VS Code setting, as the editor sees it
  if (!file && opts.settings !== false) {
    const settings = join(root, '.vscode', 'settings.json');
    let text: string | undefined;
    try {
      text = await readFile(settings, 'utf8');
    } catch {
      /* no settings */
    }
    if (text !== undefined) {
      // VS Code reads settings.json with comments, trailing commas and a byte-order mark
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      const doc = parseJsonAt(text, settings, { comments: true });
      const raw = doc && typeof doc === 'object' ? (doc as Record<string, unknown>)['conscience.targets'] : undefined;
      // a bad entry's error names settings.json and the line of that target's name
      if (raw !== undefined) return { targets: parseTargets(raw, settings, text), file: settings };
    }
  }
  return { targets: parseTargets(undefined) };
}

export function describeTarget(t: Target, all?: Map<string, Target>): string {
  switch (t.type) {
    case 'local':
      return 'local';
    case 'ssh':
      return `${t.user ? t.user + '@' : ''}${t.host}${t.port && t.port !== 22 ? ':' + t.port : ''}`;
    case 'slurm': {
      const via = t.via && all?.get(t.via);
      return `slurm${t.partition ? ':' + t.partition : ''}@${via ? describeTarget(via) : 'local'}`;
    }
  }
}
