/**
 * Reduced QR decomposition of a small dense matrix on the host, in float64, by Householder
 * reflections with LAPACK's sign rule (`dgeqrf` / `dlarfg`: each reflector maps its column
 * onto `beta e1` with `beta = -sign(alpha) ||x||`, no reflection when the column below the
 * diagonal is already zero), so the factors equal `torch.linalg.qr(A)` (mode 'reduced')
 * signs included, up to rounding. Meant for one layer's weight (OLoRA's init), not for
 * large matrices.
 */
export interface Qr {
  /** `[m, k]` row-major, orthonormal columns. */
  Q: Float64Array;
  /** `[k, n]` row-major, upper triangular. */
  R: Float64Array;
  k: number;
}

/**
 * `A [m, n]` (row-major) = `Q R` with `k = min(m, n)`.
 * @example const { Q, R } = qr(weight, out, inF);
 */
export function qr(a: ArrayLike<number>, m: number, n: number): Qr {
  if (a.length !== m * n) throw new Error(`qr: ${a.length} values do not fill [${m}, ${n}]`);
  const k = Math.min(m, n);
  const w = Float64Array.from(a);
  // Reflector j: v (v[j] = 1, zero above j) and tau; H_j = I - tau v v^T.
  const vs: Float64Array[] = [];
  const taus: number[] = [];
  for (let j = 0; j < k; j++) {
    const alpha = w[j * n + j];
    let xnorm = 0;
    for (let i = j + 1; i < m; i++) xnorm = Math.hypot(xnorm, w[i * n + j]);
    const v = new Float64Array(m);
    v[j] = 1;
    if (xnorm === 0) {
      vs.push(v);
      taus.push(0);
      continue;
    }
    const beta = -(alpha >= 0 ? 1 : -1) * Math.hypot(alpha, xnorm);
    const tau = (beta - alpha) / beta;
    for (let i = j + 1; i < m; i++) v[i] = w[i * n + j] / (alpha - beta);
    // Apply H_j to the columns j.. of the working matrix.
    w[j * n + j] = beta;
    for (let i = j + 1; i < m; i++) w[i * n + j] = 0;
    for (let c = j + 1; c < n; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i] * w[i * n + c];
      const f = tau * dot;
      for (let i = j; i < m; i++) w[i * n + c] -= f * v[i];
    }
    vs.push(v);
    taus.push(tau);
  }
  const R = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let c = i; c < n; c++) R[i * n + c] = w[i * n + c];
  // Q = H_0 H_1 ... H_{k-1} I[:, :k], applied from the last reflector back.
  const Q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) Q[i * k + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const v = vs[j];
    const tau = taus[j];
    if (tau === 0) continue;
    for (let c = 0; c < k; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i] * Q[i * k + c];
      const f = tau * dot;
      for (let i = j; i < m; i++) Q[i * k + c] -= f * v[i];
    }
  }
  return { Q, R, k };
}
