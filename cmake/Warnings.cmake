# Warnings are errors everywhere: firmware, host tool, twin and tests.
function(rtcanboot_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Werror -Wshadow -Wcast-align -Wundef
    $<$<COMPILE_LANGUAGE:CXX>:-Wold-style-cast -Woverloaded-virtual>)
endfunction()

# Freestanding rules for code that runs on the chip (the core is built this way on the host too).
function(rtcanboot_freestanding target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions -fno-rtti -fno-threadsafe-statics>)
endfunction()
