"""Reference codecs for @webpeft/quant: an independent numpy implementation of bitsandbytes' rules.

bitsandbytes itself is not run (it is not installable on the machines that generate
these fixtures): the rules below are restated from its source, so the codecs are checked
to be byte-identical to this independent implementation of those rules, not to
bitsandbytes' CUDA kernels themselves.

Writes packages/quant/src/__tests__/fixtures/quant-codecs.json: inputs, packed 4-bit
bytes, absmax, 8-bit blockwise codes and double-quantization outputs that the TypeScript
codecs must reproduce bit for bit.

The algorithm (bitsandbytes, functional.py and csrc/kernels.cu):
  * 4-bit: per block of `blocksize` values (row-major flat order) absmax = max |x| in
    float32; the CUDA kernel scales by the float32 reciprocal, s = x * (1 / absmax), and
    walks a decision tree of strict `s > threshold` tests (dQuantizeNF4 / dQuantizeFP4),
    so an exact midpoint goes to the lower code and NaN (0 * inf in an all-zero block)
    fails every test. FP4 keeps the sign bit of `s < 0` and compares |s|.
    byte = (q[2i] << 4) | q[2i+1]; the padding of an odd count is the value 0.
  * 8-bit blockwise: the same scaling, then dQuantize<0>'s binary search over the
    256-entry code with its own midpoint rules.
  * Double quantization: c = mean(absmax), 8-bit blockwise (blocksize 256, signed
    dynamic map) of absmax - c. The float32 mean is defined here by a fixed summation
    order (256 sequential lanes, then a pairwise tree, then one division), because a
    float32 mean has no single answer across implementations.

Only numpy is needed. When torch is importable (as in .venv-golden) the dynamic maps
are also checked against torch's float32 linspace, which bitsandbytes uses.

Run: .venv-golden/bin/python tools/golden/quant_reference.py   (see tools/golden/README.md)
"""

import base64
import json
import os

import numpy as np

from common import versions

F32 = np.float32
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "quant", "src", "__tests__", "fixtures", "quant-codecs.json")

NF4 = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
     -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
     0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
     0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=F32)
FP4 = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3], dtype=F32) / F32(12)

# Decision-tree pivots of csrc/kernels.cu, as the float32 literals the kernel compiles.
NF4_PIVOTS = np.array([-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
                       -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
                       0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
                       0.5016634166240692, 0.6427869200706482, 0.8614784181118011], dtype=F32)
FP4_PIVOTS = np.array([0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333], dtype=F32)
# Magnitude rank (number of pivots passed) -> 3-bit FP4 code.
FP4_RANK_TO_CODE = np.array([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011], dtype=np.uint8)


def b64(a, dtype=F32):
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()


def linspace_f32(start, end, steps):
    """Evenly spaced points, each computed in float64 and rounded once to float32.

    torch's float32 linspace rounds differently per version and per cpu vector width
    (its vectorised path accumulates from chunk bases), so its last bit is not portable;
    this definition is, and stays within a few ulp of torch (checked in main())."""
    return np.array([start + (end - start) * i / (steps - 1) for i in range(steps)], dtype=np.float64).astype(F32)


def dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    """bitsandbytes create_dynamic_map with float32 arithmetic as torch performs it."""
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        items = 2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1
        b = linspace_f32(0.1, 1, items)
        means = (b[:-1] + b[1:]) / F32(2)
        scale = F32(10.0 ** (-(max_exponent_bits - 1) + i))
        data += list(scale * means)
        if signed:
            data += list(-scale * means)
    if additional_items > 0:
        b = linspace_f32(0.1, 1, additional_items + 1)
        means = (b[:-1] + b[1:]) / F32(2)
        scale = F32(10.0 ** (-(max_exponent_bits - 1) + max_exponent_bits - 1))
        data += list(scale * means)
        if signed:
            data += list(-scale * means)
    data += [F32(0), F32(1)]
    data += [F32(0)] * (2 ** total_bits - len(data))
    return np.sort(np.array(data, dtype=F32))


def scale_block(x):
    absmax = F32(np.max(np.abs(x))) if x.size else F32(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = F32(1) / absmax
        return absmax, (x * r).astype(F32)


def codes_4bit(s, quant_type):
    if quant_type == "nf4":
        return np.array([int(np.sum(v > NF4_PIVOTS)) for v in s], dtype=np.uint8)
    out = []
    for v in s:
        sign = 8 if v < 0 else 0
        rank = int(np.sum(np.abs(v) > FP4_PIVOTS))
        out.append(sign + int(FP4_RANK_TO_CODE[rank]))
    return np.array(out, dtype=np.uint8)


def quantize_4bit(x, blocksize, quant_type):
    n = x.size
    nb = (n + blocksize - 1) // blocksize
    absmax = np.zeros(nb, dtype=F32)
    q = np.zeros(n + (n & 1), dtype=np.uint8)
    for b in range(nb):
        blk = x[b * blocksize:(b + 1) * blocksize]
        am, s = scale_block(blk)
        absmax[b] = am
        q[b * blocksize:b * blocksize + blk.size] = codes_4bit(s, quant_type)
        if n & 1 and b == nb - 1:
            # The kernel loads the missing element as 0.0 and scales it like the rest.
            with np.errstate(invalid="ignore"):
                q[n] = codes_4bit(np.array([F32(0) * (F32(1) / am if am != 0 else F32(np.inf))], dtype=F32), quant_type)[0]
    packed = ((q[0::2] << 4) | q[1::2]).astype(np.uint8)
    return packed, absmax


def dequantize_4bit(packed, absmax, n, blocksize, quant_type):
    table = NF4 if quant_type == "nf4" else FP4
    q = np.empty(packed.size * 2, dtype=np.uint8)
    q[0::2] = packed >> 4
    q[1::2] = packed & 15
    q = q[:n]
    return (table[q] * absmax[np.arange(n) // blocksize]).astype(F32)


def dquantize_8bit(code, x):
    """dQuantize<0> of csrc/kernels.cu: binary search, then its midpoint rules."""
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = F32(-1), F32(1)
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
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        mid = (upper + val) * F32(0.5)
        return upper_pivot if x > mid else pivot
    mid = (lower + val) * F32(0.5)
    return lower_pivot if x < mid else pivot


def quantize_blockwise(x, code, blocksize):
    n = x.size
    nb = (n + blocksize - 1) // blocksize
    absmax = np.zeros(nb, dtype=F32)
    q = np.zeros(n, dtype=np.uint8)
    for b in range(nb):
        blk = x[b * blocksize:(b + 1) * blocksize]
        am, s = scale_block(blk)
        absmax[b] = am
        q[b * blocksize:b * blocksize + blk.size] = [dquantize_8bit(code, v) for v in s]
    return q, absmax


def dequantize_blockwise(q, absmax, code, blocksize):
    return (code[q] * absmax[np.arange(q.size) // blocksize]).astype(F32)


def mean_f32(a):
    """The fixed-order float32 mean (256 sequential lanes, pairwise tree, one division)."""
    lanes = np.zeros(256, dtype=F32)
    padded = np.zeros(((a.size + 255) // 256) * 256, dtype=F32)
    padded[:a.size] = a
    for row in padded.reshape(-1, 256):
        lanes = (lanes + row).astype(F32)
    s = 128
    while s >= 1:
        lanes[:s] = lanes[:s] + lanes[s:2 * s]
        s //= 2
    return F32(lanes[0] / F32(a.size))


def double_quant(absmax, dyn):
    c = mean_f32(absmax)
    q, absmax2 = quantize_blockwise((absmax - c).astype(F32), dyn, 256)
    restored = ((dyn[q] * absmax2[np.arange(q.size) // 256]).astype(F32) + c).astype(F32)
    return c, q, absmax2, restored


def tie_inputs(quant_type, scale):
    """A block whose absmax is `scale` (a power of two, so scaling is exact) holding every
    pivot exactly (must go to the lower code), and the next float32 above it (upper code)."""
    pivots = NF4_PIVOTS if quant_type == "nf4" else np.concatenate([FP4_PIVOTS, -FP4_PIVOTS])
    vals = [F32(1)]
    for p in pivots:
        vals.append(p)
        vals.append(np.nextafter(p, F32(np.inf) if p > 0 else F32(-np.inf)))
    return (np.array(vals, dtype=F32) * F32(scale)).astype(F32)


def case_4bit(name, x, blocksize, quant_type):
    packed, absmax = quantize_4bit(x, blocksize, quant_type)
    deq = dequantize_4bit(packed, absmax, x.size, blocksize, quant_type)
    # The dequantized values are summarised by their float64 sum (the tests rebuild them
    # from the REFERENCE.md table and compare element by element).
    return {"name": name, "quantType": quant_type, "blocksize": blocksize, "n": int(x.size),
            "x": b64(x), "packedHex": packed.tobytes().hex(), "absmax": b64(absmax), "dequantSum": float(deq.astype(np.float64).sum())}


def main():
    rng = np.random.default_rng(20240611)
    dyn_signed = dynamic_map(True)
    dyn_unsigned = dynamic_map(False)
    try:
        import torch  # noqa: F401 (only to cross-check the float32 linspace emulation)

        def torch_map(signed):
            data = []
            for i in range(7):
                items = 2 ** i + 1 if signed else 2 ** (i + 1) + 1
                b = torch.linspace(0.1, 1, items, dtype=torch.float32)
                means = (b[:-1] + b[1:]) / 2.0
                data += ((10 ** (-6 + i)) * means).tolist()
                if signed:
                    data += (-(10 ** (-6 + i)) * means).tolist()
            data += [0, 1.0]
            data.sort()
            return torch.tensor(data, dtype=torch.float32).numpy()

        for ours, theirs in ((dyn_signed, torch_map(True)), (dyn_unsigned, torch_map(False))):
            ulps = np.abs(ours.view(np.int32).astype(np.int64) - theirs.view(np.int32).astype(np.int64))
            assert ulps.max() <= 4, f"dynamic map is {ulps.max()} ulp from torch's"
            print(f"dynamic map: {int((ulps > 0).sum())} of 256 entries differ from torch {torch.__version__}, at most {ulps.max()} ulp")
    except ImportError:
        pass
    assert dyn_signed[127] == 0 and dyn_signed[255] == 1 and dyn_signed[0] == F32(-0.99296875)

    def randn(n, std=1.0):
        return (rng.standard_normal(n) * std).astype(F32)

    cases = []
    for qt in ("nf4", "fp4"):
        cases.append(case_4bit(f"{qt} bs64 n1000", randn(1000, 0.02), 64, qt))
        cases.append(case_4bit(f"{qt} bs32 n33 odd", randn(33), 32, qt))
        zero_block = randn(300, 3.0)
        zero_block[128:256] = 0
        cases.append(case_4bit(f"{qt} bs128 n300 zero block", zero_block, 128, qt))
        tail_zero = randn(257)
        tail_zero[256:] = 0
        cases.append(case_4bit(f"{qt} bs256 n257 odd zero last block", tail_zero, 256, qt))
        sizes = ((512, 1501), (2048, 2100), (4096, 4099)) if qt == "nf4" else ((512, 1001), (1024, 1100))
        for bs, n in sizes:
            cases.append(case_4bit(f"{qt} bs{bs} n{n}", randn(n, 0.5), bs, qt))
        cases.append(case_4bit(f"{qt} ties absmax 1", tie_inputs(qt, 1.0), 64, qt))
        cases.append(case_4bit(f"{qt} ties absmax 0.25", tie_inputs(qt, 0.25), 32, qt))

    blockwise = []
    for signed, code in ((True, dyn_signed), (False, dyn_unsigned)):
        x = randn(620) if signed else np.abs(randn(620))
        x[300] = 0
        # Exact midpoints between neighbouring codes in a block whose absmax is 1.
        mids = ((code[:-1] + code[1:]) * F32(0.5)).astype(F32)
        pick = mids[np.arange(1, 254, 9)]
        x[512:512 + pick.size] = pick
        x[600] = F32(1)
        q, am = quantize_blockwise(x, code, 256)
        blockwise.append({"signed": signed, "blocksize": 256, "n": int(x.size), "x": b64(x), "codeHex": q.tobytes().hex(),
                          "absmax": b64(am), "dequantSum": float(dequantize_blockwise(q, am, code, 256).astype(np.float64).sum())})

    dq = []
    for qt, bs, n in (("nf4", 32, 8500), ("fp4", 64, 1984)):
        x = randn(n, 0.05)
        packed, absmax = quantize_4bit(x, bs, qt)
        c, qabs, absmax2, restored = double_quant(absmax, dyn_signed)
        deq = dequantize_4bit(packed, restored, n, bs, qt)
        dq.append({"quantType": qt, "blocksize": bs, "n": n, "x": b64(x), "packedHex": packed.tobytes().hex(),
                   "absmax": b64(absmax), "offset": float(c), "qabsmaxHex": qabs.tobytes().hex(), "absmax2": b64(absmax2),
                   "restoredAbsmax": b64(restored), "dequantSum": float(deq.astype(np.float64).sum())})

    out = {"note": "generated by tools/golden/quant_reference.py, an independent numpy implementation of bitsandbytes' rules "
                   "(bitsandbytes itself not run); float32 arrays are base64 little-endian",
           "versions": versions(),
           "dynamicSigned": b64(dyn_signed), "dynamicUnsigned": b64(dyn_unsigned),
           "fourBit": cases, "blockwise8bit": blockwise, "doubleQuant": dq}
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
