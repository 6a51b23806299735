// TOML definitions: toml++ parses, the tree becomes the JSON document the JSON format would
// have given, and the JSON reader does the rest (keys, types, warnings, validation).
#include "mgmt/domain_toml.h"

#include <cstdint>
#include <sstream>

// toml++'s debug assertions check preconditions that 3.3 itself breaks on some malformed
// input (a table header with no key, marzer/tomlplusplus#301), where its code then reports a
// parse error. Debian's library is built without them (and by GCC, where its "assume" is a
// no-op); header-only builds here, such as the fuzzer's, follow it.
#ifndef TOML_ASSERT
#define TOML_ASSERT(expr) static_assert(true)
#endif
#include <toml++/toml.h>

namespace vireo::mgmt {
namespace {

using nlohmann::json;

Result<json> ToJson(const toml::node& node, const std::string& where) {
  switch (node.type()) {
    case toml::node_type::table: {
      json out = json::object();
      for (const auto& [key, value] : *node.as_table()) {
        const std::string name(key.str());
        out[name] = VIREO_TRY(ToJson(value, where.empty() ? name : where + "." + name));
      }
      return out;
    }
    case toml::node_type::array: {
      json out = json::array();
      size_t i = 0;
      for (const toml::node& item : *node.as_array()) {
        out.push_back(VIREO_TRY(ToJson(item, fmt::format("{}[{}]", where, i++))));
      }
      return out;
    }
    case toml::node_type::string:
      return json(node.as_string()->get());
    case toml::node_type::integer: {
      // Non-negative integers become JSON's unsigned numbers, which the reader's counts and
      // sizes require; negative ones stay signed so the reader names them as wrong.
      const int64_t value = node.as_integer()->get();
      return value >= 0 ? json(static_cast<uint64_t>(value)) : json(value);
    }
    case toml::node_type::floating_point:
      return json(node.as_floating_point()->get());
    case toml::node_type::boolean:
      return json(node.as_boolean()->get());
    default:  // date, time, date-time: no definition key holds one
      return Fail("{}: a TOML date or time is not a valid value here", where);
  }
}

// JSON -> TOML for DomainToToml. TOML integers are signed 64-bit, so a larger count is
// written as a decimal string (only memory_hard_limit can be that large, and sizes accept
// strings).
void InsertToml(toml::table& table, const std::string& key, const json& value);

toml::array ArrayToToml(const json& value) {
  toml::array out;
  for (const json& item : value) {
    if (item.is_object()) {
      toml::table t;
      for (const auto& [k, v] : item.items()) InsertToml(t, k, v);
      out.push_back(std::move(t));
    } else if (item.is_string()) {
      out.push_back(item.get<std::string>());
    } else if (item.is_boolean()) {
      out.push_back(item.get<bool>());
    } else if (item.is_number_integer()) {
      out.push_back(item.get<int64_t>());
    }
  }
  return out;
}

void InsertToml(toml::table& table, const std::string& key, const json& value) {
  if (value.is_object()) {
    toml::table t;
    for (const auto& [k, v] : value.items()) InsertToml(t, k, v);
    table.insert_or_assign(key, std::move(t));
  } else if (value.is_array()) {
    table.insert_or_assign(key, ArrayToToml(value));
  } else if (value.is_string()) {
    table.insert_or_assign(key, value.get<std::string>());
  } else if (value.is_boolean()) {
    table.insert_or_assign(key, value.get<bool>());
  } else if (value.is_number_unsigned()) {
    const uint64_t n = value.get<uint64_t>();
    if (n > static_cast<uint64_t>(INT64_MAX)) {
      table.insert_or_assign(key, std::to_string(n));
    } else {
      table.insert_or_assign(key, static_cast<int64_t>(n));
    }
  } else if (value.is_number_integer()) {
    table.insert_or_assign(key, value.get<int64_t>());
  }
}

// toml++ 3.3 reaches __builtin_unreachable() (undefined behaviour) when it asks whether a
// code point in U+00A1-U+0499, U+2C5E-U+3057 or U+FB26-U+FEFE is whitespace
// (is_non_ascii_horizontal_whitespace; marzer/tomlplusplus#190, fixed upstream by #305). Its
// error paths may ask about characters anywhere, so those are refused wherever they stand;
// in a "..." string they can be written as \uXXXX escapes, which is how DomainToToml writes
// every non-ASCII character. The fuzzer found it.
bool TomlppMisreads(char32_t cp) {
  return (cp >= 0xa1 && cp <= 0x499) || (cp >= 0x2c5e && cp <= 0x3057 && cp != 0x3000) ||
         (cp >= 0xfb26 && cp <= 0xfefe);
}

Status CheckCodePoints(std::string_view text) {
  size_t line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') ++line;
    // Two- and three-byte sequences hold every code point above; malformed ones are left to
    // toml++, which refuses them.
    const size_t n = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : 0;
    if (n == 0 || text.size() - i <= n) continue;
    char32_t cp = c & (n == 1 ? 0x1f : 0x0f);
    bool ok = true;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      ok = ok && (cc >> 6) == 0x2;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (ok && TomlppMisreads(cp)) {
      return Fail(
          "definition: TOML line {}: write U+{:04X} as \\u{:04X} in a \"...\" string (the TOML "
          "reader, toml++ 3.3, cannot take this character unescaped)",
          line, static_cast<uint32_t>(cp), static_cast<uint32_t>(cp));
    }
  }
  return {};
}

}  // namespace

Result<ParsedDomain> ParseDomainToml(std::string_view text, bool strict) {
  VIREO_TRY_STATUS(CheckCodePoints(text));
  toml::table doc;
  try {
    doc = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return Fail("definition: malformed TOML at line {}, column {}: {}", e.source().begin.line,
                e.source().begin.column, e.description());
  }
  json converted = VIREO_TRY(ToJson(doc, ""));
  return ParseDomainJsonValue(converted, strict);
}

std::string DomainToToml(const DomainDef& def) {
  toml::table out;
  const json doc = DomainToJson(def);  // a temporary would die before the loop's body
  for (const auto& [key, value] : doc.items()) InsertToml(out, key, value);
  std::ostringstream text;
  // Non-ASCII characters as \u escapes: the reader refuses some of them raw (CheckCodePoints).
  text << toml::toml_formatter(
              out, toml::toml_formatter::default_flags & ~toml::format_flags::allow_unicode_strings)
       << "\n";
  return text.str();
}

}  // namespace vireo::mgmt
