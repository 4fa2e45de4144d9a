#!/usr/bin/env bash
# visionllm set-up: installs everything and builds. Safe to re-run; a second run
# only checks what is there and rebuilds what changed.
#
#   Debian packages  compilers, CMake/Ninja/ccache, sentencepiece, OpenCV (core,
#                    imgproc, imgcodecs), Eigen, nlohmann-json, GoogleTest, zlib,
#                    clang + libFuzzer for the fuzz targets
#   .venv/           Python venv holding the PyPI wheel torch==2.11.0, whose
#                    LibTorch we link (plus safetensors/numpy for the checks that
#                    compare against the reference loaders)
#   build/           Release build with Ninja and ccache; CUDA kernels are
#                    compiled when nvcc is on the PATH (CUDA 13 toolkit)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
TORCH_VERSION=2.11.0

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------
PACKAGES=(build-essential cmake ninja-build ccache pkg-config git python3 python3-venv python3-pip
          zlib1g-dev libsentencepiece-dev sentencepiece libeigen3-dev nlohmann-json3-dev
          libgtest-dev libgmock-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
          clang libclang-rt-dev)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    log "Debian packages present"
fi

# --- LibTorch: the torch wheel in a project-local venv -----------------------
# prints "<torch version> <cuda version>" when the venv holds the right torch (and safetensors)
torch_info() {
    .venv/bin/python - "$TORCH_VERSION" <<'PY' 2>/dev/null
import sys, torch, safetensors
if torch.__version__.split("+")[0] != sys.argv[1]:
    sys.exit(1)
print(torch.__version__, torch.version.cuda or "cpu")
PY
}
if ! INFO=$(torch_info); then
    log "creating .venv with torch==$TORCH_VERSION (the wheel's LibTorch is what we link)"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" safetensors numpy
    INFO=$(torch_info)
fi
TORCH_CUDA="${INFO#* }"
log "torch ${INFO% *} (CUDA $TORCH_CUDA)"
if command -v nvcc >/dev/null 2>&1; then
    NVCC_CUDA=$(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')
    if [ "${TORCH_CUDA%%.*}" != "${NVCC_CUDA%%.*}" ]; then
        log "warning: the torch wheel is built for CUDA $TORCH_CUDA but nvcc is CUDA $NVCC_CUDA"
    fi
else
    log "nvcc not found: building the CPU-only configuration"
fi

# --- configure and build -----------------------------------------------------
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true
if [ ! -f build/build.ninja ]; then
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DVISIONLLM_PYTHON="$ROOT/.venv/bin/python"
fi
cmake --build build
log "built: build/bin/visionllm, build/bin/visionllm-bench, build/bin/visionllm-eval, build/lib/libvisionllm.so"
