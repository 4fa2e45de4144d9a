# LibTorch from the torch wheel for CPU-only builds. The wheel's own TorchConfig
# insists on a CUDA toolkit when the wheel is a CUDA build; without nvcc we bind
# its libraries directly. The CUDA runtime libraries the wheel needs at load
# time come from its nvidia-* pip dependencies, found through its RPATH.
execute_process(
  COMMAND "${VISIONLLM_PYTHON}" -c "import os, torch; print(os.path.dirname(torch.__file__)); print(torch.__version__)"
  OUTPUT_VARIABLE _out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "cannot import torch with ${VISIONLLM_PYTHON}; run scripts/setup.sh")
endif()
string(REPLACE "\n" ";" _out "${_out}")
list(GET _out 0 TORCH_ROOT)
list(GET _out 1 Torch_VERSION)
set(Torch_DIR "${TORCH_ROOT}")
foreach(_lib torch torch_cpu c10)
  find_library(TORCH_WHEEL_${_lib} ${_lib} PATHS "${TORCH_ROOT}/lib" NO_DEFAULT_PATH REQUIRED)
endforeach()
add_library(torch_wheel INTERFACE)
target_include_directories(torch_wheel SYSTEM INTERFACE "${TORCH_ROOT}/include" "${TORCH_ROOT}/include/torch/csrc/api/include")
target_link_libraries(torch_wheel INTERFACE ${TORCH_WHEEL_torch} ${TORCH_WHEEL_torch_cpu} ${TORCH_WHEEL_c10})
set(TORCH_LIBRARIES torch_wheel)
