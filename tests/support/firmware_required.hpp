// Tests that need the cross-built firmware skip without it (a host-only build), except where the
// firmware must be there: with RTCANBOOT_FIRMWARE_REQUIRED=1 (script/test sets it after building
// everything) a missing image fails the test, so it can never pass as a silent skip.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>

namespace rtcanboot::test {

inline bool firmware_required() {
  const char* value = std::getenv("RTCANBOOT_FIRMWARE_REQUIRED");
  return value != nullptr && *value != '\0' && *value != '0';
}

}  // namespace rtcanboot::test

// Skips (or, where the firmware is required, fails) the current test when `missing` is true.
#define RTCANBOOT_SKIP_WITHOUT_FIRMWARE(missing, what)                   \
  do {                                                                   \
    if (missing) {                                                       \
      if (::rtcanboot::test::firmware_required()) {                      \
        GTEST_FAIL() << what << " (RTCANBOOT_FIRMWARE_REQUIRED is set)"; \
      } else {                                                           \
        GTEST_SKIP() << what;                                            \
      }                                                                  \
    }                                                                    \
  } while (false)
