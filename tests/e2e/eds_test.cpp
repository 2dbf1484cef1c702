// End to end (issue 16, item 7): every entry of the EDS files read from the live firmware in the
// twin, object by object, through the host tool's SDO client, and compared with the EDS's
// DataType, AccessType and DefaultValue. host/eds/rtcanboot-bootloader.eds against the bootloader
// (fresh from the factory, and again with an application installed), and
// host/eds/rtcanboot-example-app.eds against the running example application.
//
// What is compared (docs/canopen.md, "The EDS files"):
// - every readable entry: the upload succeeds with the size of its DataType (strings: any size);
// - its value equals DefaultValue, except for the entries the EDS's [Comments] list as "Runtime
//   per device" (never compared) and "Runtime state" (compared only in the state the EDS names);
// - wo entries: the upload is refused with 0x06010001;
// - ro and const entries: writing the value read back is refused with 0x06010002;
// - rw entries without ObjFlags bit 0: the value read written back is accepted and reads back;
// - one sub-index past a record or array (and sub 1 of a VAR) is refused with 0x06090011.
#include <set>
#include <sstream>

#include "e2e_rig.hpp"
#include "eds_file.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 9;

std::string eds_path(const char* name) {
  return std::string(RTCANBOOT_SOURCE_DIR) + "/host/eds/" + name;
}

std::uint32_t type_size(std::uint16_t data_type) {
  switch (data_type) {
    case 0x0005:
      return 1;
    case 0x0006:
      return 2;
    case 0x0007:
      return 4;
    default:
      return 0;  // VISIBLE_STRING, DOMAIN
  }
}

std::string where(const eds::Entry& e) {
  std::ostringstream out;
  out << "0x" << std::hex << std::uppercase << e.index << ":" << std::dec << int{e.sub};
  return out.str();
}

// The abort code of `transfer`, 0 when it succeeded; a timeout fails the test.
template <typename Fn>
std::uint32_t abort_of(Fn transfer, const std::string& what) {
  try {
    transfer();
  } catch (const host::SdoError& e) {
    EXPECT_FALSE(e.timed_out()) << what << ": " << e.what();
    return e.abort_code();
  }
  return 0;
}

enum class State : std::uint8_t {
  kReference,  // the state the EDS's "Runtime state" line names: compare those values too
  kOther,      // another state: runtime values are only read
};

// Reads every entry of `file` from `node` and compares; returns the number of entries checked.
int check_node_against_eds(Rig& rig, std::uint8_t node, const char* file, State state) {
  eds::File eds_file(eds_path(file));
  for (const auto& problem : eds_file.problems) ADD_FAILURE() << file << ": " << problem;
  const auto per_device = eds_file.listed_in_comments("Runtime per device");
  const auto runtime_state = eds_file.listed_in_comments("Runtime state");
  host::Master& m = rig.master();
  int checked = 0;
  std::set<std::uint16_t> objects;
  for (const eds::Entry& e : eds_file.entries()) {
    SCOPED_TRACE(std::string(file) + " " + where(e));
    ++checked;
    objects.insert(e.index);
    if (e.access == "wo") {
      EXPECT_EQ(abort_of([&] { m.upload(node, e.index, e.sub); }, "upload"),
                static_cast<std::uint32_t>(co::Abort::kWriteOnly));
      continue;
    }
    std::vector<std::uint8_t> value;
    try {
      value = m.upload(node, e.index, e.sub);
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "upload failed: " << ex.what();
      continue;
    }
    const std::uint32_t size = type_size(e.data_type);
    const bool compare = per_device.count({e.index, e.sub}) == 0 &&
                         (state == State::kReference || runtime_state.count({e.index, e.sub}) == 0);
    if (size != 0) {
      if (value.size() != size || !e.has_default) {
        ADD_FAILURE() << value.size() << " bytes for a type of " << size << ", DefaultValue "
                      << (e.has_default ? e.default_value : std::string("missing"));
        continue;
      }
      std::uint32_t number = 0;
      for (std::uint32_t i = 0; i < size; ++i) number |= std::uint32_t{value[i]} << (8 * i);
      if (compare) {
        EXPECT_EQ(number, eds::number(e.default_value)) << "DefaultValue " << e.default_value;
      }
    } else if (e.data_type == 0x0009 && compare) {
      EXPECT_EQ(std::string(value.begin(), value.end()), e.default_value);
    }
    if (e.access == "ro" || e.access == "const") {
      EXPECT_EQ(abort_of([&] { m.download(node, e.index, e.sub, value); }, "download"),
                static_cast<std::uint32_t>(co::Abort::kReadOnly));
    } else if (e.access == "rw" && (e.obj_flags & 1U) == 0) {
      EXPECT_EQ(abort_of([&] { m.download(node, e.index, e.sub, value); }, "download"), 0u);
      EXPECT_EQ(m.upload(node, e.index, e.sub), value);
    } else {
      EXPECT_EQ(e.access, "rw");  // a command (ObjFlags bit 0): not written here
    }
  }
  // One sub-index past each object does not exist.
  for (std::uint16_t index : objects) {
    auto& section = eds_file.sections[eds::section_name(index)];
    const bool var = !section.count("OBJECTTYPE") || eds::number(section["OBJECTTYPE"]) == 7;
    const auto past = static_cast<std::uint8_t>(var ? 1 : eds::number(section["SUBNUMBER"]));
    // Program arrays: sub 2.. exists when more programs do (one here).
    EXPECT_EQ(abort_of([&] { m.upload(node, index, past); }, "past the last sub-index"),
              static_cast<std::uint32_t>(co::Abort::kNoSubIndex))
        << std::hex << index << ":" << int{past};
  }
  return checked;
}

TEST(E2eEds, BootloaderAndExampleApplicationMatchTheirEds) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  tw::Board& board = rig.add_board(node(kNode));
  ASSERT_TRUE(rig.wait_boot_up(kNode, 0, 500'000).has_value()) << board.console();

  // 1. The bootloader fresh from the factory: the state its EDS describes.
  const int entries =
      check_node_against_eds(rig, kNode, "rtcanboot-bootloader.eds", State::kReference);
  EXPECT_EQ(entries, 54);  // 0x1000 .. 0x5F00:9, 0x5F01:0..3, 0x5F02:0..7, 0x5F03:0..2,
                           // 0x5F04:0..6, 0x5F05:0..3
  std::printf("[ figures  ] %d EDS entries read from the bootloader\n", entries);

  // 2. The example application as `rtcanboot flash` leaves it (image version 0, confirmed).
  Micros t = rig.now();
  const auto r = rig.update(kNode, example_app());
  ASSERT_TRUE(rig.application_runs(kNode, t));
  check_node_against_eds(rig, kNode, "rtcanboot-example-app.eds", State::kReference);
  // Its per-device software ID is the installed image's.
  EXPECT_EQ(rig.master().upload_u32(kNode, co::od::kSoftwareId, 1), r.software_id);

  // 3. Back in the bootloader with the application installed: runtime values differ from the
  // factory state, the rest is as the EDS says.
  t = rig.now();
  rig.master().download_u8(kNode, co::od::kProgramControl, 1,
                           static_cast<std::uint8_t>(co::ProgramCommand::kStop));
  ASSERT_TRUE(rig.wait_boot_up(kNode, t, 500'000).has_value()) << board.console();
  check_node_against_eds(rig, kNode, "rtcanboot-bootloader.eds", State::kOther);
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, 5),
            static_cast<std::uint8_t>(co::BootReason::kEntryRequest));
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

}  // namespace
}  // namespace rtcanboot::e2e
