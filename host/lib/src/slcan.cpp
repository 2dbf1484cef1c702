// slcan / Lawicel ASCII protocol over a serial device (CANable, USBtin, CANUSB, ...).
//   S0..S8  bit rate 10k 20k 50k 100k 125k 250k 500k 800k 1M      O open   C close
//   tIIILDD..  standard frame    TIIIIIIIILDD..  extended frame   r/R remote frames
//   F  status flags (answer "Fxx")
// The adapter answers commands with '\r' (ok) or '\a' (error), and transmissions with 'z'/'Z'.
#include <fcntl.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <termios.h>

#include <array>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "fd_util.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/transports.hpp"

namespace rtcanboot::host {

std::optional<int> slcan_bitrate_code(std::uint32_t bitrate) {
  static constexpr std::array<std::uint32_t, 9> kRates = {10000,  20000,  50000,  100000, 125000,
                                                          250000, 500000, 800000, 1000000};
  for (std::size_t i = 0; i < kRates.size(); ++i) {
    if (kRates[i] == bitrate) return static_cast<int>(i);
  }
  return std::nullopt;
}

std::string slcan_encode(const CanFrame& frame) {
  if (frame.dlc > 8) throw std::invalid_argument("slcan: dlc > 8");
  std::string s;
  if (frame.extended()) {
    s = fmt::format("{}{:08X}{}", frame.remote() ? 'R' : 'T', frame.id & 0x1FFF'FFFFU, frame.dlc);
  } else {
    s = fmt::format("{}{:03X}{}", frame.remote() ? 'r' : 't', frame.id & 0x7FFU, frame.dlc);
  }
  if (!frame.remote()) {
    for (int i = 0; i < frame.dlc; ++i) s += fmt::format("{:02X}", frame.data[i]);
  }
  s += '\r';
  return s;
}

namespace {
std::optional<std::uint32_t> hex(std::string_view s) {
  std::uint32_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace

std::optional<CanFrame> slcan_decode(std::string_view line) {
  if (line.empty()) return std::nullopt;
  const char kind = line[0];
  CanFrame f;
  std::size_t id_len = 0;
  switch (kind) {
    case 't': id_len = 3; break;
    case 'r': id_len = 3; f.flags |= CanFrame::kRemote; break;
    case 'T': id_len = 8; f.flags |= CanFrame::kExtended; break;
    case 'R': id_len = 8; f.flags |= CanFrame::kExtended | CanFrame::kRemote; break;
    default: return std::nullopt;
  }
  if (line.size() < 1 + id_len + 1) return std::nullopt;
  const auto id = hex(line.substr(1, id_len));
  if (!id) return std::nullopt;
  if ((id_len == 3 && *id > 0x7FF) || *id > 0x1FFF'FFFF) return std::nullopt;
  const char dlc_char = line[1 + id_len];
  if (dlc_char < '0' || dlc_char > '8') return std::nullopt;
  f.id = *id;
  f.dlc = static_cast<std::uint8_t>(dlc_char - '0');
  std::size_t pos = 2 + id_len;
  if (!f.remote()) {
    if (line.size() < pos + 2U * f.dlc) return std::nullopt;
    for (int i = 0; i < f.dlc; ++i) {
      const auto b = hex(line.substr(pos, 2));
      if (!b) return std::nullopt;
      f.data[i] = static_cast<std::uint8_t>(*b);
      pos += 2;
    }
  }
  // What may follow: a 4-digit timestamp (adapters with timestamps on). Anything else is junk.
  const std::size_t extra = line.size() - pos;
  if (extra != 0 && extra != 4) return std::nullopt;
  if (extra == 4 && !hex(line.substr(pos, 4))) return std::nullopt;
  return f;
}

namespace {

speed_t baud_constant(std::uint32_t baud) {
  switch (baud) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
    case 460800: return B460800;
    case 500000: return B500000;
    case 921600: return B921600;
    case 1000000: return B1000000;
    case 2000000: return B2000000;
    case 3000000: return B3000000;
    default: return B0;
  }
}

class SlcanTransport final : public Transport {
 public:
  SlcanTransport(std::string device, std::uint32_t bitrate, std::uint32_t serial_baud)
      : device_(std::move(device)), bitrate_(bitrate) {
    const auto code = slcan_bitrate_code(bitrate);
    if (!code) throw Error(ErrorKind::kUsage, fmt::format("slcan: {} bit/s is not a CiA bit rate", bitrate));
    const int fd = ::open(device_.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      throw Error(ErrorKind::kBus, fmt::format("{}: cannot open: {}", describe(), detail::errno_text(errno)));
    }
    fd_ = detail::Fd(fd);
    // Only a character device can be a serial adapter: never write the set-up commands into a
    // regular file (or anything else) named by mistake.
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
      throw Error(ErrorKind::kBus, fmt::format("{}: not a serial device", describe()));
    }
    termios tio{};
    if (::tcgetattr(fd, &tio) == 0) {
      ::cfmakeraw(&tio);
      tio.c_cflag |= CLOCAL | CREAD;
      tio.c_cc[VMIN] = 0;
      tio.c_cc[VTIME] = 0;
      const speed_t speed = baud_constant(serial_baud);
      if (speed == B0) {
        throw Error(ErrorKind::kUsage, fmt::format("slcan: unsupported serial speed {}", serial_baud));
      }
      ::cfsetispeed(&tio, speed);
      ::cfsetospeed(&tio, speed);
      ::tcsetattr(fd, TCSANOW, &tio);
      ::tcflush(fd, TCIOFLUSH);
    } else if (errno != ENOTTY) {
      throw Error(ErrorKind::kBus, fmt::format("{}: not a serial device: {}", describe(), detail::errno_text(errno)));
    }
    // Empty the adapter's command buffer, close the channel if it was open, set up, open.
    write_all("\r\r\r");
    command("C", false);
    if (!command(fmt::format("S{}", *code), true)) {
      throw Error(ErrorKind::kBus, fmt::format("{}: the adapter refused bit rate {} (S{}); is it an slcan adapter?", describe(), bitrate, *code));
    }
    if (!command("O", true)) {
      throw Error(ErrorKind::kBus, fmt::format("{}: the adapter refused to open the channel", describe()));
    }
    open_ = true;
  }

  ~SlcanTransport() override {
    if (open_) {
      try {
        write_all("C\r");
      } catch (...) {
      }
    }
  }

  Clock& clock() override { return clock_; }

  void send(const CanFrame& frame) override { write_all(slcan_encode(frame)); }

  std::optional<RxEvent> receive(Micros deadline) override {
    for (;;) {
      if (auto ev = take_event()) return ev;
      if (!fill(deadline)) return std::nullopt;
    }
  }

  std::string describe() const override {
    return fmt::format("slcan://{}?bitrate={}", device_, bitrate_);
  }

 private:
  void write_all(std::string_view s) {
    const Micros give_up = clock_.now() + 1'000'000;
    while (!s.empty()) {
      const ssize_t n = ::write(fd_.get(), s.data(), s.size());
      if (n > 0) {
        s.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        throw Error(ErrorKind::kBus, fmt::format("{}: write failed: {} (adapter unplugged?)", describe(), detail::errno_text(errno)));
      }
      if (clock_.now() >= give_up) {
        throw Error(ErrorKind::kBus, fmt::format("{}: the adapter does not take data", describe()));
      }
      detail::wait_fd(fd_.get(), POLLOUT, clock_, clock_.now() + 10'000);
    }
  }

  // Reads what is available (waiting until deadline for the first byte). False on timeout.
  bool fill(Micros deadline) {
    const short r = detail::wait_fd(fd_.get(), POLLIN, clock_, deadline);
    if (r == 0) return false;
    char buf[512];
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      rx_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (r & (POLLHUP | POLLERR))) {
      throw Error(ErrorKind::kBus, fmt::format("{}: the serial device closed (adapter unplugged?)", describe()));
    }
    return true;
  }

  // Sends a command and, if `check`, waits up to 500 ms for '\r' (ok) or '\a' (error).
  bool command(const std::string& cmd, bool check) {
    write_all(cmd + "\r");
    if (!check) {
      // Swallow the answer if one comes quickly.
      const Micros until = clock_.now() + 50'000;
      while (clock_.now() < until) {
        if (!fill(until)) break;
      }
      rx_.clear();
      pending_.clear();
      return true;
    }
    const Micros until = clock_.now() + 500'000;
    for (;;) {
      for (std::size_t i = 0; i < rx_.size(); ++i) {
        const char c = rx_[i];
        if (c == '\r' || c == '\a') {
          const std::string line = rx_.substr(0, i);
          rx_.erase(0, i + 1);
          if (c == '\a') return false;
          if (line.empty()) return true;
          if (auto f = slcan_decode(line)) queue_frame(*f);  // traffic while configuring
          i = static_cast<std::size_t>(-1);
        }
      }
      if (!fill(until)) {
        throw Error(ErrorKind::kBus, fmt::format("{}: no answer to '{}' (not an slcan adapter, or wrong serial speed?)", describe(), cmd));
      }
    }
  }

  void queue_frame(const CanFrame& f) {
    RxEvent ev;
    ev.kind = RxEvent::Kind::kFrame;
    ev.frame = f;
    ev.timestamp = clock_.now();
    pending_.push_back(ev);
  }

  std::optional<RxEvent> take_event() {
    for (;;) {
      if (!pending_.empty()) {
        RxEvent ev = pending_.front();
        pending_.erase(pending_.begin());
        return ev;
      }
      std::size_t end = rx_.find_first_of("\r\a");
      if (end == std::string::npos) {
        if (rx_.size() > 4096) rx_.clear();  // junk without line ends
        return std::nullopt;
      }
      const char terminator = rx_[end];
      std::string line = rx_.substr(0, end);
      rx_.erase(0, end + 1);
      if (terminator == '\a') {
        RxEvent ev;
        ev.kind = RxEvent::Kind::kStatus;
        ev.status.level = BusStatus::Level::kWarning;
        ev.status.text = "the adapter reported an error (\\a): transmit queue full or bus problem";
        ev.timestamp = clock_.now();
        return ev;
      }
      if (line.empty() || line == "z" || line == "Z") continue;
      // Transmit acknowledgements can precede a frame on the same line on some adapters.
      while (!line.empty() && (line[0] == 'z' || line[0] == 'Z')) line.erase(0, 1);
      if (line.empty()) continue;
      if (line[0] == 'F' && line.size() == 3) {
        const auto flags = std::strtoul(line.c_str() + 1, nullptr, 16);
        if (flags == 0) continue;
        RxEvent ev;
        ev.kind = RxEvent::Kind::kStatus;
        ev.status = slcan_status(static_cast<std::uint8_t>(flags));
        ev.timestamp = clock_.now();
        return ev;
      }
      if (auto f = slcan_decode(line)) {
        RxEvent ev;
        ev.kind = RxEvent::Kind::kFrame;
        ev.frame = *f;
        ev.timestamp = clock_.now();
        return ev;
      }
      // Unknown lines (version answers etc.) are ignored.
    }
  }

  static BusStatus slcan_status(std::uint8_t flags) {
    BusStatus s;
    s.level = BusStatus::Level::kWarning;
    std::string t;
    auto add = [&](const char* what) {
      if (!t.empty()) t += ", ";
      t += what;
    };
    if (flags & 0x01) add("receive FIFO full");
    if (flags & 0x02) add("transmit FIFO full");
    if (flags & 0x04) add("error warning");
    if (flags & 0x08) add("data overrun");
    if (flags & 0x20) {
      add("error passive");
      s.level = BusStatus::Level::kError;
    }
    if (flags & 0x40) add("arbitration lost");
    if (flags & 0x80) {
      add("bus error");
      s.level = BusStatus::Level::kError;
    }
    s.text = "adapter status: " + t;
    return s;
  }

  std::string device_;
  std::uint32_t bitrate_;
  detail::Fd fd_;
  SteadyClock clock_;
  std::string rx_;
  std::vector<RxEvent> pending_;
  bool open_ = false;
};

}  // namespace

std::unique_ptr<Transport> open_slcan(const std::string& device, std::uint32_t bitrate,
                                      std::uint32_t serial_baud) {
  return std::make_unique<SlcanTransport>(device, bitrate, serial_baud);
}

}  // namespace rtcanboot::host
