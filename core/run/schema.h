// The one defaults table format: every configurable section (profile root, device,
// model, data, each stage type) is a list of FieldSpec. The same table drives JSON
// validation, default filling, the GUI's forms and reset buttons, and the CLI's help.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wb {

enum class FieldKind { Bool, Int, Number, String, IntList, NumberList, StringList, Object, ObjectList };

struct FieldSpec {
  std::string key;
  FieldKind kind = FieldKind::String;
  nlohmann::json defaultValue;  // null together with required = true: must be given
  std::string help;
  std::optional<double> min;  // for numbers and list elements
  std::optional<double> max;
  std::vector<std::string> choices;  // for strings (and string-list elements) when not empty
  bool required = false;
};

struct SectionSpec {
  std::string name;  // "device", "train", ...
  std::string help;
  std::vector<FieldSpec> fields;
  const FieldSpec* find(const std::string& key) const;
};

// Checks `value` against `section`: unknown keys, types, ranges, choices, required
// fields. Returns a copy with every default filled in. Throws ProfileError whose
// pointer is `pointer` + "/key".
nlohmann::json validateSection(const nlohmann::json& value, const SectionSpec& section,
                               const std::string& pointer);

// Checks one field's value; same errors as validateSection.
void validateField(const nlohmann::json& value, const FieldSpec& field, const std::string& pointer);

// "an integer >= 1", "one of \"cpu\", \"cuda\"" ... used in messages and --help.
std::string describeExpected(const FieldSpec& field);
const char* toString(FieldKind kind);

}  // namespace wb
