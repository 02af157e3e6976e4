/**
 * Thin singular value decomposition of a small dense matrix on the host, in float64,
 * by one-sided Jacobi rotations (Hestenes 1958; Demmel & Veselic 1992): columns of a
 * working copy are orthogonalised pairwise until every pair is orthogonal to
 * `tol`; the column norms are the singular values. Accurate to working precision and
 * simple; cost O(sweeps * n^2 * m), meant for LoRA deltas (`[out, in]` of one layer),
 * not for large matrices.
 */
export interface Svd {
  /** `[m, k]` row-major, orthonormal columns. */
  U: Float64Array;
  /** `[k]`, descending. */
  S: Float64Array;
  /** `[k, n]` row-major, orthonormal rows. */
  Vh: Float64Array;
  k: number;
}

/**
 * `A [m, n]` (row-major) = `U diag(S) Vh` with `k = min(m, n)`.
 * @example const { U, S, Vh } = svd(delta, out, inF);
 */
export function svd(a: ArrayLike<number>, m: number, n: number, options: { tol?: number; maxSweeps?: number } = {}): Svd {
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values do not fill [${m}, ${n}]`);
  if (m < n) {
    // A^T = V S U^T: decompose the transpose (Jacobi works on the shorter side's columns).
    const t = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
    const r = svd(t, n, m, options);
    // r.U [n, k] = V, r.Vh [k, m] = U^T.
    const k = r.k;
    const U = new Float64Array(m * k);
    const Vh = new Float64Array(k * n);
    for (let i = 0; i < m; i++) for (let c = 0; c < k; c++) U[i * k + c] = r.Vh[c * m + i];
    for (let c = 0; c < k; c++) for (let j = 0; j < n; j++) Vh[c * n + j] = r.U[j * k + c];
    return { U, S: r.S, Vh, k };
  }
  const tol = options.tol ?? 1e-15;
  const maxSweeps = options.maxSweeps ?? 60;
  // Column-major working copy W [m, n] and V [n, n] = I.
  const W = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) W[j * m + i] = a[i * n + j];
  const V = new Float64Array(n * n);
  for (let j = 0; j < n; j++) V[j * n + j] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const x = W[p * m + i];
          const y = W[q * m + i];
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = W[p * m + i];
          const y = W[q * m + i];
          W[p * m + i] = c * x - s * y;
          W[q * m + i] = s * x + c * y;
        }
        for (let i = 0; i < n; i++) {
          const x = V[p * n + i];
          const y = V[q * n + i];
          V[p * n + i] = c * x - s * y;
          V[q * n + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (let i = 0; i < m; i++) s += W[j * m + i] ** 2;
    return Math.sqrt(s);
  });
  const order = norms.map((_, j) => j).sort((x, y) => norms[y] - norms[x]);
  const k = n;
  const U = new Float64Array(m * k);
  const S = new Float64Array(k);
  const Vh = new Float64Array(k * n);
  order.forEach((j, c) => {
    S[c] = norms[j];
    for (let i = 0; i < m; i++) U[i * k + c] = norms[j] > 0 ? W[j * m + i] / norms[j] : 0;
    // Column j of V is stored contiguously at V[j * n ...], so it is row c of Vh.
    for (let i = 0; i < n; i++) Vh[c * n + i] = V[j * n + i];
  });
  return { U, S, Vh, k };
}
