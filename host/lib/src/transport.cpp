#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>

#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/transports.hpp"

namespace rtcanboot::host {

namespace {
std::atomic<bool> g_interrupt{false};
std::atomic<int> g_signals{0};
static_assert(std::atomic<bool>::is_always_lock_free,
              "the interrupt flag is set from signal handlers");
static_assert(std::atomic<int>::is_always_lock_free, "the signal count is kept by signal handlers");

extern "C" void on_interrupt_signal(int sig) {
  if (g_signals.fetch_add(1) == 0) {
    request_interrupt();
    return;
  }
  // The second signal: the default action (terminate), delivered when this handler returns.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}
}  // namespace

void request_interrupt() {
  g_interrupt.store(true);
}
bool interrupt_requested() {
  return g_interrupt.load();
}
void clear_interrupt() {
  g_interrupt.store(false);
}

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: waits return EINTR and look at the flag at once
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInternal:
      return "internal error";
    case ErrorKind::kUsage:
      return "usage error";
    case ErrorKind::kInput:
      return "bad input";
    case ErrorKind::kBus:
      return "bus error";
    case ErrorKind::kNoNode:
      return "no such node";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kRejected:
      return "image rejected";
    case ErrorKind::kAborted:
      return "transfer aborted";
    case ErrorKind::kWrongProduct:
      return "wrong product";
    case ErrorKind::kNotConfirmed:
      return "application did not confirm";
    case ErrorKind::kSelfTestFailed:
      return "self-test failed";
    case ErrorKind::kInterrupted:
      return "interrupted";
  }
  return "error";
}

FailureReport report_failure(const std::exception& e) {
  FailureReport r;
  const auto* error = dynamic_cast<const Error*>(&e);
  r.exit_code = exit_code(error != nullptr ? error->kind() : ErrorKind::kInternal);
  r.line = error != nullptr
               ? fmt::format("rtcanboot: {}", e.what())
               : fmt::format("rtcanboot: internal error (a bug: please report): {}", e.what());
  for (char& c : r.line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return r;
}

void RxBuffer::add_junk(std::size_t n) {
  junk_ += n;
  if (junk_ >= junk_limit_) {
    throw Error(ErrorKind::kBus,
                fmt::format("{}: received {} bytes that are {}", source_, junk_, not_what_));
  }
}

void RxBuffer::drop_if_longer(std::size_t max) {
  if (buf_.size() <= max) return;
  const std::size_t n = buf_.size();
  buf_.clear();
  add_junk(n);
}

Micros SteadyClock::now() const {
  return static_cast<Micros>(std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

std::string format_frame(const CanFrame& frame) {
  std::string s =
      frame.extended() ? fmt::format("{:08X}#", frame.id) : fmt::format("{:03X}#", frame.id);
  if (frame.remote()) return s + fmt::format("R{}", frame.dlc);
  for (int i = 0; i < frame.dlc && i < 8; ++i) s += fmt::format("{:02X}", frame.data[i]);
  return s;
}

namespace {

[[noreturn]] void bad_uri(std::string_view text, const std::string& why) {
  throw Error(ErrorKind::kUsage, fmt::format("bad bus URI '{}': {}", text, why));
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

BusUri parse_bus_uri(std::string_view text) {
  BusUri uri;
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) {
    if (!text.empty() && text.find('/') == std::string_view::npos &&
        text.find(':') == std::string_view::npos) {
      bad_uri(text, fmt::format("no scheme; did you mean socketcan://{}?", text));
    }
    bad_uri(text,
            "expected socketcan://IFACE, slcan:///dev/DEVICE?bitrate=N or "
            "socketcand://HOST:PORT/CHANNEL");
  }
  const std::string_view scheme = text.substr(0, sep);
  std::string_view rest = text.substr(sep + 3);
  if (scheme == "socketcan") {
    uri.scheme = BusUri::Scheme::kSocketCan;
    if (rest.empty()) bad_uri(text, "missing interface name (socketcan://can0)");
    if (rest.size() > 15) bad_uri(text, "interface names have at most 15 characters");
    for (char c : rest) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
        bad_uri(text, fmt::format("'{}' is not allowed in an interface name", c));
      }
    }
    uri.interface = std::string(rest);
    return uri;
  }
  if (scheme == "slcan") {
    uri.scheme = BusUri::Scheme::kSlcan;
    uri.bitrate = 500000;
    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest.front() != '/') {
      bad_uri(text, "the serial device must be an absolute path (slcan:///dev/ttyACM0)");
    }
    uri.interface = std::string(rest);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view item = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      const auto eq = item.find('=');
      if (eq == std::string_view::npos)
        bad_uri(text, fmt::format("option '{}' needs a value", item));
      const std::string_view key = item.substr(0, eq);
      const auto value = parse_number(item.substr(eq + 1));
      if (!value) bad_uri(text, fmt::format("option '{}' needs a number", key));
      if (key == "bitrate") {
        if (!slcan_bitrate_code(static_cast<std::uint32_t>(*value))) {
          bad_uri(text,
                  "bitrate must be a CiA bit rate: 10000, 20000, 50000, 100000, 125000, 250000, "
                  "500000, 800000 or 1000000");
        }
        uri.bitrate = static_cast<std::uint32_t>(*value);
      } else if (key == "baud") {
        uri.serial_baud = static_cast<std::uint32_t>(*value);
      } else {
        bad_uri(text, fmt::format("unknown option '{}' (known: bitrate, baud)", key));
      }
    }
    return uri;
  }
  if (scheme == "socketcand") {
    uri.scheme = BusUri::Scheme::kSocketcand;
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash + 1 >= rest.size()) {
      bad_uri(text, "missing channel (socketcand://HOST:PORT/can0)");
    }
    uri.interface = std::string(rest.substr(slash + 1));
    if (!socketcand_channel_valid(uri.interface)) {
      bad_uri(text,
              "the channel must be an interface name: 1..15 letters, digits, '_', '-' or '.' "
              "(socketcand://HOST:PORT/can0)");
    }
    std::string_view hostport = rest.substr(0, slash);
    if (hostport.empty()) bad_uri(text, "missing host");
    std::string_view host = hostport;
    if (hostport.front() == '[') {
      const auto close = hostport.find(']');
      if (close == std::string_view::npos) bad_uri(text, "unclosed '[' in IPv6 address");
      host = hostport.substr(1, close - 1);
      hostport = hostport.substr(close + 1);
      if (!hostport.empty() && hostport.front() != ':') bad_uri(text, "expected ':PORT' after ']'");
      if (!hostport.empty())
        hostport = hostport.substr(1);
      else
        hostport = {};
      if (!hostport.empty()) {
        const auto port = parse_number(hostport);
        if (!port || *port == 0 || *port > 65535) bad_uri(text, "port must be 1..65535");
        uri.port = static_cast<std::uint16_t>(*port);
      }
    } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      const auto port = parse_number(hostport.substr(colon + 1));
      if (!port || *port == 0 || *port > 65535) bad_uri(text, "port must be 1..65535");
      uri.port = static_cast<std::uint16_t>(*port);
    }
    if (host.empty()) bad_uri(text, "missing host");
    // A host name or an IPv4 address; an IPv6 address (with ':' and an optional %zone) only in
    // brackets, so that the port cannot be mistaken for a part of it.
    const bool bracketed = rest.front() == '[';
    for (char c : host) {
      const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                      c == '_' || (bracketed && (c == ':' || c == '%'));
      if (!ok) {
        bad_uri(text, c == ':' ? "an IPv6 address goes in brackets: socketcand://[::1]:29536/can0"
                               : fmt::format("'{}' is not allowed in a host name", c));
      }
    }
    uri.host = std::string(host);
    return uri;
  }
  if (scheme == "sim") {
    uri.scheme = BusUri::Scheme::kSim;
    uri.interface = std::string(rest);
    return uri;
  }
  bad_uri(text,
          fmt::format("unknown scheme '{}' (expected socketcan, slcan or socketcand)", scheme));
}

std::string to_string(const BusUri& uri) {
  switch (uri.scheme) {
    case BusUri::Scheme::kSocketCan:
      return "socketcan://" + uri.interface;
    case BusUri::Scheme::kSlcan:
      return fmt::format("slcan://{}?bitrate={}", uri.interface, uri.bitrate);
    case BusUri::Scheme::kSocketcand:
      // Brackets for everything the parser takes only in brackets: ':' and an IPv6 %zone.
      return fmt::format(
          "socketcand://{}:{}/{}",
          uri.host.find_first_of(":%") != std::string::npos ? "[" + uri.host + "]" : uri.host,
          uri.port, uri.interface);
    case BusUri::Scheme::kSim:
      return "sim://" + uri.interface;
  }
  return "?";
}

std::unique_ptr<Transport> open_transport(const BusUri& uri) {
  switch (uri.scheme) {
    case BusUri::Scheme::kSocketCan:
      return open_socketcan(uri.interface);
    case BusUri::Scheme::kSlcan:
      return open_slcan(uri.interface, uri.bitrate, uri.serial_baud);
    case BusUri::Scheme::kSocketcand:
      return open_socketcand(uri.host, uri.port, uri.interface);
    case BusUri::Scheme::kSim:
      throw Error(ErrorKind::kUsage,
                  "sim:// buses exist only inside a program (tests, benchmarks)");
  }
  throw Error(ErrorKind::kUsage, "unknown bus");
}

std::unique_ptr<Transport> open_transport(std::string_view uri) {
  return open_transport(parse_bus_uri(uri));
}

}  // namespace rtcanboot::host
