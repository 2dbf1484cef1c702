#include "rtcanboot/host/progress.hpp"

#include <fmt/format.h>

namespace rtcanboot::host {

ProgressDisplay::ProgressDisplay(std::function<void(const std::string&)> write, bool terminal,
                                 std::function<Micros()> now)
    : write_(std::move(write)), terminal_(terminal), now_(std::move(now)) {}

std::string ProgressDisplay::eta_text(std::uint64_t done, std::uint64_t total, double rate) {
  if (rate <= 0 || total < done) return "--:--";
  const auto left = static_cast<std::uint64_t>(static_cast<double>(total - done) / rate + 0.5);
  if (left >= 3600) return fmt::format("{}:{:02}:{:02}", left / 3600, left / 60 % 60, left % 60);
  return fmt::format("{}:{:02}", left / 60, left % 60);
}

void ProgressDisplay::update(std::uint64_t done, std::uint64_t total) {
  const Micros now = now_();
  if (!started_) {
    started_ = true;
    t0_ = now;
  }
  if (finished_) return;
  const bool complete = total != 0 && done >= total;
  const double secs = static_cast<double>(now - t0_) / 1e6;
  const double rate = secs > 0.05 ? static_cast<double>(done) / secs : 0.0;
  const double pct = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 0.0;
  const std::string eta = eta_text(done, total, rate);
  if (terminal_) {
    if (!complete && last_draw_ != 0 && now - last_draw_ < 100'000) return;
    last_draw_ = now == 0 ? 1 : now;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(pct / 100.0 * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, '.');
    write_(fmt::format("\r[{}] {:5.1f}%  {:.1f}/{:.1f} KiB  {:.1f} KiB/s  ETA {} {}", bar, pct,
                       static_cast<double>(done) / 1024.0, static_cast<double>(total) / 1024.0,
                       rate / 1024.0, eta, complete ? "\n" : ""));
    finished_ = complete;
    return;
  }
  const int decile = static_cast<int>(pct / 10.0);
  if (decile == last_decile_ && !complete) return;
  last_decile_ = decile;
  finished_ = complete;
  write_(fmt::format("{:3.0f}%  {} / {} bytes  {:.1f} KiB/s  ETA {}\n", pct, done, total,
                     rate / 1024.0, eta));
}

}  // namespace rtcanboot::host
