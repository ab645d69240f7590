#include "io/s3/s3_settings.h"

#include <cstdlib>
#include <fstream>
#include <map>

#include "base/errors.h"

namespace j2v::io {

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// section -> key -> value of an INI file such as ~/.aws/credentials; empty when absent.
std::map<std::string, std::map<std::string, std::string>> read_ini(const std::string& path) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::ifstream in(path);
  std::string line, section;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = trim(line.substr(1, line.size() - 2));
      continue;
    }
    auto eq = line.find('=');
    if (eq != std::string::npos) out[section][trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return out;
}

std::string home_file(const char* override_var, const char* relative) {
  std::string path = env(override_var);
  if (!path.empty()) return path;
  std::string home = env("HOME");
  return home.empty() ? "" : home + "/" + relative;
}

}  // namespace

S3Settings s3_settings_from_environment() {
  S3Settings s;
  std::string profile = env("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  s.credentials.access_key_id = env("AWS_ACCESS_KEY_ID");
  s.credentials.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
  s.credentials.session_token = env("AWS_SESSION_TOKEN");
  std::string credentials_file = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  if (s.credentials.access_key_id.empty() || s.credentials.secret_access_key.empty()) {
    auto ini = read_ini(credentials_file);
    auto& p = ini[profile];
    s.credentials.access_key_id = p["aws_access_key_id"];
    s.credentials.secret_access_key = p["aws_secret_access_key"];
    s.credentials.session_token = p["aws_session_token"];
  }
  if (s.credentials.access_key_id.empty() || s.credentials.secret_access_key.empty())
    throw DataError("no AWS credentials for S3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add "
                    "aws_access_key_id and aws_secret_access_key to profile '" + profile + "' in '" +
                    credentials_file + "' (AWS_PROFILE picks the profile)");
  std::string region = env("AWS_REGION");
  if (region.empty()) region = env("AWS_DEFAULT_REGION");
  if (region.empty()) {
    auto config = read_ini(home_file("AWS_CONFIG_FILE", ".aws/config"));
    region = config[profile == "default" ? "default" : "profile " + profile]["region"];
  }
  if (!region.empty()) s.region = region;
  s.endpoint = env("AWS_ENDPOINT_URL_S3");
  if (s.endpoint.empty()) s.endpoint = env("AWS_ENDPOINT_URL");
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  return s;
}

}  // namespace j2v::io
