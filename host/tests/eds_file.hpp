// A CiA 306 EDS file as the tests read it: sections, keys, the object entries, and the values
// the file declares as set at run time. Used by host/tests/eds_test.cpp (the EDS against the core's
// table and the build) and tests/e2e/eds_test.cpp (the EDS against the live firmware).
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace rtcanboot::eds {

using Section = std::map<std::string, std::string>;

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

inline std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

inline std::uint32_t number(const std::string& s) {
  return static_cast<std::uint32_t>(std::strtoul(s.c_str(), nullptr, 0));
}

inline std::string section_name(std::uint16_t index) {
  char b[8];
  std::snprintf(b, sizeof b, "%04X", index);
  return b;
}
inline std::string section_name(std::uint16_t index, std::uint8_t sub) {
  return section_name(index) + "SUB" + std::to_string(sub);
}

// One readable or writable entry: a VAR object, or a sub-index of an ARRAY/RECORD.
struct Entry {
  std::uint16_t index = 0;
  std::uint8_t sub = 0;
  std::uint32_t object_type = 7;  // of the whole object
  std::uint16_t data_type = 0;
  std::string access;  // ro, wo, rw, const (lower case)
  bool has_default = false;
  std::string default_value;
  std::uint32_t obj_flags = 0;  // CiA 306 ObjFlags: bit 0 refuse write on download
};

using Key = std::pair<std::uint16_t, std::uint8_t>;

// Minimal INI reader as CiA 306 uses it: [section], key=value, ';' comments; section and key
// names are case-insensitive (kept upper case), values are kept as written.
class File {
 public:
  explicit File(const std::string& path) {
    std::ifstream in(path);
    if (!in) problems.push_back("cannot read " + path);
    std::string line;
    std::string section;
    while (std::getline(in, line)) {
      line = trim(line);
      if (line.empty() || line[0] == ';') continue;
      if (line.front() == '[' && line.back() == ']') {
        section = upper(line.substr(1, line.size() - 2));
        if (sections.count(section) != 0) problems.push_back("duplicate section " + section);
        sections[section];
        continue;
      }
      const auto eq = line.find('=');
      if (eq == std::string::npos) {
        problems.push_back("bad line: " + line);
        continue;
      }
      sections[section][upper(trim(line.substr(0, eq)))] = trim(line.substr(eq + 1));
    }
  }

  // Every object entry, in index/sub-index order.
  std::vector<Entry> entries() {
    std::vector<Entry> out;
    for (auto& [name, s] : sections) {
      if (name.size() != 4 || name.find_first_not_of("0123456789ABCDEF") != std::string::npos) {
        continue;
      }
      const auto index = static_cast<std::uint16_t>(std::strtoul(name.c_str(), nullptr, 16));
      const std::uint32_t type = s.count("OBJECTTYPE") ? number(s["OBJECTTYPE"]) : 7;
      if (type == 7) {
        out.push_back(entry(index, 0, type, s));
        continue;
      }
      const std::uint32_t subs = number(s["SUBNUMBER"]);
      for (std::uint32_t sub = 0, found = 0; found < subs && sub < 256; ++sub) {
        const auto sub8 = static_cast<std::uint8_t>(sub);
        const auto it = sections.find(section_name(index, sub8));
        if (it == sections.end()) continue;
        ++found;
        out.push_back(entry(index, sub8, type, it->second));
      }
    }
    return out;
  }

  // Entries named in the [Comments] line that starts with `prefix` ("Runtime per device",
  // "Runtime state"), written as 0xIIII:s.
  std::set<Key> listed_in_comments(const std::string& prefix) {
    std::set<Key> out;
    for (const auto& [key, line] : sections["COMMENTS"]) {
      if (key == "LINES" || line.rfind(prefix, 0) != 0) continue;
      for (std::size_t at = line.find("0x"); at != std::string::npos;
           at = line.find("0x", at + 2)) {
        char* end = nullptr;
        const auto index = std::strtoul(line.c_str() + at + 2, &end, 16);
        if (end == nullptr || *end != ':') continue;
        const auto sub = std::strtoul(end + 1, nullptr, 10);
        out.insert({static_cast<std::uint16_t>(index), static_cast<std::uint8_t>(sub)});
      }
    }
    return out;
  }

  std::map<std::string, Section> sections;
  std::vector<std::string> problems;

 private:
  static Entry entry(std::uint16_t index, std::uint8_t sub, std::uint32_t type, Section& s) {
    Entry e;
    e.index = index;
    e.sub = sub;
    e.object_type = type;
    e.data_type = static_cast<std::uint16_t>(number(s["DATATYPE"]));
    std::string access = s["ACCESSTYPE"];
    for (char& c : access) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    e.access = access;
    e.has_default = s.count("DEFAULTVALUE") != 0;
    if (e.has_default) e.default_value = s["DEFAULTVALUE"];
    if (s.count("OBJFLAGS")) e.obj_flags = number(s["OBJFLAGS"]);
    return e;
  }
};

}  // namespace rtcanboot::eds
