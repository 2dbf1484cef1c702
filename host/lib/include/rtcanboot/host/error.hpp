// Errors of the host library. Every failure a user can cause or meet is an Error with a kind;
// the CLI maps the kind to its exit code and prints the message as one line.
#pragma once

#include <stdexcept>
#include <string>

namespace rtcanboot::host {

enum class ErrorKind {
  kInternal = 1,       // a bug or an unexpected system failure
  kUsage = 2,          // bad command line (unknown option, bus URI typo, bad number)
  kInput = 3,          // unreadable or malformed input file, image outside the application region
  kBus = 4,            // the bus cannot be opened or failed (bus-off, adapter gone)
  kNoNode = 5,         // the addressed node does not answer at all
  kTimeout = 6,        // the node answered before but stopped answering part-way
  kRejected = 7,       // the node refused the image (0x1F57 reason) or it failed verification
  kAborted = 8,        // an SDO transfer was aborted (by the node or by us) for another reason
  kWrongProduct = 9,   // the image is for another vendor/product (use --force-product)
  kNotConfirmed = 10,  // the new application started but never confirmed that it runs (trial boot)
  kSelfTestFailed = 11,  // the node's bring-up self-test reported a failing check
  kInterrupted = 130,    // SIGINT/SIGTERM (request_interrupt): transfers aborted cleanly
};

// Process exit code for an error kind (0 is success).
constexpr int exit_code(ErrorKind kind) {
  return static_cast<int>(kind);
}
const char* to_string(ErrorKind kind);

// Asks every wait in the library to stop: a running SDO transfer is aborted (abort frame sent)
// and Error(kInterrupted) is thrown. Async-signal-safe: meant for SIGINT/SIGTERM handlers.
void request_interrupt();
bool interrupt_requested();
void clear_interrupt();

// Installs SIGINT and SIGTERM handlers for a program built on the library (the CLI): the first
// signal calls request_interrupt(), so the running transfer is aborted on the bus and the program
// ends with kInterrupted; a second signal ends the process at once with the signal's default
// action (whatever the program is doing, even if it is stuck), as if no handler were installed.
void install_interrupt_handlers();

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// How a command that ended with exception `e` reports it: the exit code (an Error's kind, 1 for
// anything else: a bug) and the one line for stderr ("rtcanboot: ...", line breaks flattened).
struct FailureReport {
  int exit_code = 0;
  std::string line;
};
FailureReport report_failure(const std::exception& e);

}  // namespace rtcanboot::host
