// libFuzzer target: the text the host tool reads from buses and command lines. The first byte
// picks the parser:
//   0  slcan_decode (one line)          2  parse_bus_uri
//   1  socketcand_decode_frame          3  SlcanReader, 4  SocketcandReader (fed in chunks)
//
// Invariants: nothing crashes or throws anything but Error; a decoded frame has dlc <= 8 and an
// identifier in range, and encoding it and decoding again gives the same frame; a parsed URI
// prints (to_string) as a URI that parses to the same bus; a rejected URI is a usage error of one
// line; the readers keep their buffers bounded, only ever throw a bus error naming the source, and
// only after the junk limit.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/transports.hpp"

#include "fuzz_check.hpp"

namespace {

using namespace rtcanboot;
using namespace rtcanboot::host;

bool same(const CanFrame& a, const CanFrame& b) {
  if (a.id != b.id || a.flags != b.flags || a.dlc != b.dlc) return false;
  return a.remote() || std::memcmp(a.data, b.data, a.dlc) == 0;
}

void check_frame(const CanFrame& f) {
  FUZZ_CHECK(f.dlc <= 8);
  FUZZ_CHECK(f.extended() ? f.id <= 0x1FFF'FFFFU : f.id <= 0x7FFU);
}

void slcan_line(std::string_view line) {
  const auto f = slcan_decode(line);
  if (!f) return;
  check_frame(*f);
  std::string again = slcan_encode(*f);
  FUZZ_CHECK(!again.empty() && again.back() == '\r');
  again.pop_back();
  const auto g = slcan_decode(again);
  FUZZ_CHECK(g && same(*f, *g));
}

void socketcand_message(std::string_view message) {
  const auto f = socketcand_decode_frame(message);
  if (!f) return;
  check_frame(*f);
  FUZZ_CHECK(!f->remote());
  // What a server would send for it: "frame ID SEC.USEC DATA".
  char id[16];
  std::snprintf(id, sizeof id, f->extended() ? "%08X" : "%03X", static_cast<unsigned>(f->id));
  std::string text = std::string("frame ") + id + " 1.000000 ";
  for (int i = 0; i < f->dlc; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%02X", f->data[i]);
    text += b;
  }
  const auto g = socketcand_decode_frame(text);
  FUZZ_CHECK(g && same(*f, *g));
}

void bus_uri(std::string_view text) {
  BusUri uri;
  try {
    uri = parse_bus_uri(text);
  } catch (const Error& e) {
    FUZZ_CHECK(e.kind() == ErrorKind::kUsage);
    FUZZ_CHECK(std::string_view(e.what()).find('\n') == std::string_view::npos ||
               text.find('\n') != std::string_view::npos);
    return;
  }
  if (uri.scheme == BusUri::Scheme::kSocketcand)
    FUZZ_CHECK(socketcand_channel_valid(uri.interface));
  BusUri back;
  try {
    back = parse_bus_uri(to_string(uri));
  } catch (const Error&) {
    FUZZ_CHECK(false);  // what to_string prints must parse
  }
  FUZZ_CHECK(back.scheme == uri.scheme);
  FUZZ_CHECK(back.interface == uri.interface);
  FUZZ_CHECK(back.host == uri.host);
  FUZZ_CHECK(back.port == uri.port);
  FUZZ_CHECK(back.bitrate == uri.bitrate);
}

// Feeds the reader in chunks whose sizes come from the input, taking every item after each chunk.
template <typename Reader, typename Take>
void reader(std::string_view data, std::size_t max_item, std::size_t junk_limit, Take take) {
  Reader r("src://fuzz");
  std::size_t at = 0;
  try {
    while (at < data.size()) {
      const std::size_t chunk = 1 + static_cast<unsigned char>(data[at]) % 64;
      const std::string_view piece = data.substr(at + 1, chunk);
      at += 1 + chunk;
      r.feed(piece);
      while (take(r)) {
        FUZZ_CHECK(r.junk() == 0);  // a valid item resets the junk count
      }
      FUZZ_CHECK(r.buffered() <= max_item + chunk);
      FUZZ_CHECK(r.junk() < junk_limit);
    }
  } catch (const Error& e) {
    FUZZ_CHECK(e.kind() == ErrorKind::kBus);
    FUZZ_CHECK(std::string_view(e.what()).rfind("src://fuzz: received ", 0) == 0);
    FUZZ_CHECK(r.junk() >= junk_limit);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 8192) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      slcan_line(text);
      break;
    case 1:
      socketcand_message(text);
      break;
    case 2:
      bus_uri(text);
      break;
    case 3:
      reader<SlcanReader>(text, SlcanReader::kMaxLine, SlcanReader::kJunkLimit, [](SlcanReader& r) {
        const auto item = r.next();
        if (item && item->kind == SlcanItem::Kind::kFrame) check_frame(item->frame);
        return item.has_value();
      });
      break;
    default:
      reader<SocketcandReader>(text, SocketcandReader::kMaxMessage, SocketcandReader::kJunkLimit,
                               [](SocketcandReader& r) {
                                 const auto msg = r.next();
                                 if (msg) FUZZ_CHECK(msg->size() < SocketcandReader::kMaxMessage);
                                 return msg.has_value();
                               });
      break;
  }
  return 0;
}
