# The installed package (issue 25): `cmake --install build --prefix P` puts
#   P/include/kvbm/...                   the public headers
#   P/lib/libkvbm_<layer>.a              one static library per layer (kvbm_library in KvbmHelpers.cmake)
#   P/lib/cmake/kvbm/kvbmConfig.cmake    find_package(kvbm CONFIG): kvbm::kvbm (every layer) and kvbm::<layer>,
#                                        their link interface, and the libraries it needs found again
#   P/lib/pkgconfig/kvbm.pc              the same for pkg-config
#   P/bin/kvbm                           the CLI
# and the Python package (python/CMakeLists.txt). tests/install/ builds examples/quick_start.cc against it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

get_property(KVBM_LIBRARIES GLOBAL PROPERTY KVBM_LIBRARIES)

# The umbrella target. The CLI is the target named kvbm, hence kvbm_all exported as kvbm::kvbm.
add_library(kvbm_all INTERFACE)
target_link_libraries(kvbm_all INTERFACE ${KVBM_LIBRARIES})
set_target_properties(kvbm_all PROPERTIES EXPORT_NAME kvbm)
# The same names in this build as after find_package, so add_subdirectory(kvbm) users write the same CMake.
add_library(kvbm::kvbm ALIAS kvbm_all)
foreach(_kvbm_lib IN LISTS KVBM_LIBRARIES)
  string(REGEX REPLACE "^kvbm_" "" _kvbm_layer ${_kvbm_lib})
  set_target_properties(${_kvbm_lib} PROPERTIES EXPORT_NAME ${_kvbm_layer})
  add_library(kvbm::${_kvbm_layer} ALIAS ${_kvbm_lib})
endforeach()

set(KVBM_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)
install(TARGETS ${KVBM_LIBRARIES} kvbm_all EXPORT kvbmTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/kvbm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT kvbmTargets NAMESPACE kvbm:: DESTINATION ${KVBM_CMAKE_INSTALL_DIR})
configure_package_config_file(cmake/kvbmConfig.cmake.in ${CMAKE_BINARY_DIR}/kvbmConfig.cmake
                              INSTALL_DESTINATION ${KVBM_CMAKE_INSTALL_DIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/kvbmConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/kvbmConfig.cmake ${CMAKE_BINARY_DIR}/kvbmConfigVersion.cmake
        DESTINATION ${KVBM_CMAKE_INSTALL_DIR})

# kvbm.pc: the static libraries in link order (each before what it depends on: KVBM_LIBRARIES is declared
# dependencies first), and as Requires the pkg-config modules of every library they link. msgpack (header-only,
# no .pc) is needed only to compile kvbm itself.
set(KVBM_PC_LIBS "")
foreach(_kvbm_lib IN LISTS KVBM_LIBRARIES)
  string(PREPEND KVBM_PC_LIBS "-l${_kvbm_lib} ")
endforeach()
set(KVBM_PC_REQUIRES absl_status absl_statusor absl_strings absl_str_format absl_flat_hash_map cppzmq simdjson)
foreach(_kvbm_pkg IN LISTS KVBM_PKG_CONFIG_MODULES)
  string(REGEX REPLACE ".*=" "" _kvbm_pkg_module "${_kvbm_pkg}")
  list(APPEND KVBM_PC_REQUIRES ${_kvbm_pkg_module})
endforeach()
list(JOIN KVBM_PC_REQUIRES " " KVBM_PC_REQUIRES)
if(KVBM_WITH_CUDA)
  set(KVBM_PC_WITH_CUDA 1)
  string(APPEND KVBM_PC_LIBS
         "-L${CUDAToolkit_LIBRARY_DIR} -Wl,-rpath,${CUDAToolkit_LIBRARY_DIR} -lcudart ")
else()
  set(KVBM_PC_WITH_CUDA 0)
endif()
# Relocatable: the prefix is found from the .pc file's own folder, so `cmake --install --prefix P` works.
file(RELATIVE_PATH KVBM_PC_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" KVBM_PC_PREFIX "${KVBM_PC_PREFIX}")
configure_file(cmake/kvbm.pc.in ${CMAKE_BINARY_DIR}/kvbm.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/kvbm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(TARGETS kvbm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
