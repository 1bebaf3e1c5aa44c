# Finds the project's dependencies and decides what optional parts to build.
# Everything version-dependent about LibTorch itself is in core/torch_compat.h.

find_package(Torch REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
# PCRE2 (the tokenizer's regex engine): pkg-config where present, else a plain search
# (the GPU machine gets Debian's headers unpacked into a prefix).
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
endif()
if(NOT TARGET PkgConfig::PCRE2)
  find_path(WB_PCRE2_INCLUDE pcre2.h REQUIRED)
  find_library(WB_PCRE2_LIB pcre2-8 REQUIRED)
  add_library(PkgConfig::PCRE2 INTERFACE IMPORTED)
  target_include_directories(PkgConfig::PCRE2 INTERFACE ${WB_PCRE2_INCLUDE})
  target_link_libraries(PkgConfig::PCRE2 INTERFACE ${WB_PCRE2_LIB})
endif()
find_package(Threads REQUIRED)

# LibTorch's own flags (the C++ ABI switch) must reach every target that shares
# std::string with core, also those that never include a LibTorch header.
separate_arguments(WB_TORCH_CXX_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_compile_options(${WB_TORCH_CXX_FLAGS})

set(WB_TORCH_HAS_CUDA OFF)
if(TORCH_LIBRARIES MATCHES "cuda" OR TARGET torch_cuda OR CUDA_FOUND)
  set(WB_TORCH_HAS_CUDA ON)
endif()
if(WB_CUDA STREQUAL "AUTO")
  set(WB_CUDA_ENABLED ${WB_TORCH_HAS_CUDA})
else()
  set(WB_CUDA_ENABLED ${WB_CUDA})
endif()
if(WB_CUDA_ENABLED AND NOT WB_TORCH_HAS_CUDA)
  message(FATAL_ERROR "WB_CUDA=ON but this LibTorch (${Torch_DIR}) was built without CUDA")
endif()

# kernels/ builds whenever nvcc is found (a compile check in CI); only a CUDA LibTorch
# lets core call it.
include(CheckLanguage)
check_language(CUDA)
set(WB_KERNELS OFF)
if(CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  set(WB_KERNELS ON)
endif()
if(WB_CUDA_ENABLED AND NOT WB_KERNELS)
  message(FATAL_ERROR "WB_CUDA is on but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
endif()

if(WB_GUI)
  find_package(Qt6 REQUIRED COMPONENTS Core Gui Widgets PrintSupport Test)
  find_package(QCustomPlotQt6 REQUIRED)  # QCustomPlot (no suffix) is the Qt 5 build
elseif(WB_TESTS)
  find_package(Qt6 REQUIRED COMPONENTS Core Test)
endif()

message(STATUS "wb: LibTorch ${Torch_VERSION} (CUDA: ${WB_TORCH_HAS_CUDA}), core CUDA: ${WB_CUDA_ENABLED}, "
               "kernels: ${WB_KERNELS}, GUI: ${WB_GUI}, tests: ${WB_TESTS}")
