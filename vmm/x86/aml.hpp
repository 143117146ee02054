// A small ACPI Machine Language (AML) encoder: just the terms our DSDT uses
// (ACPI 6.5, chapter 20). Each call appends one complete term; the scoped
// ones (Scope, Device, Method, Package, Buffer) take the bytes of their body,
// so that their PkgLength is known when they are encoded.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace forkvm::x86::aml {

using Bytes = std::vector<uint8_t>;

// A NameString: "\\_SB.VGEN", "_HID", "GED0". Segments shorter than four
// characters are padded with '_'; a leading '\' makes it absolute.
[[nodiscard]] Bytes name_string(std::string_view path);
// The PkgLength encoding of a body of `body_size` bytes (the length counts
// its own bytes too).
[[nodiscard]] Bytes pkg_length(size_t body_size);

[[nodiscard]] Bytes integer(uint64_t v);  // Zero, One, or the smallest prefix that fits
[[nodiscard]] Bytes string(std::string_view s);
[[nodiscard]] Bytes name(std::string_view path, const Bytes& object);  // Name (path, object)
[[nodiscard]] Bytes package(std::span<const Bytes> elements);
[[nodiscard]] Bytes buffer(std::span<const uint8_t> bytes);
[[nodiscard]] Bytes scope(std::string_view path, const Bytes& body);
[[nodiscard]] Bytes device(std::string_view path, const Bytes& body);
[[nodiscard]] Bytes method(std::string_view path, uint8_t arg_count, const Bytes& body);
[[nodiscard]] Bytes notify(std::string_view target, uint64_t value);

// ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh,
// Exclusive) { gsi } }: an Extended Interrupt descriptor and the end tag.
[[nodiscard]] Bytes edge_interrupt_resource(uint32_t gsi);

// Concatenates terms into one body.
[[nodiscard]] Bytes join(std::initializer_list<Bytes> terms);

}  // namespace forkvm::x86::aml
