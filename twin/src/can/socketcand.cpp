#include "twin/can/socketcand.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace rtcanboot::twin::can {

namespace {

using SteadyClock = std::chrono::steady_clock;

enum class ClientState { kNoBus, kBcm, kRaw };

bool parse_hex(const std::string& text, std::uint32_t& out) {
  if (text.empty() || text.size() > 8) return false;
  std::uint32_t v = 0;
  for (char c : text) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  out = v;
  return true;
}

bool parse_dec(const std::string& text, std::uint32_t& out) {
  if (text.empty() || text.size() > 3) return false;
  std::uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  out = v;
  return true;
}

std::vector<std::string> tokens_of(const std::string& text) {
  std::vector<std::string> tokens;
  std::istringstream in(text);
  std::string t;
  while (in >> t) tokens.push_back(t);
  return tokens;
}

}  // namespace

struct SocketcandServer::Client {
  int fd = -1;
  std::uint64_t id = 0;
  std::string peer;
  ClientState state = ClientState::kNoBus;
  std::string in;
  std::string out;
  std::deque<std::string> held;  // frames waiting for the raw-mode settle time
  SteadyClock::time_point settle_until{};
  std::uint64_t frames_sent = 0;
  bool dead = false;
};

std::string socketcand_frame_text(const CanFrame& frame, Nanos at) {
  char head[80];
  const auto secs = static_cast<unsigned long long>(at / 1'000'000'000ULL);
  const auto usecs = static_cast<unsigned long long>((at / 1000ULL) % 1'000'000ULL);
  const unsigned id = frame.extended() ? (frame.id & 0x1FFFFFFFU) : (frame.id & 0x7FFU);
  const char* id_format = frame.extended() ? "%08X" : "%03X";
  char id_text[12];
  std::snprintf(id_text, sizeof id_text, id_format, id);
  if (frame.remote()) {
    std::snprintf(head, sizeof head, "< rtr %s %llu.%06llu %u >", id_text, secs, usecs,
                  static_cast<unsigned>(std::min<unsigned>(frame.dlc, 8U)));
    return head;
  }
  std::snprintf(head, sizeof head, "< frame %s %llu.%06llu ", id_text, secs, usecs);
  std::string text = head;
  const unsigned n = std::min<unsigned>(frame.dlc, 8U);
  for (unsigned i = 0; i < n; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%02X", frame.data[i]);
    text += b;
  }
  text += " >";
  return text;
}

SocketcandServer::SocketcandServer(Bus& bus, Reporter& reporter, SocketcandOptions options)
    : bus_(bus),
      reporter_(reporter),
      options_(std::move(options)),
      endpoint_("socketcand"),
      pacer_(options_.max_lag) {
  endpoint_.on_receive([this](const TimedFrame& f) { on_bus_frame(f, nullptr); }, false);
  endpoint_.on_transmitted([this](const TimedFrame& f) {
    std::uint64_t origin = 0;
    if (!tx_origin_.empty()) {
      origin = tx_origin_.front();
      tx_origin_.pop_front();
    }
    const Client* from = nullptr;
    for (const auto& c : clients_) {
      if (c->id == origin) from = c.get();
    }
    on_bus_frame(f, from);
  });
  bus_.attach(endpoint_);
}

SocketcandServer::~SocketcandServer() {
  stop();
  bus_.detach(endpoint_);
}

bool SocketcandServer::start(std::string* error) {
  stop();
  auto fail = [&](const std::string& what) {
    if (error != nullptr) *error = what + ": " + std::strerror(errno);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    return false;
  };
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return fail("socket");
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options_.port);
  if (::inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr) != 1) {
    errno = EINVAL;
    return fail("address " + options_.host);
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return fail("bind " + options_.host + ":" + std::to_string(options_.port));
  }
  if (::listen(listen_fd_, 8) != 0) return fail("listen");
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  reporter_.report(Severity::kInfo, "socketcand",
                   "listening on " + options_.host + ":" + std::to_string(port_) + " (channel " +
                       options_.channel + ")",
                   0);
  return true;
}

void SocketcandServer::stop() {
  for (auto& c : clients_) {
    flush(*c);
    ::close(c->fd);
  }
  clients_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  pacer_.reset();
}

std::size_t SocketcandServer::clients() const {
  return clients_.size();
}

std::size_t SocketcandServer::raw_clients() const {
  return static_cast<std::size_t>(
      std::count_if(clients_.begin(), clients_.end(),
                    [](const auto& c) { return c->state == ClientState::kRaw; }));
}

bool SocketcandServer::pacing_active() const {
  switch (options_.pacing) {
    case SocketcandOptions::Pacing::kAlways:
      return listen_fd_ >= 0;
    case SocketcandOptions::Pacing::kNever:
      return false;
    case SocketcandOptions::Pacing::kWhileConnected:
      return !clients_.empty();
  }
  return false;
}

void SocketcandServer::accept_clients() {
  if (listen_fd_ < 0) return;
  for (;;) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Client>();
    c->fd = fd;
    c->id = next_client_id_++;
    char ip[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
    c->peer = std::string(ip) + ":" + std::to_string(ntohs(peer.sin_port));
    reporter_.report(Severity::kInfo, "socketcand", "client " + c->peer + " connected", 0);
    send_text(*c, "< hi >");
    clients_.push_back(std::move(c));
  }
}

void SocketcandServer::send_text(Client& client, const std::string& text) {
  client.out += text;
  flush(client);
}

void SocketcandServer::queue_frame(Client& client, const std::string& text) {
  if (client.state != ClientState::kRaw) return;
  if (SteadyClock::now() < client.settle_until || !client.held.empty()) {
    client.held.push_back(text);
    return;
  }
  if (options_.frame_separator && client.frames_sent > 0) client.out += ' ';
  client.out += text;
  ++client.frames_sent;
  flush(client);
}

void SocketcandServer::flush(Client& client) {
  while (!client.out.empty() && !client.dead) {
    const ssize_t n =
        ::send(client.fd, client.out.data(), client.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      client.out.erase(0, static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      client.dead = true;
    }
  }
}

void SocketcandServer::read_client(Client& client) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(client.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      client.in.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) client.dead = true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) client.dead = true;
    break;
  }
  for (;;) {
    const std::size_t open = client.in.find('<');
    if (open == std::string::npos) {
      client.in.clear();
      break;
    }
    const std::size_t close = client.in.find('>', open);
    if (close == std::string::npos) {
      client.in.erase(0, open);
      if (client.in.size() > 4096) client.in.clear();  // not a socketcand element
      break;
    }
    const std::string element = client.in.substr(open + 1, close - open - 1);
    client.in.erase(0, close + 1);
    handle_command(client, element);
  }
}

void SocketcandServer::handle_command(Client& client, const std::string& element) {
  const std::vector<std::string> t = tokens_of(element);
  if (t.empty()) return;
  const std::string& cmd = t[0];
  if (cmd == "open") {
    if (t.size() >= 2 && t[1] == options_.channel) {
      client.state = ClientState::kBcm;
      send_text(client, "< ok >");
    } else {
      send_text(client, "< error could not open bus >");
    }
    return;
  }
  if (cmd == "echo") {
    send_text(client, "< echo >");
    return;
  }
  if (client.state == ClientState::kNoBus) {
    send_text(client, "< error no bus opened >");
    return;
  }
  if (cmd == "rawmode") {
    client.state = ClientState::kRaw;
    client.settle_until = SteadyClock::now() + options_.rawmode_settle;
    send_text(client, "< ok >");
    return;
  }
  if (cmd == "bcmmode") {
    client.state = ClientState::kBcm;
    client.held.clear();
    send_text(client, "< ok >");
    return;
  }
  if (cmd == "send" || cmd == "sendrtr") {
    CanFrame frame;
    std::uint32_t id = 0, dlc = 0;
    bool ok = t.size() >= 3 && parse_hex(t[1], id) && parse_dec(t[2], dlc) && dlc <= 8;
    if (ok && cmd == "send") {
      ok = t.size() == 3 + dlc;
      for (std::uint32_t i = 0; ok && i < dlc; ++i) {
        std::uint32_t b = 0;
        ok = parse_hex(t[3 + i], b) && b <= 0xFF;
        frame.data[i] = static_cast<std::uint8_t>(b);
      }
    }
    // socketcand rule: an 8-digit identifier is extended. The twin also takes identifiers above
    // 0x7FF as extended (python-can 4.1 does not zero-pad them).
    const bool extended = ok && (t[1].size() == 8 || id > 0x7FF);
    if (ok && id > 0x1FFFFFFF) ok = false;
    if (!ok) {
      reporter_.report(Severity::kWarning, "socketcand",
                       "client " + client.peer + ": syntax error in '<" + element + ">'", 0);
      return;
    }
    frame.id = id;
    frame.dlc = static_cast<std::uint8_t>(dlc);
    if (extended) frame.flags |= CanFrame::kExtended;
    if (cmd == "sendrtr") frame.flags |= CanFrame::kRemote;
    tx_origin_.push_back(client.id);
    endpoint_.send(frame);
    return;
  }
  send_text(client, "< error unknown command >");
}

void SocketcandServer::on_bus_frame(const TimedFrame& frame, const Client* origin) {
  if (clients_.empty()) return;
  const std::string text = socketcand_frame_text(frame.frame, frame.eof);
  for (auto& c : clients_) {
    if (c.get() == origin || c->dead) continue;  // socketcand does not echo a client's own frames
    queue_frame(*c, text);
  }
}

void SocketcandServer::close_dead() {
  for (auto it = clients_.begin(); it != clients_.end();) {
    if ((*it)->dead) {
      reporter_.report(Severity::kInfo, "socketcand", "client " + (*it)->peer + " disconnected", 0);
      ::close((*it)->fd);
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
}

void SocketcandServer::poll() {
  accept_clients();
  const auto now = SteadyClock::now();
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    Client& c = *clients_[i];
    read_client(c);
    if (!c.held.empty() && now >= c.settle_until) {
      while (!c.held.empty()) {
        if (options_.frame_separator && c.frames_sent > 0) c.out += ' ';
        c.out += c.held.front();
        c.held.pop_front();
        ++c.frames_sent;
      }
    }
    flush(c);
  }
  close_dead();
}

SteadyClock::time_point SocketcandServer::next_settle_deadline() const {
  auto t = SteadyClock::time_point::max();
  for (const auto& c : clients_) {
    if (!c->held.empty()) t = std::min(t, c->settle_until);
  }
  return t;
}

int SocketcandServer::wait_fds(int timeout_us) {
  std::vector<pollfd> fds;
  if (listen_fd_ >= 0) fds.push_back({listen_fd_, POLLIN, 0});
  for (const auto& c : clients_) {
    short events = POLLIN;
    if (!c->out.empty()) events = static_cast<short>(events | POLLOUT);
    fds.push_back({c->fd, events, 0});
  }
  timespec ts{timeout_us / 1'000'000, static_cast<long>(timeout_us % 1'000'000) * 1000};
  const int r = ::ppoll(fds.data(), fds.size(), &ts, nullptr);
  if (r <= 0) return 0;
  bool input = false;
  for (const pollfd& p : fds) {
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) input = true;
  }
  if (!input) {
    for (auto& c : clients_) flush(*c);
  }
  return input ? 1 : 0;
}

Nanos SocketcandServer::pace(Nanos target) {
  poll();
  const Nanos now_v = bus_.clock().now();
  if (options_.hold_until_client && !client_seen_) {
    if (raw_clients() == 0) {
      wait_fds(100'000);
      poll();
    }
    if (raw_clients() == 0) return now_v;
    client_seen_ = true;
    pacer_.reset();
  }
  if (!pacing_active()) {
    pacer_.reset();
    return target;
  }
  return pacer_.pace(now_v, target, [this](SteadyClock::duration max_wait) {
    auto wait = max_wait;
    const auto settle = next_settle_deadline();
    if (settle != SteadyClock::time_point::max()) {
      const auto wall = SteadyClock::now();
      wait = std::min<SteadyClock::duration>(
          wait, std::max<SteadyClock::duration>(settle - wall, SteadyClock::duration::zero()));
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(wait).count();
    if (wait_fds(static_cast<int>(std::max<long long>(us, 1))) > 0) return true;
    poll();
    return false;
  });
}

bool SocketcandServer::wait_for_client(std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    poll();
    if (raw_clients() > 0) return true;
    const auto now = SteadyClock::now();
    if (now >= deadline) return false;
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::min<SteadyClock::duration>(deadline - now, std::chrono::milliseconds(20)))
            .count();
    wait_fds(static_cast<int>(std::max<long long>(us, 1)));
  }
}

}  // namespace rtcanboot::twin::can
