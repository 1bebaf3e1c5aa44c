// nftw-based recursive delete; see remove_tree.h.
#include "core/io/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/errors.h"

namespace wb {
namespace {

// nftw's callback takes no user pointer: the walk's state lives per thread, so
// concurrent removals on different threads do not mix.
struct WalkState {
  std::uintmax_t removed = 0;
  std::string failedPath;
  int failedErrno = 0;
};
thread_local WalkState* tState = nullptr;

int removeEntry(const char* path, const struct stat*, int, struct FTW*) {
  // FTW_DEPTH visits a directory after its contents, so remove() sees it empty.
  if (::remove(path) == 0) {
    ++tState->removed;
    return 0;
  }
  if (errno == ENOENT) return 0;  // removed by someone else meanwhile: fine
  tState->failedPath = path;
  tState->failedErrno = errno;
  return 1;  // stops the walk; nftw returns this value
}

}  // namespace

std::uintmax_t removeTree(const std::filesystem::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return 0;
    throw RunError(path.string(), std::string("cannot remove: ") + std::strerror(errno));
  }
  WalkState state;
  tState = &state;
  // FTW_PHYS: a symlink is an entry to delete, not a directory to descend into.
  const int rc = ::nftw(path.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  const int walkErrno = errno;
  tState = nullptr;
  if (rc == 0) return state.removed;
  if (!state.failedPath.empty())
    throw RunError(state.failedPath,
                   std::string("cannot remove: ") + std::strerror(state.failedErrno),
                   "check the permissions of " + path.string());
  if (walkErrno == ENOENT && ::lstat(path.c_str(), &st) != 0 && errno == ENOENT)
    return state.removed;
  throw RunError(path.string(),
                 std::string("cannot walk the tree to remove it: ") + std::strerror(walkErrno));
}

}  // namespace wb
