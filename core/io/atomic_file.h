// Writes a whole file so that readers see either the old or the new content, never
// a torn one: write to `<path>.tmp-<pid>`, fsync, rename over `path`.
#pragma once

#include <filesystem>
#include <string_view>

namespace wb {

void writeFileAtomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace wb
