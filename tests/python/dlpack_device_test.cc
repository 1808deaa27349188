// Where the Python module's DLPack export says kvbm memory is (python/dlpack.h): the device a consumer such
// as torch.from_dlpack builds its tensor on. The device path itself runs in tests/python/test_kvbm.py where a
// GPU is present.
#include "dlpack.h"

#include <gtest/gtest.h>

namespace kvbm::python {
namespace {

TEST(DlpackDeviceTest, HostMemoryIsCpu) {
  EXPECT_EQ(dlpack_device(StorageKind::kSystem, -1), (DLDevice{kDLCPU, 0}));
  // Pinned memory is host memory: kDLCPU, whatever device the CUDA context was on.
  EXPECT_EQ(dlpack_device(StorageKind::kPinned, -1), (DLDevice{kDLCPU, 0}));
  EXPECT_EQ(dlpack_device(StorageKind::kPinned, 2), (DLDevice{kDLCPU, 0}));
}

TEST(DlpackDeviceTest, DeviceMemoryIsCudaOnItsDevice) {
  EXPECT_EQ(dlpack_device(StorageKind::kDevice, 0), (DLDevice{kDLCUDA, 0}));
  EXPECT_EQ(dlpack_device(StorageKind::kDevice, 5), (DLDevice{kDLCUDA, 5}));
  static_assert(kDLCPU == 1 && kDLCUDA == 2, "the values of DLDeviceType in dlpack.h");
}

TEST(DlpackDeviceTest, StorageTheCpuCannotAddressHasNoTensor) {
  EXPECT_EQ(dlpack_device(StorageKind::kDisk, -1), std::nullopt);
  EXPECT_EQ(dlpack_device(StorageKind::kRemote, -1), std::nullopt);
}

}  // namespace
}  // namespace kvbm::python
