#!/usr/bin/env bash
# Builds the optional second peer: OpenFHE 1.5.1 with Intel HEXL (its AVX-512 IFMA backend) from
# public source, and the C++ driver in bench/openfhe_hexl (the JSON schema of openfhe_bench.py).
# About 30-60 minutes on 2 cores. Needs a C++17 compiler, git and Python 3 (for a CMake wheel).
#
#   bench/setup_openfhe_hexl.sh                  # clones from GitHub into bench/.hexl/src
#   SRC=/path/to/sources bench/setup_openfhe_hexl.sh
#
# SRC, when given, holds the checkouts (openfhe-development at v1.5.1, openfhe-hexl, hexl,
# cpu_features at the commit HEXL pins, cereal at the commit OpenFHE pins) under those names;
# nothing is then fetched. The result: bench/.hexl/install (libraries) and
# bench/.hexl/driver (the driver).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$here/.hexl"
prefix="$work/install"
mkdir -p "$work"
if [ -x "$work/driver" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "== $work/driver exists (FORCE=1 rebuilds)" >&2
  exit 0
fi

# A recent CMake from PyPI (OpenFHE needs >= 3.13; the system may have none).
if [ ! -x "$work/venv/bin/cmake" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q cmake
fi
export PATH="$work/venv/bin:$PATH"
# CMake 4 refuses projects that declare compatibility below 3.5 (cpu_features does).
export CMAKE_POLICY_VERSION_MINIMUM=3.5
jobs="${JOBS:-$(nproc)}"

src="${SRC:-$work/src}"
if [ -z "${SRC:-}" ]; then
  mkdir -p "$src"
  clone() { [ -d "$src/$1" ] || git clone -q "https://github.com/$2.git" "$src/$1"; git -C "$src/$1" checkout -q "$3"; }
  clone openfhe-development openfheorg/openfhe-development v1.5.1
  clone openfhe-hexl openfheorg/openfhe-hexl v1.5.1.0
  clone hexl intel/hexl 2d196fd  # v1.2.5 and four fixes (the 52-bit FMA one among them)
  clone cpu_features google/cpu_features 32b49eb5e7809052a28422cfde2f2745fbb0eb76
  clone cereal openfheorg/cereal 984e3f194862b17916536b5fade40cba6e47a6fe
fi
for d in openfhe-development openfhe-hexl hexl cpu_features cereal; do
  [ -d "$src/$d" ] || { echo "missing source: $src/$d" >&2; exit 1; }
done

# 1. cpu_features (HEXL would download it at configure time; built here instead).
cmake -S "$src/cpu_features" -B "$work/build-cpuf" -DCMAKE_BUILD_TYPE=Release -DBUILD_PIC=ON \
  -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$work/build-cpuf" -j "$jobs" >/dev/null
cmake --install "$work/build-cpuf" >/dev/null

# 2. HEXL.
cmake -S "$src/hexl" -B "$work/build-hexl" -DCMAKE_BUILD_TYPE=Release -DHEXL_BENCHMARK=OFF \
  -DHEXL_TESTING=OFF -DHEXL_DOCS=OFF -DHEXL_SHARED_LIB=ON -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$work/build-hexl" -j "$jobs" >/dev/null
cmake --install "$work/build-hexl" >/dev/null

# 3. OpenFHE with the HEXL backend staged in (what openfhe-configurator does), cereal in place.
stage="$work/openfhe"
rm -rf "$stage"
mkdir -p "$stage"
git -C "$src/openfhe-development" archive v1.5.1 | tar -x -C "$stage"
git -C "$src/cereal" archive HEAD | tar -x -C "$stage/third-party/cereal"
(cd "$src/openfhe-hexl" && cp -r CMakeLists.txt CMakeLists.User.txt OpenFHEConfig.cmake.in \
  benchmark configure src third-party "$stage/")
# openfhe-hexl 1.5.1.0 asks for HEXL 1.2.6; the commit above still calls itself 1.2.5.
sed -i 's/find_package(HEXL 1.2.6/find_package(HEXL 1.2.5/' \
  "$stage/third-party/intel-hexl/intel-hexl.cmake"
cmake -S "$stage" -B "$work/build-openfhe" -DCMAKE_BUILD_TYPE=Release -DWITH_INTEL_HEXL=ON \
  -DINTEL_HEXL_PREBUILT=ON -DINTEL_HEXL_HINT_DIR="$prefix" -DCMAKE_PREFIX_PATH="$prefix" \
  -DBUILD_EXAMPLES=OFF -DBUILD_UNITTESTS=OFF -DBUILD_BENCHMARKS=OFF -DBUILD_EXTRAS=OFF \
  -DWITH_OPENMP=ON -DWITH_NATIVEOPT=ON -DBUILD_STATIC=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$work/build-openfhe" -j "$jobs"
cmake --install "$work/build-openfhe" >/dev/null

# 4. The driver.
cmake -S "$here/openfhe_hexl" -B "$work/build-driver" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build-driver" -j "$jobs" >/dev/null
cp "$work/build-driver/driver" "$work/driver"
echo "== built $work/driver" >&2
