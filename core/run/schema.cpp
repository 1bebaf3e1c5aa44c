// Validation of JSON objects against FieldSpec tables; see schema.h.
#include "core/run/schema.h"

#include <cmath>
#include <sstream>

#include "core/run/profile.h"

namespace wb {
namespace {

std::string shortDump(const nlohmann::json& value) {
  std::string s = value.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string numberText(double x) {
  // Integral bounds print as integers ("1000000000", not "1e+09").
  if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  std::ostringstream os;
  os << x;
  return os.str();
}

std::string rangeText(const FieldSpec& f) {
  if (f.min && f.max) return " in [" + numberText(*f.min) + ", " + numberText(*f.max) + "]";
  if (f.min) return " >= " + numberText(*f.min);
  if (f.max) return " <= " + numberText(*f.max);
  return {};
}

std::string choicesText(const FieldSpec& f) {
  std::string s = "one of ";
  for (size_t i = 0; i < f.choices.size(); ++i) {
    if (i) s += ", ";
    s += "\"" + f.choices[i] + "\"";
  }
  return s;
}

[[noreturn]] void fail(const std::string& pointer, const FieldSpec& field,
                       const nlohmann::json& got) {
  throw ProfileError({}, pointer, "expected " + describeExpected(field) + ", got " + shortDump(got));
}

bool isInteger(const nlohmann::json& v) {
  if (v.is_number_integer()) return true;
  // 1e3 or 8.0 written by hand are accepted as integers when exact.
  return v.is_number_float() && std::isfinite(v.get<double>()) &&
         v.get<double>() == std::floor(v.get<double>()) && std::fabs(v.get<double>()) < 9.0e15;
}

bool inRange(double x, const FieldSpec& f) {
  return (!f.min || x >= *f.min) && (!f.max || x <= *f.max);
}

void checkScalar(const nlohmann::json& v, FieldKind kind, const FieldSpec& f,
                 const std::string& pointer, const nlohmann::json& whole) {
  switch (kind) {
    case FieldKind::Bool:
      if (!v.is_boolean()) fail(pointer, f, whole);
      return;
    case FieldKind::Int:
      if (!isInteger(v) || !inRange(v.get<double>(), f)) fail(pointer, f, whole);
      return;
    case FieldKind::Number:
      if (!v.is_number() || !std::isfinite(v.get<double>()) || !inRange(v.get<double>(), f))
        fail(pointer, f, whole);
      return;
    case FieldKind::String:
      if (!v.is_string()) fail(pointer, f, whole);
      if (!f.choices.empty()) {
        const auto s = v.get<std::string>();
        bool ok = false;
        for (const auto& c : f.choices) ok = ok || c == s;
        if (!ok) fail(pointer, f, whole);
      }
      return;
    default:
      return;
  }
}

}  // namespace

const char* toString(FieldKind kind) {
  switch (kind) {
    case FieldKind::Bool: return "boolean";
    case FieldKind::Int: return "integer";
    case FieldKind::Number: return "number";
    case FieldKind::String: return "string";
    case FieldKind::IntList: return "integer list";
    case FieldKind::NumberList: return "number list";
    case FieldKind::StringList: return "string list";
    case FieldKind::Object: return "object";
    case FieldKind::ObjectList: return "object list";
  }
  return "value";
}

std::string describeExpected(const FieldSpec& f) {
  switch (f.kind) {
    case FieldKind::Bool: return "a boolean";
    case FieldKind::Int: return "an integer" + rangeText(f);
    case FieldKind::Number: return "a number" + rangeText(f);
    case FieldKind::String: return f.choices.empty() ? "a string" : choicesText(f);
    case FieldKind::IntList: return "a list of integers" + rangeText(f);
    case FieldKind::NumberList: return "a list of numbers" + rangeText(f);
    case FieldKind::StringList:
      return f.choices.empty() ? "a list of strings" : "a list of " + choicesText(f);
    case FieldKind::Object: return "an object";
    case FieldKind::ObjectList: return "a list of objects";
  }
  return "a value";
}

const FieldSpec* SectionSpec::find(const std::string& key) const {
  for (const auto& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

void validateField(const nlohmann::json& value, const FieldSpec& f, const std::string& pointer) {
  switch (f.kind) {
    case FieldKind::Bool:
    case FieldKind::Int:
    case FieldKind::Number:
    case FieldKind::String:
      checkScalar(value, f.kind, f, pointer, value);
      return;
    case FieldKind::IntList:
    case FieldKind::NumberList:
    case FieldKind::StringList: {
      if (!value.is_array()) fail(pointer, f, value);
      const FieldKind elem = f.kind == FieldKind::IntList      ? FieldKind::Int
                             : f.kind == FieldKind::NumberList ? FieldKind::Number
                                                               : FieldKind::String;
      for (size_t i = 0; i < value.size(); ++i)
        checkScalar(value[i], elem, f, pointer + "/" + std::to_string(i), value[i]);
      return;
    }
    case FieldKind::Object:
      if (!value.is_object()) fail(pointer, f, value);
      return;
    case FieldKind::ObjectList:
      if (!value.is_array()) fail(pointer, f, value);
      for (size_t i = 0; i < value.size(); ++i)
        if (!value[i].is_object()) fail(pointer + "/" + std::to_string(i), f, value[i]);
      return;
  }
}

nlohmann::json validateSection(const nlohmann::json& value, const SectionSpec& section,
                               const std::string& pointer) {
  if (!value.is_object())
    throw ProfileError({}, pointer.empty() ? "/" : pointer,
                       "expected an object (" + section.name + "), got " + shortDump(value));
  for (const auto& [key, v] : value.items()) {
    if (!section.find(key)) {
      std::string known;
      for (const auto& f : section.fields) known += (known.empty() ? "" : ", ") + f.key;
      throw ProfileError({}, pointer + "/" + key,
                         "unknown key in " + section.name + " (known keys: " + known + ")");
    }
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& f : section.fields) {
    const std::string p = pointer + "/" + f.key;
    auto it = value.find(f.key);
    if (it == value.end()) {
      if (f.required)
        throw ProfileError({}, p, "missing required field (" + describeExpected(f) + ")");
      if (!f.defaultValue.is_null()) out[f.key] = f.defaultValue;
      continue;
    }
    validateField(*it, f, p);
    // Integers written as 8.0 are stored as integers so typed getters agree.
    if (f.kind == FieldKind::Int && it->is_number_float())
      out[f.key] = static_cast<int64_t>(it->get<double>());
    else
      out[f.key] = *it;
  }
  return out;
}

}  // namespace wb
