// The EDS (CiA 306) of the bootloader node agrees with the core's object dictionary table.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "rtcanboot/lss.hpp"
#include "rtcanboot/object_dictionary.hpp"

namespace rtcanboot {
namespace {

using Section = std::map<std::string, std::string>;
using Eds = std::map<std::string, Section>;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Minimal INI reader as CiA 306 uses it: [section], key=value, ';' comments; section and key
// names are case-insensitive.
Eds read_eds(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  Eds eds;
  std::string line;
  std::string section;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = upper(line.substr(1, line.size() - 2));
      EXPECT_EQ(eds.count(section), 0U) << "duplicate section " << section;
      eds[section];
      continue;
    }
    const auto eq = line.find('=');
    EXPECT_NE(eq, std::string::npos) << "bad line: " << line;
    if (eq == std::string::npos) continue;
    eds[section][upper(trim(line.substr(0, eq)))] = trim(line.substr(eq + 1));
  }
  return eds;
}

std::uint32_t number(const std::string& s) {
  return static_cast<std::uint32_t>(std::strtoul(s.c_str(), nullptr, 0));
}

std::string section_name(std::uint16_t index) {
  char b[8];
  std::snprintf(b, sizeof b, "%04X", index);
  return b;
}
std::string section_name(std::uint16_t index, std::uint8_t sub) {
  return section_name(index) + "SUB" + std::to_string(sub);
}

class EdsTest : public ::testing::Test {
 protected:
  Eds eds = read_eds(std::string(RTCANBOOT_SOURCE_DIR) + "/host/eds/rtcanboot-bootloader.eds");
};

TEST_F(EdsTest, EveryDictionaryEntryIsDescribedAlike) {
  using namespace canopen;
  for (const OdEntry& e : object_dictionary()) {
    SCOPED_TRACE(section_name(e.index, e.sub));
    const bool var = e.object_code == ObjectCode::kVar;
    const std::string main = section_name(e.index);
    ASSERT_TRUE(eds.count(main));
    EXPECT_EQ(number(eds[main]["OBJECTTYPE"]), static_cast<std::uint32_t>(e.object_code));
    EXPECT_EQ(eds[main]["PARAMETERNAME"], e.object_name);
    const std::string sec = var ? main : section_name(e.index, e.sub);
    ASSERT_TRUE(eds.count(sec)) << sec;
    Section& s = eds[sec];
    EXPECT_EQ(s["PARAMETERNAME"], e.name);
    EXPECT_EQ(number(s["DATATYPE"]), static_cast<std::uint32_t>(e.type));
    EXPECT_EQ(s["ACCESSTYPE"], access_name(e.access));
    if (data_type_size(e.type) != 0) {
      ASSERT_TRUE(s.count("DEFAULTVALUE"));
      // Values set at run time may show a typical value in the EDS; fixed ones must agree.
      if (!e.runtime_value || e.default_value != 0) {
        EXPECT_EQ(number(s["DEFAULTVALUE"]), e.default_value);
      }
    }
  }
}

TEST_F(EdsTest, TheEdsDescribesNothingElse) {
  using namespace canopen;
  std::set<std::string> known;
  std::map<std::uint16_t, int> subs;
  for (const OdEntry& e : object_dictionary()) {
    known.insert(section_name(e.index));
    if (e.object_code != ObjectCode::kVar) known.insert(section_name(e.index, e.sub));
    ++subs[e.index];
  }
  const std::set<std::string> meta = {"FILEINFO",           "DEVICEINFO",       "DUMMYUSAGE",
                                      "COMMENTS",           "MANDATORYOBJECTS", "OPTIONALOBJECTS",
                                      "MANUFACTUREROBJECTS"};
  for (const auto& [name, section] : eds) {
    if (meta.count(name)) continue;
    EXPECT_TRUE(known.count(name)) << "EDS section [" << name << "] has no dictionary entry";
  }
  // Object lists: every object listed exactly once, in the right list; SubNumber right.
  std::set<std::uint16_t> listed;
  for (const char* list : {"MANDATORYOBJECTS", "OPTIONALOBJECTS", "MANUFACTUREROBJECTS"}) {
    Section& s = eds[list];
    const std::uint32_t n = number(s["SUPPORTEDOBJECTS"]);
    for (std::uint32_t i = 1; i <= n; ++i) {
      const auto index = static_cast<std::uint16_t>(number(s[std::to_string(i)]));
      EXPECT_TRUE(listed.insert(index).second) << "listed twice: " << std::hex << index;
      if (std::string(list) == "MANUFACTUREROBJECTS") {
        EXPECT_GE(index, 0x2000);
      } else {
        EXPECT_LT(index, 0x2000);
      }
    }
    EXPECT_EQ(s.size(), n + 1) << list;
  }
  EXPECT_EQ(listed.size(), subs.size());
  for (const auto& [index, count] : subs) {
    EXPECT_TRUE(listed.count(index)) << std::hex << index;
    Section& s = eds[section_name(index)];
    if (number(s["OBJECTTYPE"]) != 0x7) {
      EXPECT_EQ(number(s["SUBNUMBER"]), static_cast<std::uint32_t>(count)) << std::hex << index;
    }
  }
  for (std::uint16_t mandatory : {0x1000, 0x1001, 0x1018}) {
    bool found = false;
    Section& s = eds["MANDATORYOBJECTS"];
    for (const auto& [k, v] : s)
      found = found || (k != "SUPPORTEDOBJECTS" && number(v) == mandatory);
    EXPECT_TRUE(found) << std::hex << mandatory;
  }
}

TEST_F(EdsTest, FileAndDeviceInfo) {
  EXPECT_EQ(eds["FILEINFO"]["FILENAME"], "rtcanboot-bootloader.eds");
  EXPECT_EQ(eds["FILEINFO"]["EDSVERSION"], "4.0");
  for (const char* rate : {"BAUDRATE_125", "BAUDRATE_250", "BAUDRATE_500", "BAUDRATE_1000"}) {
    EXPECT_EQ(eds["DEVICEINFO"][rate], "1") << rate;
  }
  EXPECT_EQ(eds["DEVICEINFO"]["NROFRXPDO"], "0");
  EXPECT_EQ(eds["DEVICEINFO"]["SIMPLEBOOTUPSLAVE"], "1");
  // CiA 305 LSS slave (firmware/core/include/rtcanboot/lss_slave.hpp).
  EXPECT_EQ(eds["DEVICEINFO"]["LSS_SUPPORTED"], "1");
  // Every CiA 301 rate the LSS bit timing table offers is declared.
  for (std::uint8_t index = 0; index < lss::kBitTimingIndexCount; ++index) {
    const std::uint32_t rate = lss::bitrate_of(lss::kStandardTable, index);
    if (rate == 0) continue;
    const std::string key = "BAUDRATE_" + std::to_string(rate / 1000);
    EXPECT_EQ(eds["DEVICEINFO"][key], "1") << key;
  }
}

}  // namespace
}  // namespace rtcanboot
