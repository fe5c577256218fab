#pragma once
// A file that appears at its path whole or not at all: written to a temporary beside the target,
// flushed to disk, then renamed over it. Checkpoints and generated sources are written this way, so
// that a crash or a full disk never leaves a partial file where a reader (or the build) looks.
#include <cstddef>
#include <string>
#include <string_view>

namespace xg {

class AtomicFile {
 public:
  /// Creates the temporary `<path>.tmp-XXXXXX`; IOError if it cannot.
  explicit AtomicFile(std::string path);
  /// Removes the temporary unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `size` bytes; on failure an IOError saying that writing `what` failed and that the file
  /// at the path was left as it was.
  void write(const void* data, std::size_t size, std::string_view what);
  void write(std::string_view text, std::string_view what) { write(text.data(), text.size(), what); }
  /// Flushes the temporary to disk and renames it over the path (then flushes the directory, which
  /// makes the rename itself durable).
  void commit();

 private:
  [[noreturn]] void fail(std::string_view step);
  std::string path_, temporary_;
  int fd_ = -1;
  bool settled_ = false;  // renamed over the path, or already removed: nothing for the destructor to do
};

}  // namespace xg
