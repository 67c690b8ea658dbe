#!/usr/bin/env python3
"""Measure OpenFHE CKKS primitives; print one JSON object on stdout (progress on stderr).

Run with the venv made by bench/setup_openfhe.sh:
    bench/.venv/bin/python bench/openfhe_bench.py --smoke
    bench/.venv/bin/python bench/openfhe_bench.py --log-n 16 --first-mod 60 --scale-bits 50 \
        --levels 23 --dnum 3 --reps 5 --threads 1

See bench/README.md for the JSON schema (shared with the Rust side).
"""
import argparse
import json
import math
import os
import re
import statistics
import sys
import time

ALL_OPS = [
    "keygen", "relin_keygen", "rotation_keygen",
    "encode", "encrypt", "decrypt", "add", "mul_plain", "mul_relin", "rescale",
    "rotate", "hoisted_rotate", "bootstrap",
]
DEFAULT_OPS = [o for o in ALL_OPS if o != "bootstrap"]
HOISTED_ROTATIONS = 8


def log(*a):
    print("[openfhe_bench]", *a, file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log-n", type=int, default=16, help="log2 of the ring degree N (default 16)")
    ap.add_argument("--q-bits", type=str, default=None,
                    help="comma list: first prime bits, then one entry per scaling prime "
                         "(all scaling entries must be equal; OpenFHE uses one scaling size). "
                         "Overrides --first-mod/--scale-bits/--levels")
    ap.add_argument("--first-mod", type=int, default=60, help="bits of the first Q prime (default 60)")
    ap.add_argument("--scale-bits", type=int, default=50, help="bits of the scaling primes (default 50)")
    ap.add_argument("--levels", type=int, default=23, help="multiplicative depth = #Q primes - 1 (default 23)")
    ap.add_argument("--dnum", type=int, default=3, help="number of key-switching digits (SetNumLargeDigits)")
    ap.add_argument("--secret", choices=["uniform_ternary", "sparse_ternary"], default="uniform_ternary")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS (default 1)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--level", type=int, default=None,
                    help="level the ops run at, counted like the JSON 'level': #Q primes - 1 "
                         "(default: top = --levels). OpenFHE's own level is top - this")
    ap.add_argument("--ops", type=str, default=",".join(DEFAULT_OPS),
                    help="comma list from: " + ",".join(ALL_OPS) + " (default: all but bootstrap)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed calls before the timed reps of each op (default 1)")
    ap.add_argument("--seed", type=int, default=1, help="numpy seed for the message values")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny quick run: log N 12, 5 levels, dnum 3, 1 rep (overrides the above)")
    # bootstrapping context (separate from the main one)
    ap.add_argument("--boot-level-budget", type=str, default="4,4",
                    help="CoeffsToSlots,SlotsToCoeffs level budget (default 4,4)")
    ap.add_argument("--boot-levels-after", type=int, default=10,
                    help="levels the bootstrap context keeps after bootstrapping (default 10)")
    ap.add_argument("--boot-scaling", choices=["flexibleauto", "fixedmanual", "fixedauto"],
                    default="flexibleauto", help="scaling technique of the bootstrap context")
    ap.add_argument("--boot-scale-bits", type=int, default=None,
                    help="scaling prime bits of the bootstrap context (default 59, OpenFHE's example)")
    ap.add_argument("--boot-first-mod", type=int, default=None,
                    help="first prime bits of the bootstrap context (default 60)")
    ap.add_argument("--boot-dnum", type=int, default=None,
                    help="dnum of the bootstrap context (default: --dnum; 0 = OpenFHE's default)")
    ap.add_argument("--boot-reps", type=int, default=None, help="bootstrap repetitions (default: --reps)")
    ap.add_argument("--boot-security", choices=["notset", "128"], default="notset",
                    help="security level of the bootstrap context: notset (OpenFHE's example "
                         "chain, 59-bit scaling primes; above the 128-bit bound at N = 2^16) or "
                         "128 (HEStd_128_classic: OpenFHE checks log QP against the HE standard)")
    ap.add_argument("--boot-iterations", type=int, choices=[1, 2], default=1,
                    help="EvalBootstrap iterations (2 = Meta-BTS: one more level of depth, the "
                         "precision argument measured from one single iteration first)")
    a = ap.parse_args(argv)

    if a.smoke:
        a.log_n, a.first_mod, a.scale_bits, a.levels, a.dnum, a.reps = 12, 60, 50, 5, 3, 1
        a.q_bits = None
    if a.q_bits:
        qb = [int(x) for x in a.q_bits.split(",") if x.strip()]
        if len(qb) < 1:
            ap.error("--q-bits needs at least one entry")
        if len(set(qb[1:])) > 1:
            ap.error("--q-bits: OpenFHE supports a single scaling prime size; got %s" % qb[1:])
        a.first_mod = qb[0]
        a.scale_bits = qb[1] if len(qb) > 1 else a.scale_bits
        a.levels = len(qb) - 1
    if a.level is None:
        a.level = a.levels
    if not (0 <= a.level <= a.levels):
        ap.error("--level must be in [0, levels]")
    a.ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    bad = [o for o in a.ops if o not in ALL_OPS]
    if bad:
        ap.error("unknown ops: %s" % bad)
    # the cost of a key is reported under the names of the JSON schema
    if "keygen" in a.ops:
        for extra in ("relin_keygen", "rotation_keygen"):
            if extra not in a.ops:
                a.ops.append(extra)
    a.boot_level_budget = [int(x) for x in a.boot_level_budget.split(",")]
    if a.boot_reps is None:
        a.boot_reps = a.reps
    if a.boot_dnum is None:
        a.boot_dnum = a.dnum
    return a


def ensure_threads(threads):
    """OMP_NUM_THREADS must be set before libgomp (loaded by openfhe) starts; re-exec if needed."""
    want = str(threads)
    if os.environ.get("OMP_NUM_THREADS") != want or os.environ.get("_OPENFHE_BENCH_REEXEC") != want:
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = want
        env["_OPENFHE_BENCH_REEXEC"] = want
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


# ---------------------------------------------------------------- timing helpers
def stats(samples_s, reps=None):
    us = [s * 1e6 for s in samples_s]
    return {"median_us": round(statistics.median(us), 3), "min_us": round(min(us), 3),
            "reps": reps if reps is not None else len(us)}


WARMUP = 1


def time_op(fn, reps, setup=None):
    """Time fn(arg) reps times after WARMUP untimed calls; setup() (untimed) makes a fresh
    argument per call."""
    for _ in range(WARMUP):
        fn(setup() if setup else None)
    out = []
    for _ in range(reps):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg)
        out.append(time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------- modulus extraction
_SINGLE_MOD_RE = re.compile(r'"cm":\s*\{[^{}\[\]]*?"v":\s*(\d+)\s*[,}]')


def moduli_in_json(s):
    """All single-prime moduli (ILNativeParams 'cm') in an OpenFHE JSON serialization, in order."""
    seen, out = set(), []
    for m in _SINGLE_MOD_RE.finditer(s):
        v = int(m.group(1))
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def context_primes(o, cc, kp):
    """(Q primes, P primes) the context actually uses.

    Q comes from the serialized context. P is not serialized with the context (only its
    bit size 'ab' is), so extend a 1-tower ciphertext to the key-switching basis Q_0*P with
    KeySwitchExt and read the extra towers of its serialization.
    """
    q = moduli_in_json(o.Serialize(cc, o.JSON))
    ct = cc.Encrypt(kp.publicKey, cc.MakeCKKSPackedPlaintext([0.0], 1, len(q) - 1))
    if ct.GetLevel() != len(q) - 1:  # fall back: drop towers explicitly
        ct = cc.LevelReduce(ct, None, len(q) - 1 - ct.GetLevel())
    ext = cc.KeySwitchExt(ct, False)
    qs = set(q)
    p = [v for v in moduli_in_json(o.Serialize(ext, o.JSON)) if v not in qs]
    return q, p


# ---------------------------------------------------------------- benchmark
def secret_dist(o, name):
    return {"uniform_ternary": o.UNIFORM_TERNARY, "sparse_ternary": o.SPARSE_TERNARY}[name]


def make_main_context(o, a):
    p = o.CCParamsCKKSRNS()
    p.SetSecurityLevel(o.HEStd_NotSet)
    p.SetRingDim(1 << a.log_n)
    p.SetMultiplicativeDepth(a.levels)
    p.SetFirstModSize(a.first_mod)
    p.SetScalingModSize(a.scale_bits)
    p.SetNumLargeDigits(a.dnum)
    p.SetKeySwitchTechnique(o.HYBRID)
    p.SetScalingTechnique(o.FIXEDMANUAL)
    p.SetSecretKeyDist(secret_dist(o, a.secret))
    p.SetBatchSize(1 << (a.log_n - 1))
    cc = o.GenCryptoContext(p)
    for f in (o.PKE, o.KEYSWITCH, o.LEVELEDSHE):
        cc.Enable(f)
    return cc


def bench_main(o, np, a, result):
    n = 1 << a.log_n
    slots = n // 2
    reps = a.reps
    ops = result["ops"]
    want = set(a.ops)
    rng = np.random.default_rng(a.seed)

    t0 = time.perf_counter()
    cc = make_main_context(o, a)
    log("context N=2^%d depth=%d built in %.2fs" % (a.log_n, a.levels, time.perf_counter() - t0))
    if cc.GetRingDimension() != n:
        raise RuntimeError("OpenFHE chose ring dimension %d, not %d" % (cc.GetRingDimension(), n))

    # ---- key generation
    if "keygen" in want:
        ops["keygen"] = stats(time_op(lambda _: cc.KeyGen(), reps))
    kp = cc.KeyGen()
    sk, pk = kp.secretKey, kp.publicKey

    if "relin_keygen" in want:
        def relin(_):
            cc.EvalMultKeyGen(sk)
        ops["relin_keygen"] = stats(time_op(relin, reps, setup=o.ClearEvalMultKeys))
    cc.EvalMultKeyGen(sk)

    if "rotation_keygen" in want:
        # OpenFHE skips indices whose key already exists, so clear the map before each rep.
        def rot_kg(_):
            cc.EvalRotateKeyGen(sk, [1])
        ops["rotation_keygen"] = stats(time_op(rot_kg, reps, setup=cc.ClearEvalAutomorphismKeys))
        cc.ClearEvalAutomorphismKeys()
    rot_idx = sorted(set([1] + list(range(1, HOISTED_ROTATIONS + 1))))
    if "rotate" in want or "hoisted_rotate" in want:
        cc.EvalRotateKeyGen(sk, rot_idx)

    # ---- primes
    q, p = context_primes(o, cc, kp)
    log("Q: %d primes, P: %d primes (%s bits)" % (len(q), len(p), [v.bit_length() for v in p]))
    if len(q) != a.levels + 1:
        raise RuntimeError("expected %d Q primes, OpenFHE has %d" % (a.levels + 1, len(q)))
    result["params"].update({
        "q_bits": [v.bit_length() for v in q], "p_bits": [v.bit_length() for v in p],
        "q_primes": q, "p_primes": p,
    })

    ofhe_level = a.levels - a.level  # OpenFHE counts levels consumed
    msg = lambda: rng.uniform(-1.0, 1.0, slots)  # noqa: E731
    x1, x2 = msg(), msg()

    def enc_pt(x):
        return cc.MakeCKKSPackedPlaintext(x, 1, ofhe_level, None, slots)

    if "encode" in want:
        ops["encode"] = stats(time_op(lambda _: enc_pt(x1), reps))
    pt1, pt2 = enc_pt(x1), enc_pt(x2)
    if "encrypt" in want:
        ops["encrypt"] = stats(time_op(lambda _: cc.Encrypt(pk, pt1), reps))
    ct1, ct2 = cc.Encrypt(pk, pt1), cc.Encrypt(pk, pt2)
    if ct1.GetLevel() != ofhe_level:
        ct1 = cc.LevelReduce(ct1, None, ofhe_level - ct1.GetLevel())
        ct2 = cc.LevelReduce(ct2, None, ofhe_level - ct2.GetLevel())
    assert ct1.GetLevel() == ofhe_level, (ct1.GetLevel(), ofhe_level)

    def max_err(pt, ref):
        v = np.array(pt.GetRealPackedValue()[:slots])
        return float(np.max(np.abs(v - ref)))

    if "decrypt" in want:
        ops["decrypt"] = stats(time_op(lambda _: cc.Decrypt(sk, ct1), reps))
    checks = {"fresh": max_err(cc.Decrypt(sk, ct1), x1)}
    if "decrypt" in want and ct1.GetLevel() < a.levels:
        # Not part of the schema: OpenFHE decrypts a multi-tower CKKS ciphertext through a
        # big-integer CRT interpolation; with a single tower it takes a native fast path.
        # Time Decrypt of the same ciphertext already reduced to one Q prime (reduction untimed).
        ct_1t = cc.LevelReduce(ct1, None, a.levels - ct1.GetLevel())
        result["meta"]["decrypt_one_prime"] = stats(time_op(lambda _: cc.Decrypt(sk, ct_1t), reps))
        checks["decrypt_one_prime"] = max_err(cc.Decrypt(sk, ct_1t), x1)

    if "add" in want:
        ops["add"] = stats(time_op(lambda _: cc.EvalAdd(ct1, ct2), reps))
    if "mul_plain" in want:
        ops["mul_plain"] = stats(time_op(lambda _: cc.EvalMult(ct1, pt2), reps))

    prod = None
    if "mul_relin" in want or "rescale" in want:
        # FIXEDMANUAL: EvalMult = tensor product + relinearization, no rescale.
        if "mul_relin" in want:
            ops["mul_relin"] = stats(time_op(lambda _: cc.EvalMult(ct1, ct2), reps))
        prod = cc.EvalMult(ct1, ct2)
    if "rescale" in want:
        if a.level >= 1:
            # Rescale returns a new ciphertext, the input is not mutated.
            ops["rescale"] = stats(time_op(lambda _: cc.Rescale(prod), reps))
            checks["mul_rescale"] = max_err(cc.Decrypt(sk, cc.Rescale(prod)), x1 * x2)
        else:
            log("rescale skipped: no prime left to drop at level 0")

    if "rotate" in want:
        ops["rotate"] = stats(time_op(lambda _: cc.EvalRotate(ct1, 1), reps))
        checks["rotate"] = max_err(cc.Decrypt(sk, cc.EvalRotate(ct1, 1)), np.roll(x1, -1))

    if "hoisted_rotate" in want:
        m = cc.GetCyclotomicOrder()
        pre_s, per_rot_s = [], []
        for _ in range(WARMUP):
            digits = cc.EvalFastRotationPrecompute(ct1)
            cc.EvalFastRotation(ct1, 1, m, digits)
        for _ in range(reps):
            t0 = time.perf_counter()
            digits = cc.EvalFastRotationPrecompute(ct1)
            t1 = time.perf_counter()
            for k in range(1, HOISTED_ROTATIONS + 1):
                cc.EvalFastRotation(ct1, k, m, digits)
            t2 = time.perf_counter()
            pre_s.append(t1 - t0)
            per_rot_s.append((t2 - t0) / HOISTED_ROTATIONS)
        st = stats(per_rot_s)
        st["rotations"] = HOISTED_ROTATIONS
        st["hoisted_precompute_us"] = round(statistics.median(pre_s) * 1e6, 3)
        ops["hoisted_rotate"] = st
        digits = cc.EvalFastRotationPrecompute(ct1)
        checks["hoisted_rotate"] = max_err(
            cc.Decrypt(sk, cc.EvalFastRotation(ct1, 3, m, digits)), np.roll(x1, -3))

    result["meta"]["checks_max_abs_err"] = {k: float("%.3g" % v) for k, v in checks.items()}
    for k, v in checks.items():
        if not v < 1e-3:
            raise RuntimeError("correctness check %s failed: max abs err %g" % (k, v))


def bench_bootstrap(o, np, a):
    n = 1 << a.log_n
    slots = n // 2
    dist = secret_dist(o, a.secret)
    scal = {"flexibleauto": o.FLEXIBLEAUTO, "fixedmanual": o.FIXEDMANUAL,
            "fixedauto": o.FIXEDAUTO}[a.boot_scaling]
    scale_bits = a.boot_scale_bits or 59
    first_mod = a.boot_first_mod or 60
    boot_depth = o.CryptoContext.GetBootstrapDepth(a.boot_level_budget, dist)
    # OpenFHE's iterative bootstrapping spends one level per extra iteration (its example)
    depth = a.boot_levels_after + boot_depth + (a.boot_iterations - 1)

    p = o.CCParamsCKKSRNS()
    p.SetSecurityLevel(o.HEStd_128_classic if a.boot_security == "128" else o.HEStd_NotSet)
    p.SetRingDim(n)
    p.SetSecretKeyDist(dist)
    p.SetScalingModSize(scale_bits)
    p.SetFirstModSize(first_mod)
    p.SetScalingTechnique(scal)
    p.SetMultiplicativeDepth(depth)
    p.SetKeySwitchTechnique(o.HYBRID)
    if a.boot_dnum:
        p.SetNumLargeDigits(a.boot_dnum)
    p.SetBatchSize(slots)
    t0 = time.perf_counter()
    cc = o.GenCryptoContext(p)
    for f in (o.PKE, o.KEYSWITCH, o.LEVELEDSHE, o.ADVANCEDSHE, o.FHE):
        cc.Enable(f)
    t_ctx = time.perf_counter() - t0

    t0 = time.perf_counter()
    cc.EvalBootstrapSetup(a.boot_level_budget, [0, 0], slots)
    t_setup = time.perf_counter() - t0
    kp = cc.KeyGen()
    t0 = time.perf_counter()
    cc.EvalMultKeyGen(kp.secretKey)
    cc.EvalBootstrapKeyGen(kp.secretKey, slots)
    t_keygen = time.perf_counter() - t0
    log("bootstrap context depth=%d (boot depth %d): ctx %.1fs setup %.1fs keygen %.1fs"
        % (depth, boot_depth, t_ctx, t_setup, t_keygen))

    q, pp = context_primes(o, cc, kp)
    rng = np.random.default_rng(a.seed + 1)
    x = rng.uniform(-1.0, 1.0, slots)
    # encode at the last level, as in OpenFHE's examples: everything consumed, one prime left
    pt = cc.MakeCKKSPackedPlaintext(x, 1, depth - 1, None, slots)
    ct = cc.Encrypt(kp.publicKey, pt)
    samples, out = [], None
    iters, single_bits = a.boot_iterations, 0
    if iters > 1:
        # the precision argument of Meta-BTS: one single iteration's bits, measured (as
        # OpenFHE's iterative-bootstrapping example does)
        one = cc.Decrypt(kp.secretKey, cc.EvalBootstrap(ct))
        e1 = float(np.max(np.abs(np.array(one.GetRealPackedValue()[:slots]) - x)))
        single_bits = int(math.floor(-math.log2(e1)))
        log("one iteration: %.2f bits; Meta-BTS precision argument %d" % (-math.log2(e1), single_bits))
    for _ in range(min(WARMUP, 1) if a.boot_reps > 1 else 0):
        cc.EvalBootstrap(ct, iters, single_bits)
    for i in range(a.boot_reps):
        t0 = time.perf_counter()
        out = cc.EvalBootstrap(ct, iters, single_bits)
        samples.append(time.perf_counter() - t0)
        log("bootstrap rep %d: %.3fs" % (i + 1, samples[-1]))
    dec = cc.Decrypt(kp.secretKey, out)
    v = np.array(dec.GetRealPackedValue()[:slots])
    err = float(np.max(np.abs(v - x)))
    med = float(np.median(np.abs(v - x)))
    levels_left = depth - out.GetLevel() - (out.GetNoiseScaleDeg() - 1)
    st = stats(samples)
    return {
        "median_us": st["median_us"], "min_us": st["min_us"], "reps": st["reps"],
        "precision_bits": round(-math.log2(err), 2) if err > 0 else None,
        "median_precision_bits": round(-math.log2(med), 2) if med > 0 else None,
        "levels_left": levels_left, "slots": slots, "iterations": iters,
        "setup_us": round(t_setup * 1e6, 1), "keygen_us": round(t_keygen * 1e6, 1),
        "params": {
            "log_n": a.log_n, "level_budget": a.boot_level_budget,
            "scaling_technique": a.boot_scaling.upper(), "first_mod_bits": first_mod,
            "scale_bits": scale_bits, "multiplicative_depth": depth,
            "bootstrap_depth": boot_depth, "levels_after_requested": a.boot_levels_after,
            "dnum": a.boot_dnum if a.boot_dnum else "openfhe_default",
            "secret": a.secret,
            "security": "HEStd_128_classic" if a.boot_security == "128" else "HEStd_NotSet",
            "log_qp_bits": sum(v.bit_length() for v in q) + sum(v.bit_length() for v in pp),
            "input_level_openfhe": depth - 1,
            "q_bits": [v.bit_length() for v in q], "p_bits": [v.bit_length() for v in pp],
        },
    }


def main(argv):
    global WARMUP
    a = parse_args(argv)
    ensure_threads(a.threads)
    WARMUP = a.warmup
    try:
        import numpy as np
        import openfhe as o
    except ImportError as e:
        sys.exit("[openfhe_bench] cannot import openfhe (%s) with %s; run bench/setup_openfhe.sh "
                 "and use bench/.venv/bin/python" % (e, sys.executable))

    log("openfhe %s, OMP_NUM_THREADS=%s, python %s" % (
        o.__version__, os.environ.get("OMP_NUM_THREADS"), sys.version.split()[0]))
    result = {
        "impl": "openfhe",
        "version": o.__version__,
        "threads": a.threads,
        "params": {"log_n": a.log_n, "q_bits": [], "p_bits": [], "q_primes": [], "p_primes": [],
                   "dnum": a.dnum, "secret": a.secret, "level": a.level},
        "ops": {},
        "bootstrap": None,
        # everything not in the shared schema lives here
        "meta": {"python": sys.version.split()[0], "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                 "warmup": a.warmup, "level_openfhe": a.levels - a.level,
                 "scaling_technique": "FIXEDMANUAL", "key_switching": "HYBRID",
                 "security": "HEStd_NotSet", "first_mod_bits": a.first_mod,
                 "scale_bits": a.scale_bits},
    }
    t_all = time.perf_counter()
    main_ops = [x for x in a.ops if x != "bootstrap"]
    if main_ops:
        bench_main(o, np, a, result)
    if "bootstrap" in a.ops:
        try:
            result["bootstrap"] = bench_bootstrap(o, np, a)
        except Exception as e:  # report, keep the rest of the results
            log("bootstrap failed: %r" % e)
            result["bootstrap"] = None
            result["bootstrap_error"] = str(e)
    result["meta"]["wall_s"] = round(time.perf_counter() - t_all, 2)
    print(json.dumps(result))
    log("done in %.1fs" % result["meta"]["wall_s"])


if __name__ == "__main__":
    main(sys.argv[1:])
