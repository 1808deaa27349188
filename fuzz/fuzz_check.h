// A failed invariant in a fuzz target: print what broke and abort, so libFuzzer records the input.
#pragma once

#include <cstdio>
#include <cstdlib>

#define KVBM_FUZZ_CHECK(cond, ...)                                                           \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                     \
      std::fprintf(stderr, "\n");                                                            \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
