#!/usr/bin/env bash
# Builds llama-cpp-python (the trainer's fast chat backend) and installs it into .venv.
# PyPI has no wheels of it, only its source, so it is compiled here: about 3 minutes on
# 2 cores. The built wheel is kept in ~/.cache/tunecord/wheels and reused by later set-ups
# on a machine of the same kind. Usage: scripts/fast_chat.sh  (after scripts/setup.sh;
# TUNECORD_PYTHON names another interpreter than .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.3.36
py=${TUNECORD_PYTHON:-.venv/bin/python}
# Only the libraries the Python binding loads: no multimodal library, no llama.cpp "common"
# (which the binding never links). No OpenMP: llama.cpp would share torch's OpenMP runtime,
# and once two threads of the trainer have used it (a fine-tune, then a chat) every
# barrier inside llama.cpp sleeps instead of spinning: decoding at half speed (measured);
# ggml's own thread pool has no such tie. x86-64 builds use AVX2/FMA/F16C, not the build
# machine's every instruction, so a cached wheel runs on any x86-64-v3 machine.
cmake_args="-DLLAVA_BUILD=OFF -DGGML_OPENMP=OFF"
if [ "$(uname -m)" = x86_64 ]; then
    cmake_args="$cmake_args -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
fi
key=$(printf '%s %s %s %s' "$version" "$cmake_args" "$(uname -m)" "$("$py" -c 'import sys; print(sys.version_info[:2])')" | sha1sum | cut -c1-12)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tunecord/wheels/llama-cpp-python-$key"
installed="$("$py" -c 'import sys; print(sys.prefix)')/.tunecord-llama-cpp-$key"
if [ -f "$installed" ] && "$py" -c "import llama_cpp" 2>/dev/null; then
    exit 0  # this very build is installed
fi
if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "Building llama-cpp-python $version (llama.cpp for fast chat, a few minutes)..." >&2
    "$py" -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version"
    tar xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
    src="$work/llama_cpp_python-$version"
    sed -i 's/set(LLAMA_BUILD_COMMON ON CACHE BOOL/set(LLAMA_BUILD_COMMON OFF CACHE BOOL/' "$src/CMakeLists.txt"
    CMAKE_ARGS="$cmake_args" "$py" -m pip wheel -q --no-deps --no-cache-dir -w "$work/wheel" "$src"
    mkdir -p "$cache"
    cp "$work"/wheel/llama_cpp_python-*.whl "$cache/"
fi
"$py" -m pip install -q --force-reinstall --no-deps "$cache"/llama_cpp_python-*.whl
"$py" -m pip install -q "$cache"/llama_cpp_python-*.whl  # its dependencies
"$py" -c "import llama_cpp" # fails here, not at the first chat, if the build is unusable
touch "$installed"
