// SHA-256, for the compiled-kernel cache key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mbsim {

class Sha256 {
public:
  Sha256();
  void update(const void *data, size_t n);
  void update(const std::string &s) { update(s.data(), s.size()); }
  // Adds a length-prefixed field, so that ("ab","c") and ("a","bc") differ.
  void field(const std::string &s);
  std::string hex(); // finishes the hash

private:
  void block(const uint8_t *p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

} // namespace mbsim
