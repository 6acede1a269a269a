# All compiler and linker flags live here: warnings, hardening, sanitizers
# and libFuzzer. Targets never add flags of their own.

option(MG_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(MG_FUZZ "Build the libFuzzer harnesses (needs clang)" OFF)

# Linux only (STYLE.md): the GNU interfaces are always on.
add_compile_definitions(_GNU_SOURCE)

add_compile_options(
  -Wall -Wextra -Werror
  -Wshadow -Wpointer-arith -Wformat=2 -Wstrict-prototypes
  -Wmissing-prototypes -Wno-unused-parameter
  -fno-strict-aliasing
  -fstack-protector-strong
  -fstack-clash-protection
)

# PIE and full RELRO for every executable.
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
add_link_options(-pie -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack)

if(MG_SANITIZE)
  # _FORTIFY_SOURCE and ASan fight over the same libc calls; the sanitizer
  # build checks more than fortify would.
  add_compile_options(-O1 -g -fno-omit-frame-pointer
    -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  add_compile_definitions(MG_SANITIZED=1)
else()
  add_compile_options(-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
endif()

if(MG_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MG_FUZZ needs clang (CC=clang)")
  endif()
  # Libraries are instrumented for coverage; only harnesses link the
  # fuzzer's main().
  add_compile_options(-fsanitize=fuzzer-no-link)
  set(MG_FUZZ_LINK_FLAGS -fsanitize=fuzzer)
endif()
