"""Golden values for the 8-bit blockwise Adam optimizer (@webpeft/quant AdamW8bit).

An independent numpy implementation of bitsandbytes' rules (bitsandbytes itself is not
run: it is not installable where these fixtures are generated), following its source:
csrc/kernels.cu `kOptimizerStatic8bit2StateBlockwise` for states of parameters with >= 4096 elements,
blocks of 256; `kOptimizer32bit2State` ADAM for smaller ones; bitsandbytes/optim/
optimizer.py `Optimizer2State`. Dequantize `code[q] * absmax`, fp32 Adam update, new
per-block absmax, requantize with `quantize_2D` (binary search, its tie rules) keeping the
sign of the first moment; weight decay `p *= 1 - lr*wd` after the update. Every
operation is a separately rounded float32 operation (no FMA); `powf` and `__fdividef`
are taken as correctly rounded.

Inputs come from a hash generator that the tests repeat (`hash_uniform`), so the
fixture holds only expected values: parameters after each of 5 steps and both
parameters' states after step 1.

Run: .venv-golden/bin/python tools/golden/optim8bit_reference.py   (see tools/golden/README.md)
"""

import base64
import json
import os

import numpy as np

from common import versions

F32 = np.float32
BLOCK = 256
STEPS = 5
SIZES = [5000, 100]
HYPER = {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.01}


def hash_uniform(n, seed):
    """float32 values in [-1, 1): fmix32(i * 0x9E3779B1 + seed) / 2^31 - 1."""
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64(seed)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    return (h.astype(np.float64) / 2**31 - 1).astype(F32)


def grad_of(param_index, step, n):
    """Gradient: uniform values scaled per block of 256 by 10^-(block % 4), to span the map's exponents."""
    u = hash_uniform(n, 1000 * (step + 1) + param_index)
    scale = (10.0 ** -((np.arange(n) // BLOCK) % 4)).astype(F32)
    return (u * scale).astype(F32)


def linspace_f32(a, b, n):
    return (a + (b - a) * np.arange(n, dtype=np.float64) / (n - 1)).astype(F32)


def dynamic_map(signed):
    data = []
    for i in range(7):
        items = 2**i + 1 if signed else 2 ** (i + 1) + 1
        b = linspace_f32(0.1, 1.0, items)
        means = (b[:-1] + b[1:]) / F32(2)
        scale = F32(10.0 ** (-6 + i))
        data += list(scale * means)
        if signed:
            data += list(-scale * means)
    data += [F32(0), F32(1)]
    assert len(data) == 256
    return np.sort(np.array(data, dtype=F32))


def quantize_2d(code, x, signed):
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower = F32(-1.0) if signed else F32(0.0)
    upper = F32(1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if x > val:
        return upper_pivot if x > (upper + val) * F32(0.5) else pivot
    return lower_pivot if x < (lower + val) * F32(0.5) else pivot


def scalars(step):
    b1, b2 = F32(HYPER["betas"][0]), F32(HYPER["betas"][1])
    lr, eps, wd = F32(HYPER["lr"]), F32(HYPER["eps"]), F32(HYPER["weightDecay"])
    c1 = F32(1) - F32(np.float64(b1) ** step)
    c2 = np.sqrt(F32(1) - F32(np.float64(b2) ** step))
    return dict(b1=b1, b2=b2, omb1=F32(1) - b1, omb2=F32(1) - b2, step_size=(-lr * c2) / c1, ceps=c2 * eps, decay=F32(1) - lr * wd, wd=wd)


def step_8bit(p, g, st, code1, code2, k):
    n = p.size
    for b in range((n + BLOCK - 1) // BLOCK):
        base = b * BLOCK
        valid = min(BLOCK, n - base)
        gv = np.zeros(BLOCK, dtype=F32)
        gv[:valid] = g[base : base + valid]
        q1 = np.full(BLOCK, 128, dtype=np.int64)
        q2 = np.zeros(BLOCK, dtype=np.int64)
        q1[:valid] = st["codes1"][base : base + valid]
        q2[:valid] = st["codes2"][base : base + valid]
        s2 = code2[q2] * st["absmax2"][b]
        s2 = s2 * k["b2"] + (k["omb2"] * gv) * gv
        s1 = code1[q1] * st["absmax1"][b]
        s1 = s1 * k["b1"] + k["omb1"] * gv
        m1, m2 = F32(np.abs(s1).max()), F32(np.abs(s2).max())
        st["absmax1"][b], st["absmax2"][b] = m1, m2
        pv = p[base : base + valid]
        pv = pv + k["step_size"] * (s1[:valid] / (np.sqrt(s2[:valid]) + k["ceps"]))
        if k["wd"] > 0:
            pv = pv * k["decay"]
        p[base : base + valid] = pv
        with np.errstate(invalid="ignore", divide="ignore"):
            x1, x2 = s1 / m1, s2 / m2
        for j in range(valid):
            c1 = quantize_2d(code1, x1[j], True)
            if np.signbit(code1[c1]) != np.signbit(s1[j]):
                c1 = (c1 + 1 if s1[j] > 0 else c1 - 1) & 255
            st["codes1"][base + j] = c1
            st["codes2"][base + j] = quantize_2d(code2, x2[j], False)


def step_32bit(p, g, st, k):
    st["state1"][:] = st["state1"] * k["b1"] + k["omb1"] * g
    st["state2"][:] = st["state2"] * k["b2"] + k["omb2"] * (g * g)
    p[:] = p + k["step_size"] * (st["state1"] / (np.sqrt(st["state2"]) + k["ceps"]))
    if k["wd"] > 0:
        p[:] = p * k["decay"]


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def main():
    code1, code2 = dynamic_map(True), dynamic_map(False)
    params = [hash_uniform(n, 7 + i) for i, n in enumerate(SIZES)]
    states = []
    for n in SIZES:
        if n >= 4096:
            nb = (n + BLOCK - 1) // BLOCK
            states.append(dict(codes1=np.zeros(n, np.uint8), codes2=np.zeros(n, np.uint8), absmax1=np.zeros(nb, F32), absmax2=np.zeros(nb, F32)))
        else:
            states.append(dict(state1=np.zeros(n, F32), state2=np.zeros(n, F32)))
    after = []
    state1 = None
    for step in range(STEPS):
        k = scalars(step + 1)
        for i, n in enumerate(SIZES):
            g = grad_of(i, step, n)
            if "codes1" in states[i]:
                step_8bit(params[i], g, states[i], code1, code2, k)
            else:
                step_32bit(params[i], g, states[i], k)
        after.append([b64(p) for p in params])
        if step == 0:
            state1 = [{key: b64(v) for key, v in st.items()} for st in states]
    out = {
        "note": "tools/golden/optim8bit_reference.py, an independent numpy implementation of bitsandbytes' rules "
                "(bitsandbytes itself not run); arrays are base64 little-endian (float32, or uint8 codes)",
        "versions": versions(),
        "sizes": SIZES,
        "hyper": HYPER,
        "dynamicSigned": b64(code1),
        "dynamicUnsigned": b64(code2),
        "paramsAfter": after,
        "stateAfterStep1": state1,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "quant", "src", "__tests__", "fixtures", "optim8bit", "adamw8bit.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
