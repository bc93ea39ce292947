// The accelerate config a recipe references (launch.accelerate_config), and accelerate configs
// validated on their own: keys, types and DeepSpeed settings of the pinned accelerate's
// ClusterConfig (codes CC400-CC404 of rules.ts). How the recipe agrees with it is checked by the
// rules CC221, CC405 and CC406, which read ctx.acc. It is read before the rules run.
import { type AccelerateInfo, type Ctx, type FileAccess, findFromRun, isInt, renameFix, sectionPair, sval } from './context';
import { decodeBytes } from './decode';
import { type Diagnostic, diag } from './diagnostics';
import type { RecipeSchema } from './schema';
import { checkValue, didYouMean } from './values';
import { deref, getPair, LIMITS, parseYaml, tooLargeMessage, type YMap } from './yaml';

/** Read the referenced accelerate config into ctx.acc (its diagnostics carry its path). */
export function loadAccelerate(ctx: Ctx): AccelerateInfo | undefined {
  const p = sectionPair(ctx, 'launch', 'accelerate_config');
  const n = deref(p?.value);
  // the runtime's _coerce makes a number the path text (`accelerate_config: 5` is the file '5'; CC101 warns)
  const rel = n && n.kind === 'scalar' && (n.tag === 'int' || n.tag === 'float') ? n.text : sval(ctx, 'launch', 'accelerate_config');
  if (typeof rel !== 'string' || !p || !ctx.files || !ctx.file) return undefined;
  if (rel === '') return undefined; // the runtime reads an empty value as no config (accelerate's defaults)
  const files = ctx.files;
  const full = files.resolve(ctx.file, rel);
  const stamp = files.stamp?.(full);
  let entry = stamp !== undefined ? accCache.get(full) : undefined;
  if (!entry || entry.stamp !== stamp || entry.schema !== ctx.schema) {
    const exists = files.exists(full);
    if (exists && files.isFolder?.(full)) {
      ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC302',
        `Accelerate config '${rel}' is a folder (${full}), not a file. Name the config file in it, e.g. ${rel.replace(/[\\/]+$/, '')}/zero2.yaml.`));
      return undefined;
    }
    const size = exists ? files.size?.(full) : undefined;
    if (size !== undefined && size > LIMITS.maxBytes) {
      ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC400', `Accelerate config '${rel}' cannot be read: ${tooLargeMessage(size)}`));
      return undefined;
    }
    const bytes = exists ? files.readBytes(full) : undefined;
    if (!bytes) {
      ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC302',
        `Accelerate config '${rel}' not found (resolved against the recipe's folder: ${full}). Use e.g. ../accelerate/zero2.yaml or fix the path.`));
      return undefined;
    }
    entry = { stamp, schema: ctx.schema, ...readAccelerate(full, bytes, ctx.schema) };
    if (stamp !== undefined) {
      if (accCache.size > 64) accCache.clear();
      accCache.set(full, entry);
    }
  }
  const { unreadable } = entry;
  // deepspeed_config_file is another file: looked at on every run, not cached with this one; its
  // zero_optimization.stage is the run's ZeRO stage when the config gives no zero_stage
  const refs = entry.refs?.(files);
  const accDiags = refs ? entry.accDiags.concat(refs.diags) : entry.accDiags;
  // (the file's stage 3 counts whatever zero_stage says, as the runtime's zero3_source reads both)
  const fileStage = entry.info.distributedType === 'DEEPSPEED' ? refs?.stage : undefined;
  const info = fileStage !== undefined && (entry.info.zeroStage === undefined || fileStage === 3) ? { ...entry.info, zeroStage: fileStage } : entry.info;
  for (const d of accDiags) ctx.out.push({ ...d, file: full });
  if (unreadable) {
    ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC400', `Accelerate config '${rel}' cannot be read: ${unreadable}`));
    return undefined;
  }
  const errors = accDiags.filter((d) => d.severity === 'error').length;
  if (errors) {
    ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC400', `Accelerate config '${rel}' has ${errors} error(s); see the diagnostics in that file.`));
  }
  return info;
}

interface AccEntry {
  stamp: string | undefined; schema: RecipeSchema; info: AccelerateInfo; accDiags: Diagnostic[]; unreadable?: string;
  /** Diagnostics about the files the config names (they may change while it does not). */
  refs?: (files: FileAccess) => { diags: Diagnostic[]; stage?: number };
}
/** Parsed accelerate configs by path, reused while their stamp (mtime, size) is unchanged. */
const accCache = new Map<string, AccEntry>();

function readAccelerate(full: string, bytes: Uint8Array, schema: RecipeSchema): Omit<AccEntry, 'stamp' | 'schema'> {
  const info: AccelerateInfo = { path: full };
  const dec = decodeBytes(bytes);
  if ('diagnostic' in dec) {
    const why = dec.diagnostic.code === 'CC005' ? 'it is a binary file (it contains NUL bytes), not an accelerate config (YAML or JSON text).' : 'it is not valid UTF-8 text. Re-save it as UTF-8.';
    // (the recipe's CC400 says it; the CC005 of a file given to the validator itself would advise a .yaml recipe)
    return { info, accDiags: dec.diagnostic.code === 'CC005' ? [] : [dec.diagnostic], unreadable: why };
  }
  const accText = dec.text;
  if (/\.json$/i.test(full)) {
    // accelerate reads a .json config with json.load: no trailing commas, no comments, no YAML
    try { JSON.parse(accText); } catch (e) {
      const m = /position (\d+)/.exec((e as Error).message);
      const at = m ? Math.min(Number(m[1]), accText.length) : 0;
      return { info, accDiags: [diag(accText, at, Math.min(at + 1, accText.length), 'error', 'CC400', `Not valid JSON (accelerate reads a .json config with json.load): ${(e as Error).message}.`)], unreadable: `it is not valid JSON (accelerate reads a .json config with json.load): ${(e as Error).message}.` };
    }
  }
  const parsed = parseYaml(accText);
  const accDiags = parsed.diagnostics.slice();
  const root = deref(parsed.root);
  if (root && root.kind === 'map' && !getPair(root, 'distributed_type') && RECIPE_KEYS.some((k) => getPair(root, k))) {
    return { info, accDiags: [], unreadable: 'it is a recipe (it has recipe keys such as model_name_or_path or reward_funcs), not an accelerate config. Point launch.accelerate_config at an accelerate config (e.g. ../accelerate/zero2.yaml).' };
  }
  if (root && root.kind === 'map') {
    Object.assign(info, validateAccelerate(accText, root, schema, accDiags));
    const refs = (files: FileAccess) => { const diags: Diagnostic[] = []; const stage = dsConfigFile(accText, root, full, files, diags); return { diags, stage }; };
    return { info, accDiags, refs };
  }
  if (!accDiags.length) accDiags.push(diag(accText, 0, 0, 'error', 'CC400', 'The accelerate config is empty or not a mapping.'));
  return { info, accDiags };
}

/** Keys only a recipe has: an accelerate config without distributed_type that has one is a recipe. */
const RECIPE_KEYS = ['reward_funcs', 'model_name_or_path', 'num_generations', 'per_device_train_batch_size', 'launch', 'kind'];

/**
 * `deepspeed_config.deepspeed_config_file`: accelerate launch opens it from the folder it runs in,
 * so a relative path is looked for next to the accelerate config and there (FileAccess.runFolder:
 * the workspace root, not the extension host's folder); missing in both, a
 * folder, or not JSON is an error.
 */
export function dsConfigFile(text: string, root: YMap, accPath: string, files: FileAccess, out: Diagnostic[]): number | undefined {
  const ds = deref(getPair(root, 'deepspeed_config')?.value);
  const q = ds && ds.kind === 'map' ? getPair(ds, 'deepspeed_config_file') : undefined;
  const v = deref(q?.value);
  if (!q || !v || v.kind !== 'scalar' || typeof v.value !== 'string' || !v.value || v.value.startsWith('~/')) return;
  const rel = v.value;
  const found = findFromRun(files, accPath, rel);
  const full = found.full;
  if (!found.found) {
    out.push(diag(text, q.value.start, q.value.end, 'error', 'CC404', `deepspeed_config_file '${rel}' not found (looked for ${found.tried.join(' and ')}; accelerate launch opens a relative path from the folder it runs in). Fix the path, or use an absolute one.`));
    return;
  }
  if (files.isFolder?.(full)) {
    out.push(diag(text, q.value.start, q.value.end, 'error', 'CC404', `deepspeed_config_file '${rel}' is a folder (${full}), not a DeepSpeed JSON file.`));
    return;
  }
  const size = files.size?.(full);
  const bytes = size !== undefined && size > LIMITS.maxBytes ? undefined : files.readBytes(full);
  const dec = bytes ? decodeBytes(bytes) : undefined;
  if (!dec || 'diagnostic' in dec) {
    out.push(diag(text, q.value.start, q.value.end, 'error', 'CC404', `deepspeed_config_file '${rel}' (${full}) is not a readable JSON text file.`));
    return;
  }
  try {
    return zeroStageOfJson(JSON.parse(dec.text));
  } catch (e) {
    out.push(diag(text, q.value.start, q.value.end, 'error', 'CC404', `deepspeed_config_file '${rel}' (${full}) is not valid JSON: ${(e as Error).message}. DeepSpeed reads it with json.load (no trailing commas or comments).`));
  }
  return undefined;
}

/** A DeepSpeed JSON config's `zero_optimization.stage`, if it is an integer. */
export function zeroStageOfJson(config: unknown): number | undefined {
  const z = config && typeof config === 'object' ? (config as { zero_optimization?: unknown }).zero_optimization : undefined;
  const stage = z && typeof z === 'object' ? (z as { stage?: unknown }).stage : undefined;
  return typeof stage === 'number' && Number.isInteger(stage) ? stage : undefined;
}

/** Validate an accelerate config mapping (ClusterConfig of the pinned accelerate). */
export function validateAccelerate(text: string, root: YMap, schema: RecipeSchema, out: Diagnostic[]): Omit<AccelerateInfo, 'path'> {
  const meta = schema.accelerate;
  const known = schema.accelerateFields;
  const vals = new Map<string, unknown>();
  for (const p of root.items) {
    const k = deref(p.key);
    if (!k || k.kind !== 'scalar') continue;
    const spec = known.get(k.text);
    if (!spec) {
      if (meta.legacy_keys.includes(k.text)) continue;
      const sug = didYouMean(k.text, known.keys());
      out.push(diag(text, p.key.start, p.key.end, 'error', 'CC401',
        `Unknown key '${k.text}' for accelerate ${meta.accelerate_version}: accelerate refuses config files with unknown keys.${sug ? ` Did you mean '${sug}'?` : ' Remove it.'}`,
        sug ? [renameFix(p, sug)] : undefined));
      continue;
    }
    const r = checkValue(text, spec, p.value, k.text, out, { type: 'CC402', enum: 'CC403', range: 'CC403' });
    if (r.ok) vals.set(k.text, r.value);
  }
  const dtPair = getPair(root, 'distributed_type');
  if (!dtPair) {
    out.push(diag(text, root.items[0]?.key.start ?? 0, root.items[0]?.key.end ?? 0, 'error', 'CC403', 'A `distributed_type` must be specified in the config file (accelerate). Add e.g. `distributed_type: MULTI_GPU` or `DEEPSPEED`.'));
  }
  const dt = vals.get('distributed_type') as string | undefined;
  const np = vals.get('num_processes');
  const nm = vals.get('num_machines');
  if (isInt(np) && np !== -1 && np < 1) {
    const p = getPair(root, 'num_processes')!;
    out.push(diag(text, p.value.start, p.value.end, 'error', 'CC403', `num_processes must be 1 or more (or -1 for all devices), got ${np}.`));
  }
  if (isInt(np) && isInt(nm) && nm > 0 && np > 0 && np % nm !== 0) {
    const p = getPair(root, 'num_processes')!;
    out.push(diag(text, p.value.start, p.value.end, 'warning', 'CC403', `num_processes (${np}) is the total over all machines and should be a multiple of num_machines (${nm}).`));
  }
  let zeroStage: number | undefined;
  const dsPair = getPair(root, 'deepspeed_config');
  const ds = deref(dsPair?.value);
  if (dt === 'DEEPSPEED') {
    if (!ds || ds.kind !== 'map' || ds.items.length === 0) {
      const r = dtPair!;
      out.push(diag(text, r.value.start, r.value.end, 'error', 'CC404', 'distributed_type: DEEPSPEED needs a deepspeed_config mapping with at least zero_stage (0-3) or deepspeed_config_file.'));
    }
  } else if (ds && ds.kind === 'map' && ds.items.length > 0 && dt) {
    out.push(diag(text, dsPair!.key.start, dsPair!.key.end, 'warning', 'CC404', `deepspeed_config is set but distributed_type is ${dt}, so accelerate ignores it. Set distributed_type: DEEPSPEED or remove deepspeed_config.`));
  }
  if (ds && ds.kind === 'map') {
    const dsVals = new Map<string, unknown>();
    for (const q of ds.items) {
      const k = deref(q.key);
      if (!k || k.kind !== 'scalar') continue;
      const spec = schema.deepspeedFields.get(k.text);
      if (!spec) {
        const sug = didYouMean(k.text, schema.deepspeedFields.keys());
        out.push(diag(text, q.key.start, q.key.end, 'warning', 'CC401', `Unknown deepspeed_config key '${k.text}': accelerate launch does not read it.${sug ? ` Did you mean '${sug}'?` : ''}`, sug ? [renameFix(q, sug)] : undefined));
        continue;
      }
      const r = checkValue(text, spec, q.value, `deepspeed_config.${k.text}`, out, { type: 'CC402', enum: 'CC403', range: 'CC403' });
      if (r.ok) dsVals.set(k.text, r.value);
    }
    const zs = dsVals.get('zero_stage');
    if (isInt(zs)) zeroStage = zs;
    if (dt === 'DEEPSPEED' && !getPair(ds, 'zero_stage') && !getPair(ds, 'deepspeed_config_file') && ds.items.length > 0) {
      out.push(diag(text, dsPair!.key.start, dsPair!.key.end, 'warning', 'CC404', 'deepspeed_config has no zero_stage; accelerate then uses ZeRO stage 2. Write zero_stage explicitly.'));
    }
    for (const flag of ['zero3_init_flag', 'zero3_save_16bit_model']) {
      if (dsVals.get(flag) === true && zeroStage !== undefined && zeroStage !== 3) {
        const q = getPair(ds, flag)!;
        out.push(diag(text, q.value.start, q.value.end, 'warning', 'CC404', `${flag}: true only applies to ZeRO stage 3, but zero_stage is ${zeroStage}. Set it to false or use zero_stage: 3.`));
      }
    }
    for (const dev of ['offload_optimizer_device', 'offload_param_device']) {
      if (dsVals.get(dev) === 'nvme' && !getPair(ds, dev.replace('_device', '_nvme_path'))) {
        const q = getPair(ds, dev)!;
        out.push(diag(text, q.value.start, q.value.end, 'error', 'CC404', `${dev}: nvme needs ${dev.replace('_device', '_nvme_path')}.`));
      }
    }
    if (dsVals.get('offload_param_device') !== undefined && dsVals.get('offload_param_device') !== 'none' && zeroStage !== undefined && zeroStage !== 3) {
      const q = getPair(ds, 'offload_param_device')!;
      out.push(diag(text, q.value.start, q.value.end, 'warning', 'CC404', `Parameter offload only exists in ZeRO stage 3, but zero_stage is ${zeroStage}.`));
    }
  }
  if (dt === 'DEEPSPEED' && zeroStage === undefined && ds && ds.kind === 'map' && !getPair(ds, 'deepspeed_config_file')) zeroStage = 2;
  return {
    numProcesses: isInt(np) ? np : undefined,
    numMachines: isInt(nm) ? nm : undefined,
    mixedPrecision: (vals.get('mixed_precision') as string | null | undefined),
    distributedType: dt,
    // accelerate reads deepspeed_config only under DEEPSPEED (CC404 warns when it is there otherwise)
    zeroStage: dt === 'DEEPSPEED' ? zeroStage : undefined,
  };
}
