#pragma once
// Replacing a file so that a reader, a crash or a power loss never sees half of it: write a
// temporary file beside the target, fsync it, rename it over the target, fsync the
// directory. Every writer of checkpoints, predictions, configs, indexes and logs goes
// through here.
#include <functional>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <string_view>

namespace j2v {

class AtomicFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "<path>.tmp-<pid>": unique per process, so two runs never write one temporary file, and a
// leftover names the process that left it.
std::string temp_path_for(const std::string& path);

// Removes what a killed run left beside `path`: "<path>.tmp-<pid>" and anything named after
// it ("<path>.tmp-<pid>.spill/", ".link"), for every pid that is no longer running here. A
// writer calls it before it starts, so kill -9 leaves at most one run's leftovers. (On a file
// system shared between machines a pid says nothing about another machine's processes: give
// each machine its own output paths, as rank-N files are.)
void remove_stale_temp_files(const std::string& path);

// Publishes a finished temporary file as `path`: fsync, rename, fsync of the directory (best
// effort: some file systems refuse it). Throws AtomicFileError; the temporary file is removed.
void commit_file(const std::string& temp_path, const std::string& path);

// Writes `path` through `write` (a stream on the temporary file) and commits it. Throws
// AtomicFileError naming the path when the stream fails (disk full); `path` is then untouched.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);
void write_file_atomically(const std::string& path, std::string_view content);

// Makes `link` name the same file as `existing` (a hard link), replacing `link` atomically.
// False when the file system cannot link; nothing is changed then.
bool link_file_atomically(const std::string& existing, const std::string& link);

// fsync of a file or a directory. Throws AtomicFileError.
void fsync_path(const std::string& path, bool directory = false);

// Removes a file or directory tree, ignoring errors (cleaning up after a failure).
void remove_quietly(const std::string& path);

}  // namespace j2v
