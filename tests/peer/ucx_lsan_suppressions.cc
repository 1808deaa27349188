// Linked into every UCX test binary and the helper they spawn (tests/CMakeLists.txt): LSan reads this
// hook once per process, so it must be defined exactly once per binary.
// UCX 1.13's transport modules keep a few small allocations until exit (libuct, not kvbm): not leaks of ours.
extern "C" const char* __lsan_default_suppressions() { return "leak:libuct.so\nleak:libucs.so\nleak:libucp.so\n"; }
