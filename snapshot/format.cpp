#include "snapshot/format.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "vmm/unique_fd.hpp"

namespace forkvm::snapshot {
namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78U : c >> 1;  // reflected 0x1EDC6F41
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

void put32(std::vector<uint8_t>& out, uint32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}
void put64(std::vector<uint8_t>& out, uint64_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}
template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void put_section(std::vector<uint8_t>& out, uint32_t id, uint32_t instance,
                 std::span<const uint8_t> payload) {
  const size_t start = out.size();
  put32(out, id);
  put32(out, instance);
  put64(out, payload.size());
  put32(out, crc32c(payload));
  put32(out, crc32c({out.data() + start, kSectionHeaderSize - 4}));
  out.insert(out.end(), payload.begin(), payload.end());
}

}  // namespace

uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc) {
  crc = ~crc;
  for (uint8_t b : data) crc = kCrcTable[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void StateFileWriter::add(uint32_t id, uint32_t instance, std::vector<uint8_t> payload) {
  sections_.push_back({id, instance, std::move(payload)});
}

std::vector<uint8_t> StateFileWriter::encode() const {
  // Built in a fixed array: flags and reserved fields stay zero.
  std::array<uint8_t, kHeaderSize> header{};
  std::memcpy(header.data(), kMagic, sizeof kMagic);
  const uint16_t version[2] = {kFormatMajor, kFormatMinor};
  std::memcpy(header.data() + 8, version, sizeof version);
  const uint32_t header_crc = crc32c(std::span(header).first(kHeaderSize - 4));
  std::memcpy(header.data() + kHeaderSize - 4, &header_crc, sizeof header_crc);
  std::vector<uint8_t> out(header.begin(), header.end());
  for (const Section& s : sections_) put_section(out, s.id, s.instance, s.payload);
  std::vector<uint8_t> count;
  put32(count, static_cast<uint32_t>(sections_.size()));
  put_section(out, kEnd, 0, count);
  return out;
}

Status StateFileWriter::write(const std::string& path) const { return write_file_atomic(path, encode()); }

namespace {

Status write_and_sync(const std::string& path, std::span<const uint8_t> bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("create {}", path));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error(fmt::format("write {}", path));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return errno_error(fmt::format("fsync {}", path));
  return {};
}

}  // namespace

Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  const std::string tmp = path + ".tmp";
  Status written = write_and_sync(tmp, bytes);
  if (written.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    written = errno_error(fmt::format("rename {} to {}", tmp, path));
  if (!written.ok()) {
    ::unlink(tmp.c_str());  // a full disk leaves no half-written file behind
    return written;
  }
  // The rename itself must survive a crash, or a later step could trust a
  // file the directory does not name yet.
  const auto slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) (void)::fsync(dir.get());
  return {};
}

Result<StateFile> StateFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
  StateFile f;
  f.name_ = name;
  if (bytes.size() < kHeaderSize) {
    return make_error("snapshot state file {}: truncated: {} bytes, the header alone is {}", name,
                      bytes.size(), kHeaderSize);
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return make_error("snapshot state file {}: not a forkvm snapshot (bad magic)", name);
  }
  const uint32_t header_crc = get<uint32_t>(bytes.data() + kHeaderSize - 4);
  if (crc32c(bytes.first(kHeaderSize - 4)) != header_crc) {
    return make_error("snapshot state file {}: file header checksum mismatch (corrupt)", name);
  }
  const auto major = get<uint16_t>(bytes.data() + 8);
  f.minor_ = get<uint16_t>(bytes.data() + 10);
  if (major != kFormatMajor) {
    return make_error("snapshot state file {}: format version {}.{}, this forkvm reads only {}.x", name,
                      major, f.minor_, kFormatMajor);
  }
  size_t pos = kHeaderSize;
  for (;;) {
    const size_t left = bytes.size() - pos;
    if (left == 0)
      return make_error("snapshot state file {}: truncated: no end marker after {} sections", name,
                        f.sections_.size());
    if (left < kSectionHeaderSize) {
      return make_error("snapshot state file {}: truncated inside a section header at byte {}", name, pos);
    }
    const uint8_t* h = bytes.data() + pos;
    if (crc32c({h, kSectionHeaderSize - 4}) != get<uint32_t>(h + kSectionHeaderSize - 4)) {
      return make_error("snapshot state file {}: section header at byte {} checksum mismatch (corrupt)", name,
                        pos);
    }
    Section s;
    s.id = get<uint32_t>(h);
    s.instance = get<uint32_t>(h + 4);
    const auto length = get<uint64_t>(h + 8);
    const auto payload_crc = get<uint32_t>(h + 16);
    pos += kSectionHeaderSize;
    if (length > bytes.size() - pos) {
      return make_error(
          "snapshot state file {}: truncated: section {}/{} at byte {} claims {} bytes, {} left", name, s.id,
          s.instance, pos - kSectionHeaderSize, length, bytes.size() - pos);
    }
    const auto payload = bytes.subspan(pos, static_cast<size_t>(length));
    if (crc32c(payload) != payload_crc) {
      return make_error("snapshot state file {}: section {}/{} at byte {} checksum mismatch (corrupt)", name,
                        s.id, s.instance, pos - kSectionHeaderSize);
    }
    pos += payload.size();
    if (s.id == kEnd) {
      if (payload.size() != 4 || get<uint32_t>(payload.data()) != f.sections_.size()) {
        return make_error("snapshot state file {}: end marker does not match the {} sections read", name,
                          f.sections_.size());
      }
      if (pos != bytes.size()) {
        return make_error("snapshot state file {}: {} bytes of trailing data after the end marker", name,
                          bytes.size() - pos);
      }
      return f;
    }
    s.payload.assign(payload.begin(), payload.end());
    f.sections_.push_back(std::move(s));
  }
}

Result<StateFile> StateFile::read(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open snapshot state file {}", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error(fmt::format("stat {}", path));
  if (!S_ISREG(st.st_mode)) return make_error("snapshot state file {} is not a regular file", path);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > kMaxStateFileSize) {
    return make_error("snapshot state file {}: {} bytes, more than the {} MiB a state file can be", path,
                      size, kMaxStateFileSize >> 20);
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("read {}", path));
    if (n == 0) break;  // shrank under us: parse() reports the truncation
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return parse(bytes, path);
}

const Section* StateFile::find(uint32_t id, uint32_t instance) const {
  for (const Section& s : sections_) {
    if (s.id == id && s.instance == instance) return &s;
  }
  return nullptr;
}

Result<const Section*> StateFile::require(uint32_t id, uint32_t instance, const char* what) const {
  if (const Section* s = find(id, instance)) return s;
  return make_error("snapshot state file {}: no {} section (id {}, instance {})", name_, what, id, instance);
}

}  // namespace forkvm::snapshot
