/**
 * Packing of short SFT samples into rows of at most `seqLength` tokens, as TRL 1.13's
 * `pack_dataset`: `'bfd'` (TRL's default: best-fit decreasing, each sample stays whole in
 * one row, tokens past `seqLength` dropped), `'bfd_split'` (overflow split into fragments
 * that are packed too) and `'wrapped'` (concatenate everything and cut every `seqLength`
 * tokens, across sample boundaries).
 *
 * Best-fit decreasing (Ding et al. 2024, "Fewer Truncations Improve Language Modeling"):
 * samples in decreasing length, each into the open row with the least space that fits it,
 * ties to the earliest row holding that space, else a new row.
 */
import type { SftExample } from './sft-tokenize.js';

/** TRL's `packing_strategy` values. */
export type PackingStrategy = 'bfd' | 'bfd_split' | 'wrapped';

/** One packed row: the samples' ids and labels back to back, and each sample's length. */
export interface PackedExample extends SftExample {
  /** Lengths of the samples in this row, in order (TRL's `seq_lengths`); sums to the row length. */
  seqLengths: number[];
}

/**
 * Packs `examples` into rows of at most `seqLength` tokens, `chunkSize` samples at a time
 * (default 1000, as TRL). With `'wrapped'` the whole row is one sequence (`seqLengths` =
 * `[row length]`), as TRL (which keeps no boundaries then).
 * @example
 * packSft([{ inputIds: [1, 2, 3], labels: [1, 2, 3] }, { inputIds: [4], labels: [4] }], 4);
 * // [{ inputIds: [1, 2, 3, 4], labels: [1, 2, 3, 4], seqLengths: [3, 1] }]
 */
export function packSft(examples: readonly SftExample[], seqLength: number, strategy: PackingStrategy = 'bfd', chunkSize = TRL_MAP_BATCH): PackedExample[] {
  if (!(Number.isInteger(seqLength) && seqLength > 0)) throw new Error(`packSft: seqLength must be a positive integer, got ${seqLength}`);
  if (!(Number.isInteger(chunkSize) && chunkSize > 0)) throw new Error(`packSft: chunkSize must be a positive integer, got ${chunkSize}`);
  const out: PackedExample[] = [];
  for (let s = 0; s < examples.length; s += chunkSize) out.push(...packChunk(examples.slice(s, s + chunkSize), seqLength, strategy));
  return out;
}

/**
 * TRL packs inside `datasets.map(batched=True)`, whose default batch is 1000 samples: rows
 * never mix samples of different thousands. Packing per chunk of the same size keeps the
 * rows identical to TRL's.
 */
const TRL_MAP_BATCH = 1000;

function packChunk(examples: readonly SftExample[], seqLength: number, strategy: PackingStrategy): PackedExample[] {
  examples.forEach((e, i) => {
    if (e.inputIds.length !== e.labels.length) {
      throw new Error(`packSft: example ${i} has ${e.inputIds.length} ids but ${e.labels.length} labels`);
    }
  });
  if (strategy === 'wrapped') return packWrapped(examples, seqLength);
  if (strategy !== 'bfd' && strategy !== 'bfd_split') {
    throw new Error(`packSft: strategy must be 'bfd', 'bfd_split' or 'wrapped', got ${JSON.stringify(strategy)}`);
  }
  const pieces: SftExample[] = [];
  for (const e of examples) {
    if (e.inputIds.length === 0) continue;
    if (strategy === 'bfd') pieces.push({ inputIds: e.inputIds.slice(0, seqLength), labels: e.labels.slice(0, seqLength) });
    else {
      for (let s = 0; s < e.inputIds.length; s += seqLength) {
        pieces.push({ inputIds: e.inputIds.slice(s, s + seqLength), labels: e.labels.slice(s, s + seqLength) });
      }
    }
  }
  // Stable sort by decreasing length: equal lengths keep their order, as TRL's arrow sort.
  const order = pieces.map((_, i) => i).sort((a, b) => pieces[b].inputIds.length - pieces[a].inputIds.length || a - b);
  const bins: { ids: number[]; length: number }[] = [];
  // Open rows by remaining space, each list in the order the rows reached that space.
  const bySpace = new Map<number, { ids: number[]; length: number }[]>();
  const spaces = new SpaceIndex(seqLength);
  for (const i of order) {
    const len = pieces[i].inputIds.length;
    const space = spaces.smallestAtLeast(len);
    let bin: { ids: number[]; length: number };
    if (space !== undefined) {
      const list = bySpace.get(space)!;
      bin = list.shift()!;
      if (list.length === 0) {
        bySpace.delete(space);
        spaces.remove(space);
      }
    } else {
      bin = { ids: [], length: 0 };
      bins.push(bin);
    }
    bin.ids.push(i);
    bin.length += len;
    const left = seqLength - bin.length;
    if (left > 0) {
      const list = bySpace.get(left);
      if (list) list.push(bin);
      else {
        bySpace.set(left, [bin]);
        spaces.add(left);
      }
    }
  }
  return bins.map((bin) => ({
    inputIds: bin.ids.flatMap((i) => pieces[i].inputIds),
    labels: bin.ids.flatMap((i) => pieces[i].labels),
    seqLengths: bin.ids.map((i) => pieces[i].inputIds.length),
  }));
}

function packWrapped(examples: readonly SftExample[], seqLength: number): PackedExample[] {
  const ids = examples.flatMap((e) => e.inputIds);
  const labels = examples.flatMap((e) => e.labels);
  const out: PackedExample[] = [];
  for (let s = 0; s < ids.length; s += seqLength) {
    const row = ids.slice(s, s + seqLength);
    out.push({ inputIds: row, labels: labels.slice(s, s + seqLength), seqLengths: [row.length] });
  }
  return out;
}

/**
 * The set of remaining spaces of open rows, answering "smallest space >= n" in O(log S)
 * (a max segment tree over 1..seqLength, the structure TRL uses).
 */
class SpaceIndex {
  private readonly size: number;
  private readonly tree: Int32Array;

  constructor(private readonly max: number) {
    let size = 1;
    while (size < max) size <<= 1;
    this.size = size;
    this.tree = new Int32Array(2 * size);
  }

  add(space: number): void {
    this.set(space, space);
  }

  remove(space: number): void {
    this.set(space, 0);
  }

  /** The smallest space >= n present, or undefined. */
  smallestAtLeast(n: number): number | undefined {
    if (this.tree[1] < n) return undefined;
    let i = 1;
    while (i < this.size) i = this.tree[2 * i] >= n ? 2 * i : 2 * i + 1;
    return this.tree[i];
  }

  private set(space: number, value: number): void {
    let i = this.size + space - 1;
    this.tree[i] = value;
    for (i >>= 1; i >= 1; i >>= 1) this.tree[i] = Math.max(this.tree[2 * i], this.tree[2 * i + 1]);
  }
}
