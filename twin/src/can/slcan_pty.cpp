#include "twin/can/slcan_pty.hpp"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rtcanboot::twin::can {

namespace {

// Lawicel Sn codes (S0..S8).
constexpr std::array<std::uint32_t, 9> kRates = {10'000,  20'000,  50'000,  100'000,  125'000,
                                                 250'000, 500'000, 800'000, 1'000'000};

bool hex_value(const std::string& s, std::size_t pos, std::size_t len, std::uint32_t& out) {
  if (pos + len > s.size()) return false;
  std::uint32_t v = 0;
  for (std::size_t i = pos; i < pos + len; ++i) {
    const char c = s[i];
    std::uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<std::uint32_t>(c - 'A' + 10);
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<std::uint32_t>(c - 'a' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  out = v;
  return true;
}

std::string frame_line(const CanFrame& f) {
  char buf[40];
  const unsigned dlc = std::min<unsigned>(f.dlc, 8U);
  int n;
  if (f.extended()) {
    n = std::snprintf(buf, sizeof buf, "%c%08X%u", f.remote() ? 'R' : 'T',
                      static_cast<unsigned>(f.id & 0x1FFFFFFFU), dlc);
  } else {
    n = std::snprintf(buf, sizeof buf, "%c%03X%u", f.remote() ? 'r' : 't',
                      static_cast<unsigned>(f.id & 0x7FFU), dlc);
  }
  std::string line(buf, static_cast<std::size_t>(n));
  if (!f.remote()) {
    for (unsigned i = 0; i < dlc; ++i) {
      std::snprintf(buf, sizeof buf, "%02X", f.data[i]);
      line += buf;
    }
  }
  line += '\r';
  return line;
}

}  // namespace

SlcanPty::SlcanPty(Bus& bus, Reporter& reporter)
    : bus_(bus), reporter_(reporter), endpoint_("slcan-pty") {
  endpoint_.on_receive(
      [this](const TimedFrame& f) {
        if (!open_ || out_.size() > (1U << 20)) {
          ++stats_.dropped;
          return;
        }
        out_ += frame_line(f.frame);
        ++stats_.to_serial;
        flush();
      },
      false);
  // Like an adapter whose channel is closed: no acknowledge, no transmission until 'O'.
  endpoint_.set_connected(false);
  bus_.attach(endpoint_);
}

SlcanPty::~SlcanPty() {
  if (master_ >= 0) ::close(master_);
  if (slave_keep_ >= 0) ::close(slave_keep_);
  bus_.detach(endpoint_);
}

bool SlcanPty::start(std::string* error) {
  master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) {
    if (error != nullptr)
      *error = std::string("cannot open a pseudo-terminal: ") + std::strerror(errno);
    return false;
  }
  const char* name = ::ptsname(master_);
  if (name == nullptr) {
    if (error != nullptr) *error = "ptsname failed";
    return false;
  }
  slave_ = name;
  ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
  slave_keep_ = ::open(slave_.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave_keep_ >= 0) {
    termios tio{};
    if (::tcgetattr(slave_keep_, &tio) == 0) {
      ::cfmakeraw(&tio);
      ::tcsetattr(slave_keep_, TCSANOW, &tio);
    }
  }
  reporter_.report(Severity::kInfo, "slcan-pty", "adapter on " + slave_, 0);
  return true;
}

void SlcanPty::reply(const std::string& text) {
  out_ += text;
  flush();
}

void SlcanPty::flush() {
  while (!out_.empty() && master_ >= 0) {
    const ssize_t n = ::write(master_, out_.data(), out_.size());
    if (n > 0) {
      out_.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // EAGAIN (nobody reads) or EIO (no program has the slave open): later
  }
}

void SlcanPty::handle(const std::string& line) {
  if (line.empty()) return;
  const char cmd = line[0];
  auto ok = [this] { reply("\r"); };
  auto bad = [this] {
    ++stats_.errors;
    reply("\a");
  };
  switch (cmd) {
    case 'S': {
      std::uint32_t code = 0;
      if (open_ || line.size() != 2 || !hex_value(line, 1, 1, code) || code >= kRates.size())
        return bad();
      bitrate_ = kRates[code];
      if (bitrate_ != bus_.bitrate()) {
        reporter_.report(Severity::kWarning, "slcan-pty",
                         "the program set " + std::to_string(bitrate_) +
                             " bit/s; the bus runs at " + std::to_string(bus_.bitrate()),
                         0);
      }
      return ok();
    }
    case 'O':
    case 'L':
      if (open_) return bad();
      open_ = true;
      endpoint_.set_listen_only(cmd == 'L');
      endpoint_.set_connected(true);
      return ok();
    case 'C':
      open_ = false;
      endpoint_.set_connected(false);
      endpoint_.clear_tx();
      return ok();
    case 'V':
      return reply("V1010\r");
    case 'N':
      return reply("NTWIN\r");
    case 'F':
      return reply("F00\r");
    case 'Z':
    case 'X':
    case 'W':
    case 'M':
    case 'm':
    case 's':
      return ok();
    case 't':
    case 'T':
    case 'r':
    case 'R': {
      if (!open_) return bad();
      const bool ext = cmd == 'T' || cmd == 'R';
      const bool rtr = cmd == 'r' || cmd == 'R';
      const std::size_t idlen = ext ? 8 : 3;
      std::uint32_t id = 0, dlc = 0;
      if (!hex_value(line, 1, idlen, id) || !hex_value(line, 1 + idlen, 1, dlc) || dlc > 8)
        return bad();
      if ((ext && id > 0x1FFFFFFF) || (!ext && id > 0x7FF)) return bad();
      CanFrame f;
      f.id = id;
      f.dlc = static_cast<std::uint8_t>(dlc);
      if (ext) f.flags |= CanFrame::kExtended;
      if (rtr) f.flags |= CanFrame::kRemote;
      const std::size_t data_at = 2 + idlen;
      if (!rtr) {
        if (line.size() != data_at + 2 * dlc) return bad();
        for (std::uint32_t i = 0; i < dlc; ++i) {
          std::uint32_t b = 0;
          if (!hex_value(line, data_at + 2 * i, 2, b)) return bad();
          f.data[i] = static_cast<std::uint8_t>(b);
        }
      } else if (line.size() != data_at) {
        return bad();
      }
      endpoint_.send(f);
      ++stats_.from_serial;
      return reply(ext ? "Z\r" : "z\r");
    }
    default:
      return bad();
  }
}

void SlcanPty::poll() {
  if (master_ < 0) return;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master_, buf, sizeof buf);
    if (n > 0) {
      in_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EAGAIN, or EIO while no program has the slave open
  }
  for (;;) {
    const std::size_t end = in_.find('\r');
    if (end == std::string::npos) {
      if (in_.size() > 64) in_.clear();  // no slcan line is that long
      break;
    }
    std::string line = in_.substr(0, end);
    in_.erase(0, end + 1);
    line.erase(std::remove(line.begin(), line.end(), '\n'), line.end());
    handle(line);
  }
  flush();
}

Nanos SlcanPty::pace(Nanos target) {
  poll();
  return pacer_.pace(
      bus_.clock().now(), target, [this](WallClockPacer::SteadyClock::duration max_wait) {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(max_wait).count();
        pollfd p{master_, POLLIN, 0};
        timespec ts{static_cast<time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000) * 1000};
        const int r = ::ppoll(&p, 1, &ts, nullptr);
        // POLLHUP while no program has the slave open: nothing to read, just wait the time out.
        if (r > 0 && (p.revents & POLLIN) != 0) return true;
        if (r > 0 && (p.revents & POLLHUP) != 0) ::ppoll(nullptr, 0, &ts, nullptr);
        return false;
      });
}

}  // namespace rtcanboot::twin::can
