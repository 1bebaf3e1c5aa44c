// NVML through dlopen; see nvml.h. The handful of entry points used here are declared
// locally with NVML's C ABI (plain ints and pointers), so no NVML header is needed.
#include "core/bench/nvml.h"

#include <dlfcn.h>

#include <cstdio>
#include <mutex>

namespace wb {
namespace {

using NvmlReturn = int;  // nvmlReturn_t; 0 is NVML_SUCCESS
using NvmlDevice = void*;
struct NvmlMemory {  // nvmlMemory_t (v1)
  unsigned long long total, free, used;
};

struct NvmlApi {
  void* lib = nullptr;
  std::string error;
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*byIndex)(unsigned, NvmlDevice*) = nullptr;
  NvmlReturn (*byPciBusId)(const char*, NvmlDevice*) = nullptr;
  NvmlReturn (*memoryInfo)(NvmlDevice, NvmlMemory*) = nullptr;
  NvmlReturn (*name)(NvmlDevice, char*, unsigned) = nullptr;
  NvmlReturn (*driver)(char*, unsigned) = nullptr;
};

template <typename F>
bool bind(void* lib, const char* symbol, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, symbol));
  return out != nullptr;
}

// Loaded and initialised once per process; NVML is thread-safe after nvmlInit.
const NvmlApi& api() {
  static NvmlApi a;
  static std::once_flag once;
  std::call_once(once, [] {
    a.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!a.lib) {
      a.error = "libnvidia-ml.so.1 not found (no NVIDIA driver)";
      return;
    }
    const bool ok = bind(a.lib, "nvmlInit_v2", a.init) && bind(a.lib, "nvmlDeviceGetHandleByIndex_v2", a.byIndex) &&
                    bind(a.lib, "nvmlDeviceGetHandleByPciBusId_v2", a.byPciBusId) &&
                    bind(a.lib, "nvmlDeviceGetMemoryInfo", a.memoryInfo) &&
                    bind(a.lib, "nvmlDeviceGetName", a.name) &&
                    bind(a.lib, "nvmlSystemGetDriverVersion", a.driver);
    if (!ok) {
      a.error = "libnvidia-ml.so.1 lacks an expected entry point";
      a.init = nullptr;
      return;
    }
    if (a.init() != 0) {
      a.error = "nvmlInit failed (driver not loaded?)";
      a.init = nullptr;
    }
  });
  return a;
}

}  // namespace

std::optional<NvmlDeviceInfo> queryNvml(const std::string& pciBusId, unsigned index, std::string* why) {
  const NvmlApi& a = api();
  auto fail = [&](const std::string& msg) -> std::optional<NvmlDeviceInfo> {
    if (why) *why = msg;
    return std::nullopt;
  };
  if (!a.init) return fail(a.error);
  NvmlDevice dev = nullptr;
  // CUDA and NVML may number devices differently (CUDA_VISIBLE_DEVICES): the PCI
  // bus id names the same card in both.
  const NvmlReturn rc = pciBusId.empty() ? a.byIndex(index, &dev) : a.byPciBusId(pciBusId.c_str(), &dev);
  if (rc != 0) return fail("NVML has no device " + (pciBusId.empty() ? std::to_string(index) : pciBusId));
  NvmlMemory mem{};
  if (a.memoryInfo(dev, &mem) != 0) return fail("nvmlDeviceGetMemoryInfo failed");
  NvmlDeviceInfo info;
  char buf[96] = {0};
  if (a.name(dev, buf, sizeof buf) == 0) info.name = buf;
  char drv[96] = {0};
  if (a.driver(drv, sizeof drv) == 0) info.driverVersion = drv;
  info.usedMb = static_cast<double>(mem.used) / (1024.0 * 1024.0);
  info.totalMb = static_cast<double>(mem.total) / (1024.0 * 1024.0);
  return info;
}

std::string nvmlUsedText(const std::optional<NvmlDeviceInfo>& info) {
  if (!info) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", info->usedMb);
  return buf;
}

}  // namespace wb
