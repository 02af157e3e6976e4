import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** Fine-tuning methods the CLI runs. */
export const METHODS = ['full', 'lora', 'qlora', 'dora', 'ia3'] as const;
/** Fine-tuning method: all weights, LoRA, LoRA on an NF4 base, DoRA, or IA3. */
export type Method = (typeof METHODS)[number];
/** Learning-rate schedules after warmup. */
export const SCHEDULES = ['cosine', 'linear', 'constant'] as const;
/** Learning-rate schedule after warmup. */
export type Schedule = (typeof SCHEDULES)[number];
/** Compute backends. */
export const BACKENDS = ['webgpu', 'cpu'] as const;
/** Weight and compute dtypes: f32, f16 (needs an adapter with shader-f16), or auto (f16 where available). */
export const DTYPES = ['f32', 'f16', 'auto'] as const;
/** What a step with a NaN or infinite gradient does (the optimizer's `nonFinite` policy). */
export const NON_FINITE = ['warn', 'skip', 'throw'] as const;

/** Options of the fine-tuning CLI (every one has a default). */
export interface FinetuneOptions {
  /** Checkpoint folder or URL; null means the embedded default model. */
  model: string | null;
  method: Method;
  rank: number;
  alpha: number;
  dropout: number;
  /** Module names; `all-linear` among them stands for every linear layer but the output head (PEFT's shorthand). */
  targets: string[];
  lr: number;
  schedule: Schedule;
  warmup: number;
  steps: number;
  batch: number;
  gradAccum: number;
  seqLen: number;
  evalEvery: number;
  evalBatches: number;
  out: string;
  backend: (typeof BACKENDS)[number];
  /** Dtype of the frozen base and its compute; adapters and optimizer state stay f32. */
  dtype: (typeof DTYPES)[number];
  /** Non-finite gradients: skip the step and warn after 10 in a row, skip silently, or stop the run. */
  nonFinite: (typeof NON_FINITE)[number];
  seed: number;
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  corpusChars: number;
}

type Kind = 'int' | 'posint' | 'number' | 'prob' | 'string' | 'list';

interface Spec {
  key: keyof FinetuneOptions;
  kind: Kind;
  default: string;
  help: string;
  choices?: readonly string[];
  /** Shown instead of the default value in --help. */
  defaultText?: string;
}

/** Every option, in --help order. Flag names are the kebab-case keys. */
const SPECS: Spec[] = [
  { key: 'model', kind: 'string', default: '', defaultText: 'the embedded default model', help: 'Hugging Face checkpoint folder or http(s) URL (GPT-2 or LLaMA family)' },
  { key: 'method', kind: 'string', default: 'qlora', choices: METHODS, help: 'what to train: all weights, LoRA, LoRA on an NF4 base, DoRA, IA3' },
  { key: 'rank', kind: 'posint', default: '16', help: 'LoRA/DoRA rank' },
  { key: 'alpha', kind: 'number', default: '32', help: 'LoRA/DoRA alpha (scale alpha / rank)' },
  { key: 'dropout', kind: 'prob', default: '0', help: 'LoRA/DoRA dropout probability' },
  { key: 'targets', kind: 'list', default: 'all-linear,lm_head', help: "comma-separated module names; 'all-linear': every linear layer but lm_head" },
  { key: 'lr', kind: 'number', default: '', defaultText: '1e-2 for adapters, 1e-3 for full', help: 'peak learning rate' },
  { key: 'schedule', kind: 'string', default: 'cosine', choices: SCHEDULES, help: 'learning-rate decay after warmup' },
  { key: 'warmup', kind: 'int', default: '4', help: 'linear warmup steps' },
  { key: 'steps', kind: 'posint', default: '36', help: 'optimizer steps' },
  { key: 'batch', kind: 'posint', default: '8', help: 'sequences per micro-batch' },
  { key: 'gradAccum', kind: 'posint', default: '1', help: 'micro-batches per optimizer step' },
  { key: 'seqLen', kind: 'posint', default: '64', help: 'tokens per sequence' },
  { key: 'evalEvery', kind: 'int', default: '0', help: 'evaluate every N steps (0: only before and after)' },
  { key: 'evalBatches', kind: 'posint', default: '4', help: 'held-out batches per evaluation' },
  { key: 'out', kind: 'string', default: '', defaultText: 'out/finetune-<method>', help: 'where the adapter (PEFT format) or the model goes' },
  { key: 'backend', kind: 'string', default: 'webgpu', choices: BACKENDS, help: 'compute backend' },
  { key: 'dtype', kind: 'string', default: 'f32', choices: DTYPES, help: 'base weights and compute: f32, f16 (adapter needs shader-f16), auto (f16 where the adapter has it); adapters stay f32' },
  { key: 'nonFinite', kind: 'string', default: 'warn', choices: NON_FINITE, help: 'a step whose gradients hold NaN/inf is skipped; warn after 10 in a row, skip silently, or throw' },
  { key: 'seed', kind: 'int', default: '0', help: 'seed of adapter init, batches and sampling' },
  { key: 'prompt', kind: 'string', default: 'Mr. Speaker, Mr. Vice President, members of Congress,', help: 'prompt of the before/after samples' },
  { key: 'maxNewTokens', kind: 'posint', default: '40', help: 'sample length in tokens' },
  { key: 'temperature', kind: 'number', default: '0.8', help: 'sampling temperature (0: greedy)' },
  { key: 'topP', kind: 'prob', default: '0.9', help: 'nucleus sampling mass' },
  { key: 'corpusChars', kind: 'posint', default: '400000', help: 'characters of State of the Union text to use' },
];

const flagOf = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The --help text, listing every option with its default. */
export function helpText(): string {
  const rows = SPECS.map((s) => {
    const value = s.choices ? s.choices.join('|') : s.kind === 'string' || s.kind === 'list' ? 'TEXT' : s.kind === 'number' || s.kind === 'prob' ? 'X' : 'N';
    const def = s.defaultText ?? (s.default === '' ? 'none' : s.default);
    return `  --${flagOf(s.key)} ${value}`.padEnd(36) + `${s.help} (default: ${def})`;
  });
  return [
    'Fine-tune a causal LM on State of the Union addresses (1990-2010, last 10% held out).',
    '',
    'The default model is @webpeft/default-model, a small LLaMA pretrained on Moby-Dick.',
    '',
    'Usage: npm run finetune -- [options]',
    ...rows,
    '  --config FILE'.padEnd(36) + 'JSON object of options (camelCase or kebab-case keys); flags override it',
    '  --help'.padEnd(36) + 'print this and exit',
  ].join('\n');
}

/** A bad option value: the message names the option and what it accepts. */
export class OptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptionError';
  }
}

/**
 * Parses and validates `argv` (without node and script) and an optional `--config` file.
 * Throws {@link OptionError} naming the option and its accepted values; never loads a model.
 * Returns null for `--help` (after printing it with `print`).
 */
export function parseOptions(argv: string[], print: (text: string) => void = (t) => console.log(t)): FinetuneOptions | null {
  const flagSpecs = Object.fromEntries(SPECS.map((s) => [flagOf(s.key), { type: 'string' as const }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...flagSpecs, config: { type: 'string' }, help: { type: 'boolean' } }, allowPositionals: false, strict: true });
  } catch (e) {
    throw new OptionError(`${(e as Error).message.split('\n')[0]} (see --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) {
    print(helpText());
    return null;
  }
  const fromConfig = values.config === undefined ? {} : readConfig(String(values.config));
  const raw = new Map<string, string>();
  for (const [k, v] of Object.entries(fromConfig)) raw.set(k, v);
  for (const s of SPECS) {
    const v = values[flagOf(s.key)];
    if (typeof v === 'string') raw.set(s.key, v);
  }
  const out: Record<string, unknown> = {};
  for (const s of SPECS) out[s.key] = convert(s, raw.get(s.key) ?? s.default);
  const o = out as unknown as FinetuneOptions;
  if (o.lr === null) o.lr = o.method === 'full' ? 1e-3 : 1e-2;
  if (o.out === '') o.out = `out/finetune-${o.method}`;
  if (o.model === '') o.model = null;
  // Full fine-tuning trains the weights themselves, which need f32 master copies.
  if (o.method === 'full' && o.dtype === 'f16') throw new OptionError("--dtype f16 needs an adapter method: --method full trains the weights, which stay f32 (use --dtype f32 or auto)");
  if (o.warmup > o.steps) throw new OptionError(`--warmup must be at most --steps (${o.steps}), got ${o.warmup}`);
  return o;
}

function convert(s: Spec, text: string): unknown {
  const flag = `--${flagOf(s.key)}`;
  if (s.key === 'lr' && text === '') return null;
  switch (s.kind) {
    case 'string':
      if (s.choices && !s.choices.includes(text)) throw new OptionError(`${flag} must be one of ${s.choices.join(', ')}; got '${text}'`);
      return text;
    case 'list': {
      const items = text.split(',').map((t) => t.trim());
      if (items.some((t) => t !== 'all-linear' && !/^[A-Za-z_][\w.]*$/.test(t))) {
        throw new OptionError(`${flag} must be comma-separated module names like q_proj,v_proj, or 'all-linear'; got '${text}'`);
      }
      return items;
    }
    case 'int':
    case 'posint': {
      const n = Number(text);
      const min = s.kind === 'posint' ? 1 : 0;
      if (text.trim() === '' || !Number.isInteger(n) || n < min) throw new OptionError(`${flag} must be an integer >= ${min}; got '${text}'`);
      return n;
    }
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new OptionError(`${flag} must be a non-negative number; got '${text}'`);
      return n;
    }
    case 'prob': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new OptionError(`${flag} must be a number in [0, 1]; got '${text}'`);
      return n;
    }
  }
}

/** Reads a `--config` JSON object into option-name -> text, naming the file and any unknown key. */
function readConfig(path: string): Record<string, string> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new OptionError(`--config ${path}: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new OptionError(`--config ${path}: must be a JSON object of options`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc)) {
    const spec = SPECS.find((s) => s.key === k || flagOf(s.key) === k);
    if (!spec) throw new OptionError(`--config ${path}: unknown option '${k}' (options: ${SPECS.map((s) => s.key).join(', ')})`);
    if (!['string', 'number'].includes(typeof v) && !(Array.isArray(v) && spec.kind === 'list')) {
      throw new OptionError(`--config ${path}: option '${k}' must be a string or number, got ${JSON.stringify(v)}`);
    }
    out[spec.key] = Array.isArray(v) ? v.join(',') : String(v);
  }
  return out;
}
