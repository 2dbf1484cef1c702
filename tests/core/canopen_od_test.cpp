// Object dictionary of CanopenNode through expedited SDO: every object, routing of the CiA 302
// program objects, access rights, sizes and the table the EDS test relies on.
#include <cstring>

#include "canopen_node_fixture.hpp"
#include "rtcanboot/object_dictionary.hpp"

namespace rtcanboot::test {
namespace {

using canopen::Abort;

class ObjectDictionaryTest : public CanopenNodeTest {};

TEST_F(ObjectDictionaryTest, DeviceTypeAndErrorRegister) {
  EXPECT_EQ(upload_expedited(0x1000, 0), (Bytes8{0x43, 0x00, 0x10, 0x00, 0, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x1001, 0), (Bytes8{0x4F, 0x01, 0x10, 0x00, 0, 0, 0, 0}));
  expect_silence();
}

TEST_F(ObjectDictionaryTest, HeartbeatTimeReadsConfiguredValue) {
  EXPECT_EQ(upload_expedited(0x1017, 0), (Bytes8{0x4B, 0x17, 0x10, 0x00, 100, 0, 0, 0}));
}

TEST_F(ObjectDictionaryTest, HeartbeatTimeWriteSizedAndUnsized) {
  sdo({0x2B, 0x17, 0x10, 0x00, 0xF4, 0x01, 0xAA, 0xBB});
  expect_response({0x60, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  EXPECT_EQ(node->heartbeat_ms(), 500);
  EXPECT_EQ(upload_expedited(0x1017, 0), (Bytes8{0x4B, 0x17, 0x10, 0x00, 0xF4, 0x01, 0, 0}));
  // e = 1, s = 0: unspecified size; the object takes its two bytes.
  sdo({0x22, 0x17, 0x10, 0x00, 0x2C, 0x01, 0x00, 0x00});
  expect_response({0x60, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  EXPECT_EQ(node->heartbeat_ms(), 300);
}

TEST_F(ObjectDictionaryTest, SizedWritesOfWrongLengthAreRefused) {
  sdo({0x23, 0x17, 0x10, 0x00, 1, 0, 0, 0});  // 4 bytes into UNSIGNED16
  expect_abort(0x1017, 0, Abort::kLengthTooHigh);
  sdo({0x2F, 0x17, 0x10, 0x00, 1, 0, 0, 0});  // 1 byte
  expect_abort(0x1017, 0, Abort::kLengthTooLow);
  sdo({0x21, 0x17, 0x10, 0x00, 3, 0, 0, 0});  // segmented, 3 bytes announced
  expect_abort(0x1017, 0, Abort::kLengthTooHigh);
  sdo({0xC6, 0x17, 0x10, 0x00, 1, 0, 0, 0});  // block, 1 byte announced
  expect_abort(0x1017, 0, Abort::kLengthTooLow);
  sdo({0x27, 0x51, 0x1F, 0x01, 3, 0, 0, 0});  // 2 bytes into UNSIGNED8
  expect_abort(0x1F51, 1, Abort::kLengthTooHigh);
  EXPECT_TRUE(program.control_calls.empty());
  EXPECT_EQ(node->heartbeat_ms(), 100);
  expect_recovers();
}

TEST_F(ObjectDictionaryTest, StringsAreConstAndReadOnlyObjectsRefuseWrites) {
  sdo({0x23, 0x00, 0x10, 0x00, 1, 0, 0, 0});
  expect_abort(0x1000, 0, Abort::kReadOnly);
  sdo({0x2F, 0x01, 0x10, 0x00, 1, 0, 0, 0});
  expect_abort(0x1001, 0, Abort::kReadOnly);
  sdo({0x21, 0x08, 0x10, 0x00, 3, 0, 0, 0});
  expect_abort(0x1008, 0, Abort::kReadOnly);
  sdo({0x23, 0x0A, 0x10, 0x00, 'a', 'b', 'c', 'd'});
  expect_abort(0x100A, 0, Abort::kReadOnly);
  sdo({0x23, 0x18, 0x10, 0x04, 1, 2, 3, 4});
  expect_abort(0x1018, 4, Abort::kReadOnly);
  sdo({0x2F, 0x18, 0x10, 0x00, 9, 0, 0, 0});
  expect_abort(0x1018, 0, Abort::kReadOnly);
  sdo({0x2F, 0x50, 0x1F, 0x00, 2, 0, 0, 0});
  expect_abort(0x1F50, 0, Abort::kReadOnly);
  sdo({0x23, 0x56, 0x1F, 0x01, 1, 2, 3, 4});
  expect_abort(0x1F56, 1, Abort::kReadOnly);
  sdo({0x23, 0x57, 0x1F, 0x01, 1, 2, 3, 4});
  expect_abort(0x1F57, 1, Abort::kReadOnly);
  sdo({0xC2, 0x57, 0x1F, 0x01, 4, 0, 0, 0});  // block download too
  expect_abort(0x1F57, 1, Abort::kReadOnly);
  expect_recovers();
}

TEST_F(ObjectDictionaryTest, MissingObjectsAndSubIndices) {
  EXPECT_EQ(upload_expedited(0x2000, 0), (Bytes8{0x80, 0x00, 0x20, 0x00, 0x00, 0x00, 0x02, 0x06}));
  sdo({0x40, 0x18, 0x10, 0x05, 0, 0, 0, 0});
  expect_abort(0x1018, 5, Abort::kNoSubIndex);
  sdo({0x40, 0x00, 0x10, 0x01, 0, 0, 0, 0});
  expect_abort(0x1000, 1, Abort::kNoSubIndex);
  sdo({0x40, 0x51, 0x1F, 0x02, 0, 0, 0, 0});  // one program only
  expect_abort(0x1F51, 2, Abort::kNoSubIndex);
  sdo({0x2F, 0x51, 0x1F, 0x02, 1, 0, 0, 0});
  expect_abort(0x1F51, 2, Abort::kNoSubIndex);
  sdo({0x21, 0x50, 0x1F, 0x02, 10, 0, 0, 0});
  expect_abort(0x1F50, 2, Abort::kNoSubIndex);
  sdo({0x40, 0x00, 0x5F, 0x00, 0, 0, 0, 0});  // 0x5F00 only with info
  expect_abort(0x5F00, 0, Abort::kNoObject);
  sdo({0x2B, 0x02, 0x10, 0x00, 0, 0, 0, 0});
  expect_abort(0x1002, 0, Abort::kNoObject);
  sdo({0xA4, 0x34, 0x12, 0x00, 10, 0, 0, 0});  // block upload
  expect_abort(0x1234, 0, Abort::kNoObject);
  sdo({0xC6, 0x34, 0x12, 0x07, 10, 0, 0, 0});  // block download
  expect_abort(0x1234, 7, Abort::kNoObject);
  expect_recovers();
}

TEST_F(ObjectDictionaryTest, IdentityObject) {
  EXPECT_EQ(upload_expedited(0x1018, 0), (Bytes8{0x4F, 0x18, 0x10, 0x00, 4, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x1018, 1), (Bytes8{0x43, 0x18, 0x10, 0x01, 0x1B, 0x0A, 0x00, 0x00}));
  EXPECT_EQ(upload_expedited(0x1018, 2), (Bytes8{0x43, 0x18, 0x10, 0x02, 0x01, 0x40, 0x06, 0x01}));
  EXPECT_EQ(upload_expedited(0x1018, 3), (Bytes8{0x43, 0x18, 0x10, 0x03, 0x02, 0x00, 0x01, 0x00}));
  EXPECT_EQ(upload_expedited(0x1018, 4), (Bytes8{0x43, 0x18, 0x10, 0x04, 0xEF, 0xBE, 0xAD, 0xDE}));
}

TEST_F(ObjectDictionaryTest, ShortStringIsExpedited) {
  EXPECT_EQ(upload_expedited(0x100A, 0), (Bytes8{0x47, 0x0A, 0x10, 0x00, '1', '.', '2', 0}));
}

TEST_F(ObjectDictionaryTest, LongStringIsSegmented) {
  EXPECT_EQ(upload_segmented(0x1008, 0), text("rtcanboot test device"));
}

TEST_F(ObjectDictionaryTest, EmptyAndNullStrings) {
  config.software_version = "";
  config.device_name = nullptr;
  restart();
  sdo({0x40, 0x0A, 0x10, 0x00, 0, 0, 0, 0});
  expect_response({0x41, 0x0A, 0x10, 0x00, 0, 0, 0, 0});
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x0F, 0, 0, 0, 0, 0, 0, 0});  // no data bytes, last
  EXPECT_TRUE(upload_segmented(0x1008, 0).empty());
  EXPECT_TRUE(upload_block(0x1008, 0, 5, true).empty());
}

TEST_F(ObjectDictionaryTest, ProgramDataIsWriteOnly) {
  sdo({0x40, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kWriteOnly);
  sdo({0xA4, 0x50, 0x1F, 0x01, 10, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kWriteOnly);
  EXPECT_EQ(upload_expedited(0x1F50, 0), (Bytes8{0x4F, 0x50, 0x1F, 0x00, 1, 0, 0, 0}));
  expect_recovers();
}

TEST_F(ObjectDictionaryTest, ProgramControlRoutesToProgram) {
  program.state = 3;
  EXPECT_EQ(upload_expedited(0x1F51, 0), (Bytes8{0x4F, 0x51, 0x1F, 0x00, 1, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x1F51, 1), (Bytes8{0x4F, 0x51, 0x1F, 0x01, 3, 0, 0, 0}));
  sdo({0x2F, 0x51, 0x1F, 0x01, 3, 0, 0, 0});
  expect_response({0x60, 0x51, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x22, 0x51, 0x1F, 0x01, 1, 0xFF, 0xFF, 0xFF});  // unsized expedited: one byte used
  expect_response({0x60, 0x51, 0x1F, 0x01, 0, 0, 0, 0});
  ASSERT_EQ(program.control_calls.size(), 2U);
  EXPECT_EQ(program.control_calls[0].sub, 1);
  EXPECT_EQ(program.control_calls[0].value, 3);
  EXPECT_EQ(program.control_calls[1].value, 1);
}

TEST_F(ObjectDictionaryTest, ProgramControlAbortsComeFromTheProgram) {
  program.control_result = Abort::kValueRange;
  sdo({0x2F, 0x51, 0x1F, 0x01, 9, 0, 0, 0});
  expect_abort(0x1F51, 1, Abort::kValueRange);
  program.control_result = Abort::kDeviceState;
  sdo({0x2F, 0x51, 0x1F, 0x01, 3, 0, 0, 0});
  expect_abort(0x1F51, 1, Abort::kDeviceState);
  expect_recovers();
}

TEST_F(ObjectDictionaryTest, ProgramControlBySegmentedAndBlockDownload) {
  download_segmented(0x1F51, 1, {2});
  download_block(0x1F51, 1, {0}, true);
  ASSERT_EQ(program.control_calls.size(), 2U);
  EXPECT_EQ(program.control_calls[0].value, 2);
  EXPECT_EQ(program.control_calls[1].value, 0);
}

TEST_F(ObjectDictionaryTest, SoftwareIdAndFlashStatus) {
  program.id = 0xCAFE'F00D;
  program.status = canopen::flash_status_word(false, canopen::FlashStatus::kDataFormatError,
                                              canopen::FlashDetail::kPayloadCrc);
  EXPECT_EQ(upload_expedited(0x1F56, 0), (Bytes8{0x4F, 0x56, 0x1F, 0x00, 1, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x1F56, 1), (Bytes8{0x43, 0x56, 0x1F, 0x01, 0x0D, 0xF0, 0xFE, 0xCA}));
  EXPECT_EQ(upload_expedited(0x1F57, 0), (Bytes8{0x4F, 0x57, 0x1F, 0x00, 1, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x1F57, 1), (Bytes8{0x43, 0x57, 0x1F, 0x01, 0x06, 0x00, 0x07, 0x00}));
}

TEST_F(ObjectDictionaryTest, SecondProgramRoutesWithItsSubIndex) {
  program.count = 2;
  restart();
  EXPECT_EQ(upload_expedited(0x1F50, 0), (Bytes8{0x4F, 0x50, 0x1F, 0x00, 2, 0, 0, 0}));
  program.subs_asked.clear();
  upload_expedited(0x1F56, 2);
  upload_expedited(0x1F57, 2);
  upload_expedited(0x1F51, 2);
  sdo({0x2F, 0x51, 0x1F, 0x02, 0, 0, 0, 0});
  expect_response({0x60, 0x51, 0x1F, 0x02, 0, 0, 0, 0});
  sdo({0x23, 0x50, 0x1F, 0x02, 1, 2, 3, 4});
  expect_response({0x60, 0x50, 0x1F, 0x02, 0, 0, 0, 0});
  EXPECT_EQ(program.subs_asked, (std::vector<std::uint8_t>{2, 2, 2, 2}));
  ASSERT_EQ(program.control_calls.size(), 1U);
  EXPECT_EQ(program.control_calls[0].sub, 2);
  sdo({0x40, 0x56, 0x1F, 0x03, 0, 0, 0, 0});
  expect_abort(0x1F56, 3, Abort::kNoSubIndex);
}

TEST_F(ObjectDictionaryTest, RtcanbootInfo) {
  info.running_program = canopen::kRunningBootloader;
  info.bootloader_version = 0x0001'0203;
  info.app_region_start = 0x7002'0000;
  info.app_region_size = 0x003D'0000;
  info.boot_reason = canopen::BootReason::kEntryRequest;
  info.image_version = 0x0A0B'0C0D;
  info.trial_state = canopen::TrialState::kOnTrial;
  info.boot_attempts = 2;
  info.security_counter = 0x0102'0304;
  config.info = &info;
  restart();
  EXPECT_EQ(upload_expedited(0x5F00, 0), (Bytes8{0x4F, 0x00, 0x5F, 0x00, 9, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x5F00, 1), (Bytes8{0x4F, 0x00, 0x5F, 0x01, 1, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x5F00, 2), (Bytes8{0x43, 0x00, 0x5F, 0x02, 0x03, 0x02, 0x01, 0x00}));
  EXPECT_EQ(upload_expedited(0x5F00, 3), (Bytes8{0x43, 0x00, 0x5F, 0x03, 0x00, 0x00, 0x02, 0x70}));
  EXPECT_EQ(upload_expedited(0x5F00, 4), (Bytes8{0x43, 0x00, 0x5F, 0x04, 0x00, 0x00, 0x3D, 0x00}));
  EXPECT_EQ(upload_expedited(0x5F00, 5), (Bytes8{0x4F, 0x00, 0x5F, 0x05, 2, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x5F00, 6), (Bytes8{0x43, 0x00, 0x5F, 0x06, 0x0D, 0x0C, 0x0B, 0x0A}));
  EXPECT_EQ(upload_expedited(0x5F00, 7), (Bytes8{0x4F, 0x00, 0x5F, 0x07, 1, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x5F00, 8), (Bytes8{0x4F, 0x00, 0x5F, 0x08, 2, 0, 0, 0}));
  EXPECT_EQ(upload_expedited(0x5F00, 9), (Bytes8{0x43, 0x00, 0x5F, 0x09, 0x04, 0x03, 0x02, 0x01}));
  sdo({0x40, 0x00, 0x5F, 0x0A, 0, 0, 0, 0});
  expect_abort(0x5F00, 10, Abort::kNoSubIndex);
  sdo({0x2F, 0x00, 0x5F, 0x05, 1, 0, 0, 0});
  expect_abort(0x5F00, 5, Abort::kReadOnly);
  // Live: read when asked.
  info.running_program = canopen::kRunningApplication;
  EXPECT_EQ(upload_expedited(0x5F00, 1), (Bytes8{0x4F, 0x00, 0x5F, 0x01, 2, 0, 0, 0}));
}

// The table is what the host tool's EDS test compares against: check its shape.
TEST(ObjectDictionaryTable, EntriesAreUniqueSortedAndConsistent) {
  const canopen::OdTable table = canopen::object_dictionary();
  ASSERT_GT(table.count, 0U);
  for (std::size_t i = 0; i < table.count; ++i) {
    const canopen::OdEntry& entry = table.entries[i];
    EXPECT_NE(entry.name, nullptr);
    EXPECT_NE(entry.object_name, nullptr);
    if (i > 0) {
      const canopen::OdEntry& previous = table.entries[i - 1];
      const bool ascending = previous.index < entry.index ||
                             (previous.index == entry.index && previous.sub < entry.sub);
      EXPECT_TRUE(ascending) << std::hex << entry.index << " sub " << int{entry.sub};
      if (previous.index == entry.index) {
        EXPECT_EQ(previous.object_code, entry.object_code);
        EXPECT_STREQ(previous.object_name, entry.object_name);
      }
    }
    if (entry.object_code != canopen::ObjectCode::kVar && entry.sub == 0) {
      EXPECT_EQ(entry.type, canopen::DataType::kUnsigned8);
      EXPECT_EQ(entry.access, canopen::Access::kReadOnly);
    }
  }
}

TEST(ObjectDictionaryTable, ContainsTheObjectsOfTheBrief) {
  struct Expected {
    std::uint16_t index;
    std::uint8_t sub;
    canopen::DataType type;
    canopen::Access access;
  };
  using canopen::Access;
  using canopen::DataType;
  const Expected expected[] = {
      {0x1000, 0, DataType::kUnsigned32, Access::kReadOnly},
      {0x1001, 0, DataType::kUnsigned8, Access::kReadOnly},
      {0x1008, 0, DataType::kVisibleString, Access::kConst},
      {0x100A, 0, DataType::kVisibleString, Access::kConst},
      {0x1017, 0, DataType::kUnsigned16, Access::kReadWrite},
      {0x1018, 4, DataType::kUnsigned32, Access::kReadOnly},
      {0x1F50, 1, DataType::kDomain, Access::kWriteOnly},
      {0x1F51, 1, DataType::kUnsigned8, Access::kReadWrite},
      {0x1F56, 1, DataType::kUnsigned32, Access::kReadOnly},
      {0x1F57, 1, DataType::kUnsigned32, Access::kReadOnly},
      {0x5F00, 6, DataType::kUnsigned32, Access::kReadOnly},
  };
  for (const Expected& want : expected) {
    bool found = false;
    for (const canopen::OdEntry& entry : canopen::object_dictionary()) {
      if (entry.index != want.index || entry.sub != want.sub) continue;
      found = true;
      EXPECT_EQ(entry.type, want.type) << std::hex << want.index;
      EXPECT_EQ(entry.access, want.access) << std::hex << want.index;
    }
    EXPECT_TRUE(found) << std::hex << want.index << " sub " << int{want.sub};
  }
  EXPECT_STREQ(canopen::access_name(Access::kConst), "const");
  EXPECT_EQ(canopen::data_type_size(DataType::kUnsigned16), 2U);
  static_assert(canopen::object_dictionary().count > 20, "usable at compile time");
}

}  // namespace
}  // namespace rtcanboot::test
