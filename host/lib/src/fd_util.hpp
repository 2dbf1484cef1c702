// Small POSIX helpers shared by the file-descriptor transports (not a public header).
//
// Every read loop of a transport follows the same rule (docs/host-tool.md, "A device that never
// answers properly"): on every pass it checks the interrupt flag (throw_if_interrupted) and its
// deadline, whether or not poll() timed out or a signal landed in it, and its receive buffer is
// bounded. A device that streams bytes without end can then never keep the tool reading.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "rtcanboot/host/clock.hpp"
#include "rtcanboot/host/error.hpp"

namespace rtcanboot::host::detail {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

inline void throw_if_interrupted() {
  if (interrupt_requested()) throw Error(ErrorKind::kInterrupted, "interrupted");
}

// The longest single poll(): a signal that arrives between the flag check and poll() is seen
// within this time at the latest.
constexpr Micros kPollSlice = 100'000;

// Waits until fd has `events` or the clock reaches deadline. Returns the revents (0 when the
// deadline passed). Each pass checks the deadline and, if `interruptible`, the interrupt flag;
// writes that must still go out after an interrupt (the abort frame) pass false.
inline short wait_fd(int fd, short events, const Clock& clock, Micros deadline,
                     bool interruptible = true) {
  for (;;) {
    if (interruptible) throw_if_interrupted();
    const Micros now = clock.now();
    const Micros left = deadline > now ? deadline - now : 0;
    const int timeout_ms = static_cast<int>((std::min(left, kPollSlice) + 999) / 1000);
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return p.revents;
    if (r < 0 && errno != EINTR) return POLLERR;
    if (clock.now() >= deadline) return 0;
  }
}

inline std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace rtcanboot::host::detail
