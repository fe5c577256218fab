#include "io/atomic_file.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "xgrad/error.hpp"

namespace xg {
namespace {

std::string parent_directory(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), temporary_(path_ + ".tmp-XXXXXX") {
  fd_ = ::mkstemp(temporary_.data());
  if (fd_ < 0) throw IOError(fmt::format("cannot create a temporary file beside {}: {}", path_, std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (settled_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temporary_.c_str());
}

void AtomicFile::fail(std::string_view step) {
  const int err = errno;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
  settled_ = true;
  throw IOError(fmt::format("saving {} failed while {}: {}; the file was left as it was", path_, step, std::strerror(err)));
}

void AtomicFile::write(const void* data, std::size_t size, std::string_view what) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(fmt::format("writing {}", what));
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fchmod(fd_, 0644) != 0) fail("setting permissions");
  if (::fsync(fd_) != 0) fail("flushing to disk");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("closing");
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temporary_.c_str());
    settled_ = true;
    throw IOError(fmt::format("saving {} failed while renaming the temporary file: {}", path_, std::strerror(err)));
  }
  settled_ = true;
  const int dir = ::open(parent_directory(path_).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace xg
