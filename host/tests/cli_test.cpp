// The built `rtcanboot` binary: exit codes and one-line messages for bad input, and a full
// pack/flash/info/scan run over socketcand against a simulated board (the core's Bootloader).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bad_peers.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/transports.hpp"
#include "rtcanboot/memory_map.hpp"
#include "sim_nodes.hpp"

namespace rtcanboot::host {
namespace {

namespace fs = std::filesystem;
namespace mm = memory_map;

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / fmt::format("rtcanboot-cli-{}-{}", ::getpid(), counter++);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // Runs the CLI through the shell (args may quote). coreutils timeout runs in the foreground
  // (it signals the CLI alone, never a process group with SIGCONT) and kills with SIGKILL 5 s
  // after its SIGTERM, so no run can outlive `limit_s` + 5 s.
  CliRun run(const std::string& args, int limit_s = 60) {
    const auto out = dir / "stdout";
    const auto err = dir / "stderr";
    const std::string cmd =
        fmt::format("( timeout --foreground -k 5 {} {} {} ) >{} 2>{} </dev/null", limit_s,
                    RTCANBOOT_CLI, args, out.string(), err.string());
    const auto t0 = std::chrono::steady_clock::now();
    const int status = std::system(cmd.c_str());
    CliRun r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // Starts the CLI itself (no shell, no wrapper) so the test can signal it directly.
  pid_t spawn(const std::vector<std::string>& args) {
    const auto out = (dir / "stdout").string();
    const auto err = (dir / "stderr").string();
    std::vector<std::string> all = {RTCANBOOT_CLI};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int in = ::open("/dev/null", O_RDONLY);
      if (o < 0 || e < 0 || in < 0) ::_exit(127);
      ::dup2(in, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }

  // Waits until stdout of a spawned CLI contains `text` `count` times (false after `limit_s`).
  bool wait_output(const std::string& text, int count, double limit_s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
    while (std::chrono::steady_clock::now() < until) {
      const std::string out = slurp(dir / "stdout");
      int seen = 0;
      for (auto at = out.find(text); at != std::string::npos; at = out.find(text, at + 1)) ++seen;
      if (seen >= count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Waits for a spawned CLI to end; after `limit_s` it is killed and the test fails.
  CliRun finish(pid_t pid, double limit_s) {
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    for (;;) {
      if (::waitpid(pid, &status, WNOHANG) == pid) break;
      if (std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(limit_s)) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ADD_FAILURE() << "the CLI was still running after " << limit_s << " s";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CliRun r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(dir / "stdout");
    r.err = slurp(dir / "stderr");
    return r;
  }

  // A failure: the exit code, exactly one line on stderr, no crash/sanitizer noise.
  void expect_error(const CliRun& r, int code, const std::string& text) {
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    EXPECT_EQ(r.err.rfind("rtcanboot: ", 0), 0U) << r.err;
  }

  std::string write(const std::string& name, const std::string& content) {
    const auto p = dir / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

  static std::string hex_file(std::uint32_t address, const std::vector<std::uint8_t>& data) {
    std::string s;
    auto rec = [&](std::uint8_t type, std::uint16_t off, const std::uint8_t* d, std::size_t n) {
      std::uint8_t sum = static_cast<std::uint8_t>(n + (off >> 8) + (off & 0xFF) + type);
      s += fmt::format(":{:02X}{:04X}{:02X}", n, off, type);
      for (std::size_t i = 0; i < n; ++i) {
        s += fmt::format("{:02X}", d[i]);
        sum = static_cast<std::uint8_t>(sum + d[i]);
      }
      s += fmt::format("{:02X}\n", static_cast<std::uint8_t>(-sum));
    };
    std::uint32_t upper = 0xFFFF'FFFF;
    for (std::size_t i = 0; i < data.size(); i += 16) {
      const std::uint32_t a = address + static_cast<std::uint32_t>(i);
      if ((a >> 16) != upper) {
        upper = a >> 16;
        const std::uint8_t u[2] = {static_cast<std::uint8_t>(upper >> 8),
                                   static_cast<std::uint8_t>(upper)};
        rec(4, 0, u, 2);
      }
      rec(0, static_cast<std::uint16_t>(a & 0xFFFF), data.data() + i,
          std::min<std::size_t>(16, data.size() - i));
    }
    rec(1, 0, nullptr, 0);
    return s;
  }

  static std::vector<std::uint8_t> app_bytes(std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 13 + 5);
    store_le32(v.data(), 0x2002'0000);
    store_le32(v.data() + 4, mm::kAppAddress + 0x101);
    return v;
  }

  fs::path dir;
  static inline int counter = 0;
};

TEST_F(Cli, HelpAndVersion) {
  auto r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("flash"), std::string::npos);
  EXPECT_NE(r.out.find("socketcand://"), std::string::npos);
  r = run("flash --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--no-start"), std::string::npos);
  r = run("--version");
  EXPECT_EQ(r.code, 0);
}

TEST_F(Cli, UsageErrors) {
  expect_error(run(""), 2, "subcommand");
  expect_error(run("frobnicate"), 2, "see rtcanboot --help");
  expect_error(run("info"), 2, "--node");
  expect_error(run("info --node 0"), 2, "not a node-ID");
  expect_error(run("info --node 128"), 2, "not a node-ID");
  expect_error(run("info --node abc"), 2, "not a 32-bit number");
  expect_error(run("--bus socketcn://can0 info --node 1"), 2, "unknown scheme");
  expect_error(run("--bus can0 info --node 1"), 2, "did you mean socketcan://can0");
  expect_error(run("--bus slcan:///dev/null?bitrate=123 info --node 1"), 2, "CiA bit rate");
  // LSS: bad values fail before the bus is opened.
  expect_error(run("flash --node 5 --clear --no-clear app.elf"), 2, "excludes");
  expect_error(run("lss"), 2, "subcommand");
  expect_error(run("--bus socketcan://nonexistent0 lss bitrate --index 5"), 2,
               "not a CiA 305 table index");
  expect_error(run("--bus socketcan://nonexistent0 lss auto --first-node 0"), 2, "not a node-ID");
  expect_error(run("--bus socketcan://nonexistent0 lss assign --serial 1 --node 128"), 2,
               "not a node-ID");
  expect_error(run("lss assign --node 5"), 2, "--serial");
}

// keygen: a key pair in PEM, the private key 0600, never overwritten without --force.
TEST_F(Cli, KeygenWritesAKeyPairAndKeepsAnExistingOne) {
  const std::string key = (dir / "vendor.key").string();
  const CliRun first = run("keygen --out " + key);
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_NE(first.out.find("public key "), std::string::npos) << first.out;
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_EQ(slurp(key).rfind("-----BEGIN PRIVATE KEY-----", 0), 0U);
  EXPECT_EQ(slurp(key + ".pub").rfind("-----BEGIN PUBLIC KEY-----", 0), 0U);
  const std::string before = slurp(key);
  expect_error(run("keygen --out " + key), 3, "--force");
  EXPECT_EQ(slurp(key), before);
  ASSERT_EQ(run("keygen -q --force --out " + key).code, 0);
  EXPECT_NE(slurp(key), before);
  expect_error(run("keygen"), 2, "--out");
  expect_error(run("keygen --out /nonexistent/dir/k"), 3, "cannot create");
}

// pack --sign / verify --key: exit 0 for a container signed by the key, 7 when the signature does
// not satisfy it (not signed, another key), 3 for a damaged container, 2 for bad options.
TEST_F(Cli, SignedPackAndVerify) {
  const std::string key = (dir / "vendor.key").string();
  const std::string other = (dir / "other.key").string();
  ASSERT_EQ(run("keygen -q --out " + key).code, 0);
  ASSERT_EQ(run("keygen -q --out " + other).code, 0);
  const std::string hex = write("app.hex", hex_file(mm::kAppAddress, app_bytes(256)));
  const std::string rcb = (dir / "app.rcb").string();
  const CliRun packed =
      run("pack " + hex + " -o " + rcb + " --sign " + key + " --security-counter 0x10");
  ASSERT_EQ(packed.code, 0) << packed.err;
  EXPECT_NE(packed.out.find("security counter 16"), std::string::npos) << packed.out;
  const CliRun good = run("verify " + rcb + " --key " + key + ".pub");
  EXPECT_EQ(good.code, 0) << good.err;
  EXPECT_NE(good.out.find("signature valid"), std::string::npos) << good.out;
  const CliRun unchecked = run("verify " + rcb);
  EXPECT_EQ(unchecked.code, 0) << unchecked.err;
  EXPECT_NE(unchecked.out.find("not checked"), std::string::npos) << unchecked.out;
  expect_error(run("verify " + rcb + " --key " + other + ".pub"), 7, "another key");
  const std::string plain = (dir / "plain.rcb").string();
  ASSERT_EQ(run("pack -q " + hex + " -o " + plain).code, 0);
  expect_error(run("verify " + plain + " --key " + key + ".pub"), 7, "not signed");
  // Damaged after signing: the payload no longer matches its SHA-256.
  std::string bytes = slurp(rcb);
  bytes.back() = static_cast<char>(bytes.back() ^ 1);
  expect_error(run("verify " + write("damaged.rcb", bytes) + " --key " + key + ".pub"), 3,
               "CRC-32");
  expect_error(run("verify " + rcb + " --key " + key), 3, "");  // the private key is no .pub
  expect_error(run("pack " + hex + " -o " + rcb + " --security-counter 1"), 2, "--sign");
  expect_error(run("pack " + rcb + " -o " + plain + " --sign " + key), 2, "container already");
  expect_error(run("pack " + hex + " -o " + rcb + " --sign /nonexistent.key"), 3, "");
}

TEST_F(Cli, BadInputFiles) {
  expect_error(run("pack /nonexistent/app.hex -o " + (dir / "x.rcb").string()), 3, "cannot open");
  const auto good = hex_file(mm::kAppAddress, app_bytes(64));
  std::string corrupt = good;
  corrupt[corrupt.find('\n') + 12] =
      corrupt[corrupt.find('\n') + 12] == '0' ? '1' : '0';  // line 2 data
  expect_error(run("pack " + write("bad.hex", corrupt) + " -o " + (dir / "x.rcb").string()), 3,
               "bad.hex:2: Intel HEX record checksum");
  expect_error(run("pack " + write("low.hex", hex_file(0x6000'0000, app_bytes(64))) + " -o x"), 3,
               "outside the application region");
  expect_error(run("pack " + write("bl.hex", hex_file(mm::kFlashBase, app_bytes(64))) + " -o x"), 3,
               "outside the application region");
  expect_error(run("pack " + write("a.bin", "12345678") + " -o x"), 2, "--load-address");
  expect_error(run("pack " + write("a.txt", "hello") + " -o x"), 3, "unknown file format");
  expect_error(run("pack " + write("empty.hex", "") + " -o x"), 3, "empty");
  expect_error(run("pack " + dir.string() + " -o x"), 3, "is a directory");
  expect_error(run("pack " + write("ok.hex", hex_file(mm::kAppAddress, app_bytes(64))) +
                   " -o /nonexistent/dir/x.rcb"),
               3, "cannot create");
  // flash checks the file before touching the bus (the bus here does not exist).
  expect_error(run("--bus socketcan://rtcbnone0 flash --node 1 " + write("bad2.hex", corrupt)), 3,
               "checksum");
}

TEST_F(Cli, PackWritesTheContainer) {
  const auto hex = write("app.hex", hex_file(mm::kAppAddress, app_bytes(1000)));
  const auto out = (dir / "app.rcb").string();
  const CliRun r = run(fmt::format(
      "pack {} -o {} --vendor-id 0x1234 --product-code 66 --image-version 3", hex, out));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto bytes = read_file(out);
  const Container c = parse_container(bytes, out);
  EXPECT_EQ(c.header.vendor_id, 0x1234U);
  EXPECT_EQ(c.header.product_code, 66U);
  EXPECT_EQ(c.header.image_version, 3U);
  EXPECT_EQ(c.header.payload_length, 1000U);
  EXPECT_NE(r.out.find("CRC-32"), std::string::npos);
  // Packing a container again gives the same bytes.
  const auto again = (dir / "again.rcb").string();
  ASSERT_EQ(run(fmt::format("pack {} -o {}", out, again)).code, 0);
  EXPECT_EQ(read_file(again), bytes);
  // A raw binary at the application address packs the same payload.
  std::ofstream(dir / "app.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(app_bytes(1000).data()), 1000);
  const auto from_bin = (dir / "bin.rcb").string();
  ASSERT_EQ(run(fmt::format("pack {} --load-address 0x70020000 -o {} --vendor-id 0x1234 "
                            "--product-code 66 --image-version 3",
                            (dir / "app.bin").string(), from_bin))
                .code,
            0);
  EXPECT_EQ(read_file(from_bin), bytes);
}

TEST_F(Cli, BusErrorsAreReported) {
  expect_error(run("--bus socketcan://rtcbnone0 info --node 1"), 4, "socketcan://rtcbnone0");
  std::uint16_t dead = 0;
  {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    dead = ntohs(a.sin_port);
    ::close(s);
  }
  expect_error(run(fmt::format("--bus socketcand://127.0.0.1:{}/can0 info --node 1", dead)), 4,
               "cannot connect");
  expect_error(run("--bus slcan:///nonexistent/tty info --node 1"), 4, "cannot open");
}

// socketcand server in front of a SimBus that runs in wall-clock time (1 µs virtual = 1 µs real).
class Bridge {
 public:
  explicit Bridge(bool with_board) {
    settings_.identity = {0x1234, 66, 1, 5};
    settings_.provisioning.node_id = 5;
    settings_.heartbeat_ms = 300;
    if (with_board) board_ = std::make_unique<test::SimBoard>(bus_, settings_);
    // stall(): after N download segments from the master, nothing reaches or leaves the node
    // for a while (a node busy elsewhere, a loose connector), then it answers again.
    bus_.set_fault_hook([this](const CanFrame& f, bool from_master) {
      const bool segment =
          from_master && f.id == 0x605 && (f.data[0] & 0x7F) != 0 && (f.data[0] & 0xE0) != 0xC0;
      if (segment && stall_after_ > 0 && --stall_after_ == 0)
        stall_end_ = bus_.clock().now() + stall_for_;
      return bus_.clock().now() < stall_end_ ? SimBus::Fault::kDrop : SimBus::Fault::kDeliver;
    });
    listen_ = test::listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~Bridge() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  std::string uri() const { return fmt::format("socketcand://127.0.0.1:{}/can0", port_); }
  test::SimBoard* board() { return board_.get(); }
  // Arms a stall of `duration` after the next `segments` block download segments.
  void stall(int segments, Micros duration) {
    stall_for_ = duration;
    stall_after_ = segments;
  }

 private:
  void send_text(int fd, const std::string& s) {
    (void)!::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
  }
  void serve() {
    const auto t0 = std::chrono::steady_clock::now();
    auto wall = [&] {
      return static_cast<Micros>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - t0)
                                     .count());
    };
    int fd = -1;
    std::string buf;
    while (!stop_) {
      bus_.run_until(std::max(bus_.clock().now(), wall()));
      if (fd < 0) {
        while (bus_.receive(bus_.clock().now())) {
        }
        pollfd p{listen_, POLLIN, 0};
        if (::poll(&p, 1, 1) > 0) {
          fd = ::accept(listen_, nullptr, nullptr);
          send_text(fd, "< hi >");
          buf.clear();
        }
        continue;
      }
      while (auto ev = bus_.receive(bus_.clock().now())) {
        std::string hex;
        for (int i = 0; i < ev->frame.dlc; ++i) hex += fmt::format("{:02X}", ev->frame.data[i]);
        send_text(fd, fmt::format("< frame {:03X} {}.{:06} {} >", ev->frame.id,
                                  ev->timestamp / 1000000, ev->timestamp % 1000000, hex));
      }
      pollfd q{fd, POLLIN, 0};
      if (::poll(&q, 1, 1) <= 0) continue;
      char tmp[4096];
      const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) {
        ::close(fd);
        fd = -1;
        continue;
      }
      buf.append(tmp, static_cast<std::size_t>(n));
      std::size_t end;
      while ((end = buf.find('>')) != std::string::npos) {
        const std::string msg = buf.substr(0, end + 1);
        buf.erase(0, end + 1);
        if (msg.find("< open ") != std::string::npos ||
            msg.find("< rawmode >") != std::string::npos) {
          send_text(fd, "< ok >");
        } else if (msg.find("< send ") != std::string::npos) {
          std::istringstream in(msg.substr(msg.find("send") + 4));
          std::string id_text;
          unsigned dlc = 0;
          in >> id_text >> dlc;
          CanFrame f;
          f.id = static_cast<std::uint32_t>(std::stoul(id_text, nullptr, 16));
          f.dlc = static_cast<std::uint8_t>(dlc);
          for (unsigned i = 0; i < dlc; ++i) {
            std::string b;
            in >> b;
            f.data[i] = static_cast<std::uint8_t>(std::stoul(b, nullptr, 16));
          }
          bus_.run_until(std::max(bus_.clock().now(), wall()));
          bus_.send(f);
        }
      }
    }
    if (fd >= 0) ::close(fd);
  }

  SimBus bus_{1'000'000};
  BootloaderSettings settings_;
  std::unique_ptr<test::SimBoard> board_;
  int listen_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> stall_after_{0};
  std::atomic<Micros> stall_for_{0};
  Micros stall_end_ = 0;  // bridge thread only
};

// An slcan adapter on a pseudo-terminal in front of a SimBus with the board (wall-clock time).
class SlcanBridge {
 public:
  SlcanBridge() {
    settings_.identity = {0x1234, 66, 1, 5};
    settings_.provisioning.node_id = 5;
    settings_.heartbeat_ms = 300;
    board_ = std::make_unique<test::SimBoard>(bus_, settings_);
    char name[256];
    if (::openpty(&master_, &slave_, name, nullptr, nullptr) != 0)
      throw std::runtime_error("openpty");
    path_ = name;
    thread_ = std::thread([this] { serve(); });
  }
  ~SlcanBridge() {
    stop_ = true;
    thread_.join();
    ::close(master_);
    ::close(slave_);
  }
  std::string uri() const { return "slcan://" + path_ + "?bitrate=1000000"; }
  test::SimBoard* board() { return board_.get(); }
  std::string commands() const { return commands_; }

 private:
  void reply(const std::string& s) { (void)!::write(master_, s.data(), s.size()); }
  Micros wall() const {
    return static_cast<Micros>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - started_)
                                   .count());
  }
  void handle(const std::string& line) {
    if (line.empty()) return;
    if (line[0] == 't' || line[0] == 'T') {
      if (auto f = slcan_decode(line); f && open_) {
        bus_.run_until(std::max(bus_.clock().now(), wall()));
        bus_.send(*f);
        reply("z\r");
      } else {
        reply("\a");
      }
      return;
    }
    commands_ += line + " ";
    if (line == "O") open_ = true;
    if (line == "C") open_ = false;
    reply(line == "S8" || line == "O" || line == "C" ? "\r" : "\a");
  }
  void serve() {
    std::string buf;
    while (!stop_) {
      bus_.run_until(std::max(bus_.clock().now(), wall()));
      while (auto ev = bus_.receive(bus_.clock().now())) {
        if (open_) reply(slcan_encode(ev->frame));
      }
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 1) <= 0) continue;
      char tmp[4096];
      const ssize_t n = ::read(master_, tmp, sizeof tmp);
      if (n <= 0) continue;
      buf.append(tmp, static_cast<std::size_t>(n));
      test::take_lines(buf, [this](const std::string& line) { handle(line); });
    }
  }
  SimBus bus_{1'000'000};
  BootloaderSettings settings_;
  std::unique_ptr<test::SimBoard> board_;
  int master_ = -1;
  int slave_ = -1;
  std::string path_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool open_ = false;
  std::string commands_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

TEST_F(Cli, FlashThroughAnSlcanAdapter) {
  SlcanBridge adapter;
  const auto hex = write("app.hex", hex_file(mm::kAppAddress, app_bytes(30'000)));
  const CliRun r = run(fmt::format("flash --bus '{}' --node 5 {}", adapter.uri(), hex));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("block transfer"), std::string::npos) << r.out;
  EXPECT_TRUE(adapter.board()->app_running());
  const CliRun i = run(fmt::format("--bus '{}' info --node 5 --json", adapter.uri()));
  EXPECT_NE(i.out.find("\"running\": \"application\""), std::string::npos) << i.out << i.err;
  // Wrong bit rate for this adapter (it only takes S8): a bus error naming the refusal.
  expect_error(run(fmt::format("--bus 'slcan://{}?bitrate=125000' info --node 5",
                               adapter.uri().substr(8, adapter.uri().find('?') - 8))),
               4, "refused bit rate");
}

TEST_F(Cli, NoNodeAnsweringEndsQuicklyWithItsOwnExitCode) {
  Bridge empty(false);
  const CliRun r = run(fmt::format("--bus {} --timeout 200 info --node 5", empty.uri()));
  expect_error(r, 5, "node 5 does not answer");
  EXPECT_LT(r.seconds, 5.0);
  const CliRun f = run(fmt::format("--bus {} --timeout 200 flash --node 5 {}", empty.uri(),
                                   write("app.hex", hex_file(mm::kAppAddress, app_bytes(100)))));
  expect_error(f, 5, "does not answer");
  const CliRun s = run(fmt::format("--bus {} scan --listen 300 --probe-timeout 20", empty.uri()));
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("no nodes found"), std::string::npos);
  // LSS on an empty bus: nothing unconfigured, quickly; identify answers "no node" (exit 5).
  const CliRun l = run(fmt::format("--bus {} lss scan --json", empty.uri()));
  EXPECT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out, "[]\n");
  EXPECT_LT(l.seconds, 5.0);
  expect_error(run(fmt::format("--bus {} lss identify --non-configured", empty.uri())), 5,
               "no LSS node");
}

TEST_F(Cli, FlashInfoScanStartStopOverSocketcand) {
  Bridge bridge(true);
  const auto hex = write("app.hex", hex_file(mm::kAppAddress, app_bytes(20'000)));
  CliRun r = run(fmt::format("--bus {} info --node 5 --json", bridge.uri()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"running\": \"bootloader\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"vendor_id\": 4660"), std::string::npos) << r.out;

  // The form of the issue: global options after the command.
  r = run(fmt::format("flash --bus {} --node 5 {}", bridge.uri(), hex));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("100%"), std::string::npos) << r.out;  // plain progress lines (not a tty)
  EXPECT_NE(r.out.find("is up"), std::string::npos) << r.out;
  EXPECT_TRUE(bridge.board()->app_running());

  r = run(fmt::format("--bus {} info --node 5", bridge.uri()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("application"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("flash status (0x1F57)"), std::string::npos) << r.out;

  r = run(fmt::format("--bus {} flash --node 5 {}", bridge.uri(), hex));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("already holds this image"), std::string::npos) << r.out;

  r = run(fmt::format("--bus {} scan --json --listen 700 --probe-timeout 250", bridge.uri()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("{\"node\": 5, \"sdo\": true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"running\": \"application\""), std::string::npos) << r.out;

  r = run(fmt::format("--bus {} stop --node 5", bridge.uri()));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run(fmt::format("--bus {} info --node 5 --json", bridge.uri()));
  EXPECT_NE(r.out.find("\"running\": \"bootloader\""), std::string::npos) << r.out;
  r = run(fmt::format("--bus {} start --node 5", bridge.uri()));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run(fmt::format("--bus {} reset --node 5", bridge.uri()));
  EXPECT_EQ(r.code, 0) << r.err;

  // Ctrl-C in the middle of a download: exit code 130, one line, and the node is usable at once.
  // The signal goes to the CLI itself, once its progress shows the download running.
  const auto big = write("big.hex", hex_file(mm::kAppAddress, app_bytes(300'000)));
  const pid_t pid = spawn({"--bus", bridge.uri(), "flash", "--force", "--node", "5", big});
  ASSERT_GT(pid, 0);
  // Two progress lines ("  0%  0 / N bytes ...", " 10%  ..."): the download is running.
  EXPECT_TRUE(wait_output(" bytes  ", 2, 60.0)) << slurp(dir / "stdout");
  ::kill(pid, SIGINT);
  const CliRun i = finish(pid, 20.0);
  expect_error(i, 130, "interrupted");
  EXPECT_NE(i.out.find("downloading"), std::string::npos) << i.out;
  r = run(fmt::format("--bus {} info --node 5 --json", bridge.uri()));
  EXPECT_EQ(r.code, 0) << r.err;

  // Wrong product: refused before anything is sent, with its own exit code.
  expect_error(run(fmt::format("--bus {} flash --node 5 --product-code 7 {}", bridge.uri(), hex)),
               9, "--force-product");
}

// A device that answers with garbage, or with nothing, ends the command within its timeout with
// a bus error naming the device (issue 16, items 5 and 12).
TEST_F(Cli, NeverHangsOnABadDevice) {
  CliRun r = run("--bus 'slcan:///dev/zero?bitrate=500000' info --node 5", 20);
  expect_error(r, 4, "slcan:///dev/zero?bitrate=500000: ");
  EXPECT_LT(r.seconds, 10.0);
  using Mode = test::BadSocketcandServer::Mode;
  auto against = [&](Mode mode) {
    test::BadSocketcandServer server(mode);
    CliRun c = run(fmt::format("--bus socketcand://127.0.0.1:{}/can0 --timeout 300 info --node 5",
                               server.port()),
                   20);
    EXPECT_LT(c.seconds, 10.0);
    EXPECT_NE(c.err.find(fmt::format("socketcand://127.0.0.1:{}/can0", server.port())),
              std::string::npos)
        << c.err;
    return c;
  };
  expect_error(against(Mode::kSilentAfterGreeting), 4, "no answer to 'open can0'");
  expect_error(against(Mode::kGarbageAfterGreeting), 4, "not socketcand messages");
  expect_error(against(Mode::kGarbageAfterRawmode), 4, "not socketcand messages");
}

// SIGTERM (as sent by `timeout` or systemd) ends a waiting CLI at once with exit code 130.
TEST_F(Cli, SigtermEndsAWaitingCommand) {
  test::BadSocketcandServer server(test::BadSocketcandServer::Mode::kSilentAfterRawmode);
  const pid_t pid = spawn({"--bus", fmt::format("socketcand://127.0.0.1:{}/can0", server.port()),
                           "scan", "--no-probe", "--listen", "600000"});
  ASSERT_GT(pid, 0);
  // Connected and past the handshake: the server has seen "< rawmode >".
  for (int i = 0; i < 1000 && server.received().find("rawmode") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGTERM);
  const CliRun r = finish(pid, 10.0);
  expect_error(r, 130, "interrupted");
}

// The socketcand channel is an interface name: anything else would be sent as protocol text
// (here an NMT reset-all) and is refused before connecting (issue 16, item 13).
TEST_F(Cli, SocketcandChannelMustBeAnInterfaceName) {
  test::BadSocketcandServer server(test::BadSocketcandServer::Mode::kSilentAfterRawmode);
  const CliRun r = run(fmt::format(
      "--bus 'socketcand://127.0.0.1:{}/can0 > < send 000 2 81 00 ' reset --node 5 --no-wait",
      server.port()));
  expect_error(r, 2, "interface name");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(server.connections(), 0);
  EXPECT_EQ(server.received(), "");
}

// The exit-code table of docs/host-tool.md, one row after the other through the built CLI (row 1,
// a bug, cannot be caused on purpose: ExitCodes.EveryFailureMapsToItsDocumentedCode in
// error_test.cpp covers its mapping).
// A full disk or a closed stdout is a failure the user must see, not exit code 0.
TEST_F(Cli, OutputThatCannotBeWrittenIsAFailure) {
  for (const char* args : {"--help >/dev/full", "--version >/dev/full"}) {
    SCOPED_TRACE(args);
    const CliRun r = run(args);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("rtcanboot: cannot write the output to stdout: No space left on device"),
              std::string::npos)
        << r.err;
  }
  EXPECT_EQ(run("--help").code, 0);
}

TEST_F(Cli, ExitCodeTable) {
  Bridge bridge(true);
  const std::string bus = "--bus " + bridge.uri();
  const auto hex = write("app.hex", hex_file(mm::kAppAddress, app_bytes(20'000)));
  {
    SCOPED_TRACE("0 success");
    const CliRun r = run(fmt::format("{} flash --node 5 --no-start {}", bus, hex));
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "");
  }
  {
    SCOPED_TRACE("2 usage");
    expect_error(run(bus + " info --node 200"), 2, "not a node-ID");
    expect_error(run(bus + " flash --node 5 --frobnicate " + hex), 2, "--frobnicate");
    expect_error(run("--bus socketcand://127.0.0.1:1/a+b info --node 5"), 2, "interface name");
  }
  {
    SCOPED_TRACE("3 bad input");
    expect_error(run(bus + " flash --node 5 " + write("bad.srec", "S1130000\n")), 3, "bad.srec");
  }
  {
    SCOPED_TRACE("4 bus error");
    expect_error(run("--bus 'slcan:///dev/zero?bitrate=500000' info --node 5", 20), 4,
                 "slcan:///dev/zero");
  }
  {
    SCOPED_TRACE("5 no such node");
    expect_error(run(bus + " --timeout 200 info --node 9"), 5, "node 9 does not answer");
  }
  {
    SCOPED_TRACE("6 timeout: the node stalls for 2.5 s part-way through the download");
    bridge.stall(200, 2'500'000);
    // --full: the same image again would otherwise be a header-only sparse download;
    // --no-compress: compressed, the whole image is fewer than the 200 frames before the stall.
    const CliRun r =
        run(fmt::format("{} flash --force --full --no-compress --node 5 --no-start {}", bus, hex));
    expect_error(r, 6, "download interrupted after");
  }
  {
    SCOPED_TRACE("7 image rejected: the node refuses an image for another product");
    expect_error(
        run(fmt::format("{} flash --force --force-product --product-code 7 --node 5 {}", bus, hex)),
        7, "node 5 rejected the image");
  }
  {
    SCOPED_TRACE("8 SDO abort: start without a valid program (the last downloads failed)");
    expect_error(run(bus + " start --node 5"), 8, "0x08000022");
  }
  {
    SCOPED_TRACE("9 wrong product");
    expect_error(run(fmt::format("{} flash --node 5 --product-code 7 {}", bus, hex)), 9,
                 "--force-product");
  }
  {
    SCOPED_TRACE("130 interrupted (SIGINT to the CLI itself while it waits)");
    const pid_t pid = spawn({"--bus", bridge.uri(), "scan", "--no-probe", "--listen", "600000"});
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ::kill(pid, SIGINT);
    expect_error(finish(pid, 10.0), 130, "interrupted");
  }
}

}  // namespace
}  // namespace rtcanboot::host
