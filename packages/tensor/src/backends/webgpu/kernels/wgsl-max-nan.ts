/**
 * WGSL `isNan(x)` by bit pattern (compilers may fold `x != x` to false under fast-math)
 * and `maxNan(a, b)`: `max` that propagates NaN like `Math.max` (WGSL leaves `max` with
 * NaN unspecified).
 */
export const WGSL_MAX_NAN = `fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn maxNan(a: f32, b: f32) -> f32 {
  if (isNan(a)) { return a; }
  if (isNan(b)) { return b; }
  return max(a, b);
}`;
