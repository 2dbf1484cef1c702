// The readings of unconfirmed chip facts (board.hpp Readings) by name, for the twin's
// --reading option and for tests that loop over them.
#include <string_view>

#include "twin/board.hpp"

namespace rtcanboot::twin {

namespace {

template <typename Enum>
struct Value {
  std::string_view name;
  Enum value;
};

struct Switch {
  std::string_view name;
  std::vector<std::string_view> values;
  // Sets the reading to values[index].
  void (*set)(Readings& readings, std::size_t index);
};

template <typename Enum, std::size_t N>
std::vector<std::string_view> names_of(const Value<Enum> (&values)[N]) {
  std::vector<std::string_view> names;
  for (const auto& value : values) names.push_back(value.name);
  return names;
}

constexpr Value<LutAfterReset> kLut[] = {
    {"zero", LutAfterReset::kZero},
    {"seeded", LutAfterReset::kSeeded},
    {"kept_over_warm_reset", LutAfterReset::kKeptOverWarmReset}};
constexpr Value<Pll3AfterBoot> kPll3[] = {{"powered_down", Pll3AfterBoot::kPoweredDown},
                                          {"bypassed", Pll3AfterBoot::kBypassed},
                                          {"running", Pll3AfterBoot::kRunning}};
constexpr Value<SrcGprOverReset> kSrcGpr[] = {
    {"cleared_by_every_reset", SrcGprOverReset::kClearedByEveryReset},
    {"cleared_by_sysresetreq", SrcGprOverReset::kClearedBySysResetReq},
    {"kept_over_warm_reset", SrcGprOverReset::kKeptOverWarmReset}};
constexpr Value<SnvsLpgprOverReset> kSnvs[] = {
    {"cleared_by_warm_reset", SnvsLpgprOverReset::kClearedByWarmReset},
    {"kept_over_warm_reset", SnvsLpgprOverReset::kKeptOverWarmReset}};
constexpr Value<RomWatchdogs> kWatchdogs[] = {
    {"wdog1_and_rtwdog_running", RomWatchdogs::kWdog1AndRtwdogRunning},
    {"rtwdog_running", RomWatchdogs::kRtwdogRunning},
    {"none", RomWatchdogs::kNone}};
constexpr Value<IvtEntrySp> kIvtSp[] = {
    {"rom_stack_kept", IvtEntrySp::kRomStackKept},
    {"loaded_from_vector_table", IvtEntrySp::kLoadedFromVectorTable}};
constexpr Value<SerialClkCode> kSerialClk[] = {{"sdk_enum", SerialClkCode::kSdkEnum},
                                               {"rt106x_table", SerialClkCode::kRt106xTable}};

constexpr Value<LockupReading> kLockup[] = {{"resets", LockupReading::kResets},
                                            {"halts", LockupReading::kHalts}};

const std::vector<Switch>& switches() {
  static const std::vector<Switch> kSwitches = {
      {"lut_after_reset", names_of(kLut),
       [](Readings& r, std::size_t i) { r.lut_after_reset = kLut[i].value; }},
      {"pll3_after_boot", names_of(kPll3),
       [](Readings& r, std::size_t i) { r.pll3_after_boot = kPll3[i].value; }},
      {"src_gpr_over_reset", names_of(kSrcGpr),
       [](Readings& r, std::size_t i) { r.src_gpr_over_reset = kSrcGpr[i].value; }},
      {"snvs_lpgpr_over_reset", names_of(kSnvs),
       [](Readings& r, std::size_t i) { r.snvs_lpgpr_over_reset = kSnvs[i].value; }},
      {"rom_watchdogs", names_of(kWatchdogs),
       [](Readings& r, std::size_t i) { r.rom_watchdogs = kWatchdogs[i].value; }},
      {"ivt_entry_sp", names_of(kIvtSp),
       [](Readings& r, std::size_t i) { r.ivt_entry_sp = kIvtSp[i].value; }},
      {"serial_clk_code", names_of(kSerialClk),
       [](Readings& r, std::size_t i) { r.serial_clk_code = kSerialClk[i].value; }},
      {"lockup", names_of(kLockup),
       [](Readings& r, std::size_t i) { r.lockup = kLockup[i].value; }},
  };
  return kSwitches;
}

std::string joined(const std::vector<std::string_view>& values) {
  std::string text;
  for (const auto& value : values) {
    if (!text.empty()) text += '|';
    text += value;
  }
  return text;
}

}  // namespace

Readings fact_sheet_readings() {
  Readings r;
  r.lut_after_reset = LutAfterReset::kZero;
  r.pll3_after_boot = Pll3AfterBoot::kRunning;
  r.src_gpr_over_reset = SrcGprOverReset::kKeptOverWarmReset;
  r.snvs_lpgpr_over_reset = SnvsLpgprOverReset::kKeptOverWarmReset;
  r.rom_watchdogs = RomWatchdogs::kNone;
  r.ivt_entry_sp = IvtEntrySp::kLoadedFromVectorTable;
  r.serial_clk_code = SerialClkCode::kRt106xTable;
  r.lockup = LockupReading::kResets;
  return r;
}

bool parse_reading(const std::string& spec, Readings& readings, std::string* error) {
  if (spec == "fact_sheet") {
    readings = fact_sheet_readings();
    return true;
  }
  if (spec == "hostile") {
    readings = Readings{};
    return true;
  }
  const auto equals = spec.find('=');
  const std::string_view name = std::string_view(spec).substr(0, equals);
  for (const Switch& entry : switches()) {
    if (entry.name != name) continue;
    const std::string_view value = equals == std::string::npos
                                       ? std::string_view()
                                       : std::string_view(spec).substr(equals + 1);
    for (std::size_t i = 0; i < entry.values.size(); ++i) {
      if (entry.values[i] == value) {
        entry.set(readings, i);
        return true;
      }
    }
    if (error != nullptr) {
      *error = std::string("reading ") + std::string(name) + " takes one of " +
               joined(entry.values) + ", not '" + std::string(value) + "'";
    }
    return false;
  }
  if (error != nullptr) {
    std::string known;
    for (const Switch& entry : switches())
      known += (known.empty() ? "" : ", ") + std::string(entry.name);
    *error = "unknown reading '" + std::string(name) + "' (known: " + known + ")";
  }
  return false;
}

std::vector<std::string> reading_names() {
  std::vector<std::string> names = {
      "fact_sheet (every reading as the fact sheet expects it; later --reading options change it)",
      "hostile (every reading at its default: the most hostile one; lockup as NXP's sources say)"};
  for (const Switch& entry : switches()) {
    names.push_back(std::string(entry.name) + "=" + joined(entry.values));
  }
  return names;
}

}  // namespace rtcanboot::twin
