// SocketCAN: a CAN_RAW socket bound to one interface, with kernel filters and error frames.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/can.h>
#include <linux/can/error.h>
#include <linux/can/netlink.h>
#include <linux/can/raw.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "fd_util.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/transports.hpp"

namespace rtcanboot::host {

void socketcan_encode(const CanFrame& frame, ::can_frame& out) {
  std::memset(&out, 0, sizeof out);
  if (frame.extended()) {
    out.can_id = (frame.id & CAN_EFF_MASK) | CAN_EFF_FLAG;
  } else {
    out.can_id = frame.id & CAN_SFF_MASK;
  }
  if (frame.remote()) out.can_id |= CAN_RTR_FLAG;
  out.can_dlc = frame.dlc > 8 ? 8 : frame.dlc;
  if (!frame.remote()) std::memcpy(out.data, frame.data, out.can_dlc);
}

BusStatus socketcan_error_status(const ::can_frame& in) {
  BusStatus status;
  status.level = BusStatus::Level::kWarning;
  std::vector<std::string> parts;
  const canid_t err = in.can_id & CAN_ERR_MASK;
  if (err & CAN_ERR_TX_TIMEOUT) parts.emplace_back("transmit timeout");
  if (err & CAN_ERR_LOSTARB) parts.emplace_back("lost arbitration");
  if (err & CAN_ERR_CRTL) {
    const std::uint8_t c = in.data[1];
    if (c & CAN_ERR_CRTL_RX_OVERFLOW) parts.emplace_back("receive buffer overflow");
    if (c & CAN_ERR_CRTL_TX_OVERFLOW) parts.emplace_back("transmit buffer overflow");
    if (c & CAN_ERR_CRTL_RX_WARNING) parts.emplace_back("receive error warning");
    if (c & CAN_ERR_CRTL_TX_WARNING) parts.emplace_back("transmit error warning");
    if (c & CAN_ERR_CRTL_RX_PASSIVE) parts.emplace_back("receive error passive");
    if (c & CAN_ERR_CRTL_TX_PASSIVE) {
      parts.emplace_back("transmit error passive");
      status.level = BusStatus::Level::kError;
    }
    if (c & CAN_ERR_CRTL_ACTIVE) {
      parts.emplace_back("back to error active");
      status.level = BusStatus::Level::kInfo;
    }
    if (c == 0) parts.emplace_back("controller problem");
  }
  if (err & CAN_ERR_PROT) {
    const std::uint8_t t = in.data[2];
    std::string what = "protocol violation";
    if (t & CAN_ERR_PROT_BIT) what += ": bit error";
    if (t & CAN_ERR_PROT_FORM) what += ": form error";
    if (t & CAN_ERR_PROT_STUFF) what += ": stuff error (bit rate mismatch?)";
    if (t & CAN_ERR_PROT_OVERLOAD) what += ": overload";
    if (t & CAN_ERR_PROT_TX) what += " (while transmitting)";
    parts.push_back(what);
  }
  if (err & CAN_ERR_TRX) parts.emplace_back("transceiver problem (wiring?)");
  if (err & CAN_ERR_ACK) {
    parts.emplace_back("no acknowledge: no other node on the bus, or a bit rate mismatch");
    status.level = BusStatus::Level::kError;
  }
  if (err & CAN_ERR_BUSERROR) parts.emplace_back("bus error");
  if (err & CAN_ERR_RESTARTED) {
    parts.emplace_back("controller restarted");
    status.level = BusStatus::Level::kInfo;
  }
  if (err & CAN_ERR_BUSOFF) {
    parts.emplace_back("bus-off (check wiring, termination and bit rate)");
    status.level = BusStatus::Level::kBusOff;
  }
  if (parts.empty()) parts.emplace_back("error frame");
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) status.text += ", ";
    status.text += parts[i];
  }
  return status;
}

RxEvent socketcan_decode(const ::can_frame& in) {
  RxEvent ev;
  if (in.can_id & CAN_ERR_FLAG) {
    ev.kind = RxEvent::Kind::kStatus;
    ev.status = socketcan_error_status(in);
    return ev;
  }
  ev.kind = RxEvent::Kind::kFrame;
  if (in.can_id & CAN_EFF_FLAG) {
    ev.frame.id = in.can_id & CAN_EFF_MASK;
    ev.frame.flags |= CanFrame::kExtended;
  } else {
    ev.frame.id = in.can_id & CAN_SFF_MASK;
  }
  if (in.can_id & CAN_RTR_FLAG) ev.frame.flags |= CanFrame::kRemote;
  ev.frame.dlc = in.can_dlc > 8 ? 8 : in.can_dlc;
  if (!ev.frame.remote()) std::memcpy(ev.frame.data, in.data, ev.frame.dlc);
  return ev;
}

SocketcanLink socketcan_parse_link(const std::uint8_t* message, std::size_t size) {
  // The kind is IFLA_LINKINFO/IFLA_INFO_KIND, a controller's bit rate the first field of
  // IFLA_LINKINFO/IFLA_INFO_DATA/IFLA_CAN_BITTIMING (struct can_bittiming). Parsed by hand: the
  // NLMSG_*/RTA_* macros are C casts.
  SocketcanLink link;
  if (size < sizeof(nlmsghdr) + sizeof(ifinfomsg)) return link;
  nlmsghdr h;
  std::memcpy(&h, message, sizeof h);
  if (h.nlmsg_type != RTM_NEWLINK || h.nlmsg_len > size) return link;
  const auto align = [](std::size_t v) { return (v + 3U) & ~std::size_t{3}; };
  // Attributes in [begin, end): calls f(type, payload offset, payload length) until it returns
  // true.
  const auto walk = [&](std::size_t begin, std::size_t end, auto&& f) {
    std::size_t at = begin;
    while (at + sizeof(rtattr) <= end) {
      rtattr a;
      std::memcpy(&a, message + at, sizeof a);
      if (a.rta_len < sizeof(rtattr) || at + a.rta_len > end) return;
      if (f(a.rta_type & NLA_TYPE_MASK, at + sizeof(rtattr), a.rta_len - sizeof(rtattr))) return;
      at += align(a.rta_len);
    }
  };
  walk(align(sizeof(nlmsghdr)) + align(sizeof(ifinfomsg)), h.nlmsg_len,
       [&](unsigned type, std::size_t off, std::size_t len) {
         if (type != IFLA_LINKINFO) return false;
         walk(off, off + len, [&](unsigned t, std::size_t o, std::size_t l) {
           if (t == IFLA_INFO_KIND) {
             const char* p = reinterpret_cast<const char*>(message + o);
             link.kind.assign(p, ::strnlen(p, l));
           } else if (t == IFLA_INFO_DATA) {
             walk(o, o + l, [&](unsigned data_type, std::size_t at, std::size_t data_size) {
               if (data_type != IFLA_CAN_BITTIMING || data_size < sizeof(can_bittiming)) {
                 return false;
               }
               can_bittiming timing;
               std::memcpy(&timing, message + at, sizeof timing);
               link.bitrate = timing.bitrate;
               return true;
             });
           }
           return false;
         });
         return true;
       });
  return link;
}

namespace {

SocketcanLink socketcan_link_info(int ifindex) {
  // RTM_GETLINK for one interface, answered with one RTM_NEWLINK message.
  const int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return {};
  detail::Fd fd(s);
  struct {
    nlmsghdr header;
    ifinfomsg info;
  } request{};
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = RTM_GETLINK;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.header.nlmsg_seq = 1;
  request.info.ifi_family = AF_UNSPEC;
  request.info.ifi_index = ifindex;
  timeval tv{1, 0};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::send(s, &request, sizeof request, 0) != static_cast<ssize_t>(sizeof request)) return {};
  std::vector<std::uint8_t> buf(32768);
  const ssize_t n = ::recv(s, buf.data(), buf.size(), 0);
  if (n <= 0) return {};
  return socketcan_parse_link(buf.data(), static_cast<std::size_t>(n));
}

// The command that brings an interface up: controllers with bit timing need a bit rate, virtual
// interfaces do not.
std::string up_hint(const std::string& interface, const std::string& kind) {
  if (kind == "can") return fmt::format("ip link set {} up type can bitrate 500000", interface);
  return fmt::format("ip link set {} up", interface);
}

class SocketCanTransport final : public Transport {
 public:
  explicit SocketCanTransport(std::string interface) : interface_(std::move(interface)) {
    const int s = ::socket(PF_CAN, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, CAN_RAW);
    if (s < 0) {
      const int e = errno;
      if (e == EAFNOSUPPORT || e == EPROTONOSUPPORT) {
        throw Error(ErrorKind::kBus,
                    fmt::format("{}: this kernel has no SocketCAN support (modprobe can-raw?)",
                                describe()));
      }
      throw Error(ErrorKind::kBus, fmt::format("{}: cannot create a CAN socket: {}", describe(),
                                               detail::errno_text(e)));
    }
    fd_ = detail::Fd(s);
    ifreq ifr{};
    if (interface_.empty() || interface_.size() >= IFNAMSIZ) {
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: '{}' is not an interface name", describe(), interface_));
    }
    std::strncpy(ifr.ifr_name, interface_.c_str(), IFNAMSIZ - 1);
    if (::ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
      throw Error(
          ErrorKind::kBus,
          fmt::format("{}: no such CAN interface (see 'ip -details link show')", describe()));
    }
    const int index = ifr.ifr_ifindex;
    if (::ioctl(s, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family != ARPHRD_CAN) {
      const unsigned type = ifr.ifr_hwaddr.sa_family;
      const char* what = type == ARPHRD_LOOPBACK ? "the loopback interface"
                         : type == ARPHRD_ETHER  ? "an Ethernet interface"
                                                 : "a network interface";
      throw Error(ErrorKind::kBus, fmt::format("{}: not a CAN interface ({} is {}, link type {}); "
                                               "'ip -details link show type can' and 'ip link show "
                                               "type vcan' list the CAN interfaces",
                                               describe(), interface_, what, type));
    }
    const SocketcanLink link = socketcan_link_info(index);
    kind_ = link.kind;
    if (kind_ == "can" && link.bitrate != 0) bitrate_ = link.bitrate;
    if (::ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) == 0) {
      throw Error(ErrorKind::kBus, fmt::format("{}: the interface is down ({})", describe(),
                                               up_hint(interface_, kind_)));
    }
    can_err_mask_t mask = CAN_ERR_MASK;
    ::setsockopt(s, SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &mask, sizeof mask);
    sockaddr_can addr{};
    addr.can_family = AF_CAN;
    addr.can_ifindex = index;
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      if (errno == ENODEV) throw_socket_error(ENODEV);  // deleted while we opened it
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: cannot bind: {}", describe(), detail::errno_text(errno)));
    }
  }

  // Deleting an interface sets it down first (ENETDOWN), then unregisters it (ENODEV): after
  // ENETDOWN, look briefly for the ENODEV that would follow, or for the name having gone.
  bool deleted_after_down() const {
    pollfd p{fd_.get(), 0, 0};
    ::poll(&p, 1, 100);
    int e = 0;
    socklen_t len = sizeof e;
    if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == ENODEV) return true;
    return ::if_nametoindex(interface_.c_str()) == 0;
  }

  // Message for a socket error the kernel reported (sk_err): ENETDOWN when the interface was set
  // down, ENODEV when it was removed.
  [[noreturn]] void throw_socket_error(int e) const {
    if (e == ENETDOWN && deleted_after_down()) e = ENODEV;
    if (e == ENETDOWN) {
      throw Error(ErrorKind::kBus, fmt::format("{}: the interface went down ({} to bring it back)",
                                               describe(), up_hint(interface_, kind_)));
    }
    if (e == ENODEV)
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: the interface disappeared (adapter unplugged or link deleted)",
                              describe()));
    throw Error(ErrorKind::kBus,
                fmt::format("{}: receive failed: {}", describe(), detail::errno_text(e)));
  }

  Clock& clock() override { return clock_; }

  void set_send_timeout(Micros timeout) override {
    send_timeout_ = std::max<Micros>(timeout, 1'000'000);
  }

  void send(const CanFrame& frame) override {
    ::can_frame raw;
    socketcan_encode(frame, raw);
    const Micros give_up = clock_.now() + send_timeout_;
    bool waited = false;
    for (;;) {
      const ssize_t n = ::write(fd_.get(), &raw, sizeof raw);
      if (n == static_cast<ssize_t>(sizeof raw)) return;
      const int e = errno;
      if (n < 0 && (e == ENOBUFS || e == EAGAIN || e == EINTR)) {
        if (interrupt_requested()) throw Error(ErrorKind::kInterrupted, "interrupted");
        if (e != EINTR) {
          ++retries_;
          if (!waited) ++frames_waited_;
          waited = true;
        }
        if (clock_.now() >= give_up) {
          throw Error(ErrorKind::kBus,
                      fmt::format("{}: transmit queue stays full: is the bus connected, terminated "
                                  "and at the right bit rate?",
                                  describe()));
        }
        detail::wait_fd(fd_.get(), POLLOUT, clock_, clock_.now() + 1000);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      if (n < 0 && (e == ENETDOWN || e == ENODEV)) throw_socket_error(e);
      throw Error(ErrorKind::kBus,
                  fmt::format("{}: send failed: {}", describe(), detail::errno_text(e)));
    }
  }

  std::optional<RxEvent> receive(Micros deadline) override {
    int error_polls = 0;
    for (;;) {
      ::can_frame raw;
      const ssize_t n = ::read(fd_.get(), &raw, sizeof raw);
      if (n == static_cast<ssize_t>(sizeof raw)) {
        RxEvent ev = socketcan_decode(raw);
        ev.timestamp = clock_.now();
        return ev;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) throw_socket_error(errno);
      if (clock_.now() >= deadline) return std::nullopt;
      const short r = detail::wait_fd(fd_.get(), POLLIN, clock_, deadline);
      if (r == 0) return std::nullopt;
      if (r & (POLLERR | POLLHUP | POLLNVAL)) {
        int e = 0;
        socklen_t len = sizeof e;
        if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e != 0)
          throw_socket_error(e);
        if ((r & (POLLHUP | POLLNVAL)) != 0 || ++error_polls > 100) {
          throw Error(
              ErrorKind::kBus,
              fmt::format("{}: the socket reports an error that it does not name", describe()));
        }
      }
    }
  }

  void set_filters(std::span<const RxFilter> filters) override {
    std::vector<::can_filter> raw;
    for (const RxFilter& f : filters) {
      ::can_filter c{};
      c.can_id = f.extended ? (f.id | CAN_EFF_FLAG) : f.id;
      c.can_mask = f.mask | CAN_EFF_FLAG | CAN_RTR_FLAG;
      raw.push_back(c);
    }
    if (raw.empty()) {
      ::can_filter all{0, 0};
      raw.push_back(all);
    }
    ::setsockopt(fd_.get(), SOL_CAN_RAW, CAN_RAW_FILTER, raw.data(),
                 static_cast<socklen_t>(raw.size() * sizeof(::can_filter)));
  }

  std::string describe() const override { return "socketcan://" + interface_; }
  // A controller's bit rate as the kernel has it (ip -details link show); none for vcan.
  std::optional<std::uint32_t> bitrate() const override { return bitrate_; }

  std::string workarounds() const override {
    if (retries_ == 0) return {};
    return fmt::format(
        "{}: {} frames found the transmit queue full (ENOBUFS) and were sent again ({} retries)",
        describe(), frames_waited_, retries_);
  }

 private:
  std::string interface_;
  std::string kind_;
  std::optional<std::uint32_t> bitrate_;
  std::uint64_t retries_ = 0;
  std::uint64_t frames_waited_ = 0;
  detail::Fd fd_;
  SteadyClock clock_;
  Micros send_timeout_ = 1'000'000;  // set_send_timeout()
};

}  // namespace

std::unique_ptr<Transport> open_socketcan(const std::string& interface) {
  return std::make_unique<SocketCanTransport>(interface);
}

}  // namespace rtcanboot::host
