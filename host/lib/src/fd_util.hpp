// Small POSIX helpers shared by the file-descriptor transports (not a public header).
#pragma once

#include <poll.h>
#include <unistd.h>

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

// Waits until fd has `events` or the clock reaches deadline. Returns the revents (0 on timeout).
inline short wait_fd(int fd, short events, const Clock& clock, Micros deadline) {
  for (;;) {
    const Micros now = clock.now();
    int timeout_ms = 0;
    if (deadline > now) {
      const Micros left = deadline - now;
      timeout_ms = left > 3'600'000'000ULL ? 3'600'000 : static_cast<int>((left + 999) / 1000);
    }
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) {
        if (interrupt_requested()) throw Error(ErrorKind::kInterrupted, "interrupted");
        continue;
      }
      return POLLERR;
    }
    if (r == 0) {
      if (clock.now() >= deadline) return 0;
      continue;
    }
    return p.revents;
  }
}

inline std::string errno_text(int err) { return std::strerror(err); }

}  // namespace rtcanboot::host::detail
