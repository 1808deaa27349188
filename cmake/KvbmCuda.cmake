# Decides KVBM_WITH_CUDA and sets the CUDA-only sources and libraries.
#   KVBM_CUDA_STORAGE_SOURCES   storage/cuda_memory.cc or its stub
#   KVBM_CUDA_TRANSFER_SOURCES  transfer/cuda_path.cc (+ the kernel objects) or its stub
#   KVBM_CUDA_LIBS              CUDA::cudart when on
#   KVBM_CUDA_KERNELS           ON when the gather/scatter kernel (transfer/cuda_kernels.cu) is compiled
#
# The build never fails because of nvcc: the kernel file is compiled only when a probe compile with the
# chosen host compiler succeeds; otherwise the CUDA path copies chunk by chunk with cudaMemcpyAsync.
find_package(CUDAToolkit QUIET)
set(_kvbm_cuda_default OFF)
if(CUDAToolkit_FOUND AND KVBM_SANITIZE STREQUAL "none")
  set(_kvbm_cuda_default ON)
endif()
option(KVBM_WITH_CUDA "Build the CUDA storage and transfer paths" ${_kvbm_cuda_default})
option(KVBM_WITH_CUDA_KERNELS "Compile the CUDA gather/scatter kernel with nvcc (when it works)" ON)
# Ampere (A100) and Hopper (H100/H200); each also embeds PTX for newer GPUs.
set(KVBM_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures for the kvbm kernels")
set(KVBM_CUDA_KERNELS OFF)

if(KVBM_WITH_CUDA)
  if(NOT CUDAToolkit_FOUND)
    message(FATAL_ERROR "KVBM_WITH_CUDA=ON but the CUDA toolkit was not found")
  endif()
  message(STATUS "kvbm: CUDA ${CUDAToolkit_VERSION} — building pinned/device storage and the CUDA transfer path")
  set(KVBM_CUDA_STORAGE_SOURCES storage/cuda_memory.cc)
  set(KVBM_CUDA_TRANSFER_SOURCES transfer/cuda_path.cc)
  set(KVBM_CUDA_LIBS CUDA::cudart)
  add_compile_definitions(KVBM_WITH_CUDA=1)

  if(KVBM_WITH_CUDA_KERNELS)
    # nvcc accepts only some host compilers; g++ is the one it supports everywhere, so prefer it over
    # the project's clang unless the user chose one (CMAKE_CUDA_HOST_COMPILER or CUDAHOSTCXX).
    if(NOT CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX})
      if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        set(_kvbm_cuda_host ${CMAKE_CXX_COMPILER})
      else()
        find_program(_kvbm_cuda_host NAMES g++ c++)
      endif()
      if(_kvbm_cuda_host)
        set(CMAKE_CUDA_HOST_COMPILER ${_kvbm_cuda_host} CACHE FILEPATH "Host compiler for nvcc")
      endif()
    endif()
    if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
      set(CMAKE_CUDA_COMPILER ${CUDAToolkit_NVCC_EXECUTABLE} CACHE FILEPATH "CUDA compiler")
    endif()

    # Probe: compile a kernel for the chosen architectures the way the build will. enable_language()
    # cannot fail softly, so it runs only after this succeeded.
    if(NOT DEFINED KVBM_CUDA_PROBE_OK AND CMAKE_CUDA_COMPILER)
      set(_probe_dir ${CMAKE_BINARY_DIR}/CMakeFiles/kvbm_cuda_probe)
      file(WRITE ${_probe_dir}/probe.cu
           "__global__ void kvbm_probe(int* p) { p[threadIdx.x] = 1; }\n"
           "void kvbm_probe_launch(int* p) { kvbm_probe<<<1, 32>>>(p); }\n")
      set(_probe_args -std=c++17 -c ${_probe_dir}/probe.cu -o ${_probe_dir}/probe.o)
      foreach(_arch IN LISTS KVBM_CUDA_ARCHITECTURES)
        list(APPEND _probe_args "--generate-code=arch=compute_${_arch},code=sm_${_arch}")
      endforeach()
      if(CMAKE_CUDA_HOST_COMPILER)
        list(PREPEND _probe_args -ccbin ${CMAKE_CUDA_HOST_COMPILER})
      endif()
      execute_process(COMMAND ${CMAKE_CUDA_COMPILER} ${_probe_args}
                      RESULT_VARIABLE _probe_rc OUTPUT_VARIABLE _probe_out ERROR_VARIABLE _probe_out)
      if(_probe_rc EQUAL 0)
        set(KVBM_CUDA_PROBE_OK ON CACHE INTERNAL "nvcc compiled the kvbm probe kernel")
      else()
        set(KVBM_CUDA_PROBE_OK OFF CACHE INTERNAL "nvcc compiled the kvbm probe kernel")
        message(STATUS "kvbm: nvcc probe failed, the CUDA path will copy chunk by chunk:\n${_probe_out}")
      endif()
    endif()

    if(KVBM_CUDA_PROBE_OK)
      set(CMAKE_CUDA_ARCHITECTURES ${KVBM_CUDA_ARCHITECTURES})
      enable_language(CUDA)
      set(KVBM_CUDA_KERNELS ON)
      # Only nvcc flags reach this target: kvbm's clang warnings (KVBM_WARNINGS) are not applied here.
      add_library(kvbm_cuda_kernels OBJECT ${PROJECT_SOURCE_DIR}/src/transfer/cuda_kernels.cu)
      set_target_properties(kvbm_cuda_kernels PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                                                         POSITION_INDEPENDENT_CODE ON)
      target_include_directories(kvbm_cuda_kernels PRIVATE ${PROJECT_SOURCE_DIR}/src)
      target_compile_options(kvbm_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>)
      target_link_libraries(kvbm_cuda_kernels PRIVATE CUDA::cudart)
      list(APPEND KVBM_CUDA_TRANSFER_SOURCES $<TARGET_OBJECTS:kvbm_cuda_kernels>)
      add_compile_definitions(KVBM_CUDA_KERNELS=1)
      message(STATUS "kvbm: CUDA gather/scatter kernel for sm ${KVBM_CUDA_ARCHITECTURES} "
                     "(host compiler ${CMAKE_CUDA_HOST_COMPILER})")
    endif()
  endif()
else()
  message(STATUS "kvbm: building without CUDA")
  set(KVBM_CUDA_STORAGE_SOURCES storage/cuda_memory_stub.cc)
  set(KVBM_CUDA_TRANSFER_SOURCES transfer/cuda_path_stub.cc)
  set(KVBM_CUDA_LIBS "")
endif()
