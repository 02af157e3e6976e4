/** WGSL `maxNan(a, b)`: `max` that propagates NaN like `Math.max` (WGSL leaves `max` with NaN unspecified). */
export const WGSL_MAX_NAN = `fn maxNan(a: f32, b: f32) -> f32 {
  if (a != a) { return a; }
  if (b != b) { return b; }
  return max(a, b);
}`;
