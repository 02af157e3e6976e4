import { IndexError } from '@webpeft/tensor';

/**
 * A sequence longer than a model's position table: `prefix + past + T` positions
 * against GPT-2's `n_positions` or LLaMA's `max_position_embeddings`.
 */
export class SequenceLengthError extends RangeError {
  override name = 'SequenceLengthError';
}

/** The position limit of a config and the field it comes from, or null when it has none. */
export function positionLimit(config: object): { field: string; value: number } | null {
  const c = config as { n_positions?: unknown; max_position_embeddings?: unknown };
  if (typeof c.n_positions === 'number') return { field: 'n_positions', value: c.n_positions };
  if (typeof c.max_position_embeddings === 'number') return { field: 'max_position_embeddings', value: c.max_position_embeddings };
  return null;
}

/**
 * Throws a {@link SequenceLengthError} naming the model, the limit and the length when
 * `length` positions (prefix + past + new tokens) exceed the config's position table.
 * `what` says where the length comes from, for the message.
 */
export function checkSequenceLength(modelType: string, config: object, length: number, what: string): void {
  const limit = positionLimit(config);
  if (limit && length > limit.value) {
    throw new SequenceLengthError(`${modelType}: ${length} positions (${what}) exceed the config's ${limit.field} ${limit.value}`);
  }
}

/**
 * Throws an `IndexError` naming the model and `vocab_size` at the first token id of the
 * host rows `ids` (`[B, T]`) outside `[0, vocabSize)`.
 */
export function checkTokenIds(modelType: string, vocabSize: number, ids: readonly (readonly number[])[], what: string): void {
  const width = ids[0]?.length ?? 0;
  for (let b = 0; b < ids.length; b++) {
    for (let t = 0; t < ids[b].length; t++) {
      const id = ids[b][t];
      if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
        throw new IndexError(`${modelType}: ${what}`, [ids.length, width], id, b * width + t, vocabSize, 'token ids (vocab_size)');
      }
    }
  }
}
