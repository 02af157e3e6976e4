/**
 * The bytes of a base64 string (golden fixtures embed checkpoints and tensors as base64
 * in JSON). Works in Node and browsers (`atob`).
 */
export function base64Bytes(b64: string): Uint8Array {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
