// socketcand client in rawmode: "< hi >", "< open CH >", "< rawmode >", then
// "< send ID DLC B0 B1 .. >" out and "< frame ID SEC.USEC DATA >" in.
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <vector>

#include "fd_util.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/transports.hpp"

namespace rtcanboot::host {

std::string socketcand_encode_send(const CanFrame& frame) {
  std::string s = frame.extended() ? fmt::format("< send {:08X} {}", frame.id & 0x1FFF'FFFFU, frame.dlc)
                                   : fmt::format("< send {:03X} {}", frame.id & 0x7FFU, frame.dlc);
  for (int i = 0; i < frame.dlc && i < 8; ++i) s += fmt::format(" {:02X}", frame.data[i]);
  s += " >";
  return s;
}

namespace {
std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}
}  // namespace

std::optional<CanFrame> socketcand_decode_frame(std::string_view message) {
  const auto tok = split(message);
  if (tok.size() < 3 || tok[0] != "frame") return std::nullopt;
  CanFrame f;
  std::uint32_t id = 0;
  auto [p, ec] = std::from_chars(tok[1].data(), tok[1].data() + tok[1].size(), id, 16);
  if (ec != std::errc() || p != tok[1].data() + tok[1].size()) return std::nullopt;
  if (tok[1].size() > 3) {
    if (id > 0x1FFF'FFFF) return std::nullopt;
    f.flags |= CanFrame::kExtended;
  } else if (id > 0x7FF) {
    return std::nullopt;
  }
  f.id = id;
  // tok[2] is the timestamp; the data follows, as one hex string or as separate bytes.
  std::string hexdata;
  for (std::size_t i = 3; i < tok.size(); ++i) hexdata.append(tok[i]);
  if (hexdata.size() % 2 != 0 || hexdata.size() > 16) return std::nullopt;
  f.dlc = static_cast<std::uint8_t>(hexdata.size() / 2);
  for (std::size_t i = 0; i < f.dlc; ++i) {
    unsigned v = 0;
    auto [q, e2] = std::from_chars(hexdata.data() + 2 * i, hexdata.data() + 2 * i + 2, v, 16);
    if (e2 != std::errc() || q != hexdata.data() + 2 * i + 2) return std::nullopt;
    f.data[i] = static_cast<std::uint8_t>(v);
  }
  return f;
}

namespace {

class SocketcandTransport final : public Transport {
 public:
  SocketcandTransport(std::string host, std::uint16_t port, std::string channel)
      : host_(std::move(host)), port_(port), channel_(std::move(channel)) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port_text = std::to_string(port_);
    const int gai = ::getaddrinfo(host_.c_str(), port_text.c_str(), &hints, &res);
    if (gai != 0) {
      throw Error(ErrorKind::kBus, fmt::format("{}: cannot resolve host '{}': {}", describe(), host_, ::gai_strerror(gai)));
    }
    int last_errno = 0;
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      const int s = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (s < 0) continue;
      if (::connect(s, a->ai_addr, a->ai_addrlen) == 0) {
        fd_ = detail::Fd(s);
        break;
      }
      last_errno = errno;
      ::close(s);
    }
    ::freeaddrinfo(res);
    if (!fd_) {
      throw Error(ErrorKind::kBus, fmt::format("{}: cannot connect: {} (is socketcand or the twin running?)", describe(),
                                               detail::errno_text(last_errno)));
    }
    const int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const Micros until = clock_.now() + 3'000'000;
    expect("hi", until, "greeting");
    write_all(fmt::format("< open {} >", channel_));
    expect("ok", until, fmt::format("open {}", channel_));
    write_all("< rawmode >");
    expect("ok", until, "rawmode");
  }

  ~SocketcandTransport() override {
    try {
      flush();  // an NMT command or abort sent just before exit still goes out
    } catch (const Error&) {
    }
  }

  Clock& clock() override { return clock_; }

  // Frames are collected and written together when the caller starts waiting (a sub-block of a
  // block transfer then leaves in a few TCP segments instead of 127).
  void send(const CanFrame& frame) override {
    tx_ += socketcand_encode_send(frame);
    if (tx_.size() >= 16 * 1024) flush();
  }

  std::optional<RxEvent> receive(Micros deadline) override {
    flush();
    for (;;) {
      while (auto msg = take_message()) {
        if (auto f = socketcand_decode_frame(*msg)) {
          RxEvent ev;
          ev.kind = RxEvent::Kind::kFrame;
          ev.frame = *f;
          ev.timestamp = clock_.now();
          return ev;
        }
        const auto tok = split(*msg);
        if (!tok.empty() && tok[0] == "error") {
          RxEvent ev;
          ev.kind = RxEvent::Kind::kStatus;
          ev.status.level = BusStatus::Level::kWarning;
          ev.status.text = fmt::format("socketcand reports: {}", *msg);
          ev.timestamp = clock_.now();
          return ev;
        }
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  std::string describe() const override {
    return fmt::format("socketcand://{}:{}/{}", host_, port_, channel_);
  }

 private:
  void write_all(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::send(fd_.get(), s.data(), s.size(), MSG_NOSIGNAL);
      if (n > 0) {
        s.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      throw Error(ErrorKind::kBus, fmt::format("{}: connection lost: {}", describe(), detail::errno_text(errno)));
    }
  }

  void flush() {
    if (tx_.empty()) return;
    std::string out;
    out.swap(tx_);
    write_all(out);
  }

  bool fill(Micros deadline) {
    const short r = detail::wait_fd(fd_.get(), POLLIN, clock_, deadline);
    if (r == 0) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) {
      rx_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) return true;
    throw Error(ErrorKind::kBus, fmt::format("{}: the server closed the connection", describe()));
  }

  // The inside of the next complete "< ... >" message, trimmed.
  std::optional<std::string> take_message() {
    const auto open = rx_.find('<');
    if (open == std::string::npos) {
      rx_.clear();
      return std::nullopt;
    }
    const auto close = rx_.find('>', open);
    if (close == std::string::npos) {
      if (open > 0) rx_.erase(0, open);
      if (rx_.size() > 65536) rx_.clear();
      return std::nullopt;
    }
    std::string inner = rx_.substr(open + 1, close - open - 1);
    rx_.erase(0, close + 1);
    const auto b = inner.find_first_not_of(" \t\r\n");
    const auto e = inner.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) return std::string();
    return inner.substr(b, e - b + 1);
  }

  void expect(std::string_view word, Micros until, const std::string& step) {
    for (;;) {
      if (auto msg = take_message()) {
        const auto tok = split(*msg);
        if (!tok.empty() && tok[0] == word) return;
        if (!tok.empty() && tok[0] == "error") {
          throw Error(ErrorKind::kBus, fmt::format("{}: the server refused '{}': {}", describe(), step, *msg));
        }
        continue;
      }
      if (!fill(until)) {
        throw Error(ErrorKind::kBus, fmt::format("{}: no answer to '{}' (not a socketcand server?)", describe(), step));
      }
    }
  }

  std::string host_;
  std::uint16_t port_;
  std::string channel_;
  detail::Fd fd_;
  SteadyClock clock_;
  std::string rx_;
  std::string tx_;
};

}  // namespace

std::unique_ptr<Transport> open_socketcand(const std::string& host, std::uint16_t port,
                                           const std::string& channel) {
  return std::make_unique<SocketcandTransport>(host, port, channel);
}

}  // namespace rtcanboot::host
