// Device-wide memory and identity from NVML, loaded at run time with dlopen
// ("libnvidia-ml.so.1"), so nothing links NVML at build time and a machine without
// the NVIDIA driver simply reports "n/a". NVML sees every process on the card, unlike
// LibTorch's caching allocator: the two are shown side by side, never mixed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace wb {

struct NvmlDeviceInfo {
  std::string name;           // "NVIDIA H100 80GB HBM3"
  std::string driverVersion;  // "580.159.04"
  double usedMb = 0.0, totalMb = 0.0;  // device memory used by all processes / total
};

// Queries the device with `pciBusId` ("0000:1B:00.0", as cudaDeviceGetPCIBusId writes
// it) or, when that is empty, NVML's device `index`. nullopt when the library, the
// driver or the device is missing; `why` (optional) then says which.
std::optional<NvmlDeviceInfo> queryNvml(const std::string& pciBusId, unsigned index,
                                        std::string* why = nullptr);

// "12345.6" or "n/a", for tables.
std::string nvmlUsedText(const std::optional<NvmlDeviceInfo>& info);

}  // namespace wb
