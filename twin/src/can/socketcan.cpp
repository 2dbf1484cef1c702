#include "twin/can/socketcan.hpp"

#include <linux/can/error.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace rtcanboot::twin::can {

::can_frame to_socketcan(const CanFrame& frame) {
  ::can_frame out{};
  out.can_id =
      frame.extended() ? ((frame.id & CAN_EFF_MASK) | CAN_EFF_FLAG) : (frame.id & CAN_SFF_MASK);
  if (frame.remote()) out.can_id |= CAN_RTR_FLAG;
  out.can_dlc = std::min<std::uint8_t>(frame.dlc, 8);
  if (!frame.remote()) std::memcpy(out.data, frame.data, out.can_dlc);
  return out;
}

CanFrame from_socketcan(const ::can_frame& in) {
  CanFrame f;
  if (in.can_id & CAN_EFF_FLAG) {
    f.id = in.can_id & CAN_EFF_MASK;
    f.flags |= CanFrame::kExtended;
  } else {
    f.id = in.can_id & CAN_SFF_MASK;
  }
  if (in.can_id & CAN_RTR_FLAG) f.flags |= CanFrame::kRemote;
  f.dlc = std::min<std::uint8_t>(in.can_dlc, 8);
  if (!f.remote()) std::memcpy(f.data, in.data, f.dlc);
  return f;
}

SocketcanBridge::SocketcanBridge(Bus& bus, Reporter& reporter, SocketcanOptions options)
    : bus_(bus),
      reporter_(reporter),
      options_(std::move(options)),
      endpoint_("socketcan:" + options_.interface),
      pacer_(options_.max_lag) {
  // Frames of the twin's boards (everything the bridge's node receives) go to the interface.
  endpoint_.on_receive(
      [this](const TimedFrame& f) {
        if (fd_ < 0) return;
        if (out_.size() >= options_.max_pending) {
          ++stats_.dropped;
          return;
        }
        out_.push_back(to_socketcan(f.frame));
        flush();
      },
      false);
  bus_.attach(endpoint_);
}

SocketcanBridge::~SocketcanBridge() {
  if (fd_ >= 0) ::close(fd_);
  bus_.detach(endpoint_);
}

bool SocketcanBridge::start(std::string* error) {
  const std::string& name = options_.interface;
  auto fail = [&](const std::string& what) {
    if (error != nullptr) *error = "socketcan://" + name + ": " + what;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return false;
  };
  if (name.empty() || name.size() >= IFNAMSIZ) return fail("not an interface name");
  fd_ = ::socket(PF_CAN, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, CAN_RAW);
  if (fd_ < 0) {
    if (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT) {
      return fail(
          "this kernel has no SocketCAN (CONFIG_CAN, CONFIG_CAN_RAW; try 'modprobe can-raw')");
    }
    return fail(std::string("cannot create a CAN socket: ") + std::strerror(errno));
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd_, SIOCGIFINDEX, &ifr) < 0) {
    return fail("no such interface (create one with 'ip link add dev " + name +
                " type vcan', or plug the adapter in)");
  }
  const int index = ifr.ifr_ifindex;
  if (::ioctl(fd_, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family != ARPHRD_CAN) {
    return fail(
        "not a CAN interface (link type " + std::to_string(ifr.ifr_hwaddr.sa_family) +
        "); 'ip -details link show type can' and 'ip link show type vcan' list the CAN interfaces");
  }
  if (::ioctl(fd_, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) == 0) {
    return fail("the interface is down ('ip link set " + name + " up')");
  }
  can_err_mask_t mask = CAN_ERR_MASK;
  ::setsockopt(fd_, SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &mask, sizeof mask);
  sockaddr_can addr{};
  addr.can_family = AF_CAN;
  addr.can_ifindex = index;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    return fail(std::string("cannot bind: ") + std::strerror(errno));
  }
  reporter_.report(Severity::kInfo, "socketcan", "joined " + name, 0);
  return true;
}

void SocketcanBridge::on_read_error(int err) {
  // Deleting an interface sets it down first (ENETDOWN), then unregisters it (ENODEV).
  if (err == ENETDOWN) {
    pollfd p{fd_, 0, 0};
    ::poll(&p, 1, 100);
    int e = 0;
    socklen_t len = sizeof e;
    if ((::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == ENODEV) ||
        ::if_nametoindex(options_.interface.c_str()) == 0) {
      err = ENODEV;
    }
  }
  if (err == ENETDOWN) {
    if (!down_) {
      reporter_.report(Severity::kWarning, "socketcan",
                       options_.interface + " went down: frames are dropped until it is up again",
                       0);
    }
    down_ = true;
    return;
  }
  if (err == ENODEV) {
    failure_ = "socketcan://" + options_.interface + ": the interface disappeared";
  } else {
    failure_ = "socketcan://" + options_.interface + ": receive failed: " + std::strerror(err);
  }
  reporter_.report(Severity::kWarning, "socketcan", failure_, 0);
}

void SocketcanBridge::on_error_frame(const ::can_frame& f) {
  ++stats_.error_frames;
  const canid_t err = f.can_id & CAN_ERR_MASK;
  const Nanos now = bus_.clock().now();
  if (err & CAN_ERR_BUSOFF) {
    // The interface's controller left the bus: so does the node that stands for it here.
    reporter_.report(Severity::kWarning, "socketcan",
                     options_.interface + " reports bus-off: the bridge's node goes bus-off", 0);
    bus_.inject_bus_off(endpoint_, now);
  }
  if (err & (CAN_ERR_PROT | CAN_ERR_TRX)) {
    // A disturbance on the real bus: an error flag destroys the next frame on the twin's bus.
    FaultRule rule;
    rule.action = FaultRule::Action::kErrorFrame;
    rule.limit = 1;
    bus_.add_fault(rule);
    reporter_.report(
        Severity::kWarning, "socketcan",
        options_.interface + " reports a protocol error: an error frame destroys the next frame",
        0);
  }
  if (err & CAN_ERR_CRTL) {
    reporter_.report(Severity::kWarning, "socketcan",
                     options_.interface + " controller state: error counters " +
                         std::to_string(f.data[6]) + "/" + std::to_string(f.data[7]) + " (tx/rx)",
                     0);
  }
  if (err & CAN_ERR_RESTARTED) {
    reporter_.report(Severity::kInfo, "socketcan", options_.interface + " controller restarted", 0);
  }
}

void SocketcanBridge::read_interface() {
  if (fd_ < 0 || failed()) return;
  for (;;) {
    ::can_frame f{};
    const ssize_t n = ::read(fd_, &f, sizeof f);
    if (n == static_cast<ssize_t>(sizeof f)) {
      if (down_) {
        reporter_.report(Severity::kInfo, "socketcan", options_.interface + " is up again", 0);
        down_ = false;
      }
      if (f.can_id & CAN_ERR_FLAG) {
        on_error_frame(f);
      } else {
        ++stats_.from_interface;
        endpoint_.send(from_socketcan(f));
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) on_read_error(errno);
    return;
  }
}

void SocketcanBridge::flush() {
  while (!out_.empty() && fd_ >= 0 && !failed()) {
    const ssize_t n = ::write(fd_, &out_.front(), sizeof(::can_frame));
    if (n == static_cast<ssize_t>(sizeof(::can_frame))) {
      out_.pop_front();
      ++stats_.to_interface;
      if (down_) down_ = false;
      continue;
    }
    const int e = n < 0 ? errno : EIO;
    if (e == EINTR) continue;
    if (e == ENOBUFS || e == EAGAIN) {  // the interface's transmit queue is full: later
      ++stats_.retries;
      return;
    }
    if (e == ENETDOWN) {
      on_read_error(ENETDOWN);
      stats_.dropped += out_.size();
      out_.clear();
      return;
    }
    on_read_error(e);
    return;
  }
}

void SocketcanBridge::poll() {
  read_interface();
  flush();
}

Nanos SocketcanBridge::pace(Nanos target) {
  poll();
  return pacer_.pace(
      bus_.clock().now(), target, [this](WallClockPacer::SteadyClock::duration max_wait) {
        // With frames waiting for a full transmit queue, look again after at most 1 ms (POLLOUT of
        // a CAN_RAW socket does not tell when the queueing discipline has room).
        if (!out_.empty())
          max_wait = std::min<WallClockPacer::SteadyClock::duration>(max_wait,
                                                                     std::chrono::milliseconds(1));
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(max_wait).count();
        pollfd p{fd_, POLLIN, 0};
        timespec ts{static_cast<time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000) * 1000};
        const int r = fd_ >= 0 && !failed() ? ::ppoll(&p, 1, &ts, nullptr)
                                            : ::ppoll(nullptr, 0, &ts, nullptr);
        flush();
        return r > 0 && (p.revents & (POLLIN | POLLERR)) != 0;
      });
}

}  // namespace rtcanboot::twin::can
