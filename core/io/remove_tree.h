// Deletes a file or a whole directory tree, like std::filesystem::remove_all, with
// POSIX nftw instead: PyTorch 2.11's libtorch.so exports its own broken copy of
// remove_all(path, error_code&) (it jumps to address 0), so no process that links
// LibTorch may call remove_all. Symlinks are removed, never followed.
#pragma once

#include <cstdint>
#include <filesystem>

namespace wb {

// Removes `path` and everything under it; returns how many entries were removed
// (0 when `path` does not exist, which is not an error). Throws RunError naming the
// entry that could not be removed and why.
std::uintmax_t removeTree(const std::filesystem::path& path);

}  // namespace wb
