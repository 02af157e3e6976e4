/**
 * Messages between the studio page and its training worker. Requests carry an `id`
 * and get exactly one `reply`; training streams `step`/`eval`/`state` events. Every
 * payload is structured-cloneable (no tensors cross the boundary).
 */

/** Where the base model comes from. */
export type ModelChoice =
  /** The default model served with the app, at `url` (the page's `default-model/` folder). */
  | { kind: 'default'; url: string }
  /** A base URL of a Hugging Face folder (`config.json`, weights, `tokenizer.json` inside); http(s) downloads are cached. */
  | { kind: 'url'; url: string }
  /** A Hugging Face Hub repo id (`org/name`), downloaded once into the browser's cache. */
  | { kind: 'hub'; repo: string }
  /** Files of a folder the user picked (File System Access API, or `<input type=file webkitdirectory>`). */
  | { kind: 'files'; files: File[]; /** The folder's name, for the page. */ folder: string };

/** The fine-tuning methods the studio offers (the finetune CLI's `--method` values). */
export const METHODS = ['lora', 'qlora', 'dora', 'ia3', 'adapter-houlsby', 'adapter-pfeiffer', 'adapter-parallel', 'prompt', 'prefix', 'p-tuning'] as const;
/** One of {@link METHODS}. */
export type MethodName = (typeof METHODS)[number];

/** Everything one training run needs; validated in the worker before anything is built. */
export interface TrainSettings {
  method: MethodName;
  /** LoRA/DoRA/QLoRA rank. */
  rank: number;
  /** LoRA alpha (scaling = alpha / rank, or alpha / sqrt(rank) with `useRslora`). */
  alpha: number;
  /** rsLoRA's rank-stabilised scaling alpha / sqrt(rank) (Kalajdzievski 2023) for LoRA, QLoRA and DoRA. */
  useRslora: boolean;
  /**
   * LoRA/QLoRA initialisation (PEFT's `init_lora_weights`): `default`, `gaussian`, `pissa`,
   * `pissa_niter_K`, `olora` or `loftq`; the last four rewrite the base from its full-precision
   * weights (QLoRA then quantizes after them).
   */
  loraInit: string;
  /** LoftQ's alternating quantize / SVD steps (with `loraInit: 'loftq'`). */
  loftqIter: number;
  /** Comma-separated module names, or `all-linear`. Empty: the method's defaults (IA3). */
  targets: string;
  /** Virtual tokens of prompt tuning, prefix tuning and P-tuning. */
  numVirtualTokens: number;
  /** Bottleneck width = floor(hidden / reductionFactor) of the bottleneck adapters (AdapterHub's `reduction_factor`). */
  reductionFactor: number;
  /** The bottleneck adapters' nonlinearity (AdapterHub's names: `relu`, `swish`, `gelu`, ...). */
  nonLinearity: string;
  /** P-tuning's encoder of the virtual tokens. */
  encoder: 'mlp' | 'lstm';
  /** P-tuning's encoder hidden size; 0: the model's width (PEFT's default). */
  encoderHiddenSize: number;
  lr: number;
  steps: number;
  batch: number;
  seqLen: number;
  /** Evaluate the held-out loss every this many steps (0: only before and after). */
  evalEvery: number;
  seed: number;
  /**
   * The training data: plain text (one sample per non-blank line) or JSON Lines
   * (`{"text"}`, `{"prompt","completion"}` or `{"messages"}` records), as nn's
   * `parseSftData` reads it; the last 10% of the samples are held out.
   */
  text: string;
  /** Where `text` came from (a file name; `.jsonl` selects JSON Lines), named in data errors as `name:line`. */
  dataName: string;
  /** Pack the samples into rows of `seqLen` tokens (TRL's best-fit decreasing); else each sample is a padded row. */
  packing: boolean;
  /** Loss on completions / assistant turns only (`true`), every token (`false`), or TRL's default for the format (`auto`). */
  completionOnly: 'auto' | 'true' | 'false';
  /**
   * Test hooks (set only from the page's URL, `?oom-at-step=N`): at step N the worker
   * allocates a tensor larger than the device allows, so the real out-of-memory path runs.
   */
  oomAtStep?: number;
}

/** Kinds of failure the page explains in its own words. */
export type StudioErrorKind = 'no-webgpu' | 'no-adapter' | 'out-of-memory' | 'unsupported-model' | 'malformed-file' | 'invalid-setting' | 'error';

/** A failure, as it crosses to the page. */
export interface StudioErrorInfo {
  kind: StudioErrorKind;
  message: string;
  /** Device memory by tag at the failure (out of memory), bytes. */
  memoryByTag?: Record<string, number>;
}

/** What a loaded model is, for the page. */
export interface ModelInfo {
  name: string;
  modelType: string;
  parameters: number;
  vocabSize: number;
  maxPositions: number;
  /** GPU adapter description (vendor, architecture). */
  adapter: string;
}

/** Page -> worker. */
export type Request =
  | { id: number; op: 'load'; model: ModelChoice }
  | { id: number; op: 'train'; settings: TrainSettings }
  | { id: number; op: 'generate'; prompt: string; maxNewTokens: number }
  | { id: number; op: 'exportAdapter' }
  | { id: number; op: 'loadAdapter'; files: Record<string, Uint8Array>; quantizedBase: boolean }
  | { id: number; op: 'mergeAndExport' }
  | { id: number; op: 'combineAdapter'; files: Record<string, Uint8Array>; weights: [number, number]; options: CombineOptions }
  | { id: number; op: 'logits'; prompt: string };

/** Training controls (no reply). */
/** How `combineAdapter` combines the current adapter with another (PEFT's `add_weighted_adapter` options). */
export interface CombineOptions {
  combinationType: string;
  density?: number;
  majoritySignMethod?: 'total' | 'frequency';
  svdRank?: number;
  svdClamp?: number;
}

export type Control = { op: 'pause' } | { op: 'resume' } | { op: 'stop' };

/** Results of each request op. */
export interface Replies {
  load: ModelInfo;
  train: TrainSummary;
  generate: { base: string; adapted: string };
  exportAdapter: { files: Record<string, Uint8Array> };
  loadAdapter: { method: string; trainable: number };
  mergeAndExport: { files: Record<string, Uint8Array> };
  combineAdapter: { combinationType: string; rank: number };
  logits: { inputIds: number[]; shape: number[]; logits: number[] };
}

/** How a training run ended. */
export interface TrainSummary {
  steps: number;
  stopped: boolean;
  evalBefore: number;
  evalAfter: number;
  seconds: number;
  tokensPerSecond: number;
  peakBytesByTag: Record<string, number>;
}

/** Worker -> page. */
export type WorkerEvent =
  | { type: 'reply'; id: number; ok: true; value: unknown }
  | { type: 'reply'; id: number; ok: false; error: StudioErrorInfo }
  | { type: 'log'; line: string }
  | { type: 'state'; state: 'training' | 'paused' | 'idle' }
    /** `memoryByTag`: the step's peak device bytes per tag (weights, grads, optimizer, activations, quant, other); `peakBytes`: its peak in all. */
  | { type: 'step'; step: number; total: number; loss: number; tokensPerSecond: number; etaSeconds: number; memoryByTag: Record<string, number>; peakBytes: number }
  | { type: 'eval'; step: number; loss: number }
  /** Download progress of one model file (`total` null when the server does not say). */
  | { type: 'download'; file: string; loaded: number; total: number | null; done: boolean };
