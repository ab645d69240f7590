#include "base/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace j2v {

namespace fs = std::filesystem;

namespace {
std::string errno_text(int error) { return std::strerror(error); }

void fsync_parent(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  try {
    fsync_path(parent.empty() ? "." : parent.string(), true);
  } catch (const AtomicFileError&) {
  }
}
}  // namespace

std::string temp_path_for(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

void remove_stale_temp_files(const std::string& path) {
  fs::path target(path);
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp-";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t digits = 0;
    while (prefix.size() + digits < name.size() && std::isdigit(static_cast<unsigned char>(name[prefix.size() + digits])))
      ++digits;
    if (digits == 0 || digits > 9) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name.substr(prefix.size(), digits)));
    // Signal 0 checks existence only; EPERM means alive under another user.
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    remove_quietly(it->path().string());
  }
}

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw AtomicFileError("cannot open '" + path + "' to sync it to disk: " + errno_text(errno));
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) throw AtomicFileError("cannot sync '" + path + "' to disk: " + errno_text(saved));
}

void remove_quietly(const std::string& path) {
  std::error_code ignored;
  fs::remove_all(path, ignored);
}

void commit_file(const std::string& temp_path, const std::string& path) {
  try {
    // The data must be on disk before the name points at it, or a power loss could leave a
    // complete-looking but empty file at `path`.
    fsync_path(temp_path);
  } catch (...) {
    remove_quietly(temp_path);
    throw;
  }
  if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
    int saved = errno;
    remove_quietly(temp_path);
    throw AtomicFileError("cannot rename '" + temp_path + "' to '" + path + "': " + errno_text(saved));
  }
  fsync_parent(path);
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  remove_stale_temp_files(path);
  std::string temp = temp_path_for(path);
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw AtomicFileError("cannot write '" + path + "': cannot create '" + temp + "': " + errno_text(errno));
    try {
      write(out);
    } catch (...) {
      out.close();
      remove_quietly(temp);
      throw;
    }
    out.flush();
    if (!out) {
      out.close();
      remove_quietly(temp);
      throw AtomicFileError("cannot write '" + path + "' (disk full?)");
    }
  }
  commit_file(temp, path);
}

void write_file_atomically(const std::string& path, std::string_view content) {
  write_file_atomically(path, [content](std::ostream& out) { out.write(content.data(), static_cast<std::streamsize>(content.size())); });
}

bool link_file_atomically(const std::string& existing, const std::string& link) {
  std::error_code error;
  std::string temp = temp_path_for(link) + ".link";
  fs::remove(temp, error);
  fs::create_hard_link(existing, temp, error);
  if (error) return false;
  fs::rename(temp, link, error);
  if (error) {
    fs::remove(temp, error);
    return false;
  }
  fsync_parent(link);
  return true;
}

}  // namespace j2v
