# Compiler flags for kvbm's own targets, sanitizers, and the per-file test helper.

set(KVBM_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wno-missing-field-initializers)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  # DESIGN.md §6: a missed lock is a compile error.
  list(APPEND KVBM_WARNINGS -Wthread-safety -Wthread-safety-beta)
endif()
if(KVBM_WERROR)
  list(APPEND KVBM_WARNINGS -Werror)
endif()

if(KVBM_SANITIZE STREQUAL "asan")
  set(KVBM_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
elseif(KVBM_SANITIZE STREQUAL "tsan")
  set(KVBM_SAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
elseif(KVBM_SANITIZE STREQUAL "none" OR KVBM_SANITIZE STREQUAL "OFF" OR KVBM_SANITIZE STREQUAL "")
  set(KVBM_SAN_FLAGS "")
else()
  message(FATAL_ERROR "KVBM_SANITIZE must be none, asan or tsan, got '${KVBM_SANITIZE}'")
endif()
if(KVBM_SAN_FLAGS)
  # C/C++ only: nvcc must not see clang's sanitizer flags.
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX,C>:${KVBM_SAN_FLAGS}>")
  add_link_options(${KVBM_SAN_FLAGS})
  # Tests that check algorithmic outcomes on large traces (not memory or thread safety) run in the
  # Release pass only; they skip themselves where this is defined, to keep the sanitizer passes short.
  add_compile_definitions(KVBM_SANITIZER_BUILD=1)
endif()

# kvbm_library(NAME SOURCES... DEPS ...): one static library per DESIGN.md layer. Each is installed and
# exported as kvbm::<layer> (cmake/KvbmPackage.cmake reads the list in the global property KVBM_LIBRARIES, in
# the order they were declared: dependencies first). Position independent: the Python module and users'
# shared objects link them.
function(kvbm_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                             PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE ${KVBM_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  set_property(TARGET ${name} PROPERTY POSITION_INDEPENDENT_CODE ON)
  set_property(GLOBAL APPEND PROPERTY KVBM_LIBRARIES ${name})
endfunction()

# kvbm_add_test(path/to/foo_test.cc DEPS ...): one gtest binary per file, registered with ctest.
function(kvbm_add_test src)
  cmake_parse_arguments(ARG "" "TIMEOUT" "DEPS;LABELS" ${ARGN})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE ${KVBM_WARNINGS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()
