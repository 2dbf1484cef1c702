// Makes every violation of the NOR flash fake a test failure.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "nor_flash_fake.hpp"

namespace rtcanboot::test {

inline void fail_on_violation(NorFlashFake& flash) {
  flash.set_violation_handler(
      [](const std::string& message) { ADD_FAILURE() << "NOR flash violation: " << message; });
}

// Runs the flash's running operation to its end.
inline void finish_operation(NorFlashFake& flash) {
  flash.set_now(flash.busy_until());
  flash.busy();
}

}  // namespace rtcanboot::test
