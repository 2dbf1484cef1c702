// slcan / Lawicel ASCII protocol over a serial device (CANable, USBtin, CANUSB, ...).
//   S0..S8  bit rate 10k 20k 50k 100k 125k 250k 500k 800k 1M      O open   C close
//   tIIILDD..  standard frame    TIIIIIIIILDD..  extended frame   r/R remote frames
//   F  status flags (answer "Fxx")
// The adapter answers commands with '\r' (ok) or '\a' (error), and transmissions with 'z'/'Z'.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <termios.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "fd_transports.hpp"
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
    case 't':
      id_len = 3;
      break;
    case 'r':
      id_len = 3;
      f.flags |= CanFrame::kRemote;
      break;
    case 'T':
      id_len = 8;
      f.flags |= CanFrame::kExtended;
      break;
    case 'R':
      id_len = 8;
      f.flags |= CanFrame::kExtended | CanFrame::kRemote;
      break;
    default:
      return std::nullopt;
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

SlcanReader::SlcanReader(std::string source)
    : RxBuffer(std::move(source), kJunkLimit,
               "not slcan (no frame, no answer): not an slcan adapter, or the wrong serial speed "
               "(&baud=)?") {}

std::optional<SlcanItem> SlcanReader::next() {
  for (;;) {
    const std::size_t end = buf_.find_first_of("\r\a");
    if (end == std::string::npos) {
      drop_if_longer(kMaxLine);
      return std::nullopt;
    }
    const char terminator = buf_[end];
    std::string_view line(buf_.data(), end);
    SlcanItem item;
    bool good = true;
    if (end > kMaxLine) {
      good = false;
    } else if (terminator == '\a') {
      // A bell ends whatever came before it on the line; adapters send it alone.
      item.kind = SlcanItem::Kind::kBell;
      good = line.empty();
      if (!good) {
        // Junk before the bell, then the bell itself as an item.
        const std::size_t n = line.size();
        buf_.erase(0, n);
        add_junk(n);
        continue;
      }
    } else {
      // Transmit acknowledgements can precede a frame on the same line on some adapters.
      std::size_t acks = 0;
      while (acks < line.size() && (line[acks] == 'z' || line[acks] == 'Z')) ++acks;
      const std::string_view rest = line.substr(acks);
      if (rest.empty()) {
        item.kind = acks != 0 ? SlcanItem::Kind::kAck : SlcanItem::Kind::kOk;
      } else if (rest[0] == 'F' && rest.size() == 3 &&
                 std::isxdigit(static_cast<unsigned char>(rest[1])) &&
                 std::isxdigit(static_cast<unsigned char>(rest[2]))) {
        item.kind = SlcanItem::Kind::kStatus;
        item.flags =
            static_cast<std::uint8_t>(std::stoul(std::string(rest.substr(1)), nullptr, 16));
      } else if (acks == 0 && rest[0] == 'V' && rest.size() >= 2 && rest.size() <= 9 &&
                 std::all_of(rest.begin() + 1, rest.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) != 0;
                 })) {
        item.kind = SlcanItem::Kind::kVersion;
      } else if (auto f = slcan_decode(rest)) {
        item.kind = SlcanItem::Kind::kFrame;
        item.frame = *f;
      } else {
        good = false;
      }
    }
    const std::size_t consumed = end + 1;
    buf_.erase(0, consumed);
    if (!good) {
      add_junk(consumed);
      continue;
    }
    valid();
    return item;
  }
}

namespace {

speed_t baud_constant(std::uint32_t baud) {
  switch (baud) {
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    case 230400:
      return B230400;
    case 460800:
      return B460800;
    case 500000:
      return B500000;
    case 921600:
      return B921600;
    case 1000000:
      return B1000000;
    case 2000000:
      return B2000000;
    case 3000000:
      return B3000000;
    default:
      return B0;
  }
}

class SlcanTransport final : public Transport {
 public:
  // Opens the serial device and sets the adapter up.
  SlcanTransport(std::string device, std::uint32_t bitrate, std::uint32_t serial_baud)
      : device_(std::move(device)), bitrate_(bitrate), reader_(describe()) {
    const auto code = slcan_bitrate_code(bitrate);
    if (!code)
      throw Error(ErrorKind::kUsage, fmt::format("slcan: {} bit/s is not a CiA bit rate", bitrate));
    const int fd = ::open(device_.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: cannot open: {}", describe(), detail::errno_text(errno)));
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
        throw Error(ErrorKind::kUsage,
                    fmt::format("slcan: unsupported serial speed {}", serial_baud));
      }
      ::cfsetispeed(&tio, speed);
      ::cfsetospeed(&tio, speed);
      ::tcsetattr(fd, TCSANOW, &tio);
      ::tcflush(fd, TCIOFLUSH);
    } else if (errno != ENOTTY) {
      throw Error(ErrorKind::kBus, fmt::format("{}: not a serial device: {}", describe(),
                                               detail::errno_text(errno)));
    }
    set_up(*code);
  }

  // On a descriptor that is already open (detail::slcan_on_fd).
  SlcanTransport(detail::Fd fd, std::string device, std::uint32_t bitrate, bool configure)
      : device_(std::move(device)), bitrate_(bitrate), reader_(describe()), fd_(std::move(fd)) {
    if (configure) {
      const auto code = slcan_bitrate_code(bitrate);
      if (!code)
        throw Error(ErrorKind::kUsage,
                    fmt::format("slcan: {} bit/s is not a CiA bit rate", bitrate));
      set_up(*code);
    } else {
      open_ = true;
    }
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

  // Each pass checks the interrupt flag and the deadline (after one read at least, so data that
  // is already there is taken even with a deadline in the past).
  std::optional<RxEvent> receive(Micros deadline) override {
    for (bool first = true;; first = false) {
      if (auto ev = take_event()) return ev;
      detail::throw_if_interrupted();
      if (!first && clock_.now() >= deadline) return std::nullopt;
      if (!fill(deadline)) return std::nullopt;
    }
  }

  std::string describe() const override {
    return fmt::format("slcan://{}?bitrate={}", device_, bitrate_);
  }

  std::optional<std::uint32_t> bitrate() const override { return bitrate_; }

 private:
  // Empties the adapter's command buffer, closes the channel if it was open, sets the bit rate
  // and opens the channel.
  void set_up(int code) {
    write_all("\r\r\rC\r");
    synchronise();
    if (!command(fmt::format("S{}", code))) {
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: the adapter refused bit rate {} (S{}); is it an slcan adapter?",
                              describe(), bitrate_, code));
    }
    if (!command("O")) {
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: the adapter refused to open the channel", describe()));
    }
    open_ = true;
  }

  void set_send_timeout(Micros timeout) override {
    send_timeout_ = std::max<Micros>(timeout, 1'000'000);
  }

  void write_all(std::string_view s) {
    const Micros give_up = clock_.now() + send_timeout_;
    while (!s.empty()) {
      const ssize_t n = ::write(fd_.get(), s.data(), s.size());
      if (n > 0) {
        s.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        throw Error(ErrorKind::kBus, fmt::format("{}: write failed: {} (adapter unplugged?)",
                                                 describe(), detail::errno_text(errno)));
      }
      if (clock_.now() >= give_up) {
        throw Error(ErrorKind::kBus, fmt::format("{}: the adapter does not take data", describe()));
      }
      // Not interruptible: an abort frame sent after Ctrl-C must still leave.
      detail::wait_fd(fd_.get(), POLLOUT, clock_, clock_.now() + 10'000, false);
    }
  }

  // One read of what is available, waiting until deadline at most for the first byte. False when
  // nothing came by the deadline.
  bool fill(Micros deadline) {
    const short r = detail::wait_fd(fd_.get(), POLLIN, clock_, deadline);
    if (r == 0) return false;
    char buf[512];
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      reader_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      return true;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
        (r & (POLLHUP | POLLERR | POLLNVAL))) {
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: the serial device closed (adapter unplugged?)", describe()));
    }
    return true;
  }

  // The answers to the blank lines and C carry nothing to tell them apart from the answers to S
  // and O that follow, and an adapter may answer late (USB latency, a loaded machine). So the
  // set-up asks for the version (V) and drops every answer up to the version line, which comes
  // after all of them. An adapter without V answers with a bell or not at all: then whatever
  // came within 500 ms is dropped.
  void synchronise() {
    write_all("V\r");
    const Micros until = clock_.now() + 500'000;
    for (;;) {
      while (auto item = reader_.next()) {
        if (item->kind == SlcanItem::Kind::kVersion) return;
      }
      detail::throw_if_interrupted();
      if (clock_.now() >= until || !fill(until)) {
        reader_.clear();
        pending_.clear();
        return;
      }
    }
  }

  // Sends a command and waits up to 500 ms for '\r' (true) or '\a' (false).
  bool command(const std::string& cmd) {
    write_all(cmd + "\r");
    const Micros until = clock_.now() + 500'000;
    for (;;) {
      while (auto item = reader_.next()) {
        if (item->kind == SlcanItem::Kind::kOk) return true;
        if (item->kind == SlcanItem::Kind::kBell) return false;
        if (item->kind == SlcanItem::Kind::kFrame)
          queue_frame(item->frame);  // traffic while configuring
      }
      detail::throw_if_interrupted();
      if (clock_.now() >= until || !fill(until)) {
        throw Error(
            ErrorKind::kBus,
            fmt::format("{}: no answer to '{}' (not an slcan adapter, or wrong serial speed?)",
                        describe(), cmd));
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
    if (!pending_.empty()) {
      RxEvent ev = pending_.front();
      pending_.erase(pending_.begin());
      return ev;
    }
    while (auto item = reader_.next()) {
      RxEvent ev;
      ev.timestamp = clock_.now();
      switch (item->kind) {
        case SlcanItem::Kind::kFrame:
          ev.kind = RxEvent::Kind::kFrame;
          ev.frame = item->frame;
          return ev;
        case SlcanItem::Kind::kBell:
          ev.kind = RxEvent::Kind::kStatus;
          ev.status.level = BusStatus::Level::kWarning;
          ev.status.text =
              "the adapter reported an error (\\a): transmit queue full or bus problem";
          return ev;
        case SlcanItem::Kind::kStatus:
          if (item->flags == 0) break;
          ev.kind = RxEvent::Kind::kStatus;
          ev.status = slcan_status(item->flags);
          return ev;
        case SlcanItem::Kind::kOk:
        case SlcanItem::Kind::kAck:
        case SlcanItem::Kind::kVersion:
          break;
      }
    }
    return std::nullopt;
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
  SlcanReader reader_;
  detail::Fd fd_;
  SteadyClock clock_;
  Micros send_timeout_ = 1'000'000;  // set_send_timeout()
  std::vector<RxEvent> pending_;     // frames seen while configuring (a handful at most)
  bool open_ = false;
};

}  // namespace

std::unique_ptr<Transport> open_slcan(const std::string& device, std::uint32_t bitrate,
                                      std::uint32_t serial_baud) {
  return std::make_unique<SlcanTransport>(device, bitrate, serial_baud);
}

std::unique_ptr<Transport> detail::slcan_on_fd(Fd fd, std::string device, std::uint32_t bitrate,
                                               bool configure) {
  return std::make_unique<SlcanTransport>(std::move(fd), std::move(device), bitrate, configure);
}

}  // namespace rtcanboot::host
