#include "kvbm/storage/disk_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kvbm/layout/layout.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

// A fresh directory under `parent`, removed (with anything left in it) at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& parent = "/tmp") {
    std::string pattern = parent + "/kvbm-disk-test-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    if (path_.empty()) return;
    for (const std::string& name : entries()) (void)unlink((path_ + "/" + name).c_str());
    (void)rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] bool ok() const { return !path_.empty(); }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::vector<std::string> entries() const {
    std::vector<std::string> names;
    DIR* dir = opendir(path_.c_str());
    if (dir == nullptr) return names;
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(dir);
    return names;
  }

 private:
  std::string path_;
};

bool fd_has_o_direct(int fd) { return (fcntl(fd, F_GETFL) & O_DIRECT) != 0; }

// Whether the file system of `dir` accepts O_DIRECT, probed independently of DiskFile.
bool accepts_o_direct(const std::string& dir) {
  const std::string path = dir + "/odirect-probe";
  const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
  const bool accepted = fd >= 0;
  if (fd >= 0) close(fd);
  (void)unlink(path.c_str());
  return accepted;
}

TEST(DiskFileTest, CreatesPrivateReservedFileWithAlignedRegions) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::vector<std::uint64_t> sizes = {100, 8192, 5000, 4096};
  auto file = DiskFile::create(sizes, {.directory = dir.path()});
  ASSERT_TRUE(file.ok()) << file.status();
  const DiskFile& f = **file;
  EXPECT_EQ(f.kind(), StorageKind::kDisk);
  ASSERT_EQ(f.num_regions(), sizes.size());
  EXPECT_EQ(f.region_sizes(), sizes);
  EXPECT_TRUE(f.host_region(0).empty());
  EXPECT_THAT(f.path(), StartsWith(dir.path() + "/kvbm-g3-"));
  EXPECT_EQ(dir.entries().size(), 1u);

  // Back to back, each on a 4 KiB boundary, none overlapping the next, all inside the file.
  EXPECT_EQ(f.region_offset(0), 0u);
  for (std::size_t i = 0; i < f.num_regions(); ++i) {
    EXPECT_EQ(f.region_offset(i) % DiskFile::kAlignment, 0u) << i;
    if (i + 1 < f.num_regions()) EXPECT_LE(f.region_offset(i) + f.region_size(i), f.region_offset(i + 1)) << i;
  }
  EXPECT_EQ(f.region_offset(1), 4096u);
  EXPECT_EQ(f.region_offset(2), 4096u + 8192u);
  EXPECT_EQ(f.region_offset(3), 4096u + 8192u + 8192u);
  EXPECT_EQ(f.file_bytes(), 4096u + 8192u + 8192u + 4096u);
  EXPECT_LE(f.region_offset(3) + f.region_size(3), f.file_bytes());

  struct stat st {};
  ASSERT_EQ(stat(f.path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), f.file_bytes());
  EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, f.file_bytes()) << "space is reserved, not sparse";

  EXPECT_EQ(fd_has_o_direct(f.fd()), f.direct_io());
  EXPECT_EQ(f.direct_io(), accepts_o_direct(dir.path()));
  EXPECT_NE(fcntl(f.fd(), F_GETFD) & FD_CLOEXEC, 0);

  const std::string path = f.path();
  file->reset();
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "removed at destruction";
  EXPECT_TRUE(dir.entries().empty());
}

TEST(DiskFileTest, NamesAreUniqueAndCarryPrefixAndPid) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  auto a = DiskFile::create({4096}, {.directory = dir.path(), .name_prefix = "tier"});
  auto b = DiskFile::create({4096}, {.directory = dir.path(), .name_prefix = "tier"});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->path(), (*b)->path());
  const std::string name = (*a)->path().substr(dir.path().size() + 1);
  EXPECT_THAT(name, MatchesRegex("tier-" + std::to_string(getpid()) + "-[0-9]+-[0-9a-f]+\\.bin"));
  EXPECT_EQ(dir.entries().size(), 2u);
}

TEST(DiskFileTest, UnlinkAfterOpenLeavesNoDirectoryEntry) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  auto file = DiskFile::create({8192}, {.directory = dir.path(), .unlink_after_open = true});
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(dir.entries().empty());
  struct stat st {};
  ASSERT_EQ(fstat((*file)->fd(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), 8192u);
  file->reset();
  EXPECT_TRUE(dir.entries().empty());
}

TEST(DiskFileTest, ForLayoutSizesRegionsFromTheLayout) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  ModelConfig model{.num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  auto layout = LayerSeparateLayout::create(model, 5, true);
  ASSERT_TRUE(layout.ok()) << layout.status();
  auto file = DiskFile::for_layout(**layout, {.directory = dir.path()});
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->region_sizes(), (*layout)->region_sizes());
}

TEST(DiskFileTest, DefaultDirectoryIsTmpdir) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old != nullptr ? old : "";
  ASSERT_EQ(setenv("TMPDIR", dir.path().c_str(), 1), 0);
  auto file = DiskFile::create({4096}, {});
  if (old != nullptr) {
    setenv("TMPDIR", saved.c_str(), 1);
  } else {
    unsetenv("TMPDIR");
  }
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT((*file)->path(), StartsWith(dir.path() + "/"));
}

TEST(DiskFileTest, RejectsMissingDirectoryAndNonDirectory) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string missing = dir.path() + "/does-not-exist";
  auto file = DiskFile::create({4096}, {.directory = missing});
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("'" + missing + "'"));

  const std::string regular = dir.path() + "/plain-file";
  const int fd = open(regular.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  file = DiskFile::create({4096}, {.directory = regular});
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("'" + regular + "'"));
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("not a directory"));
}

TEST(DiskFileTest, RejectsBadSizes) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  auto file = DiskFile::create({}, {.directory = dir.path()});
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  file = DiskFile::create({4096, 0}, {.directory = dir.path()});
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("region 1"));
  file = DiskFile::create({4096}, {.directory = dir.path(), .name_prefix = "../escape"});
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("'../escape'"));
  EXPECT_TRUE(dir.entries().empty());
}

TEST(DiskFileTest, TooLittleSpaceNamesDirectoryWantedAndFree) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  constexpr std::uint64_t kPiB = std::uint64_t{1} << 50;
  auto file = DiskFile::create({kPiB}, {.directory = dir.path()});
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string message(file.status().message());
  EXPECT_THAT(message, HasSubstr("'" + dir.path() + "'"));
  EXPECT_THAT(message, HasSubstr("needs " + std::to_string(kPiB) + " bytes (1.0 PiB)"));
  EXPECT_THAT(message, MatchesRegex(".*, [0-9]+ bytes free"));
  EXPECT_TRUE(dir.entries().empty()) << "nothing is created when the space check fails";
}

TEST(DiskFileTest, BufferedIoWhenAskedFor) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  auto file = DiskFile::create({4096}, {.directory = dir.path(), .direct_io = false});
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE((*file)->direct_io());
  EXPECT_FALSE(fd_has_o_direct((*file)->fd()));
}

// A file system that refuses O_DIRECT gets buffered I/O. tmpfs used to refuse it (Linux < 6.6 accepts it
// since); ramfs still does. KVBM_TEST_NO_ODIRECT_DIR may name any directory on such a file system.
TEST(DiskFileTest, FallsBackToBufferedIoWhereODirectIsRefused) {
  std::vector<std::string> parents;
  struct stat st {};
  if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)) parents.emplace_back("/dev/shm");
  if (const char* extra = std::getenv("KVBM_TEST_NO_ODIRECT_DIR"); extra != nullptr && extra[0] != '\0') {
    parents.emplace_back(extra);
  }
  if (parents.empty()) GTEST_SKIP() << "no /dev/shm and KVBM_TEST_NO_ODIRECT_DIR is not set";
  bool saw_refusal = false;
  for (const std::string& parent : parents) {
    SCOPED_TRACE(parent);
    TempDir dir(parent);
    ASSERT_TRUE(dir.ok());
    const bool direct_ok = accepts_o_direct(dir.path());
    saw_refusal = saw_refusal || !direct_ok;
    auto file = DiskFile::create({4096, 100}, {.directory = dir.path()});
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->direct_io(), direct_ok);
    EXPECT_EQ(fd_has_o_direct((*file)->fd()), direct_ok);
    EXPECT_EQ(dir.entries().size(), 1u) << "the refused O_DIRECT attempt leaves no stray file";
    const char byte = 'x';
    EXPECT_EQ(pwrite((*file)->fd(), &byte, 1, 4096), 1);
    file->reset();
    EXPECT_TRUE(dir.entries().empty());
  }
  if (!saw_refusal) {
    GTEST_SKIP() << "every candidate file system accepts O_DIRECT here (tmpfs does since Linux 6.6); set "
                    "KVBM_TEST_NO_ODIRECT_DIR to a ramfs directory to exercise the fallback";
  }
}

}  // namespace
}  // namespace kvbm
