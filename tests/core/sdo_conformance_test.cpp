// SDO server conformance table (issue 16, item 2): every server state x every client command
// specifier and malformed frame, with the exact response or silence CiA 301 asks for. The table
// lives in docs/canopen.md ("SDO server conformance table"); this test reads it from there, so the
// documentation and the behaviour cannot drift apart. On a mismatch the test prints the table as
// the server actually behaves.
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "canopen_node_fixture.hpp"

namespace rtcanboot::test {
namespace {

using canopen::Abort;

constexpr char kDoc[] = RTCANBOOT_SOURCE_DIR "/docs/canopen.md";
constexpr char kTableMarker[] = "<!-- sdo-conformance-table -->";

// 0x1008 of the fixture is "rtcanboot test device" (21 bytes): three segments.
constexpr std::uint8_t kName[] = "rtcanboot test device";

class SdoConformanceTest : public CanopenNodeTest {
 protected:
  void SetUp() override { base_config_ = config; }
  NodeConfig base_config_;

  struct Input {
    std::string name;
    std::uint8_t dlc;
    Bytes8 bytes;
    Bytes8 normal;  // the answer of this request where it is valid ("ok")
  };
  struct State {
    std::string name;
    std::function<void()> setup;
    std::uint16_t index = 0;  // object of the running transfer (0 = none)
    std::uint8_t sub = 0;
  };

  void fresh() {
    config = base_config_;
    config.heartbeat_ms = 0;
    program.sink = FakeDownloadSink{};
    program.control_calls.clear();
    now = 1'000'000;
    restart();
  }

  void block_download_of(std::uint32_t size, std::uint32_t capacity) {
    program.sink.capacity = capacity;
    sdo({0xC6, 0x50, 0x1F, 0x01, static_cast<std::uint8_t>(size), 0, 0, 0});
  }

  std::vector<State> states() {
    std::vector<State> list;
    list.push_back({"idle", [] {}});
    list.push_back({"exp-dl held",
                    [this] {
                      program.sink.capacity = 2;
                      program.sink.buffered = 2;  // full: the expedited data waits for room
                      sdo({0x2B, 0x50, 0x1F, 0x01, 0xAB, 0xCD, 0, 0});
                    },
                    0x1F50, 1});
    list.push_back({"seg-dl t0",
                    [this] {
                      sdo({0x21, 0x50, 0x1F, 0x01, 100, 0, 0, 0});
                    },
                    0x1F50, 1});
    list.push_back({"seg-dl t1",
                    [this] {
                      sdo({0x21, 0x50, 0x1F, 0x01, 100, 0, 0, 0});
                      sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
                    },
                    0x1F50, 1});
    list.push_back({"seg-dl held",
                    [this] {
                      program.sink.capacity = 64 + 10;  // the pacing reserve and 10 bytes
                      sdo({0x21, 0x50, 0x1F, 0x01, 100, 0, 0, 0});
                      sdo({0x00, 1, 2, 3, 4, 5, 6, 7});  // 3 bytes beside the reserve: held
                    },
                    0x1F50, 1});
    list.push_back({"seg-ul t0", [this] { sdo({0x40, 0x08, 0x10, 0x00, 0, 0, 0, 0}); }, 0x1008, 0});
    list.push_back({"seg-ul t1",
                    [this] {
                      sdo({0x40, 0x08, 0x10, 0x00, 0, 0, 0, 0});
                      sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
                    },
                    0x1008, 0});
    list.push_back({"blk-dl sub start", [this] { block_download_of(100, 64 + 4 * 7); }, 0x1F50, 1});
    list.push_back({"blk-dl sub mid",
                    [this] {
                      block_download_of(100, 64 + 4 * 7);
                      sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
                    },
                    0x1F50, 1});
    list.push_back({"blk-dl ack held",
                    [this] {
                      block_download_of(100, 64 + 4 * 7);
                      for (std::uint8_t s = 1; s <= 4; ++s) sdo({s, 1, 2, 3, 4, 5, 6, 7});
                    },
                    0x1F50, 1});
    list.push_back({"blk-dl end",
                    [this] {
                      block_download_of(7, 1 << 20);
                      sdo({0x81, 1, 2, 3, 4, 5, 6, 7});
                    },
                    0x1F50, 1});
    list.push_back({"blk-ul start",
                    [this] {
                      sdo({0xA4, 0x08, 0x10, 0x00, 127, 0, 0, 0});
                    },
                    0x1008, 0});
    list.push_back({"blk-ul sub",
                    [this] {
                      sdo({0xA4, 0x08, 0x10, 0x00, 127, 0, 0, 0});
                      sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
                    },
                    0x1008, 0});
    list.push_back({"blk-ul end",
                    [this] {
                      sdo({0xA4, 0x08, 0x10, 0x00, 127, 0, 0, 0});
                      sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
                      sdo({0xA2, 3, 127, 0, 0, 0, 0, 0});
                    },
                    0x1008, 0});
    list.push_back({"after abort", [this] {
                      program.sink.fail_after = 0;  // the sink refuses segment 1: abort, drain
                      block_download_of(100, 64 + 4 * 7);
                      sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
                    }});
    list.push_back({"after timeout", [this] {
                      sdo({0x21, 0x50, 0x1F, 0x01, 100, 0, 0, 0});
                      advance(config.sdo_timeout);
                    }});
    list.push_back({"after sub-block timeout", [this] {
                      block_download_of(100, 64 + 4 * 7);
                      sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
                      advance(config.sdo_timeout);
                    }});
    return list;
  }

  static std::vector<Input> inputs() {
    const std::uint16_t crc7 =
        crc16_xmodem(0, std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7}.data(), 7);
    const auto lo7 = static_cast<std::uint8_t>(crc7);
    const auto hi7 = static_cast<std::uint8_t>(crc7 >> 8);
    return {
        {"dl seg t0 `00`", 8, {0x00, 1, 2, 3, 4, 5, 6, 7}, {0x20, 0, 0, 0, 0, 0, 0, 0}},
        {"dl seg t1 `10`", 8, {0x10, 1, 2, 3, 4, 5, 6, 7}, {0x30, 0, 0, 0, 0, 0, 0, 0}},
        {"dl seg last `0B`", 8, {0x0B, 1, 2, 0, 0, 0, 0, 0}, {0x20, 0, 0, 0, 0, 0, 0, 0}},
        {"init dl exp `2B` 0x1017",
         8,
         {0x2B, 0x17, 0x10, 0x00, 0xE8, 0x03, 0, 0},
         {0x60, 0x17, 0x10, 0x00, 0, 0, 0, 0}},
        {"init dl seg `21` 0x1F50",
         8,
         {0x21, 0x50, 0x1F, 0x01, 100, 0, 0, 0},
         {0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0}},
        {"init ul `40` 0x1018:1",
         8,
         {0x40, 0x18, 0x10, 0x01, 0, 0, 0, 0},
         {0x43, 0x18, 0x10, 0x01, 0x1B, 0x0A, 0, 0}},
        {"ul seg t0 `60`", 8, {0x60, 0, 0, 0, 0, 0, 0, 0}, {}},
        {"ul seg t1 `70`", 8, {0x70, 0, 0, 0, 0, 0, 0, 0}, {}},
        {"abort `80`", 8, {0x80, 0, 0, 0, 0, 0, 0, 0x08}, {}},
        {"blk ul init `A4` 0x1008",
         8,
         {0xA4, 0x08, 0x10, 0x00, 127, 0, 0, 0},
         {0xC6, 0x08, 0x10, 0x00, 21, 0, 0, 0}},
        {"blk ul start `A3`", 8, {0xA3, 0, 0, 0, 0, 0, 0, 0}, {}},
        {"blk ul ack `A2 03 7F`", 8, {0xA2, 3, 127, 0, 0, 0, 0, 0}, {}},
        {"blk ul end `A1`", 8, {0xA1, 0, 0, 0, 0, 0, 0, 0}, {}},
        {"blk dl init `C6` 0x1F50",
         8,
         {0xC6, 0x50, 0x1F, 0x01, 100, 0, 0, 0},
         {0xA4, 0x50, 0x1F, 0x01, 127, 0, 0, 0}},
        {"blk dl end `C1` CRC ok", 8, {0xC1, lo7, hi7, 0, 0, 0, 0, 0}, {0xA1, 0, 0, 0, 0, 0, 0, 0}},
        {"ccs 7 `E0`", 8, {0xE0, 0x00, 0x10, 0x00, 0, 0, 0, 0}, {}},
        {"DLC 7 `40`", 7, {0x40, 0x18, 0x10, 0x01, 0, 0, 0, 0}, {}},
        {"reserved bits `5F`",
         8,
         {0x5F, 0x18, 0x10, 0x01, 0, 0, 0, 0},
         {0x43, 0x18, 0x10, 0x01, 0x1B, 0x0A, 0, 0}},
        {"seqno 2 `02`", 8, {0x02, 1, 2, 3, 4, 5, 6, 7}, {0x20, 0, 0, 0, 0, 0, 0, 0}},
        {"seqno 4, c `84`", 8, {0x84, 1, 2, 3, 4, 5, 6, 7}, {}},
        {"seqno 127 `7F`", 8, {0x7F, 1, 2, 3, 4, 5, 6, 7}, {}},
        {"seqno 0, c `80` (= abort)", 8, {0x80, 1, 2, 3, 4, 5, 6, 7}, {}},
        {"blk dl end CRC wrong",
         8,
         {0xC1, static_cast<std::uint8_t>(lo7 ^ 1), hi7, 0, 0, 0, 0, 0},
         {}},
        {"blk dl end size wrong `CD`", 8, {0xCD, lo7, hi7, 0, 0, 0, 0, 0}, {}},
        {"init dl size wrong `27` 0x1017", 8, {0x27, 0x17, 0x10, 0x00, 0xE8, 0x03, 0, 0}, {}},
    };
  }

  // What the node answered, in the table's vocabulary (docs/canopen.md).
  std::string describe(const State& state, const Input& input) {
    std::vector<CanFrame> got(frames.frames.begin(), frames.frames.end());
    frames.frames.clear();
    if (got.empty()) return "-";
    std::string text;
    for (const CanFrame& frame : got) {
      if (!text.empty()) text += "+";
      text += describe_frame(state, input, frame);
    }
    return text;
  }

  std::string describe_frame(const State& state, const Input& input, const CanFrame& frame) {
    const Bytes8 b = payload(frame);
    if (frame.id != kTx || frame.dlc != 8) return "bad frame";
    if (b == input.normal && input.normal[0] != 0) return "ok";
    if (b[0] == 0x80) {
      static const std::map<std::uint32_t, std::string> names = {
          {0x0503'0000, "toggle"},  {0x0504'0000, "timeout"},   {0x0504'0001, "cs"},
          {0x0504'0002, "blksize"}, {0x0504'0003, "seqno"},     {0x0504'0004, "crc"},
          {0x0607'0012, "len+"},    {0x0607'0013, "len-"},      {0x0800'0000, "general"},
          {0x0800'0020, "store"},   {0x0602'0000, "no object"}, {0x0609'0011, "no sub"}};
      const std::uint32_t code = static_cast<std::uint32_t>(b[4]) | (b[5] << 8) | (b[6] << 16) |
                                 (static_cast<std::uint32_t>(b[7]) << 24);
      const auto name = names.find(code);
      std::string text = "A:" + (name != names.end() ? name->second : std::to_string(code));
      // The multiplexer: the running transfer's object, else the request's (0 for segments).
      // The multiplexer: inside a block download sub-block every frame is a segment of the
      // running transfer; elsewhere an initiate names its own object, other requests belong to
      // the running transfer, and without one a request's own multiplexer (0 for segments).
      const std::uint16_t index = static_cast<std::uint16_t>(b[1] | (b[2] << 8));
      const std::uint8_t command = input.bytes[0];
      const std::uint8_t ccs = command >> 5;
      const bool initiate = ccs == 1 || ccs == 2 || (ccs == 5 && (command & 3) == 0) ||
                            (ccs == 6 && (command & 1) == 0);
      const bool in_sub_block = state.name.rfind("blk-dl sub", 0) == 0;
      std::uint16_t want_index = state.index;
      std::uint8_t want_sub = state.sub;
      if (!in_sub_block && (initiate || state.index == 0)) {
        const bool segment = ccs == 0 || ccs == 3;
        want_index =
            segment ? 0 : static_cast<std::uint16_t>(input.bytes[1] | (input.bytes[2] << 8));
        want_sub = segment ? 0 : input.bytes[3];
      }
      if (index != want_index || b[3] != want_sub) text += "(mux?)";
      return text;
    }
    // Named frames of the states above.
    const Bytes8 seg1{0x00, 'r', 't', 'c', 'a', 'n', 'b', 'o'};
    const Bytes8 seg2{0x10, 'o', 't', ' ', 't', 'e', 's', 't'};
    const Bytes8 blk1{0x01, 'r', 't', 'c', 'a', 'n', 'b', 'o'};
    const Bytes8 blk2{0x02, 'o', 't', ' ', 't', 'e', 's', 't'};
    const Bytes8 blk3{0x83, ' ', 'd', 'e', 'v', 'i', 'c', 'e'};
    const std::uint16_t crc = crc16_xmodem(0, kName, 21);
    const Bytes8 end{0xC1, lo(crc), hi(crc), 0, 0, 0, 0, 0};
    if (b == seg1) return "seg 1";
    if (b == seg2) return "seg 2";
    if (b == blk1) return "blk seg 1";
    if (b == blk2) return "blk seg 2";
    if (b == blk3) return "blk seg 3";
    if (b == end) return "blk ul end";
    if (b[0] == 0xA4 && b[1] == 0x50 && b[2] == 0x1F && b[3] == 0x01 && b[5] == 0) {
      return "ok, blksize " + std::to_string(b[4]);  // the size follows the sink's free space
    }
    if (b[0] == 0xA2 && b[3] == 0) {
      return "ack " + std::to_string(b[1]) + "/" + std::to_string(b[2]);
    }
    std::ostringstream hex;
    hex << std::hex;
    for (const std::uint8_t byte : b) hex << (byte < 16 ? "0" : "") << static_cast<int>(byte);
    return hex.str();
  }
};

std::vector<std::string> split_row(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '|') {
      const auto first = cell.find_first_not_of(' ');
      const auto last = cell.find_last_not_of(' ');
      cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return cells;
}

TEST_F(SdoConformanceTest, EveryStateTimesEveryInputAsDocumented) {
  // The documented table: a header row with the states, then one row per input.
  std::ifstream doc(kDoc);
  ASSERT_TRUE(doc) << kDoc;
  std::string line;
  while (std::getline(doc, line) && line != kTableMarker) {
  }
  ASSERT_EQ(line, kTableMarker) << "docs/canopen.md has no conformance table";
  std::vector<std::vector<std::string>> documented;
  while (std::getline(doc, line) && !line.empty() && line[0] == '|') {
    documented.push_back(split_row(line));
  }
  ASSERT_GE(documented.size(), 3U);
  documented.erase(documented.begin() + 1);  // the |---| row

  // Rows are inputs, columns are states.
  const std::vector<State> all_states = states();
  const std::vector<Input> all_inputs = inputs();
  std::vector<std::vector<std::string>> actual;
  std::vector<std::string> header{"input \\ state"};
  for (const State& state : all_states) header.push_back(state.name);
  actual.push_back(header);
  std::size_t cells = 0;
  for (const Input& input : all_inputs) {
    std::vector<std::string> row{input.name};
    for (const State& state : all_states) {
      fresh();
      state.setup();
      frames.frames.clear();
      CanFrame frame = make_frame(kRx, input.bytes);
      frame.dlc = input.dlc;
      node->on_frame(frame, now);
      row.push_back(describe(state, input));
      ++cells;
    }
    actual.push_back(row);
  }
  std::ostringstream table;
  for (std::size_t r = 0; r < actual.size(); ++r) {
    table << "|";
    for (const std::string& cell : actual[r]) table << " " << cell << " |";
    table << "\n";
    if (r == 0) {
      table << "|";
      for (std::size_t c = 0; c < actual[r].size(); ++c) table << "---|";
      table << "\n";
    }
  }
  EXPECT_EQ(documented, actual) << "the server behaves as this table says:\n" << table.str();
  std::printf("SDO conformance table: %zu states x %zu inputs = %zu cells\n", all_states.size(),
              all_inputs.size(), cells);
}

}  // namespace
}  // namespace rtcanboot::test
