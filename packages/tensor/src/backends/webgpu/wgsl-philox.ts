/**
 * Philox4x32-10 in WGSL, line for line the TypeScript version in `random/philox.ts`
 * (which documents the stream layout), so masks match the cpu backend bit for bit.
 */
export const WGSL_PHILOX = /* wgsl */ `
fn mulhi32(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xffffu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xffffu;
  let b_hi = b >> 16u;
  let lolo = a_lo * b_lo;
  let lohi = a_lo * b_hi;
  let hilo = a_hi * b_lo;
  let hihi = a_hi * b_hi;
  let mid = (lolo >> 16u) + (lohi & 0xffffu) + (hilo & 0xffffu);
  return hihi + (lohi >> 16u) + (hilo >> 16u) + (mid >> 16u);
}
fn philox_word(k0_: u32, k1_: u32, o0: u32, o1: u32, i: u32) -> u32 {
  let b = i / 4u;
  var x0 = o0 + b;
  var x1 = o1 + select(0u, 1u, x0 < o0);
  var x2 = 0u;
  var x3 = 0u;
  var k0 = k0_;
  var k1 = k1_;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi32(0xd2511f53u, x0);
    let lo0 = 0xd2511f53u * x0;
    let hi1 = mulhi32(0xcd9e8d57u, x2);
    let lo1 = 0xcd9e8d57u * x2;
    let n0 = hi1 ^ x1 ^ k0;
    let n2 = hi0 ^ x3 ^ k1;
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    k0 = k0 + 0x9e3779b9u;
    k1 = k1 + 0xbb67ae85u;
  }
  let w = i % 4u;
  return select(select(select(x3, x2, w == 2u), x1, w == 1u), x0, w == 0u);
}
`;
