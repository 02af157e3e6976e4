/**
 * The bench's row registry and printer. A row measures one workload on our runtime and,
 * where an equivalent exists, on tfjs-backend-webgpu on the same adapter; packages add
 * rows by calling `registerRow` from a module under `rows/`.
 */

/** Timings of one row (milliseconds per run, medians). */
export interface RowResult {
  /** Our median time per run. */
  oursMs: number;
  /** tfjs-backend-webgpu's median time per run, when the workload exists there. */
  tfjsMs?: number;
  /** Floating-point operations per run, for GFLOP/s. */
  flops?: number;
  /** Another baseline of ours measured side by side (e.g. unfused), when tfjs has no equivalent. */
  baselineMs?: number;
  /** What the baseline is. */
  baselineName?: string;
  /** Free text shown after the numbers (variant, per-op time...). */
  note?: string;
  /** GPU dispatches of one training step (profile rows). */
  dispatchesPerStep?: number;
  /** Dispatches one decoder layer adds to a training step (forward, backward, optimizer). */
  dispatchesPerLayer?: number;
  /** Host milliseconds of a step's ops (their JavaScript, self times summed). */
  hostMsPerStep?: number;
  /** Our host microseconds per op (dispatch rows). */
  oursUsPerOp?: number;
  /** tfjs's host microseconds per op (dispatch rows), every op dispatched to the GPU. */
  tfjsUsPerOp?: number;
  /** tfjs's microseconds per op with its default CPU shortcut for small host-resident ops (dispatch rows). */
  tfjsCpuForwardUsPerOp?: number;
  /** Peak device bytes of the measured work (above what earlier rows left alive). */
  peakBytes?: number;
  /** Peak device bytes per memory tag (weights, grads, optimizer, activations, quant, other). */
  peakBytesByTag?: Record<string, number>;
  /** Our microseconds per op of recording alone, fastest run (no wait for the device). */
  oursHostUsPerOp?: number;
  /** tfjs's microseconds per op of recording alone, fastest run. */
  tfjsHostUsPerOp?: number;
  /** Device bytes of the model once loaded (loading rows). */
  finalBytes?: number;
  /** Device bytes of the largest single weight as the load holds it (loading rows). */
  largestWeightBytes?: number;
  /** Peak host resident set during the work, above the RSS before it (loading rows). */
  hostRssPeakBytes?: number;
  /** The same for the baseline's work. */
  baselineHostRssPeakBytes?: number;
  /** NF4 rows: the f32 matmul's time over the fused 4-bit layer's (> 1: the 4-bit layer is faster). */
  f32OverFused?: number;
  /** NF4 rows from 128 rows: the tile-by-tile 4-bit kernel's forward and input-gradient median ms, and its first forward (pipeline compile included). */
  tiledMs?: number;
  tiledDxMs?: number;
  tiledFirstMs?: number;
  /** The same rows: the transient-weight kernel's forward and input-gradient median ms. */
  transientMs?: number;
  transientDxMs?: number;
  /** The same rows: peak device bytes of one forward with each kernel. */
  tiledPeakBytes?: number;
  transientPeakBytes?: number;
}

/** Shared handles passed to every row. */
export interface BenchContext {
  /** The tfjs-core module with the webgpu backend active, or null when it could not start. */
  tf: typeof import('@tensorflow/tfjs-core') | null;
  /** Waits for all tfjs GPU work submitted so far. */
  tfSync: () => Promise<void>;
  /** Timed runs per measurement (after warm-up). */
  runs: number;
}

/** One benchmark row. */
export interface BenchRow {
  /** Group shown as a table section (`matmul`, `dispatch`, ...). */
  group: string;
  /** Row label, e.g. `[1024x1024] x [1024x1024]`. */
  name: string;
  run(ctx: BenchContext): Promise<RowResult>;
}

const rows: BenchRow[] = [];

/** Adds a row to the bench (rows run in registration order). */
export function registerRow(row: BenchRow): void {
  rows.push(row);
}

/** The registered rows. */
export function registeredRows(): readonly BenchRow[] {
  return rows;
}

/** A finished row: its result plus the derived columns. */
export interface RowReport extends RowResult {
  group: string;
  name: string;
  /** tfjs time / our time (> 1: we are faster). */
  ratio?: number;
  /** baseline time / our time (> 1: ours is faster). */
  baselineRatio?: number;
  oursGflops?: number;
  tfjsGflops?: number;
}

/** Adds ratio and GFLOP/s columns to a result. */
export function report(row: BenchRow, r: RowResult): RowReport {
  const out: RowReport = { group: row.group, name: row.name, ...r };
  if (r.tfjsMs !== undefined) out.ratio = r.tfjsMs / r.oursMs;
  if (r.baselineMs !== undefined) out.baselineRatio = r.baselineMs / r.oursMs;
  if (r.flops !== undefined) {
    out.oursGflops = r.flops / r.oursMs / 1e6;
    if (r.tfjsMs !== undefined) out.tfjsGflops = r.flops / r.tfjsMs / 1e6;
  }
  return out;
}

const fmt = (v: number | undefined, digits: number): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

/** Formats reports as a fixed-width text table. */
export function formatTable(reports: readonly RowReport[]): string {
  const header = ['group', 'row', 'ours ms', 'tfjs ms', 'tfjs/ours', 'ours GFLOP/s', 'tfjs GFLOP/s', 'baseline', 'baseline ms', 'base/ours', 'note'];
  const body = reports.map((r) => [
    r.group,
    r.name,
    fmt(r.oursMs, 3),
    fmt(r.tfjsMs, 3),
    fmt(r.ratio, 2),
    fmt(r.oursGflops, 2),
    fmt(r.tfjsGflops, 2),
    r.baselineName ?? '',
    fmt(r.baselineMs, 3),
    fmt(r.baselineRatio, 2),
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
