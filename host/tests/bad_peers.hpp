// Peers for the transport and CLI tests: deliberately bad devices (a socketcand server that greets
// and then says nothing or streams garbage, a stream of junk for serial peers) and the plumbing the
// tests' own fake adapters share (a loopback listening socket, slcan's '\r'-ended lines).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace rtcanboot::host::test {

// Bytes that are neither slcan nor socketcand: letters, digits, blanks, NUL, but no '\r', '\a',
// '<' or '>', so that nothing ever terminates a line or a message.
inline std::string junk_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = "xyz 0123\0QW"[i % 11];
  return s;
}

// A TCP socket listening on 127.0.0.1 at a port the kernel picks; `port` receives it.
inline int listen_on_loopback(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(fd, 4) != 0) {
    throw std::runtime_error("test peer: bind/listen on 127.0.0.1 failed");
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// Hands every complete '\r'-ended line in `buffer` (without the '\r') to `on_line` and keeps the
// incomplete rest.
template <typename OnLine>
void take_lines(std::string& buffer, OnLine&& on_line) {
  std::size_t cr;
  while ((cr = buffer.find('\r')) != std::string::npos) {
    const std::string line = buffer.substr(0, cr);
    buffer.erase(0, cr + 1);
    on_line(line);
  }
}

class BadSocketcandServer {
 public:
  enum class Mode {
    kSilentAfterGreeting,   // "< hi >", then nothing at all
    kGarbageAfterGreeting,  // "< hi >", then junk without end
    kSilentAfterRawmode,    // a complete handshake, then nothing
    kGarbageAfterRawmode,   // a complete handshake, then junk without end
  };

  explicit BadSocketcandServer(Mode mode) : mode_(mode) {
    listen_ = listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~BadSocketcandServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  std::uint16_t port() const { return port_; }
  // Everything clients sent, concatenated.
  std::string received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  int connections() const { return connections_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) continue;
      const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      ++connections_;
      talk(fd);
      ::close(fd);
    }
  }

  void talk(int fd) {
    const bool garbage =
        mode_ == Mode::kGarbageAfterGreeting || mode_ == Mode::kGarbageAfterRawmode;
    const bool handshake =
        mode_ == Mode::kSilentAfterRawmode || mode_ == Mode::kGarbageAfterRawmode;
    const std::string junk = junk_bytes(4096);
    std::string text = "< hi >";
    int oks = 0;
    while (!stop_) {
      if (!text.empty()) {
        const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) return;
        if (n > 0) text.erase(0, static_cast<std::size_t>(n));
      }
      const bool greeted = handshake ? oks == 2 : true;
      if (text.empty() && garbage && greeted) text = junk;
      pollfd q{fd, static_cast<short>(POLLIN | (text.empty() ? 0 : POLLOUT)), 0};
      if (::poll(&q, 1, 10) <= 0) continue;
      if (q.revents & POLLIN) {
        char buf[1024];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return;
        if (n > 0) {
          std::lock_guard<std::mutex> lock(mutex_);
          received_.append(buf, static_cast<std::size_t>(n));
          // Answer "< open ... >" and "< rawmode >" with "< ok >".
          for (ssize_t i = 0; i < n && handshake && oks < 2; ++i) {
            if (buf[i] == '>') {
              text += "< ok >";
              ++oks;
            }
          }
        }
      }
      if (q.revents & (POLLHUP | POLLERR)) return;
    }
  }

  Mode mode_;
  int listen_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mutex_;
  std::string received_;
};

}  // namespace rtcanboot::host::test
