#!/usr/bin/env python3
"""Print a markdown comparison of ensi and OpenFHE benchmark JSON files (stdlib only).

    python3 bench/compare.py ensi.json openfhe.json
    python3 bench/compare.py --ensi e1.json e2.json --openfhe o1.json o2.json [--ntt ntt.json]

Several files per side are repetitions of the same run: per operation the median of their
medians (and the min of their mins) is used. The NTT file has the form
    {"impl": "ensi-vs-tfhe-ntt", "rows": [{"op": "ntt_fwd_2^16_50bit", "ensi_us": .., "peer_us": ..}]}
"""
import argparse
import json
import statistics
import sys

OP_ORDER = [
    "keygen", "relin_keygen", "rotation_keygen", "encode", "encrypt", "decrypt", "add",
    "mul_plain", "mul_relin", "rescale", "rotate", "hoisted_rotate",
]


def load(paths):
    docs = []
    for p in paths:
        with open(p) as f:
            docs.append(json.load(f))
    return docs


def fmt_us(us):
    if us is None:
        return "–"
    if us >= 1e6:
        return "%.3f s" % (us / 1e6)
    if us >= 1e3:
        return "%.3f ms" % (us / 1e3)
    return "%.1f µs" % us


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return "%.2f×" % (a / b)


def merged_op(docs, name, field="median_us"):
    vals = [d.get("ops", {}).get(name, {}).get(field) for d in docs]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def merged_boot(docs, field):
    vals = [(d.get("bootstrap") or {}).get(field) for d in docs]
    vals = [v for v in vals if isinstance(v, (int, float))]
    if not vals:
        return None
    return min(vals) if field == "precision_bits" else statistics.median(vals)


def describe(docs):
    d = docs[0]
    p = d.get("params", {})
    q, pb = p.get("q_bits", []), p.get("p_bits", [])
    return ("%s %s: N=2^%s, %d Q primes %s, %d P primes %s, dnum %s, level %s, %s, threads %s, "
            "files %d" % (d.get("impl"), d.get("version", ""), p.get("log_n"), len(q),
                          compact_bits(q), len(pb), compact_bits(pb), p.get("dnum"),
                          p.get("level"), p.get("secret"), d.get("threads"), len(docs)))


def compact_bits(bits):
    if not bits:
        return "[]"
    out, prev, n = [], bits[0], 0
    for b in bits + [None]:
        if b == prev:
            n += 1
            continue
        out.append("%s" % prev if n == 1 else "%s×%d" % (prev, n))
        prev, n = b, 1
    return "[" + ",".join(out) + "]"


def param_warnings(a_docs, b_docs):
    warn = []
    for key in ("log_n", "dnum", "level", "secret"):
        va = {str(d.get("params", {}).get(key)) for d in a_docs}
        vb = {str(d.get("params", {}).get(key)) for d in b_docs}
        if va != vb:
            warn.append("params.%s differs: %s vs %s" % (key, sorted(va), sorted(vb)))
    for key in ("q_bits", "p_bits"):
        la = {len(d.get("params", {}).get(key, [])) for d in a_docs}
        lb = {len(d.get("params", {}).get(key, [])) for d in b_docs}
        if la != lb:
            warn.append("number of %s primes differs: %s vs %s" % (key[0].upper(), sorted(la), sorted(lb)))
    ta = {d.get("threads") for d in a_docs}
    tb = {d.get("threads") for d in b_docs}
    if ta != tb:
        warn.append("threads differ: %s vs %s" % (sorted(ta), sorted(tb)))
    return warn


def table(a_docs, b_docs, a_name, b_name, out):
    out.append("| operation | %s median | %s median | ratio %s/%s |" % (a_name, b_name, a_name, b_name))
    out.append("|---|---:|---:|---:|")
    names = [n for n in OP_ORDER]
    for d in a_docs + b_docs:
        for n in d.get("ops", {}):
            if n not in names:
                names.append(n)
    for n in names:
        a, b = merged_op(a_docs, n), merged_op(b_docs, n)
        if a is None and b is None:
            continue
        label = n + (" (per rotation, of 8)" if n == "hoisted_rotate" else "")
        out.append("| %s | %s | %s | %s |" % (label, fmt_us(a), fmt_us(b), fmt_ratio(a, b)))
        if n == "hoisted_rotate":
            a, b = (merged_op(a_docs, n, "hoisted_precompute_us"),
                    merged_op(b_docs, n, "hoisted_precompute_us"))
            if a is not None or b is not None:
                out.append("| hoisted_precompute | %s | %s | %s |" % (fmt_us(a), fmt_us(b), fmt_ratio(a, b)))
    if any(d.get("bootstrap") for d in a_docs + b_docs):
        a, b = merged_boot(a_docs, "median_us"), merged_boot(b_docs, "median_us")
        out.append("| bootstrap | %s | %s | %s |" % (fmt_us(a), fmt_us(b), fmt_ratio(a, b)))
        for field, label in (("precision_bits", "bootstrap precision (bits, worst slot)"),
                             ("median_precision_bits", "bootstrap precision (bits, median slot)"),
                             ("levels_left", "bootstrap levels left"), ("slots", "bootstrap slots"),
                             ("iterations", "bootstrap iterations")):
            a, b = merged_boot(a_docs, field), merged_boot(b_docs, field)
            out.append("| %s | %s | %s | |" % (label, "–" if a is None else "%g" % a,
                                               "–" if b is None else "%g" % b))
    for docs, name in ((a_docs, a_name), (b_docs, b_name)):
        for d in docs:
            if d.get("bootstrap") is None and d.get("bootstrap_error"):
                out.append("")
                out.append("%s bootstrap error: %s" % (name, d["bootstrap_error"]))


def ntt_table(ntt_docs, out):
    out.append("| operation | ensi median | %s median | ratio ensi/%s |" % ("peer", "peer"))
    out.append("|---|---:|---:|---:|")
    rows = {}
    order = []
    for d in ntt_docs:
        for r in d.get("rows", []):
            if r["op"] not in rows:
                rows[r["op"]] = ([], [])
                order.append(r["op"])
            for i, k in enumerate(("ensi_us", "peer_us")):
                if isinstance(r.get(k), (int, float)):
                    rows[r["op"]][i].append(r[k])
    for op in order:
        e, p = rows[op]
        e = statistics.median(e) if e else None
        p = statistics.median(p) if p else None
        out.append("| %s | %s | %s | %s |" % (op, fmt_us(e), fmt_us(p), fmt_ratio(e, p)))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="ensi.json openfhe.json (one file each)")
    ap.add_argument("--ensi", nargs="+", default=[], help="ensi JSON file(s)")
    ap.add_argument("--openfhe", nargs="+", default=[], help="OpenFHE JSON file(s)")
    ap.add_argument("--ntt", nargs="+", default=[], help="NTT comparison JSON file(s)")
    a = ap.parse_args(argv)
    ensi, ofhe = list(a.ensi), list(a.openfhe)
    if a.files:
        if len(a.files) != 2 or ensi or ofhe:
            ap.error("give exactly two positional files (ensi.json openfhe.json) or use --ensi/--openfhe")
        ensi, ofhe = [a.files[0]], [a.files[1]]
    if not (ensi and ofhe) and not a.ntt:
        ap.error("nothing to compare")

    out = []
    if ensi and ofhe:
        e_docs, o_docs = load(ensi), load(ofhe)
        out.append("- " + describe(e_docs))
        out.append("- " + describe(o_docs))
        for w in param_warnings(e_docs, o_docs):
            out.append("- **warning:** " + w)
        out.append("")
        table(e_docs, o_docs, "ensi", "OpenFHE", out)
    if a.ntt:
        if out:
            out.append("")
        n_docs = load(a.ntt)
        out.append("NTT (%s):" % ", ".join(sorted({str(d.get("impl")) for d in n_docs})))
        out.append("")
        ntt_table(n_docs, out)
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
