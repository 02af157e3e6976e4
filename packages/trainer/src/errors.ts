/** A checkpoint that cannot be saved or loaded: the message names the checkpoint, the file and the field or tensor. */
export class CheckpointError extends Error {
  constructor(
    message: string,
    /** The checkpoint folder (path or store key). */
    readonly checkpoint: string,
  ) {
    super(message);
    this.name = 'CheckpointError';
  }
}
