// Typed exceptions thrown by core. Each names where the problem is (a file path,
// a JSON pointer, a tensor name) and may carry a hint for the user. Front ends map
// them to exit codes (CLI) or dialogs (GUI); nothing in core calls exit() or abort().
#pragma once

#include <stdexcept>
#include <string>

namespace wb {

class Error : public std::runtime_error {
 public:
  Error(std::string where, const std::string& message, std::string hint = {})
      : std::runtime_error(where.empty() ? message : where + ": " + message),
        where_(std::move(where)),
        hint_(std::move(hint)) {}
  const std::string& where() const { return where_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string where_;
  std::string hint_;
};

// Bad input from the user: a profile, a model folder, a data file. CLI exit code 2.
class InputError : public Error {
 public:
  using Error::Error;
};

// A run that started and then failed (NaN loss, out of memory, I/O). CLI exit code 3.
class RunError : public Error {
 public:
  using Error::Error;
};

// Cooperative cancellation reached a check point. CLI exit code 130.
class Cancelled : public Error {
 public:
  Cancelled() : Error({}, "cancelled") {}
};

}  // namespace wb
