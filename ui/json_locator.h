// Finds where a JSON pointer (RFC 6901, e.g. "/stages/1/rank") sits in JSON text,
// so the editor can highlight the field a validation error names. Works on text
// that already parsed; for a missing key it returns the nearest enclosing value.
// Not a JSON parser: nlohmann does the parsing, this only tracks positions.
#pragma once

#include <QString>
#include <optional>

namespace wb::ui {

struct TextRange {
  int start = 0;  // first character (of the key when the value has one)
  int end = 0;    // one past the value's last character
  bool exact = false;  // false: the pointer was not found, this is its nearest ancestor
};

std::optional<TextRange> locateJsonPointer(const QString& text, const QString& pointer);

}  // namespace wb::ui
