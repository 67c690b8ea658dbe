// The OpenFHE side of the peer benchmark, in C++, for an OpenFHE built from source (the Intel
// HEXL variant, see setup_openfhe_hexl.sh). It measures what bench/openfhe_bench.py measures with
// the Python wheel, with the same options and the same JSON schema (bench/README.md), so
// bench/compare.py reads either. One JSON object on stdout, progress on stderr.
//
//   driver --log-n 16 --first-mod 60 --scale-bits 50 --levels 23 --dnum 3 --threads 1 --reps 3
//   driver --ops bootstrap --threads 2 --reps 3 [--boot-iterations 2]

#include "openfhe.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace lbcrypto;

namespace {

struct Args {
    uint32_t log_n = 16, first_mod = 60, scale_bits = 50, levels = 23, dnum = 3, threads = 1;
    uint32_t reps = 5, warmup = 1, level = UINT32_MAX;
    std::set<std::string> ops;
    std::vector<uint32_t> boot_budget = {4, 4};
    uint32_t boot_levels_after = 10, boot_scale_bits = 59, boot_first_mod = 60, boot_iterations = 1;
    bool boot_128 = false;
};

const std::vector<std::string> kMainOps = {"keygen", "relin_keygen", "rotation_keygen", "encode",
                                           "encrypt", "decrypt", "add", "mul_plain",
                                           "mul_relin", "rescale", "rotate", "hoisted_rotate"};
constexpr int kHoisted = 8;

void log(const std::string& s) { std::fprintf(stderr, "[openfhe_hexl] %s\n", s.c_str()); }

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr, "driver: %s (see the header of driver.cpp)\n", why.c_str());
    std::exit(2);
}

uint32_t number(const std::string& flag, const char* v) {
    char* end = nullptr;
    unsigned long x = std::strtoul(v, &end, 10);
    if (end == v || *end != '\0' || x > 1u << 20) usage("bad value for " + flag);
    return static_cast<uint32_t>(x);
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

Args parse(int argc, char** argv) {
    Args a;
    for (const auto& o : kMainOps) a.ops.insert(o);
    for (int i = 1; i < argc; ++i) {
        std::string f = argv[i];
        auto val = [&]() -> const char* {
            if (i + 1 >= argc) usage("missing value for " + f);
            return argv[++i];
        };
        if (f == "--smoke") {  // tiny and quick, as openfhe_bench.py's --smoke
            a.log_n = 12, a.first_mod = 60, a.scale_bits = 50, a.levels = 5, a.dnum = 3, a.reps = 1;
            a.level = a.levels;
        } else if (f == "--log-n") a.log_n = number(f, val());
        else if (f == "--first-mod") a.first_mod = number(f, val());
        else if (f == "--scale-bits") a.scale_bits = number(f, val());
        else if (f == "--levels") a.levels = number(f, val());
        else if (f == "--dnum") a.dnum = number(f, val());
        else if (f == "--threads") a.threads = number(f, val());
        else if (f == "--reps") a.reps = number(f, val());
        else if (f == "--warmup") a.warmup = number(f, val());
        else if (f == "--level") a.level = number(f, val());
        else if (f == "--ops") {
            a.ops.clear();
            for (auto& o : split(val())) a.ops.insert(o);
        } else if (f == "--boot-level-budget") {
            a.boot_budget.clear();
            for (auto& x : split(val())) a.boot_budget.push_back(number(f, x.c_str()));
            if (a.boot_budget.size() != 2) usage("--boot-level-budget takes two numbers");
        } else if (f == "--boot-levels-after") a.boot_levels_after = number(f, val());
        else if (f == "--boot-scale-bits") a.boot_scale_bits = number(f, val());
        else if (f == "--boot-first-mod") a.boot_first_mod = number(f, val());
        else if (f == "--boot-iterations") a.boot_iterations = number(f, val());
        else if (f == "--boot-security") {
            std::string s = val();
            if (s != "notset" && s != "128") usage("--boot-security is notset or 128");
            a.boot_128 = s == "128";
        } else usage("unknown option " + f);
    }
    if (a.level == UINT32_MAX) a.level = a.levels;
    if (a.level > a.levels) usage("--level must be at most --levels");
    if (a.reps == 0) usage("--reps must be at least 1");
    if (a.boot_iterations != 1 && a.boot_iterations != 2) usage("--boot-iterations is 1 or 2");
    for (auto& o : a.ops)
        if (o != "bootstrap" && std::find(kMainOps.begin(), kMainOps.end(), o) == kMainOps.end())
            usage("unknown op " + o);
    return a;
}

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string stats(std::vector<double> s) {
    std::vector<double> v = s;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    std::ostringstream o;
    o.precision(10);
    o << "{\"median_us\": " << med * 1e6 << ", \"min_us\": " << v[0] * 1e6
      << ", \"reps\": " << n << "}";
    return o.str();
}

// Times `fn` `reps` times after `warmup` untimed calls; `setup` (untimed) runs before each.
std::vector<double> time_op(const Args& a, const std::function<void()>& fn,
                            const std::function<void()>& setup = nullptr) {
    for (uint32_t i = 0; i < a.warmup; ++i) {
        if (setup) setup();
        fn();
    }
    std::vector<double> out;
    for (uint32_t i = 0; i < a.reps; ++i) {
        if (setup) setup();
        auto t0 = Clock::now();
        fn();
        out.push_back(seconds(t0));
    }
    return out;
}

std::string list(const std::vector<uint64_t>& v) {
    std::ostringstream o;
    o << "[";
    for (size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
    o << "]";
    return o.str();
}

std::vector<uint64_t> bits_of(const std::vector<uint64_t>& v) {
    std::vector<uint64_t> out;
    for (auto x : v) out.push_back(64 - __builtin_clzll(x));
    return out;
}

void primes(const CryptoContext<DCRTPoly>& cc, std::vector<uint64_t>& q, std::vector<uint64_t>& p) {
    for (auto& e : cc->GetCryptoParameters()->GetElementParams()->GetParams())
        q.push_back(e->GetModulus().ConvertToInt());
    auto rns = std::dynamic_pointer_cast<CryptoParametersRNS>(cc->GetCryptoParameters());
    if (rns && rns->GetParamsP())
        for (auto& e : rns->GetParamsP()->GetParams()) p.push_back(e->GetModulus().ConvertToInt());
}

double max_err(const CryptoContext<DCRTPoly>& cc, const PrivateKey<DCRTPoly>& sk,
               const Ciphertext<DCRTPoly>& ct, const std::vector<double>& want, double* median) {
    Plaintext pt;
    cc->Decrypt(sk, ct, &pt);
    auto v = pt->GetRealPackedValue();
    std::vector<double> e(want.size());
    for (size_t i = 0; i < want.size(); ++i) e[i] = std::abs(v[i] - want[i]);
    if (median) {
        auto m = e;
        std::nth_element(m.begin(), m.begin() + m.size() / 2, m.end());
        *median = m[m.size() / 2];
    }
    return *std::max_element(e.begin(), e.end());
}

std::string bench_main(const Args& a, std::string& params, std::string& checks_json) {
    const uint32_t n = 1u << a.log_n, slots = n / 2;
    CCParams<CryptoContextCKKSRNS> p;
    p.SetSecurityLevel(HEStd_NotSet);
    p.SetRingDim(n);
    p.SetMultiplicativeDepth(a.levels);
    p.SetFirstModSize(a.first_mod);
    p.SetScalingModSize(a.scale_bits);
    p.SetNumLargeDigits(a.dnum);
    p.SetKeySwitchTechnique(HYBRID);
    p.SetScalingTechnique(FIXEDMANUAL);
    p.SetSecretKeyDist(UNIFORM_TERNARY);
    p.SetBatchSize(slots);
    auto cc = GenCryptoContext(p);
    cc->Enable(PKE);
    cc->Enable(KEYSWITCH);
    cc->Enable(LEVELEDSHE);
    if (cc->GetRingDimension() != n) throw std::runtime_error("OpenFHE chose another ring dimension");

    std::map<std::string, std::string> ops;
    auto want = [&](const char* o) { return a.ops.count(o) > 0; };
    bool keys = want("keygen") || want("relin_keygen") || want("rotation_keygen");
    if (keys) ops["keygen"] = stats(time_op(a, [&] { cc->KeyGen(); }));
    auto kp = cc->KeyGen();
    auto sk = kp.secretKey;
    if (keys)
        ops["relin_keygen"] = stats(time_op(
            a, [&] { cc->EvalMultKeyGen(sk); },
            [&] { CryptoContextImpl<DCRTPoly>::ClearEvalMultKeys(); }));
    cc->EvalMultKeyGen(sk);
    if (keys) {
        ops["rotation_keygen"] = stats(time_op(
            a, [&] { cc->EvalRotateKeyGen(sk, {1}); },
            [&] { CryptoContextImpl<DCRTPoly>::ClearEvalAutomorphismKeys(); }));
        CryptoContextImpl<DCRTPoly>::ClearEvalAutomorphismKeys();
    }
    std::vector<int32_t> idx;
    for (int k = 1; k <= kHoisted; ++k) idx.push_back(k);
    if (want("rotate") || want("hoisted_rotate")) cc->EvalRotateKeyGen(sk, idx);

    std::vector<uint64_t> q, pp;
    primes(cc, q, pp);
    if (q.size() != a.levels + 1) throw std::runtime_error("unexpected number of Q primes");
    std::ostringstream pj;
    pj << "{\"log_n\": " << a.log_n << ", \"q_bits\": " << list(bits_of(q))
       << ", \"p_bits\": " << list(bits_of(pp)) << ", \"q_primes\": " << list(q)
       << ", \"p_primes\": " << list(pp) << ", \"dnum\": " << a.dnum
       << ", \"secret\": \"uniform_ternary\", \"level\": " << a.level << "}";
    params = pj.str();

    const uint32_t ofhe_level = a.levels - a.level;
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<double> x1(slots), x2(slots);
    for (auto& v : x1) v = u(rng);
    for (auto& v : x2) v = u(rng);
    auto enc_pt = [&](const std::vector<double>& x) {
        return cc->MakeCKKSPackedPlaintext(x, 1, ofhe_level, nullptr, slots);
    };
    if (want("encode")) ops["encode"] = stats(time_op(a, [&] { enc_pt(x1); }));
    auto pt1 = enc_pt(x1), pt2 = enc_pt(x2);
    if (want("encrypt")) ops["encrypt"] = stats(time_op(a, [&] { cc->Encrypt(kp.publicKey, pt1); }));
    auto ct1 = cc->Encrypt(kp.publicKey, pt1), ct2 = cc->Encrypt(kp.publicKey, pt2);
    if (ct1->GetLevel() != ofhe_level) {
        cc->LevelReduceInPlace(ct1, nullptr, ofhe_level - ct1->GetLevel());
        cc->LevelReduceInPlace(ct2, nullptr, ofhe_level - ct2->GetLevel());
    }
    std::map<std::string, double> checks;
    if (want("decrypt"))
        ops["decrypt"] = stats(time_op(a, [&] {
            Plaintext out;
            cc->Decrypt(sk, ct1, &out);
        }));
    checks["fresh"] = max_err(cc, sk, ct1, x1, nullptr);
    if (want("add")) ops["add"] = stats(time_op(a, [&] { cc->EvalAdd(ct1, ct2); }));
    if (want("mul_plain")) ops["mul_plain"] = stats(time_op(a, [&] { cc->EvalMult(ct1, pt2); }));
    if (want("mul_relin") || want("rescale")) {
        if (want("mul_relin")) ops["mul_relin"] = stats(time_op(a, [&] { cc->EvalMult(ct1, ct2); }));
        auto prod = cc->EvalMult(ct1, ct2);
        if (want("rescale") && a.level >= 1) {
            ops["rescale"] = stats(time_op(a, [&] { cc->Rescale(prod); }));
            std::vector<double> x12(slots);
            for (uint32_t i = 0; i < slots; ++i) x12[i] = x1[i] * x2[i];
            checks["mul_rescale"] = max_err(cc, sk, cc->Rescale(prod), x12, nullptr);
        }
    }
    auto rolled = [&](int k) {
        std::vector<double> r(slots);
        for (uint32_t i = 0; i < slots; ++i) r[i] = x1[(i + k) % slots];
        return r;
    };
    if (want("rotate")) {
        ops["rotate"] = stats(time_op(a, [&] { cc->EvalRotate(ct1, 1); }));
        checks["rotate"] = max_err(cc, sk, cc->EvalRotate(ct1, 1), rolled(1), nullptr);
    }
    if (want("hoisted_rotate")) {
        const uint32_t m = cc->GetCyclotomicOrder();
        std::vector<double> pre, per;
        for (uint32_t i = 0; i < a.warmup + a.reps; ++i) {
            auto t0 = Clock::now();
            auto digits = cc->EvalFastRotationPrecompute(ct1);
            double t1 = seconds(t0);
            for (int k = 1; k <= kHoisted; ++k) cc->EvalFastRotation(ct1, k, m, digits);
            double t2 = seconds(t0);
            if (i >= a.warmup) {
                pre.push_back(t1);
                per.push_back(t2 / kHoisted);
            }
        }
        std::sort(pre.begin(), pre.end());
        std::string st = stats(per);
        std::ostringstream o;
        o << st.substr(0, st.size() - 1) << ", \"rotations\": " << kHoisted
          << ", \"hoisted_precompute_us\": " << pre[pre.size() / 2] * 1e6 << "}";
        ops["hoisted_rotate"] = o.str();
        auto digits = cc->EvalFastRotationPrecompute(ct1);
        checks["hoisted_rotate"] =
            max_err(cc, sk, cc->EvalFastRotation(ct1, 3, m, digits), rolled(3), nullptr);
    }
    std::ostringstream cj, oj;
    cj << "{";
    bool first = true;
    for (auto& [k, v] : checks) {
        if (!(v < 1e-3)) throw std::runtime_error("correctness check " + k + " failed");
        cj << (first ? "" : ", ") << "\"" << k << "\": " << v;
        first = false;
    }
    cj << "}";
    checks_json = cj.str();
    oj << "{";
    first = true;
    for (auto& [k, v] : ops) {
        oj << (first ? "" : ", ") << "\"" << k << "\": " << v;
        first = false;
    }
    oj << "}";
    return oj.str();
}

std::string bench_bootstrap(const Args& a) {
    const uint32_t n = 1u << a.log_n, slots = n / 2;
    const uint32_t boot_depth = FHECKKSRNS::GetBootstrapDepth(a.boot_budget, UNIFORM_TERNARY);
    // One more level per extra iteration, as OpenFHE's iterative-bootstrapping example does.
    const uint32_t depth = a.boot_levels_after + boot_depth + (a.boot_iterations - 1);
    CCParams<CryptoContextCKKSRNS> p;
    p.SetSecurityLevel(a.boot_128 ? HEStd_128_classic : HEStd_NotSet);
    p.SetRingDim(n);
    p.SetSecretKeyDist(UNIFORM_TERNARY);
    p.SetScalingModSize(a.boot_scale_bits);
    p.SetFirstModSize(a.boot_first_mod);
    p.SetScalingTechnique(FLEXIBLEAUTO);
    p.SetMultiplicativeDepth(depth);
    p.SetKeySwitchTechnique(HYBRID);
    if (a.dnum) p.SetNumLargeDigits(a.dnum);
    p.SetBatchSize(slots);
    auto cc = GenCryptoContext(p);
    for (auto f : {PKE, KEYSWITCH, LEVELEDSHE, ADVANCEDSHE, FHE}) cc->Enable(f);
    auto t0 = Clock::now();
    cc->EvalBootstrapSetup(a.boot_budget, {0, 0}, slots);
    double t_setup = seconds(t0);
    auto kp = cc->KeyGen();
    t0 = Clock::now();
    cc->EvalMultKeyGen(kp.secretKey);
    cc->EvalBootstrapKeyGen(kp.secretKey, slots);
    double t_keygen = seconds(t0);
    log("bootstrap context depth " + std::to_string(depth) + ", setup " +
        std::to_string(t_setup) + " s, keygen " + std::to_string(t_keygen) + " s");
    std::vector<uint64_t> q, pp;
    primes(cc, q, pp);
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<double> x(slots);
    for (auto& v : x) v = u(rng);
    auto pt = cc->MakeCKKSPackedPlaintext(x, 1, depth - 1, nullptr, slots);
    auto ct = cc->Encrypt(kp.publicKey, pt);
    uint32_t single_bits = 0;
    if (a.boot_iterations > 1) {
        double e1 = max_err(cc, kp.secretKey, cc->EvalBootstrap(ct), x, nullptr);
        single_bits = static_cast<uint32_t>(std::floor(-std::log2(e1)));
        log("one iteration: " + std::to_string(-std::log2(e1)) + " bits");
    }
    if (a.reps > 1) cc->EvalBootstrap(ct, a.boot_iterations, single_bits);
    std::vector<double> samples;
    Ciphertext<DCRTPoly> out;
    for (uint32_t i = 0; i < a.reps; ++i) {
        t0 = Clock::now();
        out = cc->EvalBootstrap(ct, a.boot_iterations, single_bits);
        samples.push_back(seconds(t0));
        log("bootstrap rep " + std::to_string(i + 1) + ": " + std::to_string(samples.back()) + " s");
    }
    double med = 0;
    double err = max_err(cc, kp.secretKey, out, x, &med);
    int levels_left = int(depth) - int(out->GetLevel()) - (int(out->GetNoiseScaleDeg()) - 1);
    uint64_t log_qp = 0;
    for (auto b : bits_of(q)) log_qp += b;
    for (auto b : bits_of(pp)) log_qp += b;
    std::string st = stats(samples);
    std::ostringstream o;
    o.precision(10);
    o << st.substr(0, st.size() - 1) << ", \"precision_bits\": " << -std::log2(err)
      << ", \"median_precision_bits\": " << -std::log2(med) << ", \"levels_left\": " << levels_left
      << ", \"slots\": " << slots << ", \"iterations\": " << a.boot_iterations
      << ", \"setup_us\": " << t_setup * 1e6 << ", \"keygen_us\": " << t_keygen * 1e6
      << ", \"params\": {\"log_n\": " << a.log_n << ", \"level_budget\": [" << a.boot_budget[0]
      << ", " << a.boot_budget[1] << "], \"scaling_technique\": \"FLEXIBLEAUTO\""
      << ", \"first_mod_bits\": " << a.boot_first_mod << ", \"scale_bits\": " << a.boot_scale_bits
      << ", \"multiplicative_depth\": " << depth << ", \"bootstrap_depth\": " << boot_depth
      << ", \"levels_after_requested\": " << a.boot_levels_after << ", \"dnum\": " << a.dnum
      << ", \"secret\": \"uniform_ternary\", \"security\": \""
      << (a.boot_128 ? "HEStd_128_classic" : "HEStd_NotSet") << "\", \"log_qp_bits\": " << log_qp
      << ", \"input_level_openfhe\": " << depth - 1 << ", \"q_bits\": " << list(bits_of(q))
      << ", \"p_bits\": " << list(bits_of(pp)) << "}}";
    return o.str();
}

}  // namespace

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    omp_set_num_threads(static_cast<int>(a.threads));
    auto t0 = Clock::now();
    std::string params = "{}", checks = "{}", ops = "{}", boot = "null";
    bool main_ops = false;
    for (auto& o : a.ops) main_ops |= o != "bootstrap";
    try {
        if (main_ops) ops = bench_main(a, params, checks);
        if (a.ops.count("bootstrap")) boot = bench_bootstrap(a);
    } catch (const std::exception& e) {
        log(std::string("failed: ") + e.what());
        return 1;
    }
    std::printf(
        "{\"impl\": \"openfhe-hexl\", \"version\": \"%s\", \"threads\": %u, \"params\": %s, "
        "\"ops\": %s, \"bootstrap\": %s, \"meta\": {\"checks_max_abs_err\": %s, \"warmup\": %u, "
        "\"hexl\": true, \"scaling_technique\": \"FIXEDMANUAL\", \"key_switching\": \"HYBRID\", "
        "\"security\": \"HEStd_NotSet\", \"first_mod_bits\": %u, \"scale_bits\": %u, "
        "\"wall_s\": %.2f}}\n",
        GetOPENFHEVersion().c_str(), a.threads, params.c_str(), ops.c_str(), boot.c_str(),
        checks.c_str(), a.warmup, a.first_mod, a.scale_bits, seconds(t0));
    return 0;
}
