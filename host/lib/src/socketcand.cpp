// socketcand client in rawmode: "< hi >", "< open CH >", "< rawmode >", then
// "< send ID DLC B0 B1 .. >" out and "< frame ID SEC.USEC DATA >" in.
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <memory>
#include <vector>

#include "fd_transports.hpp"
#include "fd_util.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/transports.hpp"

namespace rtcanboot::host {

std::string socketcand_encode_send(const CanFrame& frame) {
  std::string s = frame.extended()
                      ? fmt::format("< send {:08X} {}", frame.id & 0x1FFF'FFFFU, frame.dlc)
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

bool socketcand_channel_valid(std::string_view channel) {
  if (channel.empty() || channel.size() > 15) return false;
  for (char c : channel) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
      return false;
  }
  return true;
}

SocketcandReader::SocketcandReader(std::string source)
    : RxBuffer(std::move(source), kJunkLimit, "not socketcand messages: not a socketcand server?") {
}

std::optional<std::string> SocketcandReader::next() {
  for (;;) {
    // Whitespace between messages is allowed; anything else outside "< ... >" is junk.
    std::size_t skip = 0;
    std::size_t junk = 0;
    while (skip < buf_.size() && buf_[skip] != '<') {
      if (!std::isspace(static_cast<unsigned char>(buf_[skip]))) ++junk;
      ++skip;
    }
    buf_.erase(0, skip);
    if (junk != 0) add_junk(junk);
    if (buf_.empty()) return std::nullopt;
    const auto close = buf_.find('>');
    const auto reopen = buf_.find('<', 1);
    if (reopen != std::string::npos && (close == std::string::npos || reopen < close)) {
      // A message that never closed before the next one starts.
      buf_.erase(0, reopen);
      add_junk(reopen);
      continue;
    }
    if (close == std::string::npos) {
      drop_if_longer(kMaxMessage);
      return std::nullopt;
    }
    const std::size_t consumed = close + 1;
    std::string inner = buf_.substr(1, close - 1);
    buf_.erase(0, consumed);
    const auto b = inner.find_first_not_of(" \t\r\n");
    const auto e = inner.find_last_not_of(" \t\r\n");
    inner = b == std::string::npos ? std::string() : inner.substr(b, e - b + 1);
    const auto tok = split(inner);
    const bool known = consumed <= kMaxMessage && !tok.empty() &&
                       (tok[0] == "hi" || tok[0] == "ok" || tok[0] == "error" || tok[0] == "echo" ||
                        (tok[0] == "frame" && socketcand_decode_frame(inner)));
    if (!known) {
      add_junk(consumed);
      continue;
    }
    valid();
    return inner;
  }
}

namespace {

class SocketcandTransport final : public Transport {
 public:
  // Connects to host:port (at most kHandshakeTime for the connection and the handshake).
  SocketcandTransport(std::string host, std::uint16_t port, std::string channel)
      : host_(std::move(host)), port_(port), channel_(std::move(channel)), reader_(describe()) {
    check_channel();
    const Micros until = clock_.now() + kHandshakeTime;
    addrinfo* res = resolve(until);
    int last_errno = 0;
    try {
      for (addrinfo* a = res; a != nullptr && !fd_; a = a->ai_next) {
        last_errno = connect_to(*a, until);
      }
    } catch (...) {
      ::freeaddrinfo(res);
      throw;
    }
    ::freeaddrinfo(res);
    if (!fd_) {
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: cannot connect: {} (is socketcand or the twin running?)",
                              describe(), detail::errno_text(last_errno)));
    }
    const int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    handshake(until);
  }

  // host:port within `until` and Ctrl-C. A plain getaddrinfo() can block for the resolver's
  // whole retry schedule (an unreachable DNS server); getaddrinfo_a() runs it in glibc's own
  // thread, and this waits for it in 50 ms steps.
  addrinfo* resolve(Micros until) {
    struct Lookup {
      std::string name, service;
      addrinfo hints{};
      gaicb request{};
    };
    auto lookup = std::make_unique<Lookup>();
    lookup->name = host_;
    lookup->service = std::to_string(port_);
    lookup->hints.ai_family = AF_UNSPEC;
    lookup->hints.ai_socktype = SOCK_STREAM;
    lookup->request.ar_name = lookup->name.c_str();
    lookup->request.ar_service = lookup->service.c_str();
    lookup->request.ar_request = &lookup->hints;
    gaicb* list[] = {&lookup->request};
    int gai = ::getaddrinfo_a(GAI_NOWAIT, list, 1, nullptr);
    if (gai == 0) gai = ::gai_error(&lookup->request);
    for (; gai == EAI_INPROGRESS; gai = ::gai_error(&lookup->request)) {
      if (interrupt_requested() || clock_.now() >= until) {
        if (::gai_cancel(&lookup->request) == EAI_NOTCANCELED) {
          // glibc's thread still owns the request: it must outlive this transport (a few bytes,
          // once, on the way to an error exit).
          static_cast<void>(lookup.release());
        }
        if (interrupt_requested()) throw Error(ErrorKind::kInterrupted, "interrupted");
        throw Error(ErrorKind::kBus,
                    fmt::format("{}: cannot resolve host '{}' within {} s (no answer from the "
                                "DNS resolver; use an IP address)",
                                describe(), host_, kHandshakeTime / 1'000'000));
      }
      const timespec step{0, 50'000'000};
      ::gai_suspend(list, 1, &step);
    }
    if (gai != 0) {
      throw Error(ErrorKind::kBus, fmt::format("{}: cannot resolve host '{}': {}", describe(),
                                               host_, ::gai_strerror(gai)));
    }
    return lookup->request.ar_result;
  }

  // On a connected stream (detail::socketcand_on_fd).
  SocketcandTransport(detail::Fd fd, std::string host, std::uint16_t port, std::string channel,
                      Micros handshake_time)
      : host_(std::move(host)),
        port_(port),
        channel_(std::move(channel)),
        reader_(describe()),
        fd_(std::move(fd)) {
    check_channel();
    ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
    handshake(clock_.now() + handshake_time);
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

  // Each pass checks the interrupt flag and the deadline (after one read at least, so data that
  // is already there is taken even with a deadline in the past).
  std::optional<RxEvent> receive(Micros deadline) override {
    flush();
    for (bool first = true;; first = false) {
      while (auto msg = reader_.next()) {
        if (auto f = socketcand_decode_frame(*msg)) {
          RxEvent ev;
          ev.kind = RxEvent::Kind::kFrame;
          ev.frame = *f;
          ev.timestamp = clock_.now();
          return ev;
        }
        if (msg->rfind("error", 0) == 0) {
          RxEvent ev;
          ev.kind = RxEvent::Kind::kStatus;
          ev.status.level = BusStatus::Level::kWarning;
          ev.status.text = fmt::format("socketcand reports: {}", *msg);
          ev.timestamp = clock_.now();
          return ev;
        }
      }
      detail::throw_if_interrupted();
      if (!first && clock_.now() >= deadline) return std::nullopt;
      if (!fill(deadline)) return std::nullopt;
    }
  }

  std::string describe() const override {
    return fmt::format("socketcand://{}:{}/{}",
                       host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_, port_,
                       channel_);
  }

 private:
  // Connection and handshake together; a server that accepts and then says nothing (or not
  // enough) is a bus error after this time.
  static constexpr Micros kHandshakeTime = 3'000'000;
  // A server that does not take what we send for this long is gone.
  static constexpr Micros kSendTimeout = 5'000'000;

  void check_channel() const {
    if (!socketcand_channel_valid(channel_)) {
      throw Error(ErrorKind::kUsage, fmt::format("socketcand channel '{}' is not an interface name "
                                                 "(1..15 letters, digits, '_', '-', '.')",
                                                 channel_));
    }
  }

  // Non-blocking connect to one address, waiting until `until`. Returns 0, or the errno.
  int connect_to(const addrinfo& a, Micros until) {
    detail::Fd s(
        ::socket(a.ai_family, a.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a.ai_protocol));
    if (!s) return errno;
    if (::connect(s.get(), a.ai_addr, a.ai_addrlen) != 0) {
      if (errno != EINPROGRESS && errno != EINTR) return errno;
      const short r = detail::wait_fd(s.get(), POLLOUT, clock_, until);
      if (r == 0) return ETIMEDOUT;
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
      if (err != 0) return err;
    }
    fd_ = std::move(s);
    return 0;
  }

  void handshake(Micros until) {
    expect("hi", until, "greeting");
    write_all(fmt::format("< open {} >", channel_));
    expect("ok", until, fmt::format("open {}", channel_));
    write_all("< rawmode >");
    expect("ok", until, "rawmode");
  }

  void write_all(std::string_view s) {
    const Micros give_up = clock_.now() + kSendTimeout;
    while (!s.empty()) {
      const ssize_t n = ::send(fd_.get(), s.data(), s.size(), MSG_NOSIGNAL);
      if (n > 0) {
        s.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        if (clock_.now() >= give_up) {
          throw Error(ErrorKind::kBus, fmt::format("{}: the server takes no data", describe()));
        }
        // Not interruptible: an abort frame sent after Ctrl-C must still leave.
        detail::wait_fd(fd_.get(), POLLOUT, clock_, std::min(give_up, clock_.now() + 10'000),
                        false);
        continue;
      }
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: connection lost: {}", describe(), detail::errno_text(errno)));
    }
  }

  void flush() {
    if (tx_.empty()) return;
    std::string out;
    out.swap(tx_);
    write_all(out);
  }

  // One read of what is available, waiting until deadline at most for the first byte. False when
  // nothing came by the deadline.
  bool fill(Micros deadline) {
    const short r = detail::wait_fd(fd_.get(), POLLIN, clock_, deadline);
    if (r == 0) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) {
      reader_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      return true;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    throw Error(ErrorKind::kBus, fmt::format("{}: the server closed the connection", describe()));
  }

  void expect(std::string_view word, Micros until, const std::string& step) {
    for (;;) {
      while (auto msg = reader_.next()) {
        const auto tok = split(*msg);
        if (!tok.empty() && tok[0] == word) return;
        if (!tok.empty() && tok[0] == "error") {
          throw Error(ErrorKind::kBus,
                      fmt::format("{}: the server refused '{}': {}", describe(), step, *msg));
        }
      }
      detail::throw_if_interrupted();
      if (clock_.now() >= until || !fill(until)) {
        throw Error(ErrorKind::kBus, fmt::format("{}: no answer to '{}' (not a socketcand server?)",
                                                 describe(), step));
      }
    }
  }

  std::string host_;
  std::uint16_t port_;
  std::string channel_;
  SocketcandReader reader_;
  detail::Fd fd_;
  SteadyClock clock_;
  std::string tx_;
};

}  // namespace

std::unique_ptr<Transport> open_socketcand(const std::string& host, std::uint16_t port,
                                           const std::string& channel) {
  return std::make_unique<SocketcandTransport>(host, port, channel);
}

std::unique_ptr<Transport> detail::socketcand_on_fd(Fd fd, std::string host, std::uint16_t port,
                                                    std::string channel, Micros handshake_time) {
  return std::make_unique<SocketcandTransport>(std::move(fd), std::move(host), port,
                                               std::move(channel), handshake_time);
}

}  // namespace rtcanboot::host
