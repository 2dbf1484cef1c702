// The EDS files (CiA 306) of the bootloader and of the example application agree with the core's
// object dictionary table and with the build's identity and version (one definition: the CMake
// project version and cache variables, rtcanboot/product.hpp, rtcanboot/memory_map.hpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "eds_file.hpp"
#include "rtcanboot/lss.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/object_dictionary.hpp"
#include "rtcanboot/product.hpp"

namespace rtcanboot {
namespace {

using eds::number;
using eds::Section;
using eds::section_name;
using Eds = std::map<std::string, Section>;

Eds read_eds(const std::string& path) {
  eds::File file(path);
  for (const auto& problem : file.problems) ADD_FAILURE() << path << ": " << problem;
  return file.sections;
}

std::string eds_path(const std::string& name) {
  return std::string(RTCANBOOT_SOURCE_DIR) + "/host/eds/" + name;
}

// Both programs have the core's dictionary; their EDS files differ in values only.
class EdsTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::string file_name = GetParam();
  Eds eds = read_eds(eds_path(file_name));
  bool application = file_name == "rtcanboot-example-app.eds";
  // The application's node has no self-test, sector digest, signing-key, listen-along or
  // provisioning object (NodeConfig::self_test, sector_digests, keys, listen_along and
  // provisioning are the bootloader's).
  bool absent(const canopen::OdEntry& e) const {
    return application &&
           (e.index == canopen::od::kSelfTest || e.index == canopen::od::kSectorDigests ||
            e.index == canopen::od::kSigningKeys || e.index == canopen::od::kListenAlong ||
            e.index == canopen::od::kProvisioning);
  }
};

INSTANTIATE_TEST_SUITE_P(BootloaderAndApplication, EdsTest,
                         ::testing::Values("rtcanboot-bootloader.eds", "rtcanboot-example-app.eds"),
                         [](const auto& param_info) {
                           return std::string(param_info.param).find("app") != std::string::npos
                                      ? std::string("ExampleApp")
                                      : std::string("Bootloader");
                         });

TEST_P(EdsTest, EveryDictionaryEntryIsDescribedAlike) {
  using namespace canopen;
  for (const OdEntry& e : object_dictionary()) {
    SCOPED_TRACE(section_name(e.index, e.sub));
    if (absent(e)) {
      EXPECT_FALSE(eds.count(section_name(e.index)));
      continue;
    }
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
      // Values the table takes from NodeConfig or ProgramControl differ between the programs
      // (tests/e2e/eds_test.cpp reads them from the live nodes); fixed ones must agree.
      if (!e.runtime_value) {
        EXPECT_EQ(number(s["DEFAULTVALUE"]), e.default_value);
      }
    }
  }
}

TEST_P(EdsTest, TheEdsDescribesNothingElse) {
  using namespace canopen;
  std::set<std::string> known;
  std::map<std::uint16_t, int> subs;
  for (const OdEntry& e : object_dictionary()) {
    if (absent(e)) continue;
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

TEST_P(EdsTest, FileAndDeviceInfo) {
  EXPECT_EQ(eds["FILEINFO"]["FILENAME"], file_name);
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

// The values the build fixes: identity, version, names, the application region.
TEST_P(EdsTest, ValuesAreTheBuildsConstants) {
  const std::uint32_t version =
      product::version_number(RTCANBOOT_EXPECT_VERSION_MAJOR, RTCANBOOT_EXPECT_VERSION_MINOR,
                              RTCANBOOT_EXPECT_VERSION_PATCH);
  const auto value = [&](std::uint16_t index, std::uint8_t sub) {
    return eds[section_name(index, sub)]["DEFAULTVALUE"];
  };
  EXPECT_EQ(number(eds["DEVICEINFO"]["VENDORNUMBER"]), RTCANBOOT_EXPECT_VENDOR_ID);
  EXPECT_EQ(number(eds["DEVICEINFO"]["PRODUCTNUMBER"]), RTCANBOOT_EXPECT_PRODUCT_CODE);
  EXPECT_EQ(number(eds["DEVICEINFO"]["REVISIONNUMBER"]), version);
  EXPECT_EQ(number(value(0x1018, 1)), RTCANBOOT_EXPECT_VENDOR_ID);
  EXPECT_EQ(number(value(0x1018, 2)), RTCANBOOT_EXPECT_PRODUCT_CODE);
  EXPECT_EQ(number(value(0x1018, 3)), version);
  EXPECT_EQ(number(value(0x1018, 4)), 0u);  // per device
  EXPECT_EQ(number(value(0x5F00, 2)), version);
  EXPECT_EQ(number(value(0x5F00, 3)), memory_map::kAppAddress);
  EXPECT_EQ(number(value(0x5F00, 4)), memory_map::kAppSize);
  if (application) {
    EXPECT_EQ(eds["1008"]["DEFAULTVALUE"], product::kExampleAppDeviceName);
    EXPECT_EQ(eds["100A"]["DEFAULTVALUE"],
              std::string(product::kExampleAppVersionPrefix) + RTCANBOOT_EXPECT_VERSION);
    EXPECT_EQ(number(value(0x5F00, 1)), canopen::kRunningApplication);
    EXPECT_EQ(number(value(0x5F00, 5)),
              static_cast<std::uint32_t>(canopen::BootReason::kApplicationRunning));
    EXPECT_EQ(number(value(0x1F51, 1)),
              static_cast<std::uint32_t>(canopen::ProgramState::kStarted));
  } else {
    EXPECT_EQ(eds["1008"]["DEFAULTVALUE"], product::kBootloaderDeviceName);
    EXPECT_EQ(eds["100A"]["DEFAULTVALUE"], RTCANBOOT_EXPECT_VERSION);
    EXPECT_EQ(number(value(0x5F00, 1)), canopen::kRunningBootloader);
    // The factory state: no application installed.
    EXPECT_EQ(number(value(0x5F00, 5)),
              static_cast<std::uint32_t>(canopen::BootReason::kNoValidApplication));
    EXPECT_EQ(number(value(0x1F51, 1)),
              static_cast<std::uint32_t>(canopen::ProgramState::kNoProgram));
  }
}

// The entries declared as set at run time exist, and every entry but those has a value no state
// changes (the e2e test reads both kinds from the live node).
TEST_P(EdsTest, RuntimeValuesAreDeclaredInTheComments) {
  eds::File file(eds_path(file_name));
  const auto per_device = file.listed_in_comments("Runtime per device");
  const auto state = file.listed_in_comments("Runtime state");
  EXPECT_TRUE(per_device.count({0x1018, 4}));
  std::set<eds::Key> all;
  for (const auto& e : file.entries()) all.insert({e.index, e.sub});
  for (const auto& key : per_device) {
    EXPECT_TRUE(all.count(key)) << std::hex << key.first << ":" << int{key.second};
    EXPECT_FALSE(state.count(key)) << "listed twice";
    EXPECT_EQ(number(eds[section_name(key.first, key.second)]["DEFAULTVALUE"]), 0u);
  }
  for (const auto& key : state) {
    EXPECT_TRUE(all.count(key)) << std::hex << key.first << ":" << int{key.second};
  }
  // The comment count is right (CiA 306 [Comments] Lines=).
  Section& comments = eds["COMMENTS"];
  EXPECT_EQ(comments.size(), number(comments["LINES"]) + 1);
  // 0x1F51:1 is a command: a configuration tool must not write its DefaultValue.
  EXPECT_EQ(number(eds["1F51SUB1"]["OBJFLAGS"]) & 1u, 1u);
}

}  // namespace
}  // namespace rtcanboot
